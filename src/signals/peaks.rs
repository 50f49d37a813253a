//! Peak-finding primitives with scipy/numpy semantics, hand-written because no Rust crate
//! reproduces them exactly: `scipy.signal.find_peaks` (local maxima with plateau
//! midpoints), `scipy.signal.peak_prominences` (no window), `scipy.ndimage.uniform_filter1d`
//! (mode "nearest"), `numpy.gradient`, and `scipy.signal.filtfilt` for a moving-average FIR
//! with "pad" extension. The R-peak, pulse and SCR detectors port NeuroKit2 on top of these,
//! so tests/reference/signals_reference.py can hold them to NeuroKit2's indices.

/// Indices of local maxima: samples greater than their left neighbour and followed by a
/// sample that is smaller, where a flat top counts once, at its (lower) midpoint.
pub fn find_peaks(x: &[f64]) -> Vec<usize> {
    let mut peaks = Vec::new();
    if x.len() < 3 {
        return peaks;
    }
    let last = x.len() - 1;
    let mut i = 1;
    while i < last {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead < last && x[ahead] == x[i] {
                ahead += 1;
            }
            if x[ahead] < x[i] {
                peaks.push((i + ahead - 1) / 2);
                i = ahead;
            }
        }
        i += 1;
    }
    peaks
}

/// Local minima, as `find_peaks(-x)`.
pub fn find_troughs(x: &[f64]) -> Vec<usize> {
    let negated: Vec<f64> = x.iter().map(|v| -v).collect();
    find_peaks(&negated)
}

/// Prominence of each peak: its height above the higher of the two lowest points reached
/// on either side before the signal rises above the peak.
pub fn peak_prominences(x: &[f64], peaks: &[usize]) -> Vec<f64> {
    peaks
        .iter()
        .map(|&peak| {
            let top = x[peak];
            let mut left_min = top;
            let mut i = peak as isize;
            while i >= 0 && x[i as usize] <= top {
                left_min = left_min.min(x[i as usize]);
                i -= 1;
            }
            let mut right_min = top;
            let mut j = peak;
            while j < x.len() && x[j] <= top {
                right_min = right_min.min(x[j]);
                j += 1;
            }
            top - left_min.max(right_min)
        })
        .collect()
}

/// The most prominent local maximum of `x`, as NeuroKit2 picks a beat inside a QRS or pulse
/// wave (the first one on ties, like numpy's argmax).
pub fn most_prominent_peak(x: &[f64]) -> Option<usize> {
    let peaks = find_peaks(x);
    let prominences = peak_prominences(x, &peaks);
    let mut best: Option<(usize, f64)> = None;
    for (&p, &prom) in peaks.iter().zip(&prominences) {
        if best.is_none_or(|(_, b)| prom > b) {
            best = Some((p, prom));
        }
    }
    best.map(|(p, _)| p)
}

/// Centred moving average of `size` samples with edge samples repeated
/// (`scipy.ndimage.uniform_filter1d(x, size, mode="nearest")`): output i averages
/// x[i - size/2 ..= i - size/2 + size - 1].
pub fn boxcar_smooth(x: &[f64], size: usize) -> Vec<f64> {
    let n = x.len();
    if n == 0 || size <= 1 {
        return x.to_vec();
    }
    let half = (size / 2) as isize;
    let at = |i: isize| x[i.clamp(0, n as isize - 1) as usize];
    // A running sum, as scipy's C implementation does.
    let mut sum: f64 = (0..size as isize).map(|k| at(k - half)).sum();
    let mut out = Vec::with_capacity(n);
    out.push(sum / size as f64);
    for i in 1..n as isize {
        sum += at(i - half + size as isize - 1) - at(i - half - 1);
        out.push(sum / size as f64);
    }
    out
}

/// `numpy.gradient` with unit spacing: central differences inside, one-sided at the ends.
pub fn gradient(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    match n {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => (0..n)
            .map(|i| {
                if i == 0 {
                    x[1] - x[0]
                } else if i == n - 1 {
                    x[n - 1] - x[n - 2]
                } else {
                    (x[i + 1] - x[i - 1]) / 2.0
                }
            })
            .collect(),
    }
}

