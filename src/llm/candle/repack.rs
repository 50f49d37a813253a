//! Q5_0 weights widened to Q8_0 at load time, exactly.
//!
//! Why: candle 0.11.1 has AVX2 dot products for Q4_0, Q8_0 and the K-quants, but Q5_0 runs
//! its scalar fallback. The small models' "Q4_K_M" files are mostly Q5_0 (Qwen2.5 0.5B:
//! 133 of 170 quantized tensors; Gemma 3 270M: 81 of 127), because their row lengths (896,
//! 640) are not multiples of the K-quants' 256, and llama.cpp falls back to Q5_0. Measured
//! here: a 143-token prompt took 32 s and generation ran at 3.6 tokens/s.
//!
//! A Q5_0 block is a f16 scale and 32 five-bit integers q (the value is d * (q - 16)). A
//! Q8_0 block is a f16 scale and 32 int8: writing q - 16 with the same scale is the same
//! numbers, so the products are unchanged; only the storage grows (34 bytes per block
//! instead of 22).

use std::io::{Cursor, Read, Seek, SeekFrom};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Content;

const BLOCK: usize = 32;
const Q5_0_BYTES: usize = 22;
const Q8_0_BYTES: usize = 34;
const ALIGNMENT: u64 = 32;

/// One Q5_0 block (`d`, `qh`, `qs`) as the Q8_0 block with the same values.
fn widen_block(q5: &[u8], q8: &mut [u8]) {
    q8[..2].copy_from_slice(&q5[..2]); // the f16 scale, unchanged
    let high = u32::from_le_bytes([q5[2], q5[3], q5[4], q5[5]]);
    let low = &q5[6..22];
    for j in 0..BLOCK / 2 {
        let first = (low[j] & 0x0F) | ((((high >> j) & 1) as u8) << 4);
        let second = (low[j] >> 4) | ((((high >> (j + 16)) & 1) as u8) << 4);
        q8[2 + j] = (first as i8 - 16) as u8;
        q8[2 + j + BLOCK / 2] = (second as i8 - 16) as u8;
    }
}

/// Reads every tensor of `content` from `reader` into memory, widening Q5_0 ones to Q8_0,
/// and points `content` at the returned buffer. Returns the buffer and how many tensors
/// were widened. Without Q5_0 tensors it returns None and changes nothing.
pub fn widen_q5_0<R: Read + Seek>(
    content: &mut Content,
    reader: &mut R,
) -> candle_core::Result<Option<(Cursor<Vec<u8>>, usize)>> {
    if !content
        .tensor_infos
        .values()
        .any(|t| t.ggml_dtype == GgmlDType::Q5_0)
    {
        return Ok(None);
    }
    let mut names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    names.sort_by_key(|n| content.tensor_infos[n].offset);
    let mut blob = Vec::new();
    let mut widened = 0;
    for name in names {
        let info = content.tensor_infos.get_mut(&name).expect("listed above");
        let elems = info.shape.elem_count();
        let dtype = info.ggml_dtype;
        if !elems.is_multiple_of(dtype.block_size()) {
            candle_core::bail!("tensor {name}: {elems} elements do not fill whole blocks");
        }
        let size = elems / dtype.block_size() * dtype.type_size();
        let mut raw = vec![0u8; size];
        reader.seek(SeekFrom::Start(content.tensor_data_offset + info.offset))?;
        reader.read_exact(&mut raw)?;
        let padding = (blob.len() as u64).next_multiple_of(ALIGNMENT) - blob.len() as u64;
        blob.resize(blob.len() + padding as usize, 0);
        info.offset = blob.len() as u64;
        if dtype == GgmlDType::Q5_0 {
            let blocks = size / Q5_0_BYTES;
            let start = blob.len();
            blob.resize(start + blocks * Q8_0_BYTES, 0);
            for (q5, q8) in raw
                .chunks_exact(Q5_0_BYTES)
                .zip(blob[start..].chunks_exact_mut(Q8_0_BYTES))
            {
                widen_block(q5, q8);
            }
            info.ggml_dtype = GgmlDType::Q8_0;
            widened += 1;
        } else {
            blob.extend_from_slice(&raw);
        }
    }
    content.tensor_data_offset = 0;
    Ok(Some((Cursor::new(blob), widened)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{QTensor, ggml_file};
    use candle_core::{Device, Tensor};

    #[test]
    fn widened_blocks_dequantize_to_the_same_values() {
        // Quantize a ramp to Q5_0 with candle, widen it, and compare dequantized values.
        let values: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let x = Tensor::from_vec(values, (4, 64), &Device::Cpu).unwrap();
        let q5 = QTensor::quantize(&x, GgmlDType::Q5_0).unwrap();
        let raw = q5.data().unwrap();
        let mut wide = vec![0u8; raw.len() / Q5_0_BYTES * Q8_0_BYTES];
        for (a, b) in raw
            .chunks_exact(Q5_0_BYTES)
            .zip(wide.chunks_exact_mut(Q8_0_BYTES))
        {
            widen_block(a, b);
        }
        let q8 = ggml_file::qtensor_from_ggml(GgmlDType::Q8_0, &wide, vec![4, 64], &Device::Cpu)
            .unwrap();
        let values = |q: &QTensor| -> Vec<f32> {
            q.dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(values(&q5), values(&q8));
    }
}
