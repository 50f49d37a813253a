//! Gemma 3 text decoder over quantized GGUF weights.
//!
//! Written from candle-transformers 0.11's `quantized_gemma3`, with three differences that
//! the parity test against llama.cpp (tests/llm_candle.rs) exposed there:
//!
//! 1. The feed-forward gate is GELU (tanh approximation), as in Gemma's
//!    `hidden_activation` and llama.cpp; candle's module uses SiLU, which moved the logits
//!    by up to 5 on a 17-token prompt.
//! 2. Local layers see only the last `sliding_window` positions in every pass. candle's
//!    module applies the window only inside one forward pass, so every generated token
//!    after the 512th attended to the whole prompt.
//! 3. One RoPE table per frequency base, sized to the context, shared by the layers
//!    (candle's module builds a 131072-row table per layer: 2.4 GB for Gemma 3 270M).
//!
//! Per layer (Gemma 3 tech report, Fig./§2): pre-norm -> attention with RMS-normalised
//! queries and keys -> post-norm -> residual; pre-norm -> GELU-gated MLP -> post-norm ->
//! residual. Every sixth layer is global (RoPE base 1e6), the others local (base 1e4).

use candle_core::quantized::{QMatMul, gguf_file};
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;
use candle_transformers::utils::repeat_kv;

/// Every n-th layer attends globally (llama.cpp's `set_swa_pattern(6)` for Gemma 3).
const GLOBAL_EVERY: usize = 6;
const LOCAL_ROPE_BASE: f32 = 10_000.0;

struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(head_dim: usize, base: f32, positions: usize, device: &Device) -> Result<Self> {
        let inv_freq: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let inv_freq = Tensor::new(inv_freq.as_slice(), device)?;
        let angles = Tensor::arange(0, positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?
            .matmul(&inv_freq.reshape((1, head_dim / 2))?)?;
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Rotates `x` (batch, heads, seq, head_dim) whose first row is at `position`
    /// (NeoX layout: the two halves of each head are the pairs, as llama.cpp's Gemma).
    fn apply(&self, x: &Tensor, position: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, position, seq)?;
        let sin = self.sin.narrow(0, position, seq)?;
        candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)
    }
}

struct Layer {
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    out: QMatMul,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    attention_norm: RmsNorm,
    post_attention_norm: RmsNorm,
    ffn_norm: RmsNorm,
    post_ffn_norm: RmsNorm,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    /// Local layers: how many positions back a query may look (itself included).
    window: Option<usize>,
    /// Cached keys and values (batch, kv_heads, positions, head_dim) and the absolute
    /// position of their first row.
    cache: Option<(Tensor, Tensor, usize)>,
}

pub struct Gemma3 {
    embed: Embedding,
    hidden: usize,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QMatMul,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
    rope_local: Rope,
    rope_global: Rope,
    pub context_length: usize,
}

