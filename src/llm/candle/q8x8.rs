//! Quantized matrix products for the in-process models' Q8_0 weights, which generating
//! a token reads once each, so this is where tokens/s is won.
//!
//! Hand-written because candle 0.11.1's Q8_0 kernel leaves speed on the table: it converts
//! each block's f16 scale through a function call, reduces each row on its own, and reached
//! 8-10 GB/s on the 2-core build machine, well short of its memory bandwidth. Here the weights
//! are interleaved 8 rows at a time at load, as llama.cpp's CPU backend repacks them: one
//! activation block meets 8 rows' blocks in a row, their 8 scales convert in one
//! instruction, and the 8 int32 sums reduce together. Measured with `cargo bench --bench
//! llm` (2 threads): one token through Qwen2.5 0.5B's output matrix in 5.7 ms (24 GiB/s,
//! candle 14.0 ms), a 512-token prompt through a 4864x896 matrix in 42 ms (candle 215 ms).
//!
//! On CPUs with AVX-512 VNNI (checked at run time, when the weights are packed) a second
//! layout serves `vpdpbusd`, which multiplies 4 unsigned bytes by 4 signed bytes and adds
//! the 4 products into each int32 lane: every 16 rows are interleaved 4 values at a time,
//! so that one instruction advances 16 rows' sums by 4 values each against 4 activation
//! values broadcast to all lanes. The sums come out one row per lane, with no horizontal
//! reduction, and a prompt's activation rows pass 4 at a time over weights held in
//! registers. Weights are stored as unsigned (w + 128); the extra 128 * sum(x) of each
//! block is taken off exactly before scaling. See [`PackedQ8`].
//!
//! The numerics are llama.cpp's: activations are quantized to Q8_0 blocks once per row
//! (scale rounded to f16), each block's int8 products are summed exactly in int32 and
//! scaled in f32; only the f32 summation order differs. Work is split across candle's own
//! worker pool, so no second set of threads competes with its kernels.

use half::f16;

const BLOCK: usize = 32;
/// Bytes of a GGUF Q8_0 block: f16 scale + 32 int8.
const Q8_0_BYTES: usize = 34;

/// An activation vector quantized to Q8_0 blocks: int8 values and per-block f32 scales
/// (rounded through f16, as llama.cpp stores them).
pub struct QuantizedVector {
    values: Vec<i8>,
    scales: Vec<f32>,
    /// Per block, the sum of its int8 values (for the VNNI layout's unsigned weights).
    sums: Vec<i32>,
}

impl QuantizedVector {
    /// `x.len()` must be a multiple of 32.
    pub fn new(x: &[f32]) -> Self {
        let mut q = Self {
            values: vec![0i8; x.len()],
            scales: vec![0f32; x.len() / BLOCK],
            sums: vec![0i32; x.len() / BLOCK],
        };
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked at run time); SSE4.1 comes
            // with AVX2.
            unsafe { q.quantize_avx2(x) };
            return q;
        }
        q.quantize(x);
        q
    }

    /// The same code compiled for AVX2: `round` then inlines (SSE4.1's roundps, exactly
    /// Rust's round-half-away-from-zero) instead of calling libm's roundf per value, and
    /// the loops vectorize. Measured: 4% of a prompt's time went to roundf before.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c,sse4.1")]
    unsafe fn quantize_avx2(&mut self, x: &[f32]) {
        self.quantize(x)
    }

    #[inline(always)]
    fn quantize(&mut self, x: &[f32]) {
        let blocks = x
            .chunks_exact(BLOCK)
            .zip(self.values.chunks_exact_mut(BLOCK))
            .zip(self.scales.iter_mut().zip(self.sums.iter_mut()));
        for ((block, out), (scale, sum)) in blocks {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            for (q, v) in out.iter_mut().zip(block) {
                *q = (v * inverse).round() as i8;
            }
            *scale = f16::from_f32(d).to_f32();
            *sum = out.iter().map(|&q| q as i32).sum();
        }
    }
}

