//! Qwen2 from a GGUF, laid out for generation speed. The model is candle-transformers'
//! `quantized_qwen2` (same weights, RoPE, RMSNorm and causal mask; llama.cpp's numerics up
//! to f32 summation order, checked by tests/llm_candle.rs), restructured where generating
//! a token spent its time (profiled with `perf` on `affectd bench-llm`):
//!
//! - Q8_0 weights are interleaved 8 rows at a time at load ([`PackedQ8`]; `cargo bench --bench
//!   llm`: a token through the output matrix 2.5x and a 512-token prompt 5.1x candle's
//!   kernel), and q/k/v and gate/up, which read the same input, are one product each.
//! - The KV cache grows in place (capacity doubling), instead of being concatenated anew
//!   for every token, which copied the whole cache each step.
//! - Grouped-query attention multiplies each KV head with its whole group of query heads,
//!   instead of first copying every KV head once per query head (`repeat_kv`); one new
//!   token's attention is written out by hand over a transposed key cache.
//! - One new token's whole step runs on plain numbers (`Qwen2::step`): the same
//!   arithmetic without a tensor allocated and dispatched per operation.
//! - The token embedding stays quantized; only the rows asked for are dequantized (the
//!   dequantized table of Qwen2.5's 151,936 tokens would take 545 MB).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::q8x8::{PackedQ8, QuantizedVector};

/// A quantized linear layer: Q8_0 weights through [`PackedQ8`] (tokens one at a time and
/// whole prompts alike), other formats through candle.
enum Weight {
    Interleaved(PackedQ8),
    Candle(QMatMul),
}

struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    /// The same bias, for [`Linear::forward_slice`].
    bias_values: Option<Vec<f32>>,
}

/// (rows, cols) of a weight [`PackedQ8`] can take: Q8_0, two dimensions, whole blocks.
fn interleavable(weight: &QTensor) -> Option<(usize, usize)> {
    match weight.shape().dims() {
        &[rows, cols] if weight.dtype() == GgmlDType::Q8_0 && cols.is_multiple_of(32) => {
            Some((rows, cols))
        }
        _ => None,
    }
}

impl Linear {
    fn new(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        let weight = match interleavable(&weight) {
            Some((rows, cols)) => {
                Weight::Interleaved(PackedQ8::from_q8_0(&weight.data()?, rows, cols))
            }
            None => Weight::Candle(QMatMul::from_qtensor(weight)?),
        };
        let bias_values = bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        Ok(Self {
            weight,
            bias,
            bias_values,
        })
    }