impl Gemma3 {
    pub fn from_gguf<R: std::io::Seek + std::io::Read>(
        content: gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let get = |key: &str| {
            content
                .metadata
                .get(&format!("gemma3.{key}"))
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!("GGUF metadata has no gemma3.{key}"))
                })
        };
        let heads = get("attention.head_count")?.to_u32()? as usize;
        let kv_heads = get("attention.head_count_kv")?.to_u32()? as usize;
        let blocks = get("block_count")?.to_u32()? as usize;
        let hidden = get("embedding_length")?.to_u32()? as usize;
        let head_dim = get("attention.key_length")?.to_u32()? as usize;
        let eps = get("attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let window = get("attention.sliding_window")?.to_u32()? as usize;
        let context_length = get("context_length")?.to_u32()? as usize;
        let rope_base = get("rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(1e6);
        // Gemma 3 27B scales queries by 1/sqrt(hidden/heads); the others by
        // 1/sqrt(head_dim) (query_pre_attn_scalar; llama.cpp does the same).
        let scale = if blocks == 62 {
            1.0 / ((hidden / heads) as f64).sqrt()
        } else {
            1.0 / (head_dim as f64).sqrt()
        };
        let mut tensor = |name: &str| content.tensor(reader, name, device);
        let embed = tensor("token_embd.weight")?;
        let output = match tensor("output.weight") {
            Ok(t) => t,
            Err(_) => tensor("token_embd.weight")?, // tied embeddings
        };
        let embed = embed.dequantize(device)?;
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let mut t = |name: &str| tensor(&format!("blk.{i}.{name}.weight"));
            let matmul = |q| QMatMul::from_qtensor(q);
            layers.push(Layer {
                q: matmul(t("attn_q")?)?,
                k: matmul(t("attn_k")?)?,
                v: matmul(t("attn_v")?)?,
                out: matmul(t("attn_output")?)?,
                q_norm: RmsNorm::from_qtensor(t("attn_q_norm")?, eps)?,
                k_norm: RmsNorm::from_qtensor(t("attn_k_norm")?, eps)?,
                attention_norm: RmsNorm::from_qtensor(t("attn_norm")?, eps)?,
                post_attention_norm: RmsNorm::from_qtensor(t("post_attention_norm")?, eps)?,
                ffn_norm: RmsNorm::from_qtensor(t("ffn_norm")?, eps)?,
                post_ffn_norm: RmsNorm::from_qtensor(t("post_ffw_norm")?, eps)?,
                gate: matmul(t("ffn_gate")?)?,
                up: matmul(t("ffn_up")?)?,
                down: matmul(t("ffn_down")?)?,
                window: ((i + 1) % GLOBAL_EVERY != 0).then_some(window),
                cache: None,
            });
        }
        Ok(Self {
            embed: Embedding::new(embed, hidden),
            hidden,
            layers,
            norm,
            output: QMatMul::from_qtensor(output)?,
            heads,
            kv_heads,
            head_dim,
            scale,
            rope_local: Rope::new(head_dim, LOCAL_ROPE_BASE, context_length, device)?,
            rope_global: Rope::new(head_dim, rope_base, context_length, device)?,
            context_length,
        })
    }

    /// Logits (batch, vocab) for the last of `tokens` (batch, seq), whose first token is
    /// at `position`. Position 0 starts a new sequence (the cache is dropped).
    pub fn forward(&mut self, tokens: &Tensor, position: usize) -> Result<Tensor> {
        let (_, seq) = tokens.dims2()?;
        if position + seq > self.context_length {
            candle_core::bail!(
                "positions up to {} exceed the context of {}",
                position + seq,
                self.context_length
            );
        }
        let mut x = (self.embed.forward(tokens)? * (self.hidden as f64).sqrt())?;
        for layer in &mut self.layers {
            let rope = if layer.window.is_some() {
                &self.rope_local
            } else {
                &self.rope_global
            };
            let residual = x.clone();
            let h = layer.attention_norm.forward(&x)?;
            let h = attention(
                layer,
                &h,
                position,
                rope,
                (self.heads, self.kv_heads, self.head_dim, self.scale),
            )?;
            let x1 = (layer.post_attention_norm.forward(&h)? + &residual)?;
            let h = layer.ffn_norm.forward(&x1)?;
            let gated = (layer.gate.forward(&h)?.gelu()? * layer.up.forward(&h)?)?;
            let h = layer.post_ffn_norm.forward(&layer.down.forward(&gated)?)?;
            x = (h + x1)?;
        }
        let last = x.i((.., seq - 1, ..))?;
        self.output.forward(&self.norm.forward(&last)?)
    }
}

fn attention(
    layer: &mut Layer,
    x: &Tensor,
    position: usize,
    rope: &Rope,
    (heads, kv_heads, head_dim, scale): (usize, usize, usize, f64),
) -> Result<Tensor> {
    let (batch, seq, _) = x.dims3()?;
    let split = |t: Tensor, n: usize| -> Result<Tensor> {
        t.reshape((batch, seq, n, head_dim))?
            .transpose(1, 2)?
            .contiguous()
    };
    let q = split(layer.q.forward(x)?, heads)?;
    let k = split(layer.k.forward(x)?, kv_heads)?;
    let v = split(layer.v.forward(x)?, kv_heads)?;
    let q = rope.apply(&layer.q_norm.forward(&q)?, position)?;
    let k = rope.apply(&layer.k_norm.forward(&k)?, position)?;

    let (k, v, first) = match layer.cache.take() {
        Some((ck, cv, first)) if position > 0 => (
            Tensor::cat(&[&ck, &k], 2)?,
            Tensor::cat(&[&cv, &v], 2)?,
            first,
        ),
        _ => (k, v, position),
    };
    let keys = k.dim(2)?;
    // Keep what a later query can still see: everything for global layers, the last
    // window - 1 positions for local ones (the next query brings its own).
    layer.cache = Some(match layer.window {
        Some(w) if keys > w - 1 => {
            let drop = keys - (w - 1);
            (
                k.narrow(2, drop, keys - drop)?,
                v.narrow(2, drop, keys - drop)?,
                first + drop,
            )
        }
        _ => (k.clone(), v.clone(), first),
    });

    let k = repeat_kv(k, heads / kv_heads)?.contiguous()?;
    let v = repeat_kv(v, heads / kv_heads)?.contiguous()?;
    let mut scores = (q.matmul(&k.t()?)? * scale)?;
    // Query i (absolute position + i) sees key j (absolute first + j) when j is not in
    // its future and, for local layers, fewer than `window` positions back.
    let window = layer.window;
    let visible = |i: usize, j: usize| {
        let (query, key) = (position + i, first + j);
        key <= query && window.is_none_or(|w| query - key < w)
    };
    if (0..seq).any(|i| (0..keys).any(|j| !visible(i, j))) {
        let mask: Vec<f32> = (0..seq)
            .flat_map(|i| {
                (0..keys).map(move |j| {
                    if visible(i, j) {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, seq, keys), x.device())?;
        scores = scores.broadcast_add(&mask)?;
    }
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = weights
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((batch, seq, heads * head_dim))?;
    layer.out.forward(&out)
}