/// Q8_0 weights packed for the CPU at hand: [`Layout::Rows8`] (any CPU; AVX2 or portable
/// code) or [`Layout::Vnni16`] (AVX-512 VNNI). The products are the same integers either
/// way; only the f32 summation order differs.
pub struct PackedQ8 {
    data: Vec<u8>,
    rows: usize,
    blocks: usize,
    layout: Layout,
}

/// How [`PackedQ8`] lays out its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every 8 rows interleaved block by block (llama.cpp's CPU backend repacks the same
    /// way): one activation block then meets 8 rows' blocks in a row, their 8 scales
    /// convert in one instruction, and the 8 int32 sums are reduced together. That halves
    /// the instructions per weight block against a row-at-a-time loop, and it also serves
    /// prompts (many activation rows), where each group's weights stay in cache while
    /// every row of the prompt passes by.
    Rows8,
    /// Every 16 rows interleaved 4 values at a time, as unsigned bytes (w + 128), for
    /// `vpdpbusd`: per block, 16 f16 scales, then 8 runs of 64 bytes, run j holding
    /// values 4j..4j+4 of rows 0..16 in turn.
    Vnni16,
}

impl Layout {
    /// The fastest layout this CPU runs.
    pub fn best() -> Layout {
        #[cfg(target_arch = "x86_64")]
        if vnni() {
            return Layout::Vnni16;
        }
        Layout::Rows8
    }

    /// Whether this CPU can run the layout's kernels.
    pub fn runs_here(self) -> bool {
        match self {
            Layout::Rows8 => true,
            #[cfg(target_arch = "x86_64")]
            Layout::Vnni16 => vnni(),
            #[cfg(not(target_arch = "x86_64"))]
            Layout::Vnni16 => false,
        }
    }

    fn group_rows(self) -> usize {
        match self {
            Layout::Rows8 => GROUP,
            Layout::Vnni16 => VNNI_GROUP,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Layout::Rows8 => GROUP_BLOCK_BYTES,
            Layout::Vnni16 => VNNI_BLOCK_BYTES,
        }
    }
}

/// Rows interleaved in groups of this many ([`Layout::Rows8`]).
const GROUP: usize = 8;
/// One block index of one group: 8 f16 scales, then 8 rows' 32 int8.
const GROUP_BLOCK_BYTES: usize = 2 * GROUP + GROUP * BLOCK;
/// Rows per group of [`Layout::Vnni16`]: one 512-bit vector of int32 sums.
const VNNI_GROUP: usize = 16;
/// One block index of a [`Layout::Vnni16`] group: 16 f16 scales, then 16 rows' 32 bytes.
const VNNI_BLOCK_BYTES: usize = 2 * VNNI_GROUP + VNNI_GROUP * BLOCK;
/// Activation rows that pass together over one group's weights ([`Layout::Vnni16`]).
const VNNI_TILE: usize = 4;

impl PackedQ8 {
    /// From GGUF Q8_0 bytes of `rows` rows of `cols` values (`cols` a multiple of 32), in
    /// the fastest layout this CPU runs. Rows past the last whole group are padded with
    /// zero weights.
    pub fn from_q8_0(bytes: &[u8], rows: usize, cols: usize) -> Self {
        Self::with_layout(bytes, rows, cols, Layout::best())
    }

