//! Affine sampling of image regions into model inputs.
//!
//! Hand-written on purpose: every face stage needs "sample this rotated/scaled region of the
//! frame bilinearly, straight into an f32 tensor", and the Python reference
//! (tests/reference/face_reference.py) does exactly the same arithmetic in numpy, so the two
//! agree to float precision. imageproc's warp produces u8 images (an extra rounding step and
//! an extra copy), and image's resize filters anti-alias differently from the reference.
//!
//! Convention: pixel (i, j) has its centre at continuous coordinate (i + 0.5, j + 0.5).
//! Samples outside the image read as 0 (black), like OpenCV's BORDER_CONSTANT.

use image::RgbImage;

/// Maps continuous output coordinates to continuous source coordinates:
/// `src = [a b; c d] * dst + [tx; ty]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub d: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Affine {
    pub fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        (
            self.a * x + self.b * y + self.tx,
            self.c * x + self.d * y + self.ty,
        )
    }

    /// Output of `out_w x out_h` covering the axis-aligned source box.
    pub fn from_box(x: f32, y: f32, w: f32, h: f32, out_w: u32, out_h: u32) -> Self {
        Affine {
            a: w / out_w as f32,
            b: 0.0,
            c: 0.0,
            d: h / out_h as f32,
            tx: x,
            ty: y,
        }
    }

    /// A square `side x side` source region centred at (cx, cy), rotated by `angle`
    /// radians (counter-clockwise in image coordinates, y down), mapped onto `out x out`.
    pub fn rotated_square(cx: f32, cy: f32, side: f32, angle: f32, out: u32) -> Self {
        let scale = side / out as f32;
        let (sin, cos) = angle.sin_cos();
        let half = out as f32 / 2.0;
        // src = centre + R * scale * (dst - half)
        let (a, b, c, d) = (cos * scale, -sin * scale, sin * scale, cos * scale);
        Affine {
            a,
            b,
            c,
            d,
            tx: cx - (a * half + b * half),
            ty: cy - (c * half + d * half),
        }
    }
}

/// Samples `out_w x out_h` RGB pixels (0..255 as f32) and hands each to `sink` with its
/// row-major index, so callers write straight into their tensor layout.
#[inline]
pub fn sample_into(
    src: &RgbImage,
    map: &Affine,
    out_w: u32,
    out_h: u32,
    mut sink: impl FnMut(usize, [f32; 3]),
) {
    let (w, h) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw().as_slice();
    let stride = w as usize * 3;
    let pixel = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return [0.0; 3];
        }
        let i = y as usize * stride + x as usize * 3;
        [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
    };
    // Eight pixels at a time with AVX2 where all eight read inside the image; the same
    // arithmetic as the scalar loop below, operation for operation (no FMA), so the two
    // give identical values (tested). Gathered 4-byte reads need the image's byte offsets
    // to fit an i32.
    #[cfg(target_arch = "x86_64")]
    let simd = raw.len() < i32::MAX as usize / 2 && std::arch::is_x86_feature_detected!("avx2");
    let mut index = 0;
    for v in 0..out_h {
        // Source position of this row's first pixel centre, back in pixel-index coordinates;
        // stepping along the row adds (a, c) per pixel.
        let (row_x, row_y) = map.apply(0.5, v as f32 + 0.5);
        let (row_x, row_y) = (row_x - 0.5, row_y - 0.5);
        let mut u = 0;
        #[cfg(target_arch = "x86_64")]
        if simd {
            while u + 8 <= out_w {
                // SAFETY: AVX2 was detected above.
                let Some(rgb) = (unsafe { x86::sample8(raw, stride, w, h, map, row_x, row_y, u) })
                else {
                    break;
                };
                for (k, pixel) in rgb.into_iter().enumerate() {
                    sink(index + k, pixel);
                }
                index += 8;
                u += 8;
            }
        }
        for u in u..out_w {
            let (fx, fy) = (row_x + map.a * u as f32, row_y + map.c * u as f32);
            // floor() without a libm call (baseline x86-64 has no SSE4.1 round): truncate and
            // step down for negatives. At an exact negative integer this picks the cell to the
            // left with weight 1 on its right edge: the same value.
            let x0 = fx as i64 - i64::from(fx < 0.0);
            let y0 = fy as i64 - i64::from(fy < 0.0);
            let (wx, wy) = (fx - x0 as f32, fy - y0 as f32);
            let (p00, p10, p01, p11) = if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                // Fast path: all four neighbours inside, no per-pixel border checks.
                let i = y0 as usize * stride + x0 as usize * 3;
                let row0 = &raw[i..i + 6];
                let row1 = &raw[i + stride..i + stride + 6];
                (
                    [row0[0] as f32, row0[1] as f32, row0[2] as f32],
                    [row0[3] as f32, row0[4] as f32, row0[5] as f32],
                    [row1[0] as f32, row1[1] as f32, row1[2] as f32],
                    [row1[3] as f32, row1[4] as f32, row1[5] as f32],
                )
            } else {
                (
                    pixel(x0, y0),
                    pixel(x0 + 1, y0),
                    pixel(x0, y0 + 1),
                    pixel(x0 + 1, y0 + 1),
                )
            };
            let mut rgb = [0.0; 3];
            for k in 0..3 {
                let top = p00[k] + (p10[k] - p00[k]) * wx;
                let bottom = p01[k] + (p11[k] - p01[k]) * wx;
                rgb[k] = top + (bottom - top) * wy;
            }
            sink(index, rgb);
            index += 1;
        }
    }
}

