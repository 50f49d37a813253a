//! The in-process vision-language path (moondream2 on candle) on a tiny random-weight
//! model of the same architecture that this test writes: no VLM weights are reachable from
//! the build machines. It runs the whole image + text path: a GGUF and a byte-level BPE
//! `tokenizer.json` read the way the released files are, the marked frame resized and
//! encoded by the ViT, the embeddings read after BOS, tokens streamed, and the answer
//! validated (a random model's text comes back unparsed, never with an invented label).
//! Nothing here says the real model's answers are good; see the README.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::common::*;
use affectd::llm::candle::moondream::{CONFIG_KEY, MoondreamConfig};
use affectd::llm::candle::tokenizer::Tokenizer;
use affectd::llm::candle::{CandleBackend, CandleConfig, Loaded, Prompt};
use affectd::llm::{ChatBackend, ChatRequest, Message, Part};
use affectd::proto::affect_client::AffectClient;
use affectd::proto::*;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_nn::Activation;

/// A tiny moondream: candle fixes the ViT width at 1152 (its patch embedding is hard-wired),
/// so the ViT has one block; the decoder is 2 layers of 64. 16 patches = a 56 px image.
fn tiny_config() -> MoondreamConfig {
    let mut config = MoondreamConfig::v2();
    let phi = &mut config.phi_config;
    phi.vocab_size = 320;
    phi.n_positions = 4096;
    phi.n_embd = 64;
    phi.n_layer = 2;
    phi.n_inner = Some(128);
    phi.n_head = 4;
    phi.rotary_dim = 8;
    phi.activation_function = Activation::Gelu;
    let vision = &mut config.vision_config;
    vision.model_dim = 64;
    vision.hidden_dim = 128;
    vision.hidden_features = 64;
    vision.embed_len = 16;
    vision.num_blocks = 1;
    vision.num_heads = 2;
    config
}

/// SplitMix64 -> uniform in [-scale, scale): reproducible random weights without a
/// random-number crate.
struct Weights(u64);

impl Weights {
    fn next(&mut self, scale: f32) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }

    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.next(scale)).collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }
}

/// Every tensor candle's quantized moondream reads, with its shape (out, in for linear
/// weights) and whether it is a layer norm's (weights near 1, biases near 0).
fn tensor_shapes(c: &MoondreamConfig) -> Vec<(String, Vec<usize>)> {
    let mut t = Vec::new();
    let linear = |t: &mut Vec<(String, Vec<usize>)>, name: String, inputs, outputs| {
        t.push((format!("{name}.weight"), vec![outputs, inputs]));
        t.push((format!("{name}.bias"), vec![outputs]));
    };
    let (phi, v) = (&c.phi_config, &c.vision_config);
    let norm = |t: &mut Vec<(String, Vec<usize>)>, name: String, width: usize| {
        t.push((format!("{name}.weight"), vec![width]));
        t.push((format!("{name}.bias"), vec![width]));
    };
    t.push((
        "text_model.transformer.embd.wte.weight".into(),
        vec![phi.vocab_size, phi.n_embd],
    ));
    let inner = phi.n_inner.unwrap();
    for i in 0..phi.n_layer {
        let block = format!("text_model.transformer.h.{i}");
        norm(&mut t, format!("{block}.ln"), phi.n_embd);
        linear(
            &mut t,
            format!("{block}.mixer.Wqkv"),
            phi.n_embd,
            3 * phi.n_embd,
        );
        linear(
            &mut t,
            format!("{block}.mixer.out_proj"),
            phi.n_embd,
            phi.n_embd,
        );
        linear(&mut t, format!("{block}.mlp.fc1"), phi.n_embd, inner);
        linear(&mut t, format!("{block}.mlp.fc2"), inner, phi.n_embd);
    }
    norm(&mut t, "text_model.lm_head.ln".into(), phi.n_embd);
    linear(
        &mut t,
        "text_model.lm_head.linear".into(),
        phi.n_embd,
        phi.vocab_size,
    );
    let visual = "vision_encoder.encoder.model.visual";
    linear(&mut t, format!("{visual}.patch_embed.linear"), 588, 1152);
    t.push((
        format!("{visual}.pos_embed"),
        vec![1, v.embed_len, v.embed_dim],
    ));
    for i in 0..v.num_blocks {
        let block = format!("{visual}.blocks.{i}");
        linear(
            &mut t,
            format!("{block}.attn.qkv"),
            v.embed_dim,
            3 * v.embed_dim,
        );
        linear(
            &mut t,
            format!("{block}.attn.proj"),
            v.embed_dim,
            v.embed_dim,
        );
        linear(
            &mut t,
            format!("{block}.mlp.fc1"),
            v.embed_dim,
            v.hidden_features,
        );
        linear(
            &mut t,
            format!("{block}.mlp.fc2"),
            v.hidden_features,
            v.embed_dim,
        );
        norm(&mut t, format!("{block}.norm1"), v.embed_dim);
        norm(&mut t, format!("{block}.norm2"), v.embed_dim);
    }
    norm(&mut t, format!("{visual}.norm"), v.embed_dim);
    let projection = "vision_encoder.projection.mlp";
    linear(
        &mut t,
        format!("{projection}.fc1"),
        v.image_embedding_dim,
        v.hidden_dim,
    );
    linear(
        &mut t,
        format!("{projection}.fc2"),
        v.hidden_dim,
        v.model_dim,
    );
    t
}