    /// As [`PackedQ8::from_q8_0`], in a given layout (which must run here to be used).
    pub fn with_layout(bytes: &[u8], rows: usize, cols: usize, layout: Layout) -> Self {
        let blocks = cols / BLOCK;
        let row_bytes = blocks * Q8_0_BYTES;
        assert_eq!(
            bytes.len(),
            rows * row_bytes,
            "Q8_0 bytes do not match the shape"
        );
        let group_rows = layout.group_rows();
        let block_bytes = layout.block_bytes();
        let groups = rows.div_ceil(group_rows);
        let mut data = vec![0u8; groups * blocks * block_bytes];
        if layout == Layout::Vnni16 {
            // A zero weight is stored as 128 (w + 128): padding rows then sum to 0.
            for block in data.chunks_exact_mut(VNNI_BLOCK_BYTES) {
                block[2 * VNNI_GROUP..].fill(0x80);
            }
        }
        for row in 0..rows {
            let (group, lane) = (row / group_rows, row % group_rows);
            for b in 0..blocks {
                let block = &bytes[row * row_bytes + b * Q8_0_BYTES..][..Q8_0_BYTES];
                let at = (group * blocks + b) * block_bytes;
                data[at + 2 * lane..at + 2 * lane + 2].copy_from_slice(&block[..2]);
                match layout {
                    Layout::Rows8 => {
                        let values = at + 2 * GROUP + lane * BLOCK;
                        data[values..values + BLOCK].copy_from_slice(&block[2..]);
                    }
                    Layout::Vnni16 => {
                        for (k, &w) in block[2..].iter().enumerate() {
                            let (run, within) = (k / 4, k % 4);
                            let to = at + 2 * VNNI_GROUP + run * 4 * VNNI_GROUP + lane * 4 + within;
                            data[to] = w ^ 0x80; // (w as i8 + 128) as u8
                        }
                    }
                }
            }
        }
        Self {
            data,
            rows,
            blocks,
            layout,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.blocks * BLOCK
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// `out[i * rows + r]` = row r . `xs[i]`, for every activation row i.
    pub fn matmul(&self, xs: &[QuantizedVector], out: &mut [f32]) {
        assert_eq!(out.len(), xs.len() * self.rows, "output size");
        assert!(
            xs.iter().all(|x| x.scales.len() == self.blocks),
            "activation width"
        );
        assert!(
            self.layout.runs_here(),
            "{:?} does not run on this CPU",
            self.layout
        );
        let group_rows = self.layout.group_rows();
        let groups = self.rows.div_ceil(group_rows);
        let group_bytes = self.blocks * self.layout.block_bytes();
        let out_at = out.as_mut_ptr() as usize;
        let rows = self.rows;
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            for g in range {
                let group = &self.data[g * group_bytes..(g + 1) * group_bytes];
                let lanes = group_rows.min(rows - g * group_rows);
                // SAFETY: rows g*group_rows.. of every output row belong to this group alone.
                let write = |i: usize, sums: &[f32]| unsafe {
                    std::slice::from_raw_parts_mut(
                        (out_at as *mut f32).add(i * rows + g * group_rows),
                        lanes,
                    )
                    .copy_from_slice(&sums[..lanes]);
                };
                match self.layout {
                    Layout::Rows8 => {
                        for (i, x) in xs.iter().enumerate() {
                            write(i, &group_dot(group, x));
                        }
                    }
                    Layout::Vnni16 => {
                        for (t, tile) in xs.chunks(VNNI_TILE).enumerate() {
                            let sums = vnni_tile(group, tile);
                            for (k, sums) in sums.iter().take(tile.len()).enumerate() {
                                write(t * VNNI_TILE + k, sums);
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The 16 dot products of a [`Layout::Vnni16`] group with each of up to 4 activation rows
/// (rows past `tile.len()` are left zero). A fixed array, not a Vec: this runs once per
/// group and tile, for every generated token too.
fn vnni_tile(group: &[u8], tile: &[QuantizedVector]) -> [[f32; VNNI_GROUP]; VNNI_TILE] {
    let mut out = [[0f32; VNNI_GROUP]; VNNI_TILE];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a Vnni16 matrix is only multiplied where the CPU has AVX-512 VNNI
        // (asserted in matmul).
        unsafe {
            match tile {
                [a] => out[..1].copy_from_slice(&x86::vnni_tile::<1>(group, [a])),
                [a, b] => out[..2].copy_from_slice(&x86::vnni_tile::<2>(group, [a, b])),
                [a, b, c] => out[..3].copy_from_slice(&x86::vnni_tile::<3>(group, [a, b, c])),
                [a, b, c, d] => out.copy_from_slice(&x86::vnni_tile::<4>(group, [a, b, c, d])),
                _ => unreachable!("tiles hold 1 to {VNNI_TILE} rows"),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the VNNI layout is only chosen on x86_64 ({group:?}, {tile:?})");
    #[allow(unreachable_code)]
    out
}

/// [`vnni_tile`]'s arithmetic in plain code: the check that the layout holds what the
/// kernel assumes.
#[cfg(test)]
fn vnni_group_dot_portable(group: &[u8], x: &QuantizedVector) -> [f32; VNNI_GROUP] {
    let mut sums = [0f32; VNNI_GROUP];
    for (b, block) in group.chunks_exact(VNNI_BLOCK_BYTES).enumerate() {
        let xs = &x.values[b * BLOCK..(b + 1) * BLOCK];
        for (lane, sum) in sums.iter_mut().enumerate() {
            let d = f16::from_le_bytes([block[2 * lane], block[2 * lane + 1]]).to_f32();
            let mut isum = -128 * x.sums[b];
            for (k, &v) in xs.iter().enumerate() {
                let w = block[2 * VNNI_GROUP + (k / 4) * 4 * VNNI_GROUP + lane * 4 + k % 4];
                isum += w as i32 * v as i32;
            }
            *sum += d * x.scales[b] * isum as f32;
        }
    }
    sums
}

/// The 8 dot products of one interleaved group with `x`.
fn group_dot(group: &[u8], x: &QuantizedVector) -> [f32; GROUP] {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked at run time).
        return unsafe { x86::group_dot(group, x) };
    }
    group_dot_portable(group, x)
}

/// [`group_dot`] for CPUs without AVX2.
fn group_dot_portable(group: &[u8], x: &QuantizedVector) -> [f32; GROUP] {
    let mut sums = [0f32; GROUP];
    for (b, block) in group.chunks_exact(GROUP_BLOCK_BYTES).enumerate() {
        let xs = &x.values[b * BLOCK..(b + 1) * BLOCK];
        for (lane, sum) in sums.iter_mut().enumerate() {
            let d = f16::from_le_bytes([block[2 * lane], block[2 * lane + 1]]).to_f32();
            let w = &block[2 * GROUP + lane * BLOCK..][..BLOCK];
            let isum: i32 = w
                .iter()
                .zip(xs)
                .map(|(&w, &v)| w as i8 as i32 * v as i32)
                .sum();
            *sum += d * x.scales[b] * isum as f32;
        }
    }
    sums
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

#[cfg(target_arch = "x86_64")]
fn vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK, GROUP, GROUP_BLOCK_BYTES, QuantizedVector, VNNI_BLOCK_BYTES, VNNI_GROUP};
    use std::arch::x86_64::*;

    /// The 16 dot products of a [`super::Layout::Vnni16`] group with each of `T`
    /// activation rows. Per block: the group's 8 weight vectors are loaded once; for each
    /// row, 8 `vpdpbusd` (each: 4 of the row's values broadcast, times 4 values of each of
    /// the 16 weight rows) give the 16 int32 sums, less 128 * the block's sum (the
    /// weights are stored + 128), converted and scaled by the 16 row scales times the
    /// row's block scale.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vnni_tile<const T: usize>(
        group: &[u8],
        xs: [&QuantizedVector; T],
    ) -> [[f32; VNNI_GROUP]; T] {
        let blocks = xs[0].scales.len();
        debug_assert_eq!(group.len(), blocks * VNNI_BLOCK_BYTES);
        let mut acc = [_mm512_setzero_ps(); T];
        unsafe {
            let base = group.as_ptr();
            for b in 0..blocks {
                let block = base.add(b * VNNI_BLOCK_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(block.add(VNNI_BLOCK_BYTES * 2) as *const i8);
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(block as *const __m256i));
                let runs = block.add(2 * VNNI_GROUP);
                let w: [__m512i; BLOCK / 4] =
                    std::array::from_fn(|j| _mm512_loadu_si512(runs.add(64 * j) as *const _));
                for (t, x) in xs.iter().enumerate() {
                    let values = x.values.as_ptr().add(b * BLOCK) as *const i32;
                    let mut isum = _mm512_set1_epi32(-128 * *x.sums.get_unchecked(b));
                    for (j, w) in w.iter().enumerate() {
                        let four = _mm512_set1_epi32(values.add(j).read_unaligned());
                        isum = _mm512_dpbusd_epi32(isum, *w, four);
                    }
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(*x.scales.get_unchecked(b)));
                    acc[t] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(isum), acc[t]);
                }
            }
            let mut out = [[0f32; VNNI_GROUP]; T];
            for (o, a) in out.iter_mut().zip(acc) {
                _mm512_storeu_ps(o.as_mut_ptr(), a);
            }
            out
        }
    }

    /// Row `r` of an interleaved group block times `xv`, as 8 int32 partial sums.
    #[inline(always)]
    unsafe fn lane_sums(block: *const u8, r: usize, xv: __m256i) -> __m256i {
        unsafe {
            let w = _mm256_loadu_si256(block.add(2 * GROUP + r * BLOCK) as *const __m256i);
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w));
            _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
        }
    }

    /// The 8 dot products of an interleaved group (see [`super::Layout::Rows8`]) with `x`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn group_dot(group: &[u8], x: &QuantizedVector) -> [f32; GROUP] {
        let blocks = x.scales.len();
        let mut acc = _mm256_setzero_ps();
        unsafe {
            let base = group.as_ptr();
            for b in 0..blocks {
                let block = base.add(b * GROUP_BLOCK_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(block.add(GROUP_BLOCK_BYTES * 2) as *const i8);
                let xv = _mm256_loadu_si256(x.values.as_ptr().add(b * BLOCK) as *const __m256i);
                let scales = _mm256_mul_ps(
                    _mm256_cvtph_ps(_mm_loadu_si128(block as *const __m128i)),
                    _mm256_set1_ps(*x.scales.get_unchecked(b)),
                );
                // Eight vectors of 8 int32 partial sums -> one vector of 8 row sums.
                let s01 = _mm256_hadd_epi32(lane_sums(block, 0, xv), lane_sums(block, 1, xv));
                let s23 = _mm256_hadd_epi32(lane_sums(block, 2, xv), lane_sums(block, 3, xv));
                let s45 = _mm256_hadd_epi32(lane_sums(block, 4, xv), lane_sums(block, 5, xv));
                let s67 = _mm256_hadd_epi32(lane_sums(block, 6, xv), lane_sums(block, 7, xv));
                let s0123 = _mm256_hadd_epi32(s01, s23);
                let s4567 = _mm256_hadd_epi32(s45, s67);
                let sums = _mm256_add_epi32(
                    _mm256_permute2x128_si256(s0123, s4567, 0x20),
                    _mm256_permute2x128_si256(s0123, s4567, 0x31),
                );
                acc = _mm256_fmadd_ps(scales, _mm256_cvtepi32_ps(sums), acc);
            }
            let mut out = [0f32; GROUP];
            _mm256_storeu_ps(out.as_mut_ptr(), acc);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random Q8_0 blocks (scales in a realistic range, -128 included: the extreme
    /// maddubs must not saturate on) for `rows` x `cols`.
    fn random_q8_0(rows: usize, cols: usize, seed: u64) -> Vec<u8> {
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
            bytes.extend((0..BLOCK).map(|_| (next() % 256) as u8));
        }
        bytes
    }

    fn random_vector(n: usize, seed: u64) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed) % 2001) as f32 - 1000.0) / 250.0)
            .collect()
    }

