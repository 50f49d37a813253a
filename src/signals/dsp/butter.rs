//! Butterworth design in second-order sections, following scipy.signal.butter(...,
//! output="sos"): analog prototype -> frequency transform on pre-warped edges -> bilinear
//! transform -> zpk2sos with "nearest" pairing.

use num_complex::Complex64 as C;

use super::Section;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BandType {
    Lowpass(f64),
    Highpass(f64),
    /// (low, high) edges in Hz.
    Bandpass(f64, f64),
    Bandstop(f64, f64),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DesignError {
    #[error("filter order must be at least 1")]
    Order,
    #[error("sample rate must be positive and finite, got {0}")]
    SampleRate(f64),
    #[error(
        "cut-off {cutoff} Hz must lie strictly between 0 and the Nyquist frequency {nyquist} Hz"
    )]
    Cutoff { cutoff: f64, nyquist: f64 },
    #[error("band edges must be increasing: {low} Hz >= {high} Hz")]
    Edges { low: f64, high: f64 },
    #[error("notch quality factor must be positive and finite, got {0}")]
    Quality(f64),
}

/// `butter(order, cutoff, btype, fs=fs, output="sos")`.
pub fn butter_sos(order: usize, band: BandType, fs: f64) -> Result<Vec<Section>, DesignError> {
    if order == 0 {
        return Err(DesignError::Order);
    }
    if !(fs.is_finite() && fs > 0.0) {
        return Err(DesignError::SampleRate(fs));
    }
    let nyquist = fs / 2.0;
    let check = |f: f64| {
        if f > 0.0 && f < nyquist {
            Ok(f)
        } else {
            Err(DesignError::Cutoff { cutoff: f, nyquist })
        }
    };
    // Edges normalised to Nyquist, then pre-warped for the bilinear transform at fs = 2.
    let warp = |f: f64| 4.0 * (std::f64::consts::PI * (f / nyquist) / 2.0).tan();
    let (z, p, k) = prototype(order);
    let (z, p, k) = match band {
        BandType::Lowpass(f) => lp2lp(&z, &p, k, warp(check(f)?)),
        BandType::Highpass(f) => lp2hp(&z, &p, k, warp(check(f)?)),
        BandType::Bandpass(lo, hi) | BandType::Bandstop(lo, hi) => {
            let (lo, hi) = (check(lo)?, check(hi)?);
            if lo >= hi {
                return Err(DesignError::Edges { low: lo, high: hi });
            }
            let (w1, w2) = (warp(lo), warp(hi));
            let (bw, wo) = (w2 - w1, (w1 * w2).sqrt());
            if matches!(band, BandType::Bandpass(..)) {
                lp2bp(&z, &p, k, wo, bw)
            } else {
                lp2bs(&z, &p, k, wo, bw)
            }
        }
    };
    let (z, p, k) = bilinear(&z, &p, k, 2.0);
    Ok(zpk2sos(z, p, k))
}

/// scipy.signal.buttap: no zeros, poles on the left half of the unit circle, gain 1.
fn prototype(n: usize) -> (Vec<C>, Vec<C>, f64) {
    let poles = (0..n)
        .map(|i| {
            let m = -(n as f64) + 1.0 + 2.0 * i as f64;
            -(C::i() * std::f64::consts::PI * m / (2.0 * n as f64)).exp()
        })
        .collect();
    (Vec::new(), poles, 1.0)
}

fn prod(values: &[C]) -> C {
    values.iter().fold(C::new(1.0, 0.0), |acc, v| acc * v)
}

fn lp2lp(z: &[C], p: &[C], k: f64, wo: f64) -> (Vec<C>, Vec<C>, f64) {
    let degree = p.len() - z.len();
    (
        z.iter().map(|v| v * wo).collect(),
        p.iter().map(|v| v * wo).collect(),
        k * wo.powi(degree as i32),
    )
}

fn lp2hp(z: &[C], p: &[C], k: f64, wo: f64) -> (Vec<C>, Vec<C>, f64) {
    let degree = p.len() - z.len();
    let neg = |v: &[C]| v.iter().map(|x| -x).collect::<Vec<_>>();
    let k = k * (prod(&neg(z)) / prod(&neg(p))).re;
    let mut zh: Vec<C> = z.iter().map(|v| wo / v).collect();
    zh.extend(std::iter::repeat_n(C::new(0.0, 0.0), degree));
    (zh, p.iter().map(|v| wo / v).collect(), k)
}

