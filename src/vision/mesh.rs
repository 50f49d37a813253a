//! MediaPipe face mesh v2: 478 landmarks (468 + 10 iris) from a square, roll-corrected
//! crop, plus a face-presence score and a head pose estimated from the 3-D points.

use image::RgbImage;
use ndarray::Array4;

use super::backend::{Inference, InferenceError, output};
use super::geometry::{Affine, sample_into};

pub const INPUT_SIZE: u32 = 256;
pub const LANDMARK_COUNT: usize = 478;
/// The crop side relative to the face box's longest side (the reference crop).
pub const CROP_SCALE: f32 = 1.5;

// Mesh indices used below (MediaPipe canonical face mesh numbering).
pub const RIGHT_EYE_OUTER: usize = 33; // subject's right eye, outer corner
pub const LEFT_EYE_OUTER: usize = 263;
pub const FOREHEAD: usize = 10;
pub const CHIN: usize = 152;
pub const UPPER_LIP_INNER: usize = 13;
pub const LOWER_LIP_INNER: usize = 14;
pub const RIGHT_IRIS: usize = 468;
pub const LEFT_IRIS: usize = 473;

/// Where the crop comes from: a square region of the frame, rotated so the eyes are level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropRegion {
    pub cx: f32,
    pub cy: f32,
    pub side: f32,
    /// Roll of the face in radians (image coordinates, y down); the crop is rotated by it.
    pub angle: f32,
}

impl CropRegion {
    /// From a detector box and its two eye key points.
    pub fn from_detection(
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        right_eye: [f32; 2],
        left_eye: [f32; 2],
    ) -> Self {
        CropRegion {
            cx: x + w / 2.0,
            cy: y + h / 2.0,
            side: CROP_SCALE * w.max(h),
            angle: (left_eye[1] - right_eye[1]).atan2(left_eye[0] - right_eye[0]),
        }
    }

    /// From the previous frame's landmarks (tracking): their bounding box and eye line.
    pub fn from_landmarks(points: &[[f32; 3]]) -> Self {
        let [x0, y0, x1, y1] = hull(points);
        let (r, l) = (points[RIGHT_EYE_OUTER], points[LEFT_EYE_OUTER]);
        // The mesh hull is tighter than a detector box; 1.5 x hull matches MediaPipe's
        // tracking ROI well enough to keep the face inside the crop at 30 fps.
        CropRegion {
            cx: (x0 + x1) / 2.0,
            cy: (y0 + y1) / 2.0,
            side: CROP_SCALE * (x1 - x0).max(y1 - y0),
            angle: (l[1] - r[1]).atan2(l[0] - r[0]),
        }
    }

    pub fn affine(&self) -> Affine {
        Affine::rotated_square(self.cx, self.cy, self.side, self.angle, INPUT_SIZE)
    }
}

/// [x0, y0, x1, y1] of the 468 mesh points (irises excluded), image pixels.
pub fn hull(points: &[[f32; 3]]) -> [f32; 4] {
    points.iter().take(468).fold(
        [f32::MAX, f32::MAX, f32::MIN, f32::MIN],
        |[x0, y0, x1, y1], p| [x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1])],
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// 478 points: x, y in original-image pixels, z in the same pixel scale (relative depth).
    pub points: Vec<[f32; 3]>,
    /// Face-presence probability, `[0,1]`.
    pub presence: f32,
}

pub fn preprocess(image: &RgbImage, region: &CropRegion) -> Array4<f32> {
    let n = INPUT_SIZE as usize;
    let mut data = vec![0f32; n * n * 3];
    sample_into(image, &region.affine(), INPUT_SIZE, INPUT_SIZE, |i, rgb| {
        data[i * 3] = rgb[0] / 255.0;
        data[i * 3 + 1] = rgb[1] / 255.0;
        data[i * 3 + 2] = rgb[2] / 255.0;
    });
    Array4::from_shape_vec((1, n, n, 3), data).expect("shape matches length")
}

pub fn run(
    model: &dyn Inference,
    image: &RgbImage,
    region: &CropRegion,
) -> Result<Mesh, InferenceError> {
    let outputs = model.run(preprocess(image, region).into_dyn())?;
    let raw = output(model.id(), &outputs, "Identity", Some(LANDMARK_COUNT * 3))?;
    let presence_logit = output(model.id(), &outputs, "Identity_1", Some(1))?;
    let raw = raw.as_slice().expect("contiguous");
    let map = region.affine();
    let z_scale = region.side / INPUT_SIZE as f32;
    let points = raw
        .chunks_exact(3)
        .map(|p| {
            let (x, y) = map.apply(p[0], p[1]);
            [x, y, p[2] * z_scale]
        })
        .collect();
    let logit = presence_logit
        .iter()
        .next()
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    Ok(Mesh {
        points,
        presence: 1.0 / (1.0 + (-logit).exp()),
    })
}

