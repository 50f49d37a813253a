//! Wire types <-> library types for the vision RPCs. Every check of client input lives
//! here and answers INVALID_ARGUMENT with the reason.

use tonic::Status;

use crate::config::VisionConfig;
use crate::proto;
use crate::vision::blendshapes::NAMES;
use crate::vision::expression::{Expression, LABELS};
use crate::vision::image::{self as vimage, PixelLayout};
use crate::vision::marks::{Encoding, Layers};
use crate::vision::{AnalyzeOptions, FaceResult};

/// Decodes the request's image (JPEG/PNG bytes or raw pixels) to RGB8.
pub fn decode_image(
    input: Option<&proto::ImageInput>,
    max_pixels: u64,
) -> Result<image::RgbImage, Status> {
    let invalid = |e: vimage::ImageError| Status::invalid_argument(format!("image: {e}"));
    match input.and_then(|i| i.data.as_ref()) {
        None => Err(Status::invalid_argument(
            "image is required (encoded bytes or raw pixels)",
        )),
        Some(proto::image_input::Data::Encoded(bytes)) => {
            vimage::decode(bytes, max_pixels).map_err(invalid)
        }
        Some(proto::image_input::Data::Raw(raw)) => {
            let layout = match proto::PixelFormat::try_from(raw.format) {
                Ok(proto::PixelFormat::Rgb8) => PixelLayout::Rgb8,
                Ok(proto::PixelFormat::Bgr8) => PixelLayout::Bgr8,
                Ok(proto::PixelFormat::Rgba8) => PixelLayout::Rgba8,
                Ok(proto::PixelFormat::Bgra8) => PixelLayout::Bgra8,
                Ok(proto::PixelFormat::Gray8) => PixelLayout::Gray8,
                _ => return Err(invalid(vimage::ImageError::RawFormat)),
            };
            vimage::from_raw(
                &raw.pixels,
                raw.width,
                raw.height,
                layout,
                raw.stride_bytes as usize,
                max_pixels,
            )
            .map_err(invalid)
        }
    }
}

/// Request options over the server's defaults.
pub fn analyze_options(
    options: Option<&proto::FrameOptions>,
    defaults: &VisionConfig,
) -> Result<AnalyzeOptions, Status> {
    let mut out = AnalyzeOptions::default();
    out.detector.max_side = defaults.detector_max_side;
    out.detector.min_score = defaults.min_face_score;
    let Some(o) = options else {
        return Ok(out);
    };
    if o.detector_max_side != 0 {
        if !(32..=8192).contains(&o.detector_max_side) {
            return Err(Status::invalid_argument(format!(
                "options.detector_max_side must be in [32, 8192] pixels, got {}",
                o.detector_max_side
            )));
        }
        out.detector.max_side = o.detector_max_side;
    }
    if o.min_face_score != 0.0 {
        if !(0.0..=1.0).contains(&o.min_face_score) {
            return Err(Status::invalid_argument(format!(
                "options.min_face_score must be in [0,1], got {}",
                o.min_face_score
            )));
        }
        out.detector.min_score = o.min_face_score;
    }
    out.detector.max_faces = o.max_faces as usize;
    out.landmarks = !o.skip_landmarks;
    out.blendshapes = !o.skip_blendshapes && out.landmarks;
    out.expression = !o.skip_expression;
    Ok(out)
}

/// Mark layers and encoding; an unset `marks` means every layer.
pub fn mark_options(options: Option<&proto::FrameOptions>) -> (Layers, Encoding) {
    let layers = options
        .and_then(|o| o.marks.as_ref())
        .map_or_else(Layers::default, |m| Layers {
            boxes: m.boxes,
            face_ids: m.face_ids,
            landmarks: m.landmarks,
            au_tags: m.au_tags,
        });
    let encoding = match options.map(|o| o.marked_image_format) {
        Some(f) if f == proto::ImageFormat::Jpeg as i32 => Encoding::Jpeg,
        _ => Encoding::Png,
    };
    (layers, encoding)
}

fn distribution(p: &[f32; 7]) -> Vec<proto::LabelProbability> {
    LABELS
        .iter()
        .zip(p)
        .map(|(label, probability)| proto::LabelProbability {
            label: (*label).into(),
            probability: *probability,
        })
        .collect()
}

fn expression(e: &Expression) -> proto::Expression {
    proto::Expression {
        fer: e.fer.as_ref().map(distribution).unwrap_or_default(),
        au_prototypes: e
            .au_prototypes
            .as_ref()
            .map(distribution)
            .unwrap_or_default(),
        combined: distribution(&e.combined),
        valence: e.valence,
        arousal: e.arousal,
    }
}

pub fn face(f: &FaceResult) -> proto::Face {
    let d = &f.detection;
    proto::Face {
        face_id: f.face_id,
        detection_score: d.score,
        r#box: Some(proto::BoundingBox {
            x: d.x,
            y: d.y,
            width: d.width,
            height: d.height,
        }),
        keypoints: d
            .keypoints
            .iter()
            .map(|p| proto::Point2 { x: p[0], y: p[1] })
            .collect(),
        landmarks: f
            .mesh
            .as_ref()
            .map(|m| {
                m.points
                    .iter()
                    .map(|p| proto::Point3 {
                        x: p[0],
                        y: p[1],
                        z: p[2],
                    })
                    .collect()
            })
            .unwrap_or_default(),
        presence_score: f.mesh.as_ref().map_or(0.0, |m| m.presence),
        head_pose: f.head_pose.map(|p| proto::HeadPose {
            yaw_deg: p.yaw,
            pitch_deg: p.pitch,
            roll_deg: p.roll,
        }),
        blendshapes: f
            .blendshapes
            .as_ref()
            .map(|b| {
                NAMES
                    .iter()
                    .zip(b)
                    .map(|(name, score)| proto::Blendshape {
                        name: (*name).into(),
                        score: *score,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        action_units: f
            .action_units
            .iter()
            .map(|u| proto::ActionUnit {
                number: u.number,
                name: format!("AU{:02}", u.number),
                intensity: u.intensity,
                present: u.present,
            })
            .collect(),
        expression: f.expression.as_ref().map(expression),
        tracked: f.tracked,
    }
}
