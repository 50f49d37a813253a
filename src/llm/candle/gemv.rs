//! Matrix-vector products for decoding, on GGUF Q8_0 and Q5_0 weights as stored: the cost
//! of generating a token is reading every weight once, so this is where tokens/s is won.
//!
//! Hand-written because candle 0.11.1's kernels leave speed on the table here: its Q8_0 dot
//! product converts each block's f16 scale through a function call and reached 7.8 GB/s on
//! the 2-core build machine (memory gives ~19.5 GB/s), and its Q5_0 path is scalar (which is
//! why [`super::repack`] widens Q5_0 to Q8_0, at 1.5x the bytes). llama.cpp's AVX2 loops
//! are the model: activations are quantized to Q8_0 blocks once per vector (as llama.cpp
//! does, scale rounded to f16), each weight block's int8 products are summed exactly in
//! int32 and scaled in f32. Four weight rows share each activation load. Rows are split
//! across candle's own worker pool, so no second set of threads competes with its kernels.
//!
//! Results equal a scalar loop over the same integers (tested) and llama.cpp's numerics up
//! to f32 summation order.

use half::f16;

const BLOCK: usize = 32;

/// A weight matrix in one of the block formats this module multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// f16 scale + 32 int8: 34 bytes per block.
    Q8_0,
    /// f16 scale + 32 high bits + 32 low nibbles; value = d * (q - 16): 22 bytes per block.
    Q5_0,
}

impl Format {
    pub const fn block_bytes(self) -> usize {
        match self {
            Format::Q8_0 => 34,
            Format::Q5_0 => 22,
        }
    }
}

/// An activation vector quantized to Q8_0 blocks: int8 values and per-block f32 scales
/// (rounded through f16, as llama.cpp stores them).
pub struct QuantizedVector {
    values: Vec<i8>,
    scales: Vec<f32>,
}

impl QuantizedVector {
    /// `x.len()` must be a multiple of 32.
    pub fn new(x: &[f32]) -> Self {
        let mut values = vec![0i8; x.len()];
        let mut scales = Vec::with_capacity(x.len() / BLOCK);
        for (block, out) in x.chunks_exact(BLOCK).zip(values.chunks_exact_mut(BLOCK)) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            for (q, v) in out.iter_mut().zip(block) {
                *q = (v * inverse).round() as i8;
            }
            scales.push(f16::from_f32(d).to_f32());
        }
        Self { values, scales }
    }
}

/// `out[r] = row r of the weights . x` for every row; `weights` holds `out.len()` rows of
/// `x.len()` values each in `format`. Rows are shared among candle's worker threads.
pub fn gemv(format: Format, weights: &[u8], x: &QuantizedVector, out: &mut [f32]) {
    let blocks = x.scales.len();
    let row_bytes = blocks * format.block_bytes();
    assert_eq!(weights.len(), out.len() * row_bytes, "weights do not match");
    let rows = out.len();
    let quads = rows.div_ceil(4);
    let out_at = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(quads, |range| {
        let first = range.start * 4;
        let last = (range.end * 4).min(rows);
        // SAFETY: work ranges are disjoint, so each output row is written by one thread.
        let out = unsafe {
            std::slice::from_raw_parts_mut((out_at as *mut f32).add(first), last - first)
        };
        rows_dot(
            format,
            &weights[first * row_bytes..last * row_bytes],
            x,
            out,
        );
    });
}

/// Dot products of consecutive weight rows with `x`, four at a time.
fn rows_dot(format: Format, weights: &[u8], x: &QuantizedVector, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked at run time).
        unsafe { x86::rows_dot(format, weights, x, out) };
        return;
    }
    let row_bytes = weights.len() / out.len().max(1);
    for (row, o) in weights.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *o = row_dot_scalar(format, row, x);
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// The 32 integers of block `b` of a row.
fn block_values(format: Format, block: &[u8]) -> (f32, [i8; BLOCK]) {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let mut q = [0i8; BLOCK];
    match format {
        Format::Q8_0 => {
            for (v, &b) in q.iter_mut().zip(&block[2..2 + BLOCK]) {
                *v = b as i8;
            }
        }
        Format::Q5_0 => {
            let high = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            for j in 0..BLOCK / 2 {
                let low = block[6 + j];
                let first = (low & 0x0F) | ((((high >> j) & 1) as u8) << 4);
                let second = (low >> 4) | ((((high >> (j + 16)) & 1) as u8) << 4);
                q[j] = first as i8 - 16;
                q[j + BLOCK / 2] = second as i8 - 16;
            }
        }
    }
    (d, q)
}