/// Head orientation in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadPose {
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
}

/// Head pose from the mesh's own 3-D points: a head frame is built from the eye line
/// (x axis, subject's right to left eye corner) and the forehead-to-chin line made
/// orthogonal to it (y axis); z = x × y points into the head. This is a geometric estimate,
/// not a fit to a calibrated 3-D head model, and assumes the weak-perspective scale the mesh
/// uses for z. Signs: yaw > 0 when the head turns to the subject's left, pitch > 0 when it
/// tilts up, roll > 0 when it tilts toward the subject's left shoulder.
pub fn head_pose(points: &[[f32; 3]]) -> HeadPose {
    let sub = |a: [f32; 3], b: [f32; 3]| [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    let dot = |a: [f32; 3], b: [f32; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    let norm = |a: [f32; 3]| {
        let n = dot(a, a).sqrt().max(f32::EPSILON);
        [a[0] / n, a[1] / n, a[2] / n]
    };
    let x = norm(sub(points[LEFT_EYE_OUTER], points[RIGHT_EYE_OUTER]));
    let down = sub(points[CHIN], points[FOREHEAD]);
    let along = dot(down, x);
    let y = norm([
        down[0] - along * x[0],
        down[1] - along * x[1],
        down[2] - along * x[2],
    ]);
    let z = [
        x[1] * y[2] - x[2] * y[1],
        x[2] * y[0] - x[0] * y[2],
        x[0] * y[1] - x[1] * y[0],
    ];
    // The face looks along -z (out of the head, toward the camera when frontal).
    let yaw = (-z[0]).atan2(z[2]);
    let pitch = z[1].atan2((z[0] * z[0] + z[2] * z[2]).sqrt());
    let roll = x[1].atan2(x[0]);
    HeadPose {
        yaw: yaw.to_degrees(),
        pitch: pitch.to_degrees(),
        roll: roll.to_degrees(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(rotate: impl Fn([f32; 3]) -> [f32; 3]) -> Vec<[f32; 3]> {
        let mut points = vec![[0.0; 3]; LANDMARK_COUNT];
        points[RIGHT_EYE_OUTER] = rotate([-30.0, 0.0, 0.0]);
        points[LEFT_EYE_OUTER] = rotate([30.0, 0.0, 0.0]);
        points[FOREHEAD] = rotate([0.0, -50.0, -5.0]);
        points[CHIN] = rotate([0.0, 60.0, -5.0]);
        points
    }

    #[test]
    fn frontal_face_has_zero_pose() {
        let p = head_pose(&face(|p| p));
        assert!(
            p.yaw.abs() < 1e-3 && p.pitch.abs() < 1e-3 && p.roll.abs() < 1e-3,
            "{p:?}"
        );
    }

    #[test]
    fn known_rotations_are_recovered_with_the_documented_signs() {
        let t = 20f32.to_radians();
        // Turn to the subject's left: points rotate about the vertical axis so the face
        // looks toward image +x.
        let yawed = head_pose(&face(|[x, y, z]| {
            [x * t.cos() - z * t.sin(), y, x * t.sin() + z * t.cos()]
        }));
        assert!(
            (yawed.yaw - 20.0).abs() < 0.5 && yawed.pitch.abs() < 0.5,
            "{yawed:?}"
        );
        let rolled = head_pose(&face(|[x, y, z]| {
            [x * t.cos() - y * t.sin(), x * t.sin() + y * t.cos(), z]
        }));
        assert!(
            (rolled.roll - 20.0).abs() < 0.5 && rolled.yaw.abs() < 0.5,
            "{rolled:?}"
        );
        // Tilt up: the chin moves toward the camera (-z) and the forehead away.
        let pitched = head_pose(&face(|[x, y, z]| {
            [x, y * t.cos() + z * t.sin(), -y * t.sin() + z * t.cos()]
        }));
        assert!(
            (pitched.pitch - 20.0).abs() < 0.5 && pitched.yaw.abs() < 0.5,
            "{pitched:?}"
        );
    }
}