/// Writes the tiny model as a GGUF in the released file's layout (Q8_0 where a weight's
/// rows split into 32-value blocks, f32 elsewhere), with its config under
/// `moondream.config` and no tokenizer.
fn write_tiny_gguf(path: &Path, seed: u64) {
    let config = tiny_config();
    let mut rng = Weights(seed);
    let tensors: Vec<(String, QTensor)> = tensor_shapes(&config)
        .into_iter()
        .map(|(name, shape)| {
            let is_norm = name.contains(".ln.") || name.contains("norm");
            let values = if is_norm && name.ends_with(".weight") {
                (rng.tensor(&shape, 0.1) + 1.0).unwrap()
            } else {
                // Uniform with variance 1/fan-in, so activations neither vanish nor blow up.
                let fan_in = *shape.last().unwrap() as f32;
                rng.tensor(&shape, (3.0 / fan_in).sqrt())
            };
            let quantizable = shape.len() == 2 && shape[1] % 32 == 0 && !name.contains("wte");
            let dtype = if quantizable {
                GgmlDType::Q8_0
            } else {
                GgmlDType::F32
            };
            (name, QTensor::quantize(&values, dtype).unwrap())
        })
        .collect();
    let config_json = gguf_file::Value::String(serde_json::to_string(&config).unwrap());
    let architecture = gguf_file::Value::String("moondream".into());
    let metadata = [
        ("general.architecture", &architecture),
        (CONFIG_KEY, &config_json),
    ];
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &metadata, &refs).unwrap();
}

