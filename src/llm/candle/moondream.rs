//! moondream2, the in-process vision-language model: candle-transformers'
//! `quantized_moondream` (a SigLIP-style ViT over 14-pixel patches, projected into the
//! embedding space of a Phi-1.5 decoder), run from a GGUF such as
//! `santiagomed/candle-moondream`'s `model-q4_0.gguf`.
//!
//! The sequence the decoder reads is the paper's: `<|endoftext|>`, then the image's patch
//! embeddings (729 for the 378x378 input of the released model), then the text
//! `"\n\nQuestion: …\n\nAnswer:"`. The image is resized to the square input *whole*
//! (stretched, as moondream2's own preprocessing does), never cropped, so every numbered
//! SoVTP box stays in view.
//!
//! The GGUF the candle examples use carries no hyper-parameters, so a file without a
//! `moondream.config` metadata entry gets the released model's ([`MoondreamConfig::v2`]).
//! Files written with one (the tiny random-weight model the tests build) get theirs.
//! The tokenizer is the released model's `tokenizer.json` (GPT-2 byte-level BPE), read
//! from beside the GGUF unless the GGUF embeds one.

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Activation;
use candle_transformers::models::{moondream, quantized_moondream};
use candle_transformers::quantized_var_builder::VarBuilder;
use serde::{Deserialize, Serialize};

/// The metadata key holding the model's hyper-parameters as JSON (ours; the released
/// GGUF has none and gets [`MoondreamConfig::v2`]).
pub const CONFIG_KEY: &str = "moondream.config";
/// A tensor only a moondream GGUF has, to recognise files without `general.architecture`.
const MARKER_TENSOR: &str = "vision_encoder.encoder.model.visual.pos_embed";
/// The ViT's patch side in pixels (fixed in candle's implementation).
const PATCH: usize = 14;

/// candle's `moondream::Config`, mirrored because its fields are private to candle: the
/// loader needs the image size and context length, and the tests write the JSON.
/// The field names are candle's, so this deserializes into it unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoondreamConfig {
    pub phi_config: PhiConfig,
    pub vision_config: VisionConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhiConfig {
    pub vocab_size: usize,
    /// The decoder's context, in tokens (image tokens included).
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_inner: Option<usize>,
    pub n_head: usize,
    pub rotary_dim: usize,
    pub activation_function: Activation,
    pub layer_norm_epsilon: f64,
    pub tie_word_embeddings: bool,
    pub pad_vocab_size_multiple: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Width of the ViT's output (the projection's input); candle fixes it at 1152.
    pub image_embedding_dim: usize,
    /// Width of the decoder's embeddings (the projection's output).
    pub model_dim: usize,
    pub hidden_dim: usize,
    pub hidden_features: usize,
    /// Patches per image: a square number, (side / 14)^2.
    pub embed_len: usize,
    pub embed_dim: usize,
    pub num_blocks: usize,
    pub num_heads: usize,
    pub act: Activation,
}

impl MoondreamConfig {
    /// moondream2 as released (candle's `Config::v2`: Phi-1.5 and a 27-block ViT).
    pub fn v2() -> Self {
        Self {
            phi_config: PhiConfig {
                vocab_size: 51200,
                n_positions: 2048,
                n_embd: 2048,
                n_layer: 24,
                n_inner: None,
                n_head: 32,
                rotary_dim: 32,
                activation_function: Activation::Gelu,
                layer_norm_epsilon: 1e-5,
                tie_word_embeddings: false,
                pad_vocab_size_multiple: 64,
            },
            vision_config: VisionConfig {
                image_embedding_dim: 1152,
                model_dim: 2048,
                hidden_dim: 2048 * 4,
                hidden_features: 4304,
                embed_len: 729,
                embed_dim: 1152,
                num_blocks: 27,
                num_heads: 16,
                act: Activation::GeluPytorchTanh,
            },
        }
    }

    /// The side of the square input image in pixels, or why the config has none.
    pub fn image_side(&self) -> Result<usize, String> {
        let patches = self.vision_config.embed_len;
        let per_side = (patches as f64).sqrt().round() as usize;
        if per_side == 0 || per_side * per_side != patches {
            return Err(format!(
                "{CONFIG_KEY}: embed_len {patches} is not a square number of patches"
            ));
        }
        Ok(per_side * PATCH)
    }

    fn check(&self) -> Result<(), String> {
        let v = &self.vision_config;
        // candle's patch embedding is hard-wired to 3 x 14 x 14 -> 1152.
        if v.embed_dim != 1152 || v.image_embedding_dim != 1152 {
            return Err(format!(
                "{CONFIG_KEY}: embed_dim and image_embedding_dim must be 1152 (candle's patch embedding is fixed), not {} and {}",
                v.embed_dim, v.image_embedding_dim
            ));
        }
        if v.model_dim != self.phi_config.n_embd {
            return Err(format!(
                "{CONFIG_KEY}: the vision projection gives {} wide embeddings, the decoder takes {}",
                v.model_dim, self.phi_config.n_embd
            ));
        }
        if self.phi_config.n_positions > 4096 {
            // candle's rotary table has 4096 positions.
            return Err(format!(
                "{CONFIG_KEY}: n_positions {} exceeds candle's 4096",
                self.phi_config.n_positions
            ));
        }
        self.image_side().map(|_| ())
    }

    fn candle(&self) -> Result<moondream::Config, String> {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .map_err(|e| format!("{CONFIG_KEY}: {e}"))
    }
}

