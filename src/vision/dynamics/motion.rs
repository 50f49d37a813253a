//! Pose-compensated landmark motion: how far a face's mesh moved against the face's own
//! neutral shape once the head's rotation, translation and scale are taken out.
//!
//! Each frame's 468 mesh points (the iris points are left out: gaze is not expression) are
//! aligned to the face's reference shape by the least-squares similarity transform of
//! Umeyama (1991, "Least-squares estimation of transformation parameters between two point
//! patterns", IEEE TPAMI 13(4)), in 3-D, so a turn of the head (yaw, pitch) is removed as
//! well as roll and translation. What is left is the non-rigid motion of the face: the
//! expression. Its size is the 95th percentile of the points' displacements, in units of
//! the reference's inter-ocular distance (outer eye corners), so that it reads the part
//! of the face that moves rather than the average over a mostly still mesh.

use nalgebra::{Matrix3, Vector3};

use crate::vision::mesh::{LEFT_EYE_OUTER, RIGHT_EYE_OUTER};

/// The mesh points (the iris points 468-477 follow them).
pub const MESH_POINTS: usize = 468;

/// The similarity transform taking `from` onto `to` in the least-squares sense:
/// `to ~ scale * rotation * from + translation`. None when either set is degenerate.
pub fn similarity(from: &[[f32; 3]], to: &[[f32; 3]]) -> Option<(f64, Matrix3<f64>, Vector3<f64>)> {
    let n = from.len().min(to.len());
    if n < 3 {
        return None;
    }
    let v = |p: [f32; 3]| Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64);
    let mean =
        |set: &[[f32; 3]]| set[..n].iter().fold(Vector3::zeros(), |s, p| s + v(*p)) / n as f64;
    let (mu_from, mu_to) = (mean(from), mean(to));
    let mut covariance = Matrix3::zeros();
    let mut from_variance = 0.0;
    for i in 0..n {
        let (a, b) = (v(from[i]) - mu_from, v(to[i]) - mu_to);
        covariance += b * a.transpose();
        from_variance += a.norm_squared();
    }
    covariance /= n as f64;
    from_variance /= n as f64;
    if from_variance <= f64::EPSILON {
        return None;
    }
    let svd = covariance.svd(true, true);
    let (u, v_t) = (svd.u?, svd.v_t?);
    // A reflection is not a head movement: flip the smallest axis when the best orthogonal
    // map would mirror the face (Umeyama's S matrix).
    let mut signs = Vector3::new(1.0, 1.0, 1.0);
    if (u.determinant() * v_t.determinant()) < 0.0 {
        signs[2] = -1.0;
    }
    let rotation = u * Matrix3::from_diagonal(&signs) * v_t;
    let scale = svd.singular_values.component_mul(&signs).sum() / from_variance;
    let translation = mu_to - scale * rotation * mu_from;
    Some((scale, rotation, translation))
}

/// `points` mapped onto `reference` by [`similarity`]; None when it cannot be computed.
pub fn aligned(points: &[[f32; 3]], reference: &[[f32; 3]]) -> Option<Vec<[f32; 3]>> {
    let (scale, rotation, translation) = similarity(points, reference)?;
    Some(
        points
            .iter()
            .map(|p| {
                let q = scale * rotation * Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64)
                    + translation;
                [q[0] as f32, q[1] as f32, q[2] as f32]
            })
            .collect(),
    )
}

/// A face's neutral shape and the motion of each frame against it.
#[derive(Debug, Clone, Default)]
pub struct ShapeReference {
    /// The mean aligned shape of the frames taken as neutral so far.
    shape: Option<Vec<[f32; 3]>>,
    frames: u32,
}

/// Frames over which the reference averages at most (an exponential average beyond):
/// about 3 s at 30 fps, so it follows slow changes (lighting, the mesh settling).
const REFERENCE_FRAMES: u32 = 90;

