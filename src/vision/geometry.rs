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
    let mut index = 0;
    for v in 0..out_h {
        // Source position of this row's first pixel centre, back in pixel-index coordinates;
        // stepping along the row adds (a, c) per pixel.
        let (row_x, row_y) = map.apply(0.5, v as f32 + 0.5);
        let (row_x, row_y) = (row_x - 0.5, row_y - 0.5);
        for u in 0..out_w {
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
