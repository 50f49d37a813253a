//! Keyframes of expression episodes for prompts that take images: for each face, the frame
//! at the onset and the frame at the apex of its latest episode, and the two side by side
//! as one strip (the onset, then the apex with the motion layer's arrows).
//!
//! Frames and keyframes are held by reference (`Arc`), so keeping them costs no copy and a
//! snapshot of them (a session publishes one with every frame) only counts references:
//! the last [`RING`] frames (an onset lies at most a frame or two before the episode is
//! spotted) and two per face with an episode in the last [`super::RECENT_S`] seconds.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use image::{Rgb, RgbImage, imageops};

use super::Episode;
use crate::vision::marks::{self, Layers};
use crate::vision::{FaceResult, FrameResult};

/// Frames kept to find an onset that lies before the frame an episode was spotted on.
pub const RING: usize = 3;
/// The strip's frames are scaled to this height, px.
pub const STRIP_HEIGHT: u32 = 256;

/// One face in one frame.
#[derive(Clone)]
pub struct Keyframe {
    /// The frames' clock, s.
    pub t: f64,
    pub image: Arc<RgbImage>,
    pub face: FaceResult,
}

#[derive(Clone)]
struct FaceKeyframes {
    episode_onset: f64,
    onset: Option<Arc<Keyframe>>,
    apex: Option<Arc<Keyframe>>,
}

/// Keeps each face's latest episode's onset and apex frames.
#[derive(Default, Clone)]
pub struct Keyframes {
    ring: VecDeque<(f64, Arc<RgbImage>, Arc<FrameResult>)>,
    faces: BTreeMap<u32, FaceKeyframes>,
}

fn keyframe(
    t: f64,
    image: &Arc<RgbImage>,
    frame: &FrameResult,
    face_id: u32,
) -> Option<Arc<Keyframe>> {
    frame
        .faces
        .iter()
        .find(|f| f.face_id == face_id)
        .map(|face| {
            Arc::new(Keyframe {
                t,
                image: image.clone(),
                face: face.clone(),
            })
        })
}

impl Keyframes {
    /// The frame at `t`, with the episodes the dynamics report after observing it
    /// (`FaceDynamics::recent_episodes`).
    pub fn observe(
        &mut self,
        t: f64,
        image: &Arc<RgbImage>,
        frame: &Arc<FrameResult>,
        episodes: &[Episode],
    ) {
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back((t, image.clone(), frame.clone()));
        for face in &frame.faces {
            let Some(latest) = episodes
                .iter()
                .filter(|e| e.face_id == face.face_id)
                .max_by(|a, b| a.onset.total_cmp(&b.onset))
            else {
                continue;
            };
            let entry = self.faces.entry(face.face_id).or_insert(FaceKeyframes {
                episode_onset: f64::NAN,
                onset: None,
                apex: None,
            });
            if entry.episode_onset != latest.onset {
                // A new episode: its onset frame is the first kept frame at or after it.
                let onset = self
                    .ring
                    .iter()
                    .find(|(ft, _, _)| *ft >= latest.onset - 1e-9)
                    .and_then(|(ft, img, fr)| keyframe(*ft, img, fr, face.face_id));
                *entry = FaceKeyframes {
                    episode_onset: latest.onset,
                    onset,
                    apex: None,
                };
            }
            // The apex moves while the episode rises; it is a recent frame when it does.
            if entry.apex.as_ref().is_none_or(|a| a.t != latest.apex)
                && let Some((ft, img, fr)) = self.ring.iter().find(|(ft, _, _)| *ft == latest.apex)
            {
                entry.apex = keyframe(*ft, img, fr, face.face_id);
            }
        }
        let oldest = t - super::RECENT_S;
        self.faces.retain(|_, k| k.episode_onset >= oldest);
    }