impl ShapeReference {
    /// The pose-compensated motion of `points` (image px) against the reference, in
    /// inter-ocular distances; None before the first neutral frame or when the alignment
    /// fails.
    pub fn motion(&self, points: &[[f32; 3]]) -> Option<f32> {
        let reference = self.shape.as_ref()?;
        let mesh = &points[..MESH_POINTS.min(points.len())];
        let aligned = aligned(mesh, reference)?;
        let d = |a: [f32; 3], b: [f32; 3]| {
            ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
        };
        let eyes = d(reference[RIGHT_EYE_OUTER], reference[LEFT_EYE_OUTER]);
        if eyes <= f32::EPSILON {
            return None;
        }
        let mut moved: Vec<f32> = aligned
            .iter()
            .zip(reference)
            .map(|(a, r)| d(*a, *r) / eyes)
            .collect();
        let k = (moved.len() * 95 / 100).min(moved.len() - 1);
        let (_, p95, _) = moved.select_nth_unstable_by(k, f32::total_cmp);
        Some(*p95)
    }

    /// The neutral shape mapped onto `points` (image px) by the similarity transform: where
    /// the face's points would be in this frame, had it not moved but for the head.
    pub fn neutral_in(&self, points: &[[f32; 3]]) -> Option<Vec<[f32; 3]>> {
        let reference = self.shape.as_ref()?;
        aligned(reference, &points[..MESH_POINTS.min(points.len())])
    }

    /// Takes a frame as neutral: its shape joins the reference (the first frame is the
    /// reference as it is; later ones are aligned to it first).
    pub fn add_neutral(&mut self, points: &[[f32; 3]]) {
        let mesh = &points[..MESH_POINTS.min(points.len())];
        match &mut self.shape {
            None => {
                self.shape = Some(mesh.to_vec());
                self.frames = 1;
            }
            Some(shape) => {
                let Some(aligned) = aligned(mesh, shape) else {
                    return;
                };
                self.frames = (self.frames + 1).min(REFERENCE_FRAMES);
                let weight = 1.0 / self.frames as f32;
                for (s, a) in shape.iter_mut().zip(aligned) {
                    for axis in 0..3 {
                        s[axis] += weight * (a[axis] - s[axis]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face() -> Vec<[f32; 3]> {
        // A deterministic, non-planar cloud standing in for a mesh.
        (0..478)
            .map(|i| {
                let a = i as f32 * 0.37;
                [
                    100.0 + 40.0 * a.cos(),
                    120.0 + 50.0 * (a * 1.3).sin(),
                    10.0 * (a * 0.7).cos(),
                ]
            })
            .collect()
    }

    fn moved(points: &[[f32; 3]], yaw_deg: f32, scale: f32, shift: [f32; 3]) -> Vec<[f32; 3]> {
        let (s, c) = yaw_deg.to_radians().sin_cos();
        points
            .iter()
            .map(|p| {
                [
                    scale * (c * p[0] - s * p[2]) + shift[0],
                    scale * p[1] + shift[1],
                    scale * (s * p[0] + c * p[2]) + shift[2],
                ]
            })
            .collect()
    }

    #[test]
    fn a_rigid_head_movement_is_no_motion() {
        let neutral = face();
        let mut reference = ShapeReference::default();
        assert!(reference.motion(&neutral).is_none());
        reference.add_neutral(&neutral);
        let turned = moved(&neutral, 25.0, 1.3, [40.0, -12.0, 5.0]);
        let motion = reference.motion(&turned).unwrap();
        assert!(motion < 1e-4, "{motion}");
    }

    #[test]
    fn a_non_rigid_change_is_motion_in_inter_ocular_units() {
        let neutral = face();
        let mut reference = ShapeReference::default();
        reference.add_neutral(&neutral);
        let eyes = {
            let (a, b) = (neutral[RIGHT_EYE_OUTER], neutral[LEFT_EYE_OUTER]);
            ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
        };
        // Move a tenth of the mesh (a "mouth") down by 0.1 inter-ocular distances, then
        // turn the head: the motion is what the mouth did.
        let mut smiling = neutral.clone();
        for p in smiling.iter_mut().take(60) {
            p[1] += 0.1 * eyes;
        }
        let motion = reference
            .motion(&moved(&smiling, -15.0, 0.8, [3.0, 4.0, 0.0]))
            .unwrap();
        assert!((0.07..0.13).contains(&motion), "{motion}");
    }
}