/// Zero-phase moving average of `taps` samples
/// (`scipy.signal.filtfilt(np.ones(taps), [taps], x, method="pad")`), NeuroKit2's power-line
/// filter. Needs more than 3 * taps samples, as scipy does.
pub fn moving_average_filtfilt(x: &[f64], taps: usize) -> Option<Vec<f64>> {
    let taps = taps.max(1);
    let pad = 3 * taps;
    if x.len() <= pad {
        return None;
    }
    let n = x.len();
    // Odd extension: 2*x[0] - x[pad..1], x, 2*x[n-1] - x[n-2..n-1-pad].
    let mut ext = Vec::with_capacity(n + 2 * pad);
    ext.extend((1..=pad).rev().map(|i| 2.0 * x[0] - x[i]));
    ext.extend_from_slice(x);
    ext.extend((1..=pad).map(|i| 2.0 * x[n - 1] - x[n - 1 - i]));
    // lfilter with zi = lfilter_zi * first sample is the FIR run over a signal whose
    // past is held at its first value.
    let fir = |signal: &[f64]| -> Vec<f64> {
        let first = signal[0];
        let b = 1.0 / taps as f64;
        (0..signal.len())
            .map(|i| {
                (0..taps)
                    .map(|j| b * if i >= j { signal[i - j] } else { first })
                    .sum()
            })
            .collect()
    };
    let mut forward = fir(&ext);
    forward.reverse();
    let mut backward = fir(&forward);
    backward.reverse();
    Some(backward[pad..pad + n].to_vec())
}

/// Replaces NaN/Inf samples by linear interpolation between the nearest finite neighbours
/// (held flat at the ends) so filters can run; returns how many were replaced. Detectors
/// then drop events that fall on replaced samples.
pub fn fill_non_finite(x: &mut [f64]) -> usize {
    let bad = x.iter().filter(|v| !v.is_finite()).count();
    if bad == 0 || bad == x.len() {
        return bad;
    }
    let mut last_good: Option<usize> = None;
    let mut i = 0;
    while i < x.len() {
        if x[i].is_finite() {
            last_good = Some(i);
            i += 1;
            continue;
        }
        let gap_start = i;
        while i < x.len() && !x[i].is_finite() {
            i += 1;
        }
        let right = (i < x.len()).then(|| x[i]);
        let left = last_good.map(|g| x[g]);
        for (k, slot) in x[gap_start..i].iter_mut().enumerate() {
            *slot = match (left, right) {
                (Some(l), Some(r)) => {
                    let span = (i - last_good.unwrap()) as f64;
                    let t = (gap_start + k - last_good.unwrap()) as f64 / span;
                    l + (r - l) * t
                }
                (Some(l), None) => l,
                (None, Some(r)) => r,
                (None, None) => unreachable!("some sample is finite"),
            };
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_peaks_take_the_midpoint() {
        assert_eq!(find_peaks(&[0.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0]), vec![2, 5]);
        assert_eq!(find_peaks(&[0.0, 1.0, 1.0, 0.0]), vec![1]);
        // A plateau that runs to the end is not a peak.
        assert!(find_peaks(&[0.0, 1.0, 1.0]).is_empty());
    }

    #[test]
    fn prominence_is_height_above_the_higher_base() {
        let x = [0.0, 3.0, 1.0, 2.0, -1.0];
        let peaks = find_peaks(&x);
        assert_eq!(peaks, vec![1, 3]);
        assert_eq!(peak_prominences(&x, &peaks), vec![3.0, 1.0]);
    }

    #[test]
    fn gaps_are_bridged_linearly() {
        let mut x = [f64::NAN, 1.0, f64::NAN, f64::INFINITY, 4.0, f64::NAN];
        assert_eq!(fill_non_finite(&mut x), 4);
        assert_eq!(x, [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]);
    }

    #[test]
    fn boxcar_matches_hand_values() {
        // size 2 averages x[i-1] and x[i], edges repeated.
        assert_eq!(boxcar_smooth(&[1.0, 3.0, 5.0], 2), vec![1.0, 2.0, 4.0]);
        assert_eq!(
            boxcar_smooth(&[1.0, 3.0, 5.0], 3),
            vec![5.0 / 3.0, 3.0, 13.0 / 3.0]
        );
    }
}