fn lp2bp(z: &[C], p: &[C], k: f64, wo: f64, bw: f64) -> (Vec<C>, Vec<C>, f64) {
    let degree = p.len() - z.len();
    let split = |v: &[C]| {
        let scaled: Vec<C> = v.iter().map(|x| x * bw / 2.0).collect();
        let mut out: Vec<C> = scaled
            .iter()
            .map(|x| x + (x * x - wo * wo).sqrt())
            .collect();
        out.extend(scaled.iter().map(|x| x - (x * x - wo * wo).sqrt()));
        out
    };
    let mut zb = split(z);
    zb.extend(std::iter::repeat_n(C::new(0.0, 0.0), degree));
    (zb, split(p), k * bw.powi(degree as i32))
}

fn lp2bs(z: &[C], p: &[C], k: f64, wo: f64, bw: f64) -> (Vec<C>, Vec<C>, f64) {
    let degree = p.len() - z.len();
    let neg = |v: &[C]| v.iter().map(|x| -x).collect::<Vec<_>>();
    let k = k * (prod(&neg(z)) / prod(&neg(p))).re;
    let split = |v: &[C]| {
        let hp: Vec<C> = v.iter().map(|x| (bw / 2.0) / x).collect();
        let mut out: Vec<C> = hp.iter().map(|x| x + (x * x - wo * wo).sqrt()).collect();
        out.extend(hp.iter().map(|x| x - (x * x - wo * wo).sqrt()));
        out
    };
    let mut zb = split(z);
    zb.extend(std::iter::repeat_n(C::new(0.0, wo), degree));
    zb.extend(std::iter::repeat_n(C::new(0.0, -wo), degree));
    (zb, split(p), k)
}

fn bilinear(z: &[C], p: &[C], k: f64, fs: f64) -> (Vec<C>, Vec<C>, f64) {
    let degree = p.len() - z.len();
    let fs2 = C::new(2.0 * fs, 0.0);
    let mut zz: Vec<C> = z.iter().map(|v| (fs2 + v) / (fs2 - v)).collect();
    zz.extend(std::iter::repeat_n(C::new(-1.0, 0.0), degree));
    let pz = p.iter().map(|v| (fs2 + v) / (fs2 - v)).collect();
    let num = prod(&z.iter().map(|v| fs2 - v).collect::<Vec<_>>());
    let den = prod(&p.iter().map(|v| fs2 - v).collect::<Vec<_>>());
    (zz, pz, k * (num / den).re)
}

// Tolerance scipy uses to call a root real (np.isreal is exact; _cplxreal uses 100 eps).
fn is_real(v: C) -> bool {
    v.im == 0.0
}

/// scipy's _cplxreal as zpk2sos uses it: the complex roots with positive imaginary part
/// (one per conjugate pair; sections re-create the conjugate), sorted by real part then
/// imaginary, followed by the real roots sorted. Roots within 100 eps of the real axis
/// count as real.
fn cplxreal(values: Vec<C>) -> Vec<C> {
    let tol = 100.0 * f64::EPSILON;
    let mut real: Vec<C> = Vec::new();
    let mut complex: Vec<C> = Vec::new();
    for v in values {
        if v.im.abs() <= tol * v.norm() {
            real.push(C::new(v.re, 0.0));
        } else if v.im > 0.0 {
            complex.push(v);
        }
    }
    complex.sort_by(|a, b| a.re.total_cmp(&b.re).then(a.im.total_cmp(&b.im)));
    real.sort_by(|a, b| a.re.total_cmp(&b.re));
    complex.extend(real);
    complex
}

/// Index in `from` of the element nearest `to` among the real (or complex) ones.
fn nearest(from: &[C], to: C, real: bool) -> usize {
    let mut order: Vec<usize> = (0..from.len()).collect();
    order.sort_by(|&a, &b| (from[a] - to).norm().total_cmp(&(from[b] - to).norm()));
    order
        .into_iter()
        .find(|&i| is_real(from[i]) == real)
        .expect("a root of the requested kind remains")
}

fn argmin(values: impl Iterator<Item = f64>) -> usize {
    values
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |best, (i, v)| if v < best.1 { (i, v) } else { best },
        )
        .0
}