/// Hand-written with `std::arch` because the per-pixel gathers of a rotated crop are beyond
/// what the compiler vectorises, and no image crate samples an affine crop into f32.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Affine;

    /// Output pixels u..u+8 of a row, or None when any of them reads outside the image
    /// (or within one pixel of its right edge: each neighbour pair is read as 4 bytes).
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sample8(
        raw: &[u8],
        stride: usize,
        w: i64,
        h: i64,
        map: &Affine,
        row_x: f32,
        row_y: f32,
        u: u32,
    ) -> Option<[[f32; 3]; 8]> {
        let lanes = _mm256_add_ps(
            _mm256_set1_ps(u as f32),
            _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        );
        // fx = row_x + a * u, as in the scalar loop (u + lane is exact in f32 here).
        let fx = _mm256_add_ps(
            _mm256_set1_ps(row_x),
            _mm256_mul_ps(_mm256_set1_ps(map.a), lanes),
        );
        let fy = _mm256_add_ps(
            _mm256_set1_ps(row_y),
            _mm256_mul_ps(_mm256_set1_ps(map.c), lanes),
        );
        let x0 = _mm256_floor_ps(fx);
        let y0 = _mm256_floor_ps(fy);
        // Inside: 0 <= x0 <= w - 3 and 0 <= y0 <= h - 2 (compared as floats, so huge or NaN
        // coordinates fail here before any integer conversion).
        let zero = _mm256_setzero_ps();
        let inside = _mm256_and_ps(
            _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_GE_OQ>(x0, zero),
                _mm256_cmp_ps::<_CMP_LE_OQ>(x0, _mm256_set1_ps((w - 3) as f32)),
            ),
            _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_GE_OQ>(y0, zero),
                _mm256_cmp_ps::<_CMP_LE_OQ>(y0, _mm256_set1_ps((h - 2) as f32)),
            ),
        );
        if _mm256_movemask_ps(inside) != 0xFF {
            return None;
        }
        let wx = _mm256_sub_ps(fx, x0);
        let wy = _mm256_sub_ps(fy, y0);
        let offset = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_cvttps_epi32(y0), _mm256_set1_epi32(stride as i32)),
            _mm256_mullo_epi32(_mm256_cvttps_epi32(x0), _mm256_set1_epi32(3)),
        );
        let base = raw.as_ptr() as *const i32;
        // SAFETY: every offset + 3 + 4 bytes (and the same one row down) lies inside `raw`
        // by the bounds checked above.
        let (q00, q10, q01, q11) = unsafe {
            (
                _mm256_i32gather_epi32::<1>(base, offset),
                _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(offset, _mm256_set1_epi32(3))),
                _mm256_i32gather_epi32::<1>(
                    base,
                    _mm256_add_epi32(offset, _mm256_set1_epi32(stride as i32)),
                ),
                _mm256_i32gather_epi32::<1>(
                    base,
                    _mm256_add_epi32(offset, _mm256_set1_epi32(stride as i32 + 3)),
                ),
            )
        };
        let byte = _mm256_set1_epi32(0xFF);
        let channel = |q: __m256i, k: i32| -> __m256 {
            let shifted = match k {
                0 => q,
                1 => _mm256_srli_epi32::<8>(q),
                _ => _mm256_srli_epi32::<16>(q),
            };
            _mm256_cvtepi32_ps(_mm256_and_si256(shifted, byte))
        };
        let mut planes = [[0f32; 8]; 3];
        for (k, plane) in planes.iter_mut().enumerate() {
            let (p00, p10) = (channel(q00, k as i32), channel(q10, k as i32));
            let (p01, p11) = (channel(q01, k as i32), channel(q11, k as i32));
            let top = _mm256_add_ps(p00, _mm256_mul_ps(_mm256_sub_ps(p10, p00), wx));
            let bottom = _mm256_add_ps(p01, _mm256_mul_ps(_mm256_sub_ps(p11, p01), wx));
            let value = _mm256_add_ps(top, _mm256_mul_ps(_mm256_sub_ps(bottom, top), wy));
            // SAFETY: `plane` holds 8 f32.
            unsafe { _mm256_storeu_ps(plane.as_mut_ptr(), value) };
        }
        let mut out = [[0f32; 3]; 8];
        for (i, pixel) in out.iter_mut().enumerate() {
            *pixel = [planes[0][i], planes[1][i], planes[2][i]];
        }
        Some(out)
    }
}