    /// Keeps `onset` and `apex` as the keyframes of `episode` (a recorded one, read back).
    /// Without the face's neutral shape, the apex's motion arrows start from the onset
    /// frame's mesh, mapped onto the apex's pose: the onset-to-apex motion itself.
    pub fn insert(&mut self, episode: &Episode, onset: Keyframe, mut apex: Keyframe) {
        if apex.face.neutral_points.is_none()
            && let (Some(from), Some(to)) = (&onset.face.mesh, &apex.face.mesh)
        {
            let n = super::motion::MESH_POINTS
                .min(from.points.len())
                .min(to.points.len());
            apex.face.neutral_points = super::motion::aligned(&from.points[..n], &to.points[..n]);
        }
        self.faces.insert(
            episode.face_id,
            FaceKeyframes {
                episode_onset: episode.onset,
                onset: Some(Arc::new(onset)),
                apex: Some(Arc::new(apex)),
            },
        );
    }

    /// The onset and apex keyframes of `episode`, when they were kept.
    pub fn of(&self, episode: &Episode) -> Option<(&Keyframe, &Keyframe)> {
        let k = self.faces.get(&episode.face_id)?;
        if k.episode_onset != episode.onset {
            return None;
        }
        Some((k.onset.as_deref()?, k.apex.as_deref()?))
    }
}

/// The face of a keyframe, cropped around its box (1.6 times its size), marked (its
/// landmarks, and on the apex the motion arrows), scaled to [`STRIP_HEIGHT`].
fn face_tile(k: &Keyframe, motion: bool) -> RgbImage {
    let layers = Layers {
        boxes: false,
        face_ids: false,
        landmarks: !motion,
        au_tags: false,
        motion,
    };
    let marked = marks::render(&k.image, std::slice::from_ref(&k.face), &layers);
    let d = &k.face.detection;
    let side = (d.width.max(d.height) * 1.6).max(16.0);
    let (cx, cy) = (d.x + d.width / 2.0, d.y + d.height / 2.0);
    let (w, h) = marked.dimensions();
    let x0 = (cx - side / 2.0).clamp(0.0, (w as f32 - 1.0).max(0.0)) as u32;
    let y0 = (cy - side / 2.0).clamp(0.0, (h as f32 - 1.0).max(0.0)) as u32;
    let crop_w = (side as u32).min(w - x0).max(1);
    let crop_h = (side as u32).min(h - y0).max(1);
    let crop = imageops::crop_imm(&marked, x0, y0, crop_w, crop_h).to_image();
    let width = ((crop_w as f32 * STRIP_HEIGHT as f32 / crop_h as f32).round() as u32).max(1);
    imageops::resize(&crop, width, STRIP_HEIGHT, imageops::FilterType::Triangle)
}

/// `strips` stacked under `frame` on one image (white between and around), each scaled
/// down to the frame's width when wider: one image, for models that read one per prompt.
pub fn below(frame: &RgbImage, strips: &[RgbImage]) -> RgbImage {
    let gap = 8;
    let width = frame.width();
    let scaled: Vec<RgbImage> = strips
        .iter()
        .map(|s| {
            if s.width() > width {
                let height =
                    ((s.height() as f32 * width as f32 / s.width() as f32).round() as u32).max(1);
                imageops::resize(s, width, height, imageops::FilterType::Triangle)
            } else {
                s.clone()
            }
        })
        .collect();
    let height = frame.height() + scaled.iter().map(|s| s.height() + gap).sum::<u32>();
    let mut out = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    imageops::overlay(&mut out, frame, 0, 0);
    let mut y = frame.height() + gap;
    for s in &scaled {
        imageops::overlay(
            &mut out,
            s,
            i64::from((width - s.width()) / 2),
            i64::from(y),
        );
        y += s.height() + gap;
    }
    out
}

/// The onset (left) and the apex with its motion arrows (right), side by side on one
/// image, separated by a white bar.
pub fn strip(onset: &Keyframe, apex: &Keyframe) -> RgbImage {
    let (left, right) = (face_tile(onset, false), face_tile(apex, true));
    let gap = 8;
    let mut out = RgbImage::from_pixel(
        left.width() + gap + right.width(),
        STRIP_HEIGHT,
        Rgb([255, 255, 255]),
    );
    imageops::overlay(&mut out, &left, 0, 0);
    imageops::overlay(&mut out, &right, i64::from(left.width() + gap), 0);
    out
}