    /// The reference: one GGUF Q8_0 row . x, block by block, integers summed exactly.
    fn row_dot(row: &[u8], x: &QuantizedVector) -> f32 {
        let mut sum = 0f32;
        for (b, block) in row.chunks_exact(Q8_0_BYTES).enumerate() {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            let xs = &x.values[b * BLOCK..(b + 1) * BLOCK];
            let isum: i32 = block[2..]
                .iter()
                .zip(xs)
                .map(|(&w, &v)| w as i8 as i32 * v as i32)
                .sum();
            sum += d * x.scales[b] * isum as f32;
        }
        sum
    }

    /// Every layout against the row-by-row reference: the kernel this CPU runs, and each
    /// layout's plain-code arithmetic (so that the layout a CPU cannot run here is still
    /// checked for what it stores).
    #[test]
    fn interleaved_products_equal_the_row_by_row_reference() {
        // 13 and 40 rows: a full group and a padded one in either layout; up to 9
        // activation rows (two whole VNNI tiles of 4 and a tile of 1).
        for (rows, cols, m) in [(13, 96, 3), (8, 896, 1), (40, 64, 9), (16, 32, 4)] {
            let weights = random_q8_0(rows, cols, 17);
            let xs: Vec<QuantizedVector> = (0..m)
                .map(|i| QuantizedVector::new(&random_vector(cols, 100 + i as u64)))
                .collect();
            let row_bytes = weights.len() / rows;
            for layout in [Layout::Rows8, Layout::Vnni16] {
                let packed = PackedQ8::with_layout(&weights, rows, cols, layout);
                let mut out = vec![0f32; m * rows];
                if layout.runs_here() {
                    packed.matmul(&xs, &mut out);
                }
                let group_rows = layout.group_rows();
                let group_bytes = cols / BLOCK * layout.block_bytes();
                for (i, x) in xs.iter().enumerate() {
                    for r in 0..rows {
                        let want = row_dot(&weights[r * row_bytes..][..row_bytes], x);
                        // Same integers; only the f32 summation order differs.
                        let close = |got: f32| (got - want).abs() <= 1e-4 * want.abs().max(1.0);
                        let got = out[i * rows + r];
                        assert!(
                            !layout.runs_here() || close(got),
                            "{layout:?} {rows}x{cols} x{i} row {r}: {got} vs {want}"
                        );
                        let g = r / group_rows;
                        let group = &packed.data[g * group_bytes..(g + 1) * group_bytes];
                        let plain = match layout {
                            Layout::Rows8 => group_dot_portable(group, x)[r % group_rows],
                            Layout::Vnni16 => vnni_group_dot_portable(group, x)[r % group_rows],
                        };
                        assert!(close(plain), "{layout:?} plain row {r}: {plain} vs {want}");
                    }
                }
            }
        }
    }