    /// One input row, as plain numbers (the decoding step).
    fn forward_slice(&self, x: &[f32]) -> Result<Vec<f32>> {
        let mut y = match &self.weight {
            Weight::Interleaved(w) => interleaved_row(w, x)?,
            Weight::Candle(w) => w
                .forward(&Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        };
        if let Some(b) = &self.bias_values {
            add_into(&mut y, b);
        }
        Ok(y)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            Weight::Interleaved(w) => interleaved_forward(w, x)?,
            Weight::Candle(w) => w.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Linear layers that read the same input (q, k, v; gate, up). When all are Q8_0 of one
/// width they are one interleaved matrix: one quantization of the input and one pass of
/// the worker pool instead of several.
enum Projections {
    Fused {
        weight: PackedQ8,
        /// Output widths, in order.
        sizes: Vec<usize>,
        biases: Vec<Option<Tensor>>,
        /// The same biases as numbers, for the decoding step.
        bias_values: Vec<Option<Vec<f32>>>,
    },
    Separate(Vec<Linear>),
}

impl Projections {
    fn new(parts: Vec<(QTensor, Option<Tensor>)>) -> Result<Self> {
        let widths: Vec<Option<usize>> = parts
            .iter()
            .map(|(w, _)| interleavable(w).map(|(_, cols)| cols))
            .collect();
        let fusable = widths
            .first()
            .is_some_and(|first| first.is_some() && widths.iter().all(|w| w == first));
        if !fusable {
            return Ok(Self::Separate(
                parts
                    .into_iter()
                    .map(|(w, b)| Linear::new(w, b))
                    .collect::<Result<_>>()?,
            ));
        }
        let cols = parts[0].0.shape().dims()[1];
        let mut bytes = Vec::new();
        let mut sizes = Vec::new();
        let mut biases = Vec::new();
        for (w, b) in parts {
            bytes.extend_from_slice(&w.data()?);
            sizes.push(w.shape().dims()[0]);
            biases.push(b);
        }
        let rows = sizes.iter().sum();
        let bias_values = biases
            .iter()
            .map(|b| b.as_ref().map(|b| b.to_vec1::<f32>()).transpose())
            .collect::<Result<_>>()?;
        Ok(Self::Fused {
            weight: PackedQ8::from_q8_0(&bytes, rows, cols),
            sizes,
            biases,
            bias_values,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Self::Separate(parts) => parts.iter().map(|p| p.forward(x)).collect(),
            Self::Fused {
                weight,
                sizes,
                biases,
                ..
            } => {
                let all = interleaved_forward(weight, x)?;
                let mut start = 0;
                let mut out = Vec::with_capacity(sizes.len());
                for (size, bias) in sizes.iter().zip(biases) {
                    let part = all.narrow(D::Minus1, start, *size)?;
                    out.push(match bias {
                        Some(b) => part.broadcast_add(b)?,
                        None => part.contiguous()?,
                    });
                    start += size;
                }
                Ok(out)
            }
        }
    }
}

impl Projections {
    /// One input row, as plain numbers (the decoding step): one output row per part.
    fn forward_slice(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Separate(parts) => parts.iter().map(|p| p.forward_slice(x)).collect(),
            Self::Fused {
                weight,
                sizes,
                bias_values,
                ..
            } => {
                let all = interleaved_row(weight, x)?;
                let mut start = 0;
                let mut out = Vec::with_capacity(sizes.len());
                for (size, bias) in sizes.iter().zip(bias_values) {
                    let mut part = all[start..start + size].to_vec();
                    if let Some(b) = bias {
                        add_into(&mut part, b);
                    }
                    out.push(part);
                    start += size;
                }
                Ok(out)
            }
        }
    }
}

/// `a += b`, element by element (`b + a` in candle's order: addition is commutative, so
/// the numbers are the same).
fn add_into(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// One row times an interleaved matrix's transpose.
fn interleaved_row(w: &PackedQ8, x: &[f32]) -> Result<Vec<f32>> {
    if x.len() != w.cols() {
        candle_core::bail!(
            "input width {} does not match the weight's {}",
            x.len(),
            w.cols()
        );
    }
    let mut out = vec![0f32; w.rows()];
    w.matmul(std::slice::from_ref(&QuantizedVector::new(x)), &mut out);
    Ok(out)
}

/// `x` (.., cols) times an interleaved matrix's transpose: (.., rows).
fn interleaved_forward(w: &PackedQ8, x: &Tensor) -> Result<Tensor> {
    let width = x.dim(D::Minus1)?;
    if width != w.cols() {
        candle_core::bail!(
            "input width {width} does not match the weight's {}",
            w.cols()
        );
    }
    let flat = x.flatten_all()?.to_vec1::<f32>()?;
    let rows: Vec<QuantizedVector> = flat.chunks_exact(width).map(QuantizedVector::new).collect();
    let mut out = vec![0f32; rows.len() * w.rows()];
    w.matmul(&rows, &mut out);
    let mut shape = x.dims().to_vec();
    *shape.last_mut().expect("x has a last dimension") = w.rows();
    Tensor::from_vec(out, shape, x.device())
}

/// RMSNorm: candle's op for prompts, and the same arithmetic on plain numbers for the
/// decoding step (candle-nn's `rms_row`: sequential sum of squares, sqrt(mean + eps),
/// x / m * weight).
struct Norm {
    candle: RmsNorm,
    weight: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn new(weight: QTensor, eps: f64) -> Result<Self> {
        let values = weight.dequantize(&Device::Cpu)?.to_vec1::<f32>()?;
        Ok(Self {
            candle: RmsNorm::from_qtensor(weight, eps)?,
            weight: values,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.candle.forward(x)
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let sum2: f32 = x.iter().map(|v| v * v).sum();
        let m = (sum2 / x.len() as f32 + self.eps).sqrt();
        x.iter().zip(&self.weight).map(|(v, w)| v / m * w).collect()
    }
}

/// Rotates each head of `x` (heads x head_dim) in place, as candle-nn's `rope` does for
/// one position: pairs (i, i + head_dim/2).
fn rope_in_place(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..half {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos[i] - b * sin[i];
            head[i + half] = a * sin[i] + b * cos[i];
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

/// Keys and values of one layer. Keys are stored transposed, (kv_heads, head_dim,
/// capacity), so a query's scores over all positions are a sum of `head_dim` contiguous
/// scaled rows (vector operations, no per-position reductions); values are (kv_heads,
/// capacity, head_dim). The capacity doubles when full.
#[derive(Default)]
struct Cache {
    keys_t: Vec<f32>,
    values: Vec<f32>,
    capacity: usize,
}

impl Cache {
    /// Writes `k`, `v` (1, kv_heads, n, head_dim, contiguous) at `position..position + n`.
    fn append(&mut self, k: &Tensor, v: &Tensor, position: usize) -> Result<()> {
        let (_, heads, n, head_dim) = k.dims4()?;
        let k = k.flatten_all()?.to_vec1::<f32>()?;
        let v = v.flatten_all()?.to_vec1::<f32>()?;
        self.append_rows(&k, &v, (heads, n, head_dim), position);
        Ok(())
    }

    /// [`Cache::append`] on plain numbers: `k`, `v` are (heads, n, head_dim).
    fn append_rows(
        &mut self,
        k: &[f32],
        v: &[f32],
        (heads, n, head_dim): (usize, usize, usize),
        position: usize,
    ) {
        let needed = position + n;
        if needed > self.capacity {
            // A whole number of attention tiles, so every tile of keys can be read whole.
            let grown = needed
                .max(self.capacity * 2)
                .max(256)
                .next_multiple_of(ATTENTION_TILE);
            let old = self.capacity;
            // Keys: each (head, dimension) row keeps its first `position` entries.
            let mut keys_t = vec![0f32; heads * head_dim * grown];
            for row in 0..heads * head_dim {
                keys_t[row * grown..][..position]
                    .copy_from_slice(&self.keys_t[row * old..][..position]);
            }
            // Values: each head keeps its first `position` rows.
            let mut values = vec![0f32; heads * grown * head_dim];
            for h in 0..heads {
                let keep = position * head_dim;
                values[h * grown * head_dim..][..keep]
                    .copy_from_slice(&self.values[h * old * head_dim..][..keep]);
            }
            (self.keys_t, self.values, self.capacity) = (keys_t, values, grown);
        }
        let capacity = self.capacity;
        for h in 0..heads {
            for t in 0..n {
                let key = &k[(h * n + t) * head_dim..][..head_dim];
                for (d, &value) in key.iter().enumerate() {
                    self.keys_t[(h * head_dim + d) * capacity + position + t] = value;
                }
            }
            let at = (h * capacity + position) * head_dim;
            self.values[at..at + n * head_dim]
                .copy_from_slice(&v[h * n * head_dim..(h + 1) * n * head_dim]);
        }
    }

    /// One new token's attention, written out by hand: at one query position the matrix
    /// products are vector-matrix products, where candle's batched matmul spent more time
    /// dispatching than computing. `q` is (heads, head_dim) after RoPE; the result is
    /// (heads, head_dim). KV heads are shared among candle's worker threads.
    fn attend_one(&self, q: &[f32], shape: AttentionShape, seen: usize) -> Vec<f32> {
        self.attend_rows(q, shape, seen - 1, 1)
    }

    /// The causal attention of `n` query positions `position..position + n`, each over
    /// the positions up to itself: `q` is (n, heads, head_dim) after RoPE, the result the
    /// same shape. Work items are (KV head, query position) pairs on candle's worker pool,
    /// so the prompt's attention uses every core (candle's batched matmul and softmax ran
    /// on rayon's threads while the pool's thread spun beside them: 8% of a prompt's
    /// samples in `perf`), and the masked half of the scores is never computed.
    fn attend_rows(&self, q: &[f32], shape: AttentionShape, position: usize, n: usize) -> Vec<f32> {
        let AttentionShape {
            kv_heads,
            group,
            head_dim,
            ..
        } = shape;
        let width = kv_heads * group * head_dim;
        assert_eq!(q.len(), n * width, "queries of n positions");
        let mut out = vec![0f32; n * width];
        let out_at = out.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(kv_heads * n, |range| {
            let mut scratch = AttentionScratch {
                scores: vec![0f32; group * (position + n)],
                inverse_totals: vec![0f32; group],
            };
            for item in range {
                let (kv, row) = (item / n, item % n);
                let at = row * width + kv * group * head_dim;
                let queries = &q[at..][..group * head_dim];
                // SAFETY: this (row, KV head) block of the output is written by this
                // work item only.
                let rows = unsafe {
                    std::slice::from_raw_parts_mut((out_at as *mut f32).add(at), group * head_dim)
                };
                self.attend_group(kv, queries, shape, position + row + 1, &mut scratch, rows);
            }
        });
        out
    }

    /// KV head `kv`'s group of query heads at one position, over positions 0..seen, into
    /// `rows` (group x head_dim, zeroed). Compiled for AVX-512 and for AVX2 besides the
    /// baseline and chosen at run time: the crate's baseline is SSE2, four lanes where the
    /// CPU has sixteen (Rust never fuses the multiply-adds, so every form gives the same
    /// numbers).
    fn attend_group(
        &self,
        kv: usize,
        queries: &[f32],
        shape: AttentionShape,
        seen: usize,
        scratch: &mut AttentionScratch,
        rows: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::has_avx512f() {
                // SAFETY: the CPU has AVX-512F (checked at run time just above).
                return unsafe {
                    self.attend_group_avx512(kv, queries, shape, seen, scratch, rows)
                };
            }
            if crate::cpu::has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
                return unsafe { self.attend_group_avx2(kv, queries, shape, seen, scratch, rows) };
            }
        }
        self.attend_group_impl(kv, queries, shape, seen, scratch, rows)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn attend_group_avx512(
        &self,
        kv: usize,
        queries: &[f32],
        shape: AttentionShape,
        seen: usize,
        scratch: &mut AttentionScratch,
        rows: &mut [f32],
    ) {
        self.attend_group_impl(kv, queries, shape, seen, scratch, rows)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn attend_group_avx2(
        &self,
        kv: usize,
        queries: &[f32],
        shape: AttentionShape,
        seen: usize,
        scratch: &mut AttentionScratch,
        rows: &mut [f32],
    ) {
        self.attend_group_impl(kv, queries, shape, seen, scratch, rows)
    }

    #[inline(always)]
    fn attend_group_impl(
        &self,
        kv: usize,
        queries: &[f32],
        shape: AttentionShape,
        seen: usize,
        scratch: &mut AttentionScratch,
        rows: &mut [f32],
    ) {
        let AttentionShape {
            group,
            head_dim,
            scale,
            ..
        } = shape;
        let capacity = self.capacity;
        let keys_t = &self.keys_t[kv * head_dim * capacity..][..head_dim * capacity];
        let values = &self.values[kv * capacity * head_dim..][..seen * head_dim];
        // Scores of the group's query heads, head-major: group x seen.
        let scores = &mut scratch.scores[..group * seen];
        // Positions in tiles, so a tile of keys (head_dim x TILE) stays in L1 while
        // every query head of the group reads it. The cache holds whole tiles.
        const TILE: usize = ATTENTION_TILE;
        debug_assert!(capacity.is_multiple_of(TILE), "the cache holds whole tiles");
        for start in (0..seen).step_by(TILE) {
            let len = TILE.min(seen - start);
            for (g, query) in queries.chunks_exact(head_dim).enumerate() {
                // A whole tile of sums in a local array, which the compiler keeps in
                // registers across the head dimension (a slice was loaded and stored again
                // for every d); positions past `seen` come from the cache's spare room and
                // are dropped.
                let mut sums = [0f32; TILE];
                for (d, &qd) in query.iter().enumerate() {
                    let qd = qd * scale;
                    let keys: &[f32; TILE] = keys_t[d * capacity + start..][..TILE]
                        .try_into()
                        .expect("a tile of keys");
                    for (s, k) in sums.iter_mut().zip(keys) {
                        *s += qd * k;
                    }
                }
                scores[g * seen + start..][..len].copy_from_slice(&sums[..len]);
            }
        }
        let inverse_totals = &mut scratch.inverse_totals[..group];
        for (g, head_scores) in scores.chunks_exact_mut(seen).enumerate() {
            let max = head_scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut total = 0f32;
            for s in head_scores.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            inverse_totals[g] = 1.0 / total;
        }
        const LANES: usize = 64;
        if head_dim.is_multiple_of(LANES) {
            // Blocks of BLOCK value rows; for each head and 64 dimensions of its output row,
            // the sums stay in a local array (registers) across the block, where they were
            // loaded and stored again for every position. The same products added in the
            // same order of positions, so the same numbers.
            const BLOCK: usize = 8;
            for (b, block) in values.chunks(BLOCK * head_dim).enumerate() {
                for (g, row) in rows.chunks_exact_mut(head_dim).enumerate() {
                    let weights = &scores[g * seen + b * BLOCK..];
                    for (c, out) in row.chunks_exact_mut(LANES).enumerate() {
                        let mut sums: [f32; LANES] = (&*out).try_into().expect("64 lanes");
                        for (value, &weight) in block.chunks_exact(head_dim).zip(weights) {
                            let w = weight * inverse_totals[g];
                            let value: &[f32; LANES] =
                                value[c * LANES..][..LANES].try_into().expect("64 lanes");
                            for (o, x) in sums.iter_mut().zip(value) {
                                *o += w * x;
                            }
                        }
                        out.copy_from_slice(&sums);
                    }
                }
            }
            return;
        }
        // Each value row is read once and added to every head of the group.
        for (j, value) in values.chunks_exact(head_dim).enumerate() {
            for (g, row) in rows.chunks_exact_mut(head_dim).enumerate() {
                let w = scores[g * seen + j] * inverse_totals[g];
                for (o, x) in row.iter_mut().zip(value) {
                    *o += w * x;
                }
            }
        }
    }
}

/// Per-thread work space of [`Cache::attend_group`].
struct AttentionScratch {
    scores: Vec<f32>,
    inverse_totals: Vec<f32>,
}

/// Key positions per tile of the written-out attention; the KV cache's capacity is a
/// multiple of it.
const ATTENTION_TILE: usize = 64;

#[derive(Clone, Copy)]
struct AttentionShape {
    kv_heads: usize,
    group: usize,
    head_dim: usize,
    scale: f32,
}

struct Layer {
    /// q, k, v.
    qkv: Projections,
    o: Linear,
    /// gate, up.
    gate_up: Projections,
    down: Linear,
    attention_norm: Norm,
    ffn_norm: Norm,
    cache: Cache,
}

pub struct Qwen2 {
    embedding: Embedding,
    layers: Vec<Layer>,
    norm: Norm,
    output: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cos: Tensor,
    sin: Tensor,
    /// The same tables as numbers, (context, head_dim / 2), for the decoding step.
    cos_values: Vec<f32>,
    sin_values: Vec<f32>,
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
        let norm = Norm::new(tensor("output_norm.weight")?, eps)?;
        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            let mut weight = |name: &str| tensor(&format!("blk.{i}.{name}"));
            let mut qkv = Vec::new();
            for name in ["attn_q", "attn_k", "attn_v"] {
                let bias = weight(&format!("{name}.bias"))?.dequantize(&Device::Cpu)?;
                qkv.push((weight(&format!("{name}.weight"))?, Some(bias)));
            }
            let gate_up = vec![
                (weight("ffn_gate.weight")?, None),
                (weight("ffn_up.weight")?, None),
            ];
            let mut plain =
                |name: &str| Linear::new(tensor(&format!("blk.{i}.{name}.weight"))?, None);
            layers.push(Layer {
                qkv: Projections::new(qkv)?,
                o: plain("attn_output")?,
                gate_up: Projections::new(gate_up)?,
                down: plain("ffn_down")?,
                attention_norm: Norm::new(tensor(&format!("blk.{i}.attn_norm.weight"))?, eps)?,
                ffn_norm: Norm::new(tensor(&format!("blk.{i}.ffn_norm.weight"))?, eps)?,
                cache: Cache::default(),
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
            cos_values: angles.cos()?.flatten_all()?.to_vec1()?,
            sin_values: angles.sin()?.flatten_all()?.to_vec1()?,
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Logits after `tokens`, which sit at positions `position..`; the cache keeps
    /// positions before `position` (0 starts over).
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>> {
        let n = tokens.len();
        if n == 0 {
            candle_core::bail!("no tokens to read");
        }
        if position + n > self.cos.dim(0)? {
            candle_core::bail!(
                "position {} is past the model's context of {}",
                position + n,
                self.cos.dim(0)?
            );
        }
        if n == 1 {
            return self.step(tokens[0], position);
        }
        // Several tokens from here on (one goes through `step`).
        let cos = self.cos.narrow(0, position, n)?;
        let sin = self.sin.narrow(0, position, n)?;
        let (heads, kv_heads, head_dim) = (self.heads, self.kv_heads, self.head_dim);
        let shape = AttentionShape {
            kv_heads,
            group: heads / kv_heads,
            head_dim,
            scale: (1.0 / (head_dim as f64).sqrt()) as f32,
        };
        let mut x = self.embedding.forward(tokens)?;
        for layer in &mut self.layers {
            let h = layer.attention_norm.forward(&x)?;
            let split = |t: Tensor, count: usize| -> Result<Tensor> {
                t.reshape((1, n, count, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let [q, k, v]: [Tensor; 3] = layer
                .qkv
                .forward(&h)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("q, k, v expected".into()))?;
            let q = split(q, heads)?;
            let k = split(k, kv_heads)?;
            let v = split(v, kv_heads)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            layer.cache.append(&k, &v, position)?;
            // Back to (n, heads, head_dim) rows for the hand-written causal attention.
            let q = q
                .transpose(1, 2)?
                .contiguous()?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let attended = layer.cache.attend_rows(&q, shape, position, n);
            let attended = Tensor::from_vec(attended, (1, n, heads * head_dim), &Device::Cpu)?;
            x = (layer.o.forward(&attended)? + &x)?;
            let h = layer.ffn_norm.forward(&x)?;
            let [gate, up]: [Tensor; 2] = layer
                .gate_up
                .forward(&h)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("gate, up expected".into()))?;
            let gated = (candle_nn::ops::silu(&gate)? * up)?;
            x = (layer.down.forward(&gated)? + &x)?;
        }
        let last = x.narrow(1, n - 1, 1)?;
        self.output
            .forward(&self.norm.forward(&last)?)?
            .flatten_all()?
            .to_vec1()
    }

    /// One token, on plain numbers: the same arithmetic as [`Qwen2::forward`]'s tensor
    /// path (candle's RMSNorm, RoPE and SiLU formulas, the same products), without a
    /// tensor allocation and dispatch per operation, which cost ~10% of a token's time.
    fn step(&mut self, token: u32, position: usize) -> Result<Vec<f32>> {
        let (heads, kv_heads, head_dim) = (self.heads, self.kv_heads, self.head_dim);
        let half = head_dim / 2;
        let cos = &self.cos_values[position * half..][..half];
        let sin = &self.sin_values[position * half..][..half];
        let shape = AttentionShape {
            kv_heads,
            group: heads / kv_heads,
            head_dim,
            scale: (1.0 / (head_dim as f64).sqrt()) as f32,
        };
        let mut x = self
            .embedding
            .forward(&[token])?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for layer in &mut self.layers {
            let h = layer.attention_norm.apply(&x);
            let [mut q, mut k, v]: [Vec<f32>; 3] = layer
                .qkv
                .forward_slice(&h)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("q, k, v expected".into()))?;
            rope_in_place(&mut q, head_dim, cos, sin);
            rope_in_place(&mut k, head_dim, cos, sin);
            layer
                .cache
                .append_rows(&k, &v, (kv_heads, 1, head_dim), position);
            let attended = layer.cache.attend_one(&q, shape, position + 1);
            add_into(&mut x, &layer.o.forward_slice(&attended)?);
            let h = layer.ffn_norm.apply(&x);
            let [gate, up]: [Vec<f32>; 2] = layer
                .gate_up
                .forward_slice(&h)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("gate, up expected".into()))?;
            // candle's silu: v / (1 + exp(-v)).
            let gated: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            add_into(&mut x, &layer.down.forward_slice(&gated)?);
        }
        self.output.forward_slice(&self.norm.apply(&x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    /// Attention written the obvious way, from every key and value appended so far.
    fn reference(
        keys: &[Vec<f32>],
        vals: &[Vec<f32>],
        q: &[f32],
        shape: AttentionShape,
    ) -> Vec<f32> {
        let AttentionShape {
            kv_heads,
            group,
            head_dim,
            scale,
        } = shape;
        let mut out = vec![0f32; kv_heads * group * head_dim];
        for head in 0..kv_heads * group {
            let kv = head / group;
            let query = &q[head * head_dim..][..head_dim];
            let scores: Vec<f32> = keys
                .iter()
                .map(|k| {
                    query
                        .iter()
                        .zip(&k[kv * head_dim..][..head_dim])
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        * scale
                })
                .collect();
            let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f32 = exps.iter().sum();
            for (e, v) in exps.iter().zip(vals) {
                for d in 0..head_dim {
                    out[head * head_dim + d] += e / total * v[kv * head_dim + d];
                }
            }
        }
        out
    }

    #[test]
    fn the_cache_grows_in_place_and_one_token_attention_equals_the_reference() {
        let shape = AttentionShape {
            kv_heads: 2,
            group: 3,
            head_dim: 8,
            scale: 0.35,
        };
        let (kv_heads, head_dim) = (shape.kv_heads, shape.head_dim);
        let mut cache = Cache::default();
        // Per position: (kv_heads * head_dim) keys and values, in head-major order.
        let (mut keys, mut vals) = (Vec::new(), Vec::new());
        let mut position = 0;
        // A 5-token prompt, then single tokens past the first growth (256 positions).
        for (step, n) in std::iter::once(5)
            .chain(std::iter::repeat_n(1, 300))
            .enumerate()
        {
            let k = values(kv_heads * n * head_dim, step as u32 * 7 + 1);
            let v = values(kv_heads * n * head_dim, step as u32 * 13 + 5);
            let as_tensor = |x: &[f32]| {
                Tensor::from_slice(x, (1, kv_heads, n, head_dim), &Device::Cpu).unwrap()
            };
            cache
                .append(&as_tensor(&k), &as_tensor(&v), position)
                .unwrap();
            for t in 0..n {
                let pick = |x: &[f32]| -> Vec<f32> {
                    (0..kv_heads)
                        .flat_map(|h| x[(h * n + t) * head_dim..][..head_dim].to_vec())
                        .collect()
                };
                keys.push(pick(&k));
                vals.push(pick(&v));
            }
            position += n;
            if step % 50 == 0 || position == 305 {
                let q = values(kv_heads * shape.group * head_dim, step as u32 + 99);
                let got = cache.attend_one(&q, shape, position);
                let want = reference(&keys, &vals, &q, shape);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "position {position}: {g} vs {w}");
                }
            }
        }
        assert!(cache.capacity >= 305);
        // A prompt's rows: each of the last 7 positions attends causally, up to itself.
        let rows = 7;
        let q = values(rows * kv_heads * shape.group * head_dim, 4242);
        let width = kv_heads * shape.group * head_dim;
        let got = cache.attend_rows(&q, shape, position - rows, rows);
        for row in 0..rows {
            let seen = position - rows + row + 1;
            let want = reference(
                &keys[..seen],
                &vals[..seen],
                &q[row * width..][..width],
                shape,
            );
            for (g, w) in got[row * width..][..width].iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "row {row}: {g} vs {w}");
            }
        }
    }
}