/// GPT-2's byte -> printable character table (bytes_to_unicode).
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// A byte-level BPE `tokenizer.json` in the layout of moondream2's (GPT-2 / CodeGen):
/// the 256 byte tokens, a few merges, and `<|endoftext|>` as a special added token.
fn write_tokenizer_json(path: &Path) {
    let chars = byte_chars();
    let mut vocab = serde_json::Map::new();
    for (id, c) in chars.iter().enumerate() {
        vocab.insert(c.to_string(), id.into());
    }
    let merges = [
        ("Ġ", "t"),
        ("h", "e"),
        ("Ġt", "he"),
        ("Ġ", "a"),
        ("i", "n"),
        ("Ġ", "f"),
        ("a", "c"),
        ("e", "s"),
    ];
    for (a, b) in merges {
        let id = vocab.len();
        vocab.insert(format!("{a}{b}"), id.into());
    }
    let end_of_text = vocab.len();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": end_of_text, "content": "<|endoftext|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
            "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
            "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false,
            "byte_fallback": false, "vocab": vocab,
            "merges": merges.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()},
    });
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// The tiny model's tokenizer without the byte tokens of `missing` (ids renumbered): text
/// holding those bytes cannot be written with it.
fn write_tokenizer_json_without(path: &Path, missing: &[u8]) {
    write_tokenizer_json(path);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let chars = byte_chars();
    let gone: Vec<String> = missing
        .iter()
        .map(|b| chars[*b as usize].to_string())
        .collect();
    let vocab = json["model"]["vocab"].as_object().unwrap().clone();
    let mut kept: Vec<(String, u64)> = vocab
        .into_iter()
        .filter(|(token, _)| !gone.contains(token))
        .map(|(token, id)| (token, id.as_u64().unwrap()))
        .collect();
    kept.sort_by_key(|(_, id)| *id);
    let renumbered: serde_json::Map<String, serde_json::Value> = kept
        .into_iter()
        .enumerate()
        .map(|(id, (token, _))| (token, id.into()))
        .collect();
    let end_of_text = renumbered.len();
    json["model"]["vocab"] = serde_json::Value::Object(renumbered);
    json["added_tokens"][0]["id"] = end_of_text.into();
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// The tiny model and its tokenizer in a temporary folder, as a user would lay them out.
fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny-moondream.gguf");
    write_tiny_gguf(&gguf, 7);
    write_tokenizer_json(&dir.path().join("tokenizer.json"));
    (dir, gguf)
}

fn photo(name: &str) -> Vec<u8> {
    let path = repo().join(".testdata").join(name);
    std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
}

