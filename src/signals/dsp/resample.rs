//! Polyphase resampling by a rational factor, following scipy.signal.resample_poly with its
//! defaults (Kaiser window, beta 5, half length 10 x max(up, down), zero padding).

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResampleError {
    #[error("resampling factors must be at least 1, got up={up} down={down}")]
    Factor { up: usize, down: usize },
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Modified Bessel function of the first kind, order 0, by its power series (converges to
/// f64 precision well within 60 terms for the Kaiser betas used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    let q = x * x / 4.0;
    for k in 1..200 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta)) with cutoff relative to
/// Nyquist (low-pass, scaled to unit DC gain).
fn firwin_kaiser(numtaps: usize, cutoff: f64, beta: f64) -> Vec<f64> {
    let alpha = 0.5 * (numtaps as f64 - 1.0);
    let sinc = |x: f64| {
        if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        }
    };
    let i0_beta = bessel_i0(beta);
    let mut h: Vec<f64> = (0..numtaps)
        .map(|n| {
            let m = n as f64 - alpha;
            let r = 2.0 * n as f64 / (numtaps as f64 - 1.0) - 1.0;
            let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            cutoff * sinc(cutoff * m) * window
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= sum);
    h
}

fn output_len(len_h: usize, len_in: usize, up: usize, down: usize) -> usize {
    ((len_in - 1) * up + len_h - 1) / down + 1
}

/// scipy.signal.resample_poly(x, up, down): `x` at rate r becomes `ceil(len * up / down)`
/// samples at rate r * up / down, anti-aliased.
pub fn resample_poly(x: &[f64], up: usize, down: usize) -> Result<Vec<f64>, ResampleError> {
    if up == 0 || down == 0 {
        return Err(ResampleError::Factor { up, down });
    }
    let g = gcd(up, down);
    let (up, down) = (up / g, down / g);
    if (up, down) == (1, 1) || x.is_empty() {
        return Ok(x.to_vec());
    }
    let n_in = x.len();
    let n_out = (n_in * up).div_ceil(down);
    let max_rate = up.max(down);
    let half_len = 10 * max_rate;
    let mut h = firwin_kaiser(2 * half_len + 1, 1.0 / max_rate as f64, 5.0);
    h.iter_mut().for_each(|v| *v *= up as f64);
    // Pad the filter so that output samples land on its centre (scipy's bookkeeping).
    let n_pre_pad = down - half_len % down;
    let n_pre_remove = (half_len + n_pre_pad) / down;
    let mut n_post_pad = 0;
    while output_len(h.len() + n_pre_pad + n_post_pad, n_in, up, down) < n_out + n_pre_remove {
        n_post_pad += 1;
    }
    let mut padded = vec![0.0; n_pre_pad];
    padded.extend_from_slice(&h);
    padded.extend(std::iter::repeat_n(0.0, n_post_pad));
    // upfirdn, evaluated only at the kept outputs: y[k] = sum_j h[k*down - j*up] x[j].
    Ok((n_pre_remove..n_pre_remove + n_out)
        .map(|k| {
            let t = k * down;
            let j_min = t.saturating_sub(padded.len() - 1).div_ceil(up);
            let j_max = (t / up).min(n_in - 1);
            (j_min..=j_max).map(|j| padded[t - j * up] * x[j]).sum()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_i0_known_values() {
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(5.0) - 27.239871823604442).abs() < 1e-12);
    }

    #[test]
    fn lengths_and_identity() {
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        assert_eq!(resample_poly(&x, 1, 1).unwrap(), x);
        assert_eq!(resample_poly(&x, 2, 3).unwrap().len(), 67);
        assert_eq!(resample_poly(&x, 4, 2).unwrap().len(), 200);
        assert!(resample_poly(&x, 0, 1).is_err());
    }
}