/// Samples `out_w x out_h` RGB pixels (0..255 as f32), row-major (for the tests).
#[cfg(test)]
fn sample_rgb(src: &RgbImage, map: &Affine, out_w: u32, out_h: u32) -> Vec<[f32; 3]> {
    let mut out = vec![[0.0; 3]; (out_w * out_h) as usize];
    sample_into(src, map, out_w, out_h, |i, rgb| out[i] = rgb);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_box_reproduces_the_image() {
        let img = RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 1]));
        let out = sample_rgb(&img, &Affine::from_box(0.0, 0.0, 4.0, 3.0, 4, 3), 4, 3);
        for (i, px) in out.iter().enumerate() {
            let (x, y) = (i % 4, i / 4);
            assert_eq!(*px, [x as f32 * 10.0, y as f32 * 10.0, 1.0]);
        }
    }

    #[test]
    fn halving_averages_pixel_pairs_and_outside_is_black() {
        let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([x as u8 * 10, 0, 0]));
        let out = sample_rgb(&img, &Affine::from_box(0.0, 0.0, 4.0, 1.0, 2, 1), 2, 1);
        assert_eq!(out[0][0], 5.0);
        assert_eq!(out[1][0], 25.0);
        let outside = sample_rgb(&img, &Affine::from_box(100.0, 100.0, 2.0, 2.0, 2, 2), 2, 2);
        assert!(outside.iter().all(|p| *p == [0.0; 3]));
    }

    /// The bilinear formula written plainly, one pixel at a time, for comparison.
    fn plain_bilinear(src: &RgbImage, map: &Affine, out_w: u32, out_h: u32) -> Vec<[f32; 3]> {
        let value = |x: i64, y: i64, k: usize| -> f32 {
            if x < 0 || y < 0 || x >= src.width() as i64 || y >= src.height() as i64 {
                0.0
            } else {
                src.get_pixel(x as u32, y as u32)[k] as f32
            }
        };
        let mut out = Vec::new();
        for v in 0..out_h {
            let (row_x, row_y) = map.apply(0.5, v as f32 + 0.5);
            let (row_x, row_y) = (row_x - 0.5, row_y - 0.5);
            for u in 0..out_w {
                let (fx, fy) = (row_x + map.a * u as f32, row_y + map.c * u as f32);
                let (x0, y0) = (fx.floor(), fy.floor());
                let (wx, wy) = (fx - x0, fy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                out.push(std::array::from_fn(|k| {
                    let (p00, p10) = (value(x0, y0, k), value(x0 + 1, y0, k));
                    let (p01, p11) = (value(x0, y0 + 1, k), value(x0 + 1, y0 + 1, k));
                    let top = p00 + (p10 - p00) * wx;
                    let bottom = p01 + (p11 - p01) * wx;
                    top + (bottom - top) * wy
                }));
            }
        }
        out
    }

    #[test]
    fn the_fast_paths_equal_the_plain_formula_bit_for_bit() {
        // Noise, so that any misplaced byte shows; crops inside, across every edge, rotated,
        // scaled up and down, and entirely outside.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let img = RgbImage::from_fn(97, 61, |_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
        });
        let maps = [
            Affine::rotated_square(48.0, 30.0, 40.0, 0.0, 64),
            Affine::rotated_square(48.0, 30.0, 40.0, 0.37, 64),
            Affine::rotated_square(48.0, 30.0, 90.0, -1.2, 64),
            Affine::rotated_square(90.0, 55.0, 50.0, 0.2, 64),
            Affine::rotated_square(2.0, 3.0, 30.0, 2.9, 40),
            Affine::rotated_square(48.0, 30.0, 10.0, 0.1, 256),
            Affine::from_box(-5.0, -3.0, 110.0, 70.0, 77, 45),
            Affine::from_box(0.0, 0.0, 97.0, 61.0, 97, 61),
            Affine::from_box(500.0, 500.0, 20.0, 20.0, 16, 16),
        ];
        for (m, map) in maps.iter().enumerate() {
            for (out_w, out_h) in [(64, 64), (13, 7), (256, 3)] {
                let fast = sample_rgb(&img, map, out_w, out_h);
                let plain = plain_bilinear(&img, map, out_w, out_h);
                for (i, (a, b)) in fast.iter().zip(&plain).enumerate() {
                    let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "map {m}, {out_w}x{out_h}, pixel {i}: {a:?} vs {b:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Any image size (1 px wide or tall included) and any crop, large or tiny, rotated
        /// or not, inside or off the image: the fast paths equal the plain formula.
        #[test]
        fn any_crop_of_any_image_equals_the_plain_formula(
            (w, h) in (1u32..40, 1u32..30),
            seed in 0u64..u64::MAX,
            (cx, cy) in (-30.0f32..70.0, -30.0f32..60.0),
            side in 0.5f32..120.0,
            angle in -3.2f32..3.2,
            (out_w, out_h) in (1u32..40, 1u32..6),
        ) {
            let mut state = seed | 1;
            let img = RgbImage::from_fn(w, h, |_, _| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
            });
            let map = Affine::rotated_square(cx, cy, side, angle, out_w);
            let fast = sample_rgb(&img, &map, out_w, out_h);
            let plain = plain_bilinear(&img, &map, out_w, out_h);
            for (a, b) in fast.iter().zip(&plain) {
                proptest::prop_assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{:?} vs {:?}", a, b
                );
            }
        }
    }

    #[test]
    fn rotated_square_maps_centre_to_centre() {
        let m = Affine::rotated_square(50.0, 40.0, 20.0, 0.3, 256);
        let (x, y) = m.apply(128.0, 128.0);
        assert!((x - 50.0).abs() < 1e-4 && (y - 40.0).abs() < 1e-4);
        // A quarter turn maps the crop's +x axis onto the image's +y axis.
        let q = Affine::rotated_square(0.0, 0.0, 256.0, std::f32::consts::FRAC_PI_2, 256);
        let (x, y) = q.apply(129.0, 128.0);
        assert!(x.abs() < 1e-4 && (y - 1.0).abs() < 1e-4);
    }
}