/// A flat-colour PNG, as a second image that differs from the photo everywhere.
fn flat_png(rgb: [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(64, 48, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn request(image: Option<Vec<u8>>, max_tokens: u32) -> ChatRequest {
    let mut user = Vec::new();
    if let Some(bytes) = image {
        user.push(Part::Image {
            mime: "image/png",
            bytes,
        });
    }
    user.push(Part::Text("What is face 1 feeling?".into()));
    ChatRequest {
        messages: vec![
            Message::text("system", "Answer in JSON."),
            Message {
                role: "user",
                parts: user,
            },
        ],
        max_tokens,
        temperature: 0.0,
        top_p: 1.0,
        seed: None,
        stop: Vec::new(),
        response: None,
        no_repeat_ngram: 0,
    }
}

#[test]
fn tokenizer_json_reads_as_the_tokenizers_crate_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    write_tokenizer_json(&path);
    let ours = Tokenizer::from_tokenizer_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let theirs = tokenizers::Tokenizer::from_file(&path).unwrap();
    for text in [
        "the face in the frame",
        "\n\nQuestion: What is face 1 feeling?\n\nAnswer:",
        "Ünïcödé — 表情 😀 and  two  spaces",
        "",
    ] {
        let expected = theirs.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(
            ours.encode(text, false).unwrap(),
            expected,
            "ids of {text:?}"
        );
        assert_eq!(ours.decode(&expected), text, "decoding {text:?}");
    }
    // BOS = EOS = <|endoftext|>; a client writing it gets plain text, the template gets
    // the token.
    let end = ours.bos.unwrap();
    assert_eq!(ours.end_of_generation, vec![end]);
    assert_eq!(ours.encode("<|endoftext|>", true).unwrap(), vec![end]);
    assert!(!ours.encode("<|endoftext|>", false).unwrap().contains(&end));
    // A file that is not a BPE tokenizer is refused, naming the problem.
    let err = Tokenizer::from_tokenizer_json(r#"{"model": {"type": "WordPiece"}}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("WordPiece"), "{err}");
}

#[test]
fn the_image_is_read_after_bos_and_changes_the_answer() {
    let (_dir, gguf) = tiny_model();
    let mut model = Loaded::load(&gguf).unwrap();
    assert!(model.takes_images());
    assert_eq!(model.architecture, "moondream");
    assert_eq!(model.image_tokens(), 16);
    assert_eq!(model.context_length, 4096);

    let photo = photo("0-f1-su-ph.jpg");
    let with_photo = model.prompt(&request(Some(photo.clone()), 8)).unwrap();
    let text_only = model.prompt(&request(None, 8)).unwrap();
    // BOS, then moondream2's question format around the messages.
    assert_eq!(with_photo.tokens[0], model.tokenizer.bos.unwrap());
    assert_eq!(
        model.tokenizer.decode(&with_photo.tokens[1..]),
        "\n\nQuestion: Answer in JSON.\n\nWhat is face 1 feeling?\n\nAnswer:"
    );
    assert_eq!(with_photo.tokens, text_only.tokens);
    assert_eq!(with_photo.image.as_deref(), Some(photo.as_slice()));
    // Two images are refused, not silently dropped.
    let mut two = request(Some(photo.clone()), 8);
    two.messages[1].parts.insert(
        0,
        Part::Image {
            mime: "image/png",
            bytes: flat_png([0, 0, 0]),
        },
    );
    let err = model.prompt(&two).unwrap_err().to_string();
    assert!(err.contains("one image"), "{err}");

    let logits = |model: &mut Loaded, prompt: &Prompt| model.prompt_logits(prompt).unwrap();
    let photo_logits = logits(&mut model, &with_photo);
    assert_eq!(photo_logits.len(), model.tokenizer.vocab_size());
    assert!(photo_logits.iter().all(|x| x.is_finite()));
    // Deterministic, and the image matters: another image, or none, gives other logits.
    assert_eq!(logits(&mut model, &with_photo), photo_logits);
    let grey = Prompt {
        image: Some(flat_png([128, 128, 128])),
        ..with_photo.clone()
    };
    let differs = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>();
    assert!(differs(&logits(&mut model, &grey), &photo_logits) > 1e-3);
    assert!(differs(&logits(&mut model, &text_only), &photo_logits) > 1e-3);
    // An image that cannot be decoded is an error, not a crash.
    let broken = Prompt {
        image: Some(b"not an image".to_vec()),
        ..with_photo.clone()
    };
    assert!(model.prompt_logits(&broken).is_err());

    // Generation reads the image once, then one token at a time; the prompt count
    // includes the image's 16 positions.
    let generation = model
        .generate_prompt(&with_photo, &request(None, 6), 256, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        generation.prompt_tokens as usize,
        with_photo.tokens.len() + 16
    );
    assert!(generation.generated_tokens >= 1 && generation.generated_tokens <= 6);
    // Greedy decoding from the same prompt gives the same text.
    let again = model
        .generate_prompt(&with_photo, &request(None, 6), 256, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(again.text, generation.text);
}

#[test]
fn a_moondream_gguf_without_a_tokenizer_beside_it_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("lonely.gguf");
    write_tiny_gguf(&gguf, 1);
    let err = Loaded::load(&gguf).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    // The backend knows it is a vision-language model from the header alone.
    let backend = CandleBackend::new(CandleConfig {
        model_path: gguf,
        model_name: "lonely".into(),
        prefill_chunk: 256,
    });
    assert!(backend.accepts_images());
}

async fn explain(
    affect: &mut AffectClient<tonic::transport::Channel>,
    include_image: bool,
) -> (String, ExplainResult) {
    let mut stream = affect
        .explain(ExplainRequest {
            source: Some(explain_request::Source::Image(ImageInput {
                data: Some(image_input::Data::Encoded(photo("0-f1-su-ph.jpg"))),
            })),
            backend: "candle".into(),
            max_tokens: 24,
            include_image,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    tokens_then_result(&mut stream).await
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_sends_the_marked_frame_through_the_tiny_vlm() {
    let (_dir, gguf) = tiny_model();
    let (_server, mut affect, info) =
        server_with("AFFECTD_CANDLE_MODEL", gguf.to_str().unwrap()).await;
    let candle = info.backends.iter().find(|b| b.name == "candle").unwrap();
    assert!(candle.available && candle.accepts_images, "{candle:?}");

    let (tokens, with_image) = explain(&mut affect, true).await;
    assert!(with_image.image_included);
    assert_eq!(with_image.backend, "candle");
    assert_eq!(with_image.model, "tiny-moondream.gguf");
    let timings = with_image.timings.unwrap();
    assert!(timings.generated_tokens >= 1);
    // Decoded under the answer's schema, even a random model's answer is the contract's
    // shape; only a budget too small for it leaves it unparsed (cut, not repaired), and no
    // label is made up.
    assert!(with_image.constrained);
    if !with_image.parsed {
        assert!(with_image.judgements.is_empty());
        assert_eq!(with_image.repair_attempts, 0);
        assert!(
            with_image.parse_error.contains("cut at max_tokens"),
            "{}",
            with_image.parse_error
        );
    }
    assert!(!tokens.is_empty() || with_image.raw_text.is_empty());

    let (_, without) = explain(&mut affect, false).await;
    assert!(!without.image_included);
    // The image-free prompt states that no image is attached, so it is not the same text;
    // what must hold is that the image's 16 positions are counted only when it is sent.
    let with_count = timings.prompt_tokens;
    let without_count = without.timings.unwrap().prompt_tokens;
    assert_ne!(with_count, without_count);
}

#[test]
fn eval_runs_the_full_sovtp_row_when_the_model_reads_images() {
    let (dir, gguf) = tiny_model();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for name in ["0-f1-su-ph.jpg", "45-m7-di-ph.jpg"] {
        std::fs::write(photos.join(name), photo(name)).unwrap();
    }
    let output = affectd(dir.path())
        .env("AFFECTD_CANDLE_MODEL", &gguf)
        .args(["eval", "explain"])
        .arg(&photos)
        .args(["--max-tokens", "8"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no {name} row in\n{stdout}"))
            .to_string()
    };
    // Both LLM rows ran on the tiny model; the random model's answers do not parse, so
    // they count as wrong, and the table says so.
    for name in [
        "LLM, full SoVTP prompt (image)",
        "LLM, image-free SoVTP prompt",
    ] {
        let line = row(name);
        assert!(line.contains("tiny-moondream.gguf"), "{line}");
        assert!(line.contains("/2, unparsed count as wrong"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_cut_at_max_tokens_is_unparsed_with_the_reason_and_too_long_is_refused() {
    let (_dir, gguf) = tiny_model();
    let (_server, mut affect, _) =
        server_with("AFFECTD_CANDLE_MODEL", gguf.to_str().unwrap()).await;
    let request = |max_tokens: u32| ExplainRequest {
        source: Some(explain_request::Source::Image(ImageInput {
            data: Some(image_input::Data::Encoded(photo("0-f1-su-ph.jpg"))),
        })),
        backend: "candle".into(),
        max_tokens,
        include_image: true,
        ..Default::default()
    };
    // Too many answer tokens: refused before any token, and the message says how long the
    // prompt is (image positions included).
    let mut refused = affect.explain(request(4000)).await.unwrap().into_inner();
    let status = refused.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("the prompt ("),
        "no prompt length in {:?}",
        status.message()
    );
    // Decoded under the answer's schema, even a random model writes valid JSON; only a
    // budget too small for the schema cuts it. Then the answer is unparsed with the reason,
    // never a half judgement. A repair with the same budget would be cut the same way, so
    // none is tried.
    let mut stream = affect.explain(request(20)).await.unwrap().into_inner();
    let (_, result) = tokens_then_result(&mut stream).await;
    assert!(!result.parsed && result.judgements.is_empty());
    assert_eq!(result.repair_attempts, 0);
    assert!(!result.raw_text.is_empty());
    assert!(
        result
            .parse_error
            .contains("the answer was cut at max_tokens (20)"),
        "{}",
        result.parse_error
    );
    assert!(result.constrained);
}

/// A label the model's vocabulary cannot write (its bytes are not tokens, and there is no
/// byte fallback) makes the answer's schema impossible: refused before anything is
/// generated, naming the label.
#[tokio::test(flavor = "multi_thread")]
async fn a_label_the_vocabulary_cannot_spell_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny-moondream.gguf");
    write_tiny_gguf(&gguf, 7);
    // "é" is the bytes 0xC3 0xA9.
    write_tokenizer_json_without(&dir.path().join("tokenizer.json"), &[0xC3, 0xA9]);
    let (_server, mut affect, _) =
        server_with("AFFECTD_CANDLE_MODEL", gguf.to_str().unwrap()).await;
    let request = |labels: &[&str]| ExplainRequest {
        source: Some(explain_request::Source::Image(ImageInput {
            data: Some(image_input::Data::Encoded(photo("0-f1-su-ph.jpg"))),
        })),
        backend: "candle".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        max_tokens: 20,
        ..Default::default()
    };
    let status = affect
        .explain(request(&["calm", "blasé"]))
        .await
        .expect_err("refused before streaming");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("\"blasé\" cannot be written"),
        "{}",
        status.message()
    );
    // The same model with labels it can spell answers.
    let mut stream = affect
        .explain(request(&["calm", "tense"]))
        .await
        .unwrap()
        .into_inner();
    let (_, result) = tokens_then_result(&mut stream).await;
    assert_eq!(result.backend, "candle");
}

/// `affectd explain VIDEO --at T` with a model that reads images: the face's latest
/// episode's onset and apex frames go under the marked frame, in the one image the model
/// reads, and the prompt says what they are.
#[test]
fn a_video_moment_sends_the_episode_keyframes_under_the_frame() {
    use crate::expression_dynamics::{encode, smile_frames};
    let (dir, gguf) = tiny_model();
    let clip = dir.path().join("smiles.mp4");
    let frames = smile_frames();
    let (w, h) = frames[0].dimensions();
    encode(frames.into_iter(), w, h, &clip);
    let result = json_output(
        affectd(dir.path())
            .env("AFFECTD_CANDLE_MODEL", &gguf)
            .arg("explain")
            .arg(&clip)
            .args([
                "--at",
                "4.2",
                "--backend",
                "candle",
                "--quiet",
                "--max-tokens",
                "8",
            ]),
    );
    assert_eq!(result["image_included"], true);
    let user = result["prompt"]["user"].as_str().unwrap();
    assert!(
        user.contains("Below the frame, the image shows face 1's ep1 as two crops: left, its onset frame (1.20 s before this frame); right, its apex frame (1.17 s before)"),
        "{user}"
    );
}

/// A recorded moment for a model that reads images: the latest episode's onset and apex
/// frames are read back from the recording and sent under the frame.
#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_moment_sends_the_episode_keyframes_read_back_from_the_recording() {
    let (dir, gguf) = tiny_model();
    let database = dir.path().join("lab.sqlite");
    let server = TestServer::start(|cmd| {
        cmd.env("AFFECTD_DATABASE", &database);
    });
    let mut affect = AffectClient::new(server.channel().await);
    crate::expression_dynamics::record_smiles(&mut affect, "smiles", 500.0).await;
    let result = crate::expression_dynamics::explain_recorded_smiles(
        dir.path(),
        &database,
        ("AFFECTD_CANDLE_MODEL", gguf.as_ref()),
        "candle",
    );
    assert_eq!(result["image_included"], true);
    let user = result["prompt"]["user"].as_str().unwrap();
    assert!(
        user.contains("Below the frame, the image shows face 1's ep1 as two crops: left, its onset frame (2.00 s before this frame)"),
        "{user}"
    );
}