    /// The layout this machine picks is the one its CPU runs fastest (VNNI where present).
    #[test]
    fn the_best_layout_runs_here() {
        assert!(Layout::best().runs_here());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            Layout::best() == Layout::Vnni16,
            is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512bw")
        );
    }

    #[test]
    fn products_equal_candles_dequantized_weights() {
        use candle_core::quantized::{GgmlDType, QTensor};
        use candle_core::{Device, Tensor};
        let (rows, cols) = (12, 64);
        let w =
            Tensor::from_vec(random_vector(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let packed = PackedQ8::from_q8_0(&q.data().unwrap(), rows, cols);
        let dequantized: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
        let x = QuantizedVector::new(&random_vector(cols, 9));
        let mut out = vec![0f32; rows];
        packed.matmul(std::slice::from_ref(&x), &mut out);
        // The exact product of the stored weights with the quantized activations.
        let xq: Vec<f32> = (0..cols)
            .map(|i| x.values[i] as f32 * x.scales[i / BLOCK])
            .collect();
        for (r, row) in dequantized.iter().enumerate() {
            let want: f32 = row.iter().zip(&xq).map(|(a, b)| a * b).sum();
            assert!(
                (out[r] - want).abs() <= 1e-3 * want.abs().max(1.0),
                "row {r}: {} vs {want}",
                out[r]
            );
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
        // The CPU's compiled path (AVX2 here) rounds as the plain code does, halves away
        // from zero included: 127 / 127 * k + 0.5 lands on exact ties.
        let ties: Vec<f32> = (0..32)
            .map(|k| if k == 31 { 127.0 } else { k as f32 - 15.5 })
            .collect();
        for x in [ties, random_vector(4096, 5), random_vector(4096, 6)] {
            let fast = QuantizedVector::new(&x);
            let mut plain = QuantizedVector {
                values: vec![0; x.len()],
                scales: vec![0.0; x.len() / BLOCK],
                sums: vec![0; x.len() / BLOCK],
            };
            plain.quantize(&x);
            assert_eq!(fast.values, plain.values);
            assert_eq!(fast.scales, plain.scales);
            assert_eq!(fast.sums, plain.sums);
        }
        let q = QuantizedVector::new(
            &(0..32)
                .map(|k| if k == 31 { 127.0 } else { k as f32 - 15.5 })
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            (q.values[0], q.values[1], q.values[15], q.values[16]),
            (-16, -15, -1, 1)
        );
    }
}
