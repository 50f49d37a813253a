//! SoVTP marks (Set-of-Vision-Text Prompting, arXiv 2504.17224): the full frame with a
//! numbered box per face, a landmark subset, and AU tags, so a vision-language model can
//! refer to "face 2" and see which cues were measured. Layers are switchable.
//!
//! The motion layer draws, on a frame of a face in an expression episode, an arrow from
//! each point of a landmark subset of the face's neutral shape (pose-compensated: mapped
//! into the frame by the similarity transform of `vision::dynamics::motion`) to where the
//! point is now, so that on the apex frame it shows the onset-to-apex motion, in the
//! spirit of MELLM's motion-enhanced map (arXiv 2505.07007).

use font8x8::UnicodeFonts;
use image::{ImageFormat, Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut,
};
use imageproc::rect::Rect;

use super::analysis::FaceResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub boxes: bool,
    pub face_ids: bool,
    pub landmarks: bool,
    pub au_tags: bool,
    /// Onset-to-now arrows of a face in an expression episode (videos and sessions).
    pub motion: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Self {
            boxes: true,
            face_ids: true,
            landmarks: true,
            au_tags: true,
            motion: true,
        }
    }
}

/// Arrows shorter than this many pixels (at 640 px) are not drawn: tracking noise.
const MIN_ARROW_PX: f32 = 1.5;

/// An arrow from `from` to `to`, `thickness` px wide, with a head at `to`.
fn draw_arrow(image: &mut RgbImage, from: [f32; 2], to: [f32; 2], thickness: i32, c: Rgb<u8>) {
    let (dx, dy) = (to[0] - from[0], to[1] - from[1]);
    let length = (dx * dx + dy * dy).sqrt();
    if length <= f32::EPSILON {
        return;
    }
    let (ux, uy) = (dx / length, dy / length);
    // The normal, for the line's width and the head's wings.
    let (nx, ny) = (-uy, ux);
    let half = thickness as f32 / 2.0;
    for k in 0..thickness {
        let o = k as f32 - half + 0.5;
        draw_line_segment_mut(
            image,
            (from[0] + o * nx, from[1] + o * ny),
            (to[0] + o * nx, to[1] + o * ny),
            c,
        );
    }
    // A head in proportion: short arrows (a few pixels) keep a small one.
    let head = (length * 0.4).min(4.0 * thickness as f32);
    if head < 2.0 {
        return;
    }
    for side in [-1.0f32, 1.0] {
        let wing = (
            to[0] - head * ux + side * 0.6 * head * nx,
            to[1] - head * uy + side * 0.6 * head * ny,
        );
        for k in 0..thickness {
            let o = k as f32 - half + 0.5;
            draw_line_segment_mut(
                image,
                (to[0] + o * nx, to[1] + o * ny),
                (wing.0 + o * nx, wing.1 + o * ny),
                c,
            );
        }
    }
}

/// Contours of the face mesh (MediaPipe FACEMESH_* index lists): oval, brows, eyes, nose
/// bridge, outer lips. Enough to show the face's shape without hiding it.
pub const LANDMARK_SUBSET: &[usize] = &[
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109, // oval
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300, // brows
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246, // right eye
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388,
    466, // left eye
    168, 6, 197, 195, 5, 4, 1, // nose
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40,
    185, // lips
];

/// The points the motion layer draws arrows from: the brows, eyes, nose and lips of
/// [`LANDMARK_SUBSET`] (the face oval moves with the jaw, not the expression).
pub const MOTION_POINTS: &[usize] = &[
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300, // brows
    33, 145, 133, 159, 263, 374, 362, 386, // eye corners and lids
    4,   // nose tip
    61, 291, 0, 37, 267, 40, 270, 17, 84, 314, 146, 375, // lip corners, upper and lower lip
];

/// Distinct, saturated colours so neighbouring faces are told apart.
const PALETTE: [[u8; 3]; 6] = [
    [255, 64, 64],
    [64, 200, 255],
    [255, 200, 0],
    [120, 255, 80],
    [255, 90, 255],
    [255, 140, 40],
];

/// How many AU tags per face (strongest present AUs first).
pub const AU_TAGS_PER_FACE: usize = 3;

fn colour(face_id: u32) -> Rgb<u8> {
    Rgb(PALETTE[(face_id as usize).wrapping_sub(1) % PALETTE.len()])
}