/// Whether a GGUF holds a moondream model: it says so, or it has the ViT's tensors and no
/// architecture at all (the candle example's file).
pub fn is_moondream(content: &Content) -> bool {
    match content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
    {
        Some(architecture) => architecture == "moondream",
        None => content.tensor_infos.contains_key(MARKER_TENSOR),
    }
}

/// The hyper-parameters a GGUF records, else the released model's.
pub fn config_of(content: &Content) -> Result<MoondreamConfig, String> {
    let config = match content.metadata.get(CONFIG_KEY) {
        Some(value) => {
            let json = value
                .to_string()
                .map_err(|e| format!("{CONFIG_KEY} is not a string: {e}"))?;
            serde_json::from_str(json).map_err(|e| format!("{CONFIG_KEY}: {e}"))?
        }
        None => MoondreamConfig::v2(),
    };
    config.check()?;
    Ok(config)
}

pub struct Moondream {
    model: quantized_moondream::Model,
    pub config: MoondreamConfig,
    image_side: usize,
    /// Logits past the tokenizer's vocabulary (the embedding is padded to a multiple of
    /// 64) are cut off, so no id without text can be sampled.
    vocab_size: usize,
}

impl Moondream {
    pub fn from_gguf(
        content: &Content,
        path: &std::path::Path,
        vocab_size: usize,
    ) -> Result<Self, String> {
        let config = config_of(content)?;
        let image_side = config.image_side()?;
        let candle_config = config.candle()?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_gguf(path, &device).map_err(|e| e.to_string())?;
        let model = quantized_moondream::Model::new(&candle_config, vb).map_err(|e| {
            format!(
                "{e} (is this a moondream2 GGUF in the layout of santiagomed/candle-moondream?)"
            )
        })?;
        Ok(Self {
            model,
            image_side,
            vocab_size: vocab_size.min(config.phi_config.vocab_size),
            config,
        })
    }

    pub fn context_length(&self) -> usize {
        self.config.phi_config.n_positions
    }

    /// Positions one image takes in the decoder's sequence.
    pub fn image_tokens(&self) -> usize {
        self.config.vision_config.embed_len
    }

    pub fn image_side(&self) -> usize {
        self.image_side
    }

    /// The model's input for an encoded image (PNG or JPEG): RGB, resized whole to the
    /// square input with a triangle filter, scaled to `[-1, 1]` (mean 0.5, std 0.5), as a
    /// (1, 3, side, side) tensor.
    pub fn pixels(&self, encoded: &[u8]) -> Result<Tensor, String> {
        let image = image::load_from_memory(encoded)
            .map_err(|e| format!("the image for the model cannot be decoded: {e}"))?;
        let side = self.image_side as u32;
        let rgb = image
            .resize_exact(side, side, image::imageops::FilterType::Triangle)
            .to_rgb8();
        let side = self.image_side;
        let pixels = Tensor::from_vec(rgb.into_raw(), (side, side, 3), &Device::Cpu)
            .and_then(|t| t.permute((2, 0, 1)))
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.affine(2.0 / 255.0, -1.0))
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| e.to_string())?;
        Ok(pixels)
    }

    /// The image's embeddings in the decoder's space: (1, image_tokens, n_embd).
    pub fn encode_image(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        self.model.vision_encoder().forward(pixels)
    }

    /// Logits after `bos`, the image and `text`, from an empty cache.
    pub fn forward_with_image(
        &mut self,
        bos: u32,
        text: &[u32],
        image: &Tensor,
    ) -> candle_core::Result<Vec<f32>> {
        self.model.text_model.clear_kv_cache();
        let bos = Tensor::new(&[bos], &Device::Cpu)?.unsqueeze(0)?;
        let text = Tensor::new(text, &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.model.text_model.forward_with_img(&bos, &text, image)?;
        self.cut(logits)
    }

    /// Logits after `tokens`, which follow everything read so far; `position` 0 starts a
    /// new sequence. candle's Phi masks a multi-token pass only from an empty cache, so a
    /// prompt is read in one pass and generation goes one token at a time.
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> candle_core::Result<Vec<f32>> {
        if position == 0 {
            self.model.text_model.clear_kv_cache();
        } else if tokens.len() > 1 {
            candle_core::bail!(
                "moondream reads a prompt in one pass; got {} tokens at position {position}",
                tokens.len()
            );
        }
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.model.text_model.forward(&input)?;
        self.cut(logits)
    }

    fn cut(&self, logits: Tensor) -> candle_core::Result<Vec<f32>> {
        let mut logits = logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        logits.truncate(self.vocab_size);
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirrored_v2_config_is_candles() {
        let ours = MoondreamConfig::v2();
        assert_eq!(ours.image_side().unwrap(), 378);
        ours.check().unwrap();
        let theirs = moondream::Config::v2();
        assert_eq!(
            format!("{:?}", ours.candle().unwrap()),
            format!("{theirs:?}")
        );
    }

    #[test]
    fn configs_candle_cannot_run_are_refused() {
        let mut config = MoondreamConfig::v2();
        config.vision_config.embed_len = 700;
        assert!(config.check().unwrap_err().contains("square"));
        let mut config = MoondreamConfig::v2();
        config.vision_config.model_dim = 64;
        assert!(config.check().unwrap_err().contains("decoder takes"));
        let mut config = MoondreamConfig::v2();
        config.vision_config.embed_dim = 64;
        assert!(config.check().unwrap_err().contains("1152"));
    }
}