/// scipy.signal.zpk2sos(z, p, k, pairing="nearest").
fn zpk2sos(mut z: Vec<C>, mut p: Vec<C>, k: f64) -> Vec<Section> {
    if z.is_empty() && p.is_empty() {
        return vec![[k, 0.0, 0.0, 1.0, 0.0, 0.0]];
    }
    while p.len() < z.len() {
        p.push(C::new(0.0, 0.0));
    }
    while z.len() < p.len() {
        z.push(C::new(0.0, 0.0));
    }
    let n_sections = p.len().div_ceil(2);
    if p.len() % 2 == 1 {
        p.push(C::new(0.0, 0.0));
        z.push(C::new(0.0, 0.0));
    }
    let mut z = cplxreal(z);
    let mut p = cplxreal(p);
    let mut p_sos = Vec::with_capacity(n_sections);
    let mut z_sos = Vec::with_capacity(n_sections);
    for _ in 0..n_sections {
        // The pole closest to the unit circle first.
        let p1 = p.remove(argmin(p.iter().map(|v| (1.0 - v.norm()).abs())));
        let (z1, p2, z2);
        if is_real(p1) && p.iter().filter(|v| is_real(**v)).count() == 0 {
            // The last real pole: pair it with the nearest real zero, alone.
            z1 = z.remove(nearest(&z, p1, true));
            p2 = C::new(0.0, 0.0);
            z2 = C::new(0.0, 0.0);
        } else {
            let z1_idx = if !is_real(p1) && z.iter().filter(|v| is_real(**v)).count() == 1 {
                nearest(&z, p1, false)
            } else {
                argmin(z.iter().map(|v| (p1 - v).norm()))
            };
            z1 = z.remove(z1_idx);
            if !is_real(p1) {
                p2 = p1.conj();
                if !is_real(z1) {
                    z2 = z1.conj();
                } else {
                    z2 = z.remove(nearest(&z, p1, true));
                }
            } else if !is_real(z1) {
                z2 = z1.conj();
                p2 = p.remove(nearest(&p, z1, true));
            } else {
                let reals: Vec<usize> = (0..p.len()).filter(|&i| is_real(p[i])).collect();
                let pick = reals[argmin(reals.iter().map(|&i| (p[i].norm() - 1.0).abs()))];
                p2 = p.remove(pick);
                z2 = z.remove(nearest(&z, p2, true));
            }
        }
        p_sos.push([p1, p2]);
        z_sos.push([z1, z2]);
    }
    // The worst (closest to the unit circle) sections last; the gain goes to the first.
    p_sos.reverse();
    z_sos.reverse();
    p_sos
        .iter()
        .zip(&z_sos)
        .enumerate()
        .map(|(i, (ps, zs))| {
            let gain = if i == 0 { k } else { 1.0 };
            let (b, a) = (poly(zs), poly(ps));
            [gain * b[0], gain * b[1], gain * b[2], a[0], a[1], a[2]]
        })
        .collect()
}

/// Real coefficients of (x - r1)(x - r2) (np.poly on a conjugate or real pair), as
/// zpk2tf gives them for one section.
fn poly(roots: &[C; 2]) -> [f64; 3] {
    let [r1, r2] = *roots;
    [1.0, -(r1 + r2).re, (r1 * r2).re]
}

/// scipy.signal.iirnotch(w0, Q, fs) as one second-order section: a notch at `freq` Hz
/// whose -3 dB width is freq / quality (mains interference: 50 or 60 Hz, Q about 30).
pub fn notch_sos(freq: f64, quality: f64, fs: f64) -> Result<Section, DesignError> {
    if !(fs.is_finite() && fs > 0.0) {
        return Err(DesignError::SampleRate(fs));
    }
    let nyquist = fs / 2.0;
    if !(freq > 0.0 && freq < nyquist) {
        return Err(DesignError::Cutoff {
            cutoff: freq,
            nyquist,
        });
    }
    if !(quality.is_finite() && quality > 0.0) {
        return Err(DesignError::Quality(quality));
    }
    let w0 = freq / nyquist * std::f64::consts::PI;
    let bandwidth = (freq / nyquist / quality) * std::f64::consts::PI;
    // Gain at the band edges: -3 dB, so beta = tan(bw / 2) * sqrt(1 - gb^2) / gb = tan(bw / 2).
    let beta = (bandwidth / 2.0).tan();
    let gain = 1.0 / (1.0 + beta);
    let c = w0.cos();
    Ok([
        gain,
        -2.0 * gain * c,
        gain,
        1.0,
        -2.0 * gain * c,
        2.0 * gain - 1.0,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_designs() {
        assert_eq!(
            butter_sos(0, BandType::Lowpass(10.0), 100.0),
            Err(DesignError::Order)
        );
        assert!(matches!(
            butter_sos(2, BandType::Lowpass(60.0), 100.0),
            Err(DesignError::Cutoff { .. })
        ));
        assert!(matches!(
            butter_sos(2, BandType::Bandpass(10.0, 5.0), 100.0),
            Err(DesignError::Edges { .. })
        ));
        assert!(matches!(
            butter_sos(2, BandType::Lowpass(10.0), 0.0),
            Err(DesignError::SampleRate(_))
        ));
    }

    #[test]
    fn lowpass_has_unit_dc_gain() {
        for order in 1..=8 {
            let sos = butter_sos(order, BandType::Lowpass(10.0), 250.0).unwrap();
            assert_eq!(sos.len(), order.div_ceil(2));
            let gain: f64 = sos
                .iter()
                .map(|s| (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]))
                .product();
            assert!((gain - 1.0).abs() < 1e-9, "order {order}: {gain}");
        }
    }
}