/// Text from the public-domain 8x8 bitmap font (font8x8), scaled; no font file needed.
fn draw_text(
    image: &mut RgbImage,
    x: i32,
    y: i32,
    scale: i32,
    text: &str,
    fg: Rgb<u8>,
    bg: Rgb<u8>,
) {
    let width = (text.chars().count() as i32 * 8 * scale + 4) as u32;
    let height = (8 * scale + 4) as u32;
    draw_filled_rect_mut(image, Rect::at(x, y).of_size(width, height), bg);
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let px = x + 2 + (i as i32 * 8 + col) * scale;
                    let py = y + 2 + row as i32 * scale;
                    draw_filled_rect_mut(
                        image,
                        Rect::at(px, py).of_size(scale as u32, scale as u32),
                        fg,
                    );
                }
            }
        }
    }
}

/// Draws the chosen layers onto a copy of the frame.
pub fn render(frame: &RgbImage, faces: &[FaceResult], layers: &Layers) -> RgbImage {
    let mut image = frame.clone();
    // Line and text size follow the frame size so marks stay legible on large photos.
    let scale = ((frame.width().max(frame.height()) as f32 / 640.0).round() as i32).clamp(1, 4);
    let black = Rgb([0, 0, 0]);
    for face in faces {
        let c = colour(face.face_id);
        let d = &face.detection;
        if layers.motion
            && let (Some(mesh), Some(neutral)) = (&face.mesh, &face.neutral_points)
        {
            let min_length = MIN_ARROW_PX * scale as f32;
            for &i in MOTION_POINTS {
                let (from, to) = (
                    [neutral[i][0], neutral[i][1]],
                    [mesh.points[i][0], mesh.points[i][1]],
                );
                let length = ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2)).sqrt();
                if length >= min_length {
                    // A white arrow under the face's colour stays visible on any skin.
                    draw_arrow(&mut image, from, to, scale + 1, Rgb([255, 255, 255]));
                    draw_arrow(&mut image, from, to, scale, c);
                }
            }
        }
        if layers.landmarks
            && let Some(mesh) = &face.mesh
        {
            for &i in LANDMARK_SUBSET {
                let p = mesh.points[i];
                draw_filled_circle_mut(
                    &mut image,
                    (p[0].round() as i32, p[1].round() as i32),
                    scale,
                    c,
                );
            }
        }
        if layers.boxes {
            for t in 0..(2 * scale) {
                let rect = Rect::at(d.x.round() as i32 - t, d.y.round() as i32 - t).of_size(
                    (d.width.round() as u32).max(1) + 2 * t as u32,
                    (d.height.round() as u32).max(1) + 2 * t as u32,
                );
                draw_hollow_rect_mut(&mut image, rect, c);
            }
        }
        if layers.face_ids {
            let label = face.face_id.to_string();
            let y = (d.y.round() as i32 - (8 * 2 * scale + 4) - 2 * scale).max(0);
            draw_text(
                &mut image,
                d.x.round() as i32,
                y,
                2 * scale,
                &label,
                black,
                c,
            );
        }
        if layers.au_tags {
            let mut present: Vec<_> = face.action_units.iter().filter(|u| u.present).collect();
            present.sort_by(|a, b| b.intensity.total_cmp(&a.intensity));
            let mut y = (d.y + d.height).round() as i32 + 2 * scale + 2;
            for au in present.into_iter().take(AU_TAGS_PER_FACE) {
                let tag = format!("AU{} {:.1}", au.number, au.intensity);
                draw_text(&mut image, d.x.round() as i32, y, scale, &tag, black, c);
                y += 8 * scale + 6;
            }
        }
    }
    image
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Png,
    Jpeg,
}

impl Encoding {
    pub fn mime(self) -> &'static str {
        match self {
            Encoding::Png => "image/png",
            Encoding::Jpeg => "image/jpeg",
        }
    }
}

/// The largest side a JPEG can carry (its header stores 16-bit sizes).
pub const JPEG_MAX_SIDE: u32 = 65_535;