/// The reference: the same integer sums and scales, one block at a time.
pub fn row_dot_scalar(format: Format, row: &[u8], x: &QuantizedVector) -> f32 {
    let mut sum = 0f32;
    for (b, block) in row.chunks_exact(format.block_bytes()).enumerate() {
        let (d, q) = block_values(format, block);
        let xs = &x.values[b * BLOCK..(b + 1) * BLOCK];
        let isum: i32 = q.iter().zip(xs).map(|(&w, &v)| w as i32 * v as i32).sum();
        sum += d * x.scales[b] * isum as f32;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, Format, QuantizedVector};
    use std::arch::x86_64::*;

    /// How far ahead in each row to ask for memory: the rows are read as four interleaved
    /// streams, which the hardware prefetcher alone did not keep up with.
    const PREFETCH_BYTES: usize = 768;

    #[inline(always)]
    unsafe fn scale(block: *const u8) -> f32 {
        unsafe {
            let bits = std::ptr::read_unaligned(block as *const u16);
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
        }
    }

    /// The 32 weights of a block as int8 in a register.
    #[inline(always)]
    unsafe fn block_weights(format: Format, block: *const u8) -> __m256i {
        unsafe {
            match format {
                Format::Q8_0 => _mm256_loadu_si256(block.add(2) as *const __m256i),
                Format::Q5_0 => {
                    // llama.cpp's bytes_from_nibbles_32 and bytes_from_bits_32: low nibbles
                    // are values 0..16, high nibbles 16..32; a clear high bit means q - 16
                    // is negative, i.e. the nibble with 0xF0 set, as int8.
                    let packed = _mm_loadu_si128(block.add(6) as *const __m128i);
                    let nibbles = _mm256_and_si256(
                        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                        _mm256_set1_epi8(0x0F),
                    );
                    let bits = std::ptr::read_unaligned(block.add(2) as *const u32) as i32;
                    let spread = _mm256_shuffle_epi8(
                        _mm256_set1_epi32(bits),
                        _mm256_set_epi64x(
                            0x0303_0303_0303_0303,
                            0x0202_0202_0202_0202,
                            0x0101_0101_0101_0101,
                            0,
                        ),
                    );
                    let set = _mm256_cmpeq_epi8(
                        _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe)),
                        _mm256_set1_epi64x(-1),
                    );
                    let high = _mm256_andnot_si256(set, _mm256_set1_epi8(0xF0u8 as i8));
                    _mm256_or_si256(nibbles, high)
                }
            }
        }
    }

    /// Sum of products of 32 int8 pairs, as 8 f32 partial sums (exact: |w| <= 128 and
    /// |x| <= 127 keep maddubs from saturating).
    #[inline(always)]
    unsafe fn products(w: __m256i, x: __m256i) -> __m256 {
        unsafe {
            let magnitudes = _mm256_sign_epi8(w, w);
            let signed_x = _mm256_sign_epi8(x, w);
            let pairs = _mm256_maddubs_epi16(magnitudes, signed_x);
            _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn horizontal_sum(v: __m256) -> f32 {
        unsafe {
            let pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let pair = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
            _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
        }
    }

    /// acc + block `b` of `row` . block `b` of `x`. (A function, not a closure: closures
    /// do not inherit `target_feature`, and the intrinsics would not inline.)
    #[inline(always)]
    unsafe fn step(
        format: Format,
        row: *const u8,
        x: &QuantizedVector,
        b: usize,
        acc: __m256,
    ) -> __m256 {
        unsafe {
            let block = row.add(b * format.block_bytes());
            let xv = _mm256_loadu_si256(x.values.as_ptr().add(b * BLOCK) as *const __m256i);
            let d = _mm256_set1_ps(scale(block) * *x.scales.get_unchecked(b));
            _mm256_fmadd_ps(d, products(block_weights(format, block), xv), acc)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows_dot(format: Format, weights: &[u8], x: &QuantizedVector, out: &mut [f32]) {
        let blocks = x.scales.len();
        let row_bytes = blocks * format.block_bytes();
        unsafe {
            for (r, o) in out.iter_mut().enumerate() {
                let row = weights.as_ptr().add(r * row_bytes);
                // Two blocks per step into two accumulators, so consecutive blocks' FMAs
                // do not wait on each other.
                let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let mut b = 0;
                while b + 2 <= blocks {
                    let ahead = row.add(b * format.block_bytes() + PREFETCH_BYTES);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                    even = step(format, row, x, b, even);
                    odd = step(format, row, x, b + 1, odd);
                    b += 2;
                }
                if b < blocks {
                    even = step(format, row, x, b, even);
                }
                *o = horizontal_sum(_mm256_add_ps(even, odd));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random blocks in `format` (scales in a realistic range) for `rows` x `cols`.
    fn random_weights(format: Format, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let mut bytes = Vec::new();
        for _ in 0..rows * cols / BLOCK {
            let d = f16::from_f32((next() % 1000) as f32 / 1e5 + 1e-4);
            bytes.extend_from_slice(&d.to_le_bytes());
            match format {
                // -128 included: the extreme maddubs must not saturate on.
                Format::Q8_0 => bytes.extend((0..BLOCK).map(|_| (next() % 256) as u8)),
                Format::Q5_0 => bytes.extend((0..20).map(|_| next() as u8)),
            }
        }
        bytes
    }

    fn random_vector(n: usize, seed: u64) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed) % 2001) as f32 - 1000.0) / 250.0)
            .collect()
    }

    #[test]
    fn the_simd_rows_equal_the_scalar_reference() {
        for format in [Format::Q8_0, Format::Q5_0] {
            // 7 rows: one group of four and three left over; 96 columns: 3 blocks.
            for (rows, cols) in [(7, 96), (64, 896), (1, 32)] {
                let weights = random_weights(format, rows, cols, 11);
                let x = QuantizedVector::new(&random_vector(cols, 5));
                let mut out = vec![0f32; rows];
                gemv(format, &weights, &x, &mut out);
                let row_bytes = weights.len() / rows;
                for (r, got) in out.iter().enumerate() {
                    let want = row_dot_scalar(format, &weights[r * row_bytes..][..row_bytes], &x);
                    // Same integers; only the f32 summation order differs.
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{format:?} {rows}x{cols} row {r}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn products_equal_candles_dequantized_weights() {
        use candle_core::quantized::{GgmlDType, QTensor};
        use candle_core::{Device, Tensor};
        for (format, dtype) in [
            (Format::Q8_0, GgmlDType::Q8_0),
            (Format::Q5_0, GgmlDType::Q5_0),
        ] {
            let (rows, cols) = (12, 64);
            let w = Tensor::from_vec(random_vector(rows * cols, 3), (rows, cols), &Device::Cpu)
                .unwrap();
            let q = QTensor::quantize(&w, dtype).unwrap();
            let bytes = q.data().unwrap().into_owned();
            let dequantized: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
            let xf = random_vector(cols, 9);
            let x = QuantizedVector::new(&xf);
            let mut out = vec![0f32; rows];
            gemv(format, &bytes, &x, &mut out);
            for (r, row) in dequantized.iter().enumerate() {
                // The exact product of the stored weights with the quantized activations.
                let xq: Vec<f32> = (0..cols)
                    .map(|i| x.values[i] as f32 * x.scales[i / BLOCK])
                    .collect();
                let want: f32 = row.iter().zip(&xq).map(|(a, b)| a * b).sum();
                assert!(
                    (out[r] - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{format:?} row {r}: {} vs {want}",
                    out[r]
                );
            }
        }
    }

    #[test]
    fn activations_quantize_as_llama_cpp_does() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 12.7).collect();
        let q = QuantizedVector::new(&x);
        let d = (31.0f32 - 12.7) / 127.0;
        assert_eq!(q.scales[0], f16::from_f32(d).to_f32());
        assert_eq!(q.values[31], 127);
        assert_eq!(q.values[0], (-12.7f32 / d).round() as i8);
        let zeros = QuantizedVector::new(&[0.0; 32]);
        assert!(zeros.values.iter().all(|&v| v == 0) && zeros.scales[0] == 0.0);
    }
}
