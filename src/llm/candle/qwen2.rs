//! Qwen2 from a GGUF, laid out for generation speed. The model is candle-transformers'
//! `quantized_qwen2` (same weights, same RoPE, same RMSNorm, same numerics for the prompt),
//! restructured where generating a token spent its time (profiled with `perf` on
//! `affectd bench-llm`, see benches/compare_llm.py):
//!
//! - A single token's Q8_0 products go through [`gemv`] (about 1.5x candle's kernel);
//!   prompts (many tokens) keep candle's matmul.
//! - The KV cache grows in place (capacity doubling), instead of being concatenated anew
//!   for every token, which copied the whole cache each step.
//! - Grouped-query attention multiplies each KV head with its whole group of query heads,
//!   instead of first copying every KV head once per query head (`repeat_kv`).
//! - The token embedding stays quantized; only the rows asked for are dequantized (the
//!   dequantized table of Qwen2.5's 151,936 tokens would take 545 MB).

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::gemv::{self, QuantizedVector};

/// A quantized linear layer: the decoding kernel for Q8_0 single rows, candle otherwise.
struct Linear {
    weight: QMatMul,
    /// The same Q8_0 tensor, for [`gemv`], when its rows are whole blocks.
    q8: Option<Arc<QTensor>>,
    bias: Option<Tensor>,
}