/// Encodes a marked frame. An image JPEG cannot carry (a side over 65,535 pixels) is
/// refused with what to ask for instead; any other encoder failure is reported, not panicked.
pub fn encode(image: &RgbImage, encoding: Encoding) -> Result<Vec<u8>, String> {
    let (width, height) = image.dimensions();
    let format = match encoding {
        Encoding::Png => ImageFormat::Png,
        Encoding::Jpeg => {
            if width.max(height) > JPEG_MAX_SIDE {
                return Err(format!(
                    "the marked frame is {width}x{height}; JPEG allows at most {JPEG_MAX_SIDE} pixels a side: ask for PNG (marked_image_format)"
                ));
            }
            ImageFormat::Jpeg
        }
    };
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .map_err(|e| format!("encoding the {width}x{height} marked frame failed: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::detector::Detection;

    fn face(id: u32) -> FaceResult {
        FaceResult {
            face_id: id,
            detection: Detection {
                score: 0.99,
                x: 20.0,
                y: 30.0,
                width: 40.0,
                height: 50.0,
                keypoints: [[0.0; 2]; 5],
            },
            tracked: false,
            mesh: None,
            head_pose: None,
            blendshapes: None,
            action_units: vec![crate::vision::action_units::ActionUnit {
                number: 12,
                intensity: 4.0,
                present: true,
                baseline: None,
                corrected: None,
            }],
            au_baseline_method: None,
            expression: None,
            neutral_points: None,
        }
    }

    #[test]
    fn layers_draw_only_what_is_switched_on() {
        let frame = RgbImage::from_pixel(120, 120, Rgb([128, 128, 128]));
        let none = Layers {
            boxes: false,
            face_ids: false,
            landmarks: false,
            au_tags: false,
            motion: false,
        };
        assert_eq!(render(&frame, &[face(1)], &none), frame);
        let boxes = render(
            &frame,
            &[face(1)],
            &Layers {
                boxes: true,
                ..none
            },
        );
        assert_eq!(boxes.get_pixel(20, 30), &colour(1), "box edge drawn");
        assert_eq!(
            boxes.get_pixel(40, 55),
            &Rgb([128, 128, 128]),
            "inside untouched"
        );
        let tags = render(
            &frame,
            &[face(1)],
            &Layers {
                au_tags: true,
                ..none
            },
        );
        assert_ne!(tags, frame);
        let png = encode(&boxes, Encoding::Png).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert_eq!(&encode(&boxes, Encoding::Jpeg).unwrap()[..2], &[0xFF, 0xD8]);
    }

    #[test]
    fn the_motion_layer_draws_arrows_only_for_a_face_in_an_episode() {
        let frame = RgbImage::from_pixel(200, 200, Rgb([128, 128, 128]));
        let mut f = face(1);
        let points: Vec<[f32; 3]> = (0..478)
            .map(|i| {
                [
                    50.0 + (i % 20) as f32 * 5.0,
                    60.0 + (i / 20) as f32 * 4.0,
                    0.0,
                ]
            })
            .collect();
        f.mesh = Some(crate::vision::mesh::Mesh {
            points: points.clone(),
            presence: 1.0,
        });
        let only_motion = Layers {
            boxes: false,
            face_ids: false,
            landmarks: false,
            au_tags: false,
            motion: true,
        };
        // No episode: nothing to draw.
        assert_eq!(render(&frame, &[f.clone()], &only_motion), frame);
        // In an episode, the lip corner moved 10 px right of its neutral place.
        let mut neutral = points.clone();
        neutral[61][0] -= 10.0;
        f.neutral_points = Some(neutral);
        let drawn = render(&frame, &[f.clone()], &only_motion);
        let (x, y) = (points[61][0] - 5.0, points[61][1]);
        assert_ne!(
            drawn.get_pixel(x as u32, y as u32),
            &Rgb([128, 128, 128]),
            "the arrow's shaft"
        );
        // Points that did not move get no arrow, and the layer switches off.
        assert_eq!(
            drawn.get_pixel(points[4][0] as u32 + 3, points[4][1] as u32 + 3),
            &Rgb([128, 128, 128])
        );
        assert_eq!(
            render(
                &frame,
                &[f],
                &Layers {
                    motion: false,
                    ..only_motion
                }
            ),
            frame
        );
    }

    /// JPEG stores 16-bit sizes: a wider marked frame is refused with what to ask for, not
    /// a panic (a 65536x256 frame used to panic into INTERNAL); PNG carries it.
    #[test]
    fn a_frame_jpeg_cannot_carry_is_refused_and_png_carries_it() {
        let wide = RgbImage::new(JPEG_MAX_SIDE + 1, 2);
        let error = encode(&wide, Encoding::Jpeg).unwrap_err();
        assert!(
            error.contains("65536x2") && error.contains("ask for PNG"),
            "{error}"
        );
        assert_eq!(&encode(&wide, Encoding::Png).unwrap()[1..4], b"PNG");
    }
}