impl Linear {
    fn new(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        let weight = Arc::new(weight);
        let q8 = (weight.dtype() == GgmlDType::Q8_0 && weight.shape().dims().len() == 2)
            .then(|| weight.clone());
        Ok(Self {
            weight: QMatMul::from_arc(weight)?,
            q8,
            bias,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.q8 {
            Some(w) if x.elem_count() == x.dim(D::Minus1)? => {
                let rows = w.shape().dims()[0];
                let input = QuantizedVector::new(&x.flatten_all()?.to_vec1::<f32>()?);
                let mut out = vec![0f32; rows];
                gemv::gemv(gemv::Format::Q8_0, &w.data()?, &input, &mut out);
                let mut shape = x.dims().to_vec();
                *shape.last_mut().expect("x has a last dimension") = rows;
                Tensor::from_vec(out, shape, x.device())?
            }
            _ => self.weight.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Token embeddings, kept quantized when they are Q8_0 (rows dequantized on lookup).
enum Embedding {
    Q8 { table: QTensor, width: usize },
    Dense(candle_nn::Embedding),
}

impl Embedding {
    fn new(table: QTensor, width: usize) -> Result<Self> {
        if table.dtype() == GgmlDType::Q8_0 && width.is_multiple_of(32) {
            return Ok(Self::Q8 { table, width });
        }
        let dense = table.dequantize(&Device::Cpu)?;
        Ok(Self::Dense(candle_nn::Embedding::new(dense, width)))
    }

    fn forward(&self, tokens: &[u32]) -> Result<Tensor> {
        match self {
            Self::Dense(e) => e.forward(&Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?),
            Self::Q8 { table, width } => {
                let data = table.data()?;
                let row_bytes = width / 32 * 34;
                let rows = table.shape().dims()[0];
                let mut out = Vec::with_capacity(tokens.len() * width);
                for &t in tokens {
                    let t = t as usize;
                    if t >= rows {
                        candle_core::bail!("token id {t} is outside the vocabulary of {rows}");
                    }
                    for block in data[t * row_bytes..(t + 1) * row_bytes].chunks_exact(34) {
                        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                        out.extend(block[2..].iter().map(|&q| d * q as i8 as f32));
                    }
                }
                Tensor::from_vec(out, (1, tokens.len(), *width), &Device::Cpu)
            }
        }
    }
}

/// Keys or values of one layer, (1, kv_heads, capacity, head_dim), the first `len`
/// positions valid; the capacity doubles when full.
struct Cache {
    k: Tensor,
    v: Tensor,
}

impl Cache {
    /// Writes `k`, `v` (1, kv_heads, n, head_dim) at `position` and returns the keys and
    /// values of positions 0..position + n.
    fn append(
        cache: &mut Option<Cache>,
        k: &Tensor,
        v: &Tensor,
        position: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (_, heads, n, head_dim) = k.dims4()?;
        let needed = position + n;
        let capacity = cache.as_ref().map_or(0, |c| c.k.dim(2).unwrap_or(0));
        if needed > capacity {
            let grown = needed.max(capacity * 2).max(256);
            let fresh = || Tensor::zeros((1, heads, grown, head_dim), DType::F32, &Device::Cpu);
            let (new_k, new_v) = (fresh()?, fresh()?);
            if let Some(old) = cache.as_ref()
                && position > 0
            {
                new_k.slice_set(&old.k.narrow(2, 0, position)?.contiguous()?, 2, 0)?;
                new_v.slice_set(&old.v.narrow(2, 0, position)?.contiguous()?, 2, 0)?;
            }
            *cache = Some(Cache { k: new_k, v: new_v });
        }
        let c = cache.as_ref().expect("allocated above");
        c.k.slice_set(k, 2, position)?;
        c.v.slice_set(v, 2, position)?;
        Ok((c.k.narrow(2, 0, needed)?, c.v.narrow(2, 0, needed)?))
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
    attention_norm: RmsNorm,
    ffn_norm: RmsNorm,
    cache: Option<Cache>,
}

pub struct Qwen2 {
    embedding: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cos: Tensor,
    sin: Tensor,
}

impl Qwen2 {
    pub fn from_gguf<R: std::io::Seek + std::io::Read>(
        content: gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let meta = |key: &str| match content.metadata.get(&format!("qwen2.{key}")) {
            Some(v) => Ok(v),
            None => candle_core::bail!("the GGUF has no qwen2.{key}"),
        };
        let heads = meta("attention.head_count")?.to_u32()? as usize;
        let kv_heads = meta("attention.head_count_kv")?.to_u32()? as usize;
        let width = meta("embedding_length")?.to_u32()? as usize;
        let context = meta("context_length")?.to_u32()? as usize;
        let layers_n = meta("block_count")?.to_u32()? as usize;
        let eps = meta("attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let rope_base = meta("rope.freq_base")
            .and_then(|m| m.to_f32())
            .unwrap_or(10_000.0);
        if heads == 0
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || !width.is_multiple_of(heads)
        {
            candle_core::bail!(
                "qwen2: {heads} heads, {kv_heads} KV heads and width {width} do not fit"
            );
        }
        let head_dim = width / heads;
        let mut tensor = |name: &str| content.tensor(reader, name, &device);
        let embedding_table = tensor("token_embd.weight")?;
        let output = match tensor("output.weight") {
            Ok(w) => Linear::new(w, None)?,
            // Tied embeddings.
            Err(_) => Linear::new(tensor("token_embd.weight")?, None)?,
        };
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            let mut weight = |name: &str| tensor(&format!("blk.{i}.{name}"));
            let mut biased = |name: &str| -> Result<Linear> {
                let bias = weight(&format!("{name}.bias"))?.dequantize(&Device::Cpu)?;
                Linear::new(weight(&format!("{name}.weight"))?, Some(bias))
            };
            let (q, k, v) = (biased("attn_q")?, biased("attn_k")?, biased("attn_v")?);
            let mut plain =
                |name: &str| Linear::new(tensor(&format!("blk.{i}.{name}.weight"))?, None);
            layers.push(Layer {
                q,
                k,
                v,
                o: plain("attn_output")?,
                gate: plain("ffn_gate")?,
                up: plain("ffn_up")?,
                down: plain("ffn_down")?,
                attention_norm: RmsNorm::from_qtensor(
                    tensor(&format!("blk.{i}.attn_norm.weight"))?,
                    eps,
                )?,
                ffn_norm: RmsNorm::from_qtensor(tensor(&format!("blk.{i}.ffn_norm.weight"))?, eps)?,
                cache: None,
            });
        }
        // RoPE tables as candle's quantized_qwen2 computes them.
        let theta: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / rope_base.powf(i as f32 / head_dim as f32))
            .collect();
        let theta = Tensor::new(theta.as_slice(), &device)?;
        let angles = Tensor::arange(0, context as u32, &device)?
            .to_dtype(DType::F32)?
            .reshape((context, 1))?
            .matmul(&theta.reshape((1, theta.elem_count()))?)?;
        Ok(Self {
            embedding: Embedding::new(embedding_table, width)?,
            layers,
            norm,
            output,
            heads,
            kv_heads,
            head_dim,
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Logits (1, vocab) after `tokens`, which sit at positions `position..`; the cache
    /// keeps positions before `position` (0 starts over).
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Tensor> {
        let n = tokens.len();
        let mask = (n > 1)
            .then(|| {
                candle_transformers::utils::build_additive_causal_mask(
                    n,
                    position,
                    None,
                    &Device::Cpu,
                    DType::F32,
                )
            })
            .transpose()?;
        let cos = self.cos.narrow(0, position, n)?;
        let sin = self.sin.narrow(0, position, n)?;
        let (heads, kv_heads, head_dim) = (self.heads, self.kv_heads, self.head_dim);
        let group = heads / kv_heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut x = self.embedding.forward(tokens)?;
        for layer in &mut self.layers {
            let h = layer.attention_norm.forward(&x)?;
            let split = |t: Tensor, count: usize| -> Result<Tensor> {
                t.reshape((1, n, count, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = split(layer.q.forward(&h)?, heads)?;
            let k = split(layer.k.forward(&h)?, kv_heads)?;
            let v = split(layer.v.forward(&h)?, kv_heads)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            let (keys, values) = Cache::append(&mut layer.cache, &k, &v, position)?;
            let seen = position + n;
            // Query heads h*group..(h+1)*group share KV head h: one batched product per KV
            // head, (group * n, head_dim) x (head_dim, seen).
            let q = q.reshape((kv_heads, group * n, head_dim))?;
            let keys = keys.squeeze(0)?;
            let values = values.squeeze(0)?;
            let mut scores = (q.matmul(&keys.t()?)? * scale)?;
            if let Some(mask) = &mask {
                scores = scores
                    .reshape((kv_heads, group, n, seen))?
                    .broadcast_add(mask)?
                    .reshape((kv_heads, group * n, seen))?;
            }
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            let attended = weights
                .matmul(&values)?
                .reshape((1, heads, n, head_dim))?
                .transpose(1, 2)?
                .reshape((1, n, heads * head_dim))?;
            x = (layer.o.forward(&attended)? + &x)?;
            let h = layer.ffn_norm.forward(&x)?;
            let gated =
                (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            x = (layer.down.forward(&gated)? + &x)?;
        }
        let last = x.narrow(1, n - 1, 1)?;
        self.output.forward(&self.norm.forward(&last)?)?.squeeze(1)
    }
}
