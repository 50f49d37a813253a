//! ECG R-peaks and PPG pulse peaks, ported from NeuroKit2 0.3 (`ecg_clean` + `ecg_peaks`
//! with method "neurokit"; `ppg_clean` + `ppg_findpeaks` with method "elgendi"), plus
//! heart rate and time-domain HRV. tests/signals_physio.rs holds these to NeuroKit2's
//! indices on real recordings.

use super::dsp::{BandType, DesignError, butter_sos, sosfiltfilt};
use super::peaks::{boxcar_smooth, gradient, most_prominent_peak, moving_average_filtfilt};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PhysioError {
    #[error("{what} needs at least {needed} samples, got {got}")]
    TooShort {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error(transparent)]
    Design(#[from] DesignError),
}

/// A zero-phase Butterworth filter (NeuroKit2's `signal_filter(method="butterworth")`:
/// scipy `butter(..., output="sos")` + `sosfiltfilt`), shared by the physiology ports.
pub(crate) fn zero_phase(
    what: &'static str,
    order: usize,
    band: BandType,
    fs: f64,
    x: &[f64],
) -> Result<Vec<f64>, PhysioError> {
    let sos = butter_sos(order, band, fs)?;
    sosfiltfilt(&sos, x).map_err(|e| PhysioError::TooShort {
        what,
        needed: e.padlen + 1,
        got: e.len,
    })
}

/// `nk.ecg_clean(x, fs, method="neurokit")`: 0.5 Hz high-pass (Butterworth order 5,
/// zero-phase), then a zero-phase moving average one mains period long.
pub fn ecg_clean(x: &[f64], fs: f64, powerline_hz: f64) -> Result<Vec<f64>, PhysioError> {
    let highpassed = zero_phase("ECG cleaning", 5, BandType::Highpass(0.5), fs, x)?;
    let taps = if fs >= 100.0 {
        (fs / powerline_hz) as usize
    } else {
        2
    };
    moving_average_filtfilt(&highpassed, taps).ok_or(PhysioError::TooShort {
        what: "ECG power-line filter",
        needed: 3 * taps + 1,
        got: x.len(),
    })
}

/// Beat picking shared by the ECG and PPG detectors: within each span where `active` is
/// true, long enough, take the most prominent local maximum of `signal`, at least
/// `min_delay` samples after the previous beat.
fn beats_in_spans(
    signal: &[f64],
    active: &[bool],
    min_len: impl Fn(&[(usize, usize)]) -> f64,
    min_delay: usize,
) -> Vec<usize> {
    let starts: Vec<usize> = (0..active.len().saturating_sub(1))
        .filter(|&i| !active[i] && active[i + 1])
        .collect();
    let Some(&first_start) = starts.first() else {
        return Vec::new();
    };
    let ends: Vec<usize> = (0..active.len().saturating_sub(1))
        .filter(|&i| active[i] && !active[i + 1] && i > first_start)
        .collect();
    let spans: Vec<(usize, usize)> = starts.iter().copied().zip(ends.iter().copied()).collect();
    let min_len = min_len(&spans);
    let mut beats: Vec<usize> = Vec::new();
    let mut previous = 0usize;
    for &(begin, end) in &spans {
        if ((end - begin) as f64) < min_len {
            continue;
        }
        if let Some(local) = most_prominent_peak(&signal[begin..end]) {
            let peak = begin + local;
            // NeuroKit2 seeds its list with a beat at sample 0.
            if peak as i64 - previous as i64 > min_delay as i64 {
                beats.push(peak);
                previous = peak;
            }
        }
    }
    beats
}

fn samples(seconds: f64, fs: f64) -> usize {
    (seconds * fs).round_ties_even() as usize
}

/// `nk.ecg_peaks(cleaned, fs, method="neurokit")` (no artefact correction): QRS complexes
/// are where the smoothed absolute gradient exceeds 1.5x its 0.75 s average; the R-peak is
/// the most prominent maximum inside each QRS.
pub fn ecg_r_peaks(cleaned: &[f64], fs: f64) -> Vec<usize> {
    if cleaned.len() < 3 {
        return Vec::new();
    }
    let absgrad: Vec<f64> = gradient(cleaned).into_iter().map(f64::abs).collect();
    let smooth = boxcar_smooth(&absgrad, samples(0.1, fs).clamp(1, cleaned.len()));
    let average = boxcar_smooth(&smooth, samples(0.75, fs).clamp(1, cleaned.len()));
    let active: Vec<bool> = smooth
        .iter()
        .zip(&average)
        .map(|(s, a)| *s > 1.5 * a)
        .collect();
    beats_in_spans(
        cleaned,
        &active,
        |spans| {
            let total: usize = spans.iter().map(|(b, e)| e - b).sum();
            0.4 * total as f64 / spans.len().max(1) as f64
        },
        samples(0.3, fs),
    )
}

/// `nk.ppg_clean(x, fs, method="elgendi")`: 0.5-8 Hz Butterworth band-pass, order 2,
/// zero-phase.
pub fn ppg_clean(x: &[f64], fs: f64) -> Result<Vec<f64>, PhysioError> {
    zero_phase("PPG cleaning", 2, BandType::Bandpass(0.5, 8.0), fs, x)
}

/// `nk.ppg_findpeaks(cleaned, fs, method="elgendi")` (Elgendi et al. 2013): systolic
/// waves are where the 111 ms moving average of the squared positive signal exceeds its
/// 667 ms average plus 2% of its mean.
pub fn ppg_peaks(cleaned: &[f64], fs: f64) -> Vec<usize> {
    if cleaned.len() < 3 {
        return Vec::new();
    }
    let squared: Vec<f64> = cleaned.iter().map(|v| v.max(0.0).powi(2)).collect();
    let peak_kernel = samples(0.111, fs).clamp(1, cleaned.len());
    let ma_peak = boxcar_smooth(&squared, peak_kernel);
    let ma_beat = boxcar_smooth(&squared, samples(0.667, fs).clamp(1, cleaned.len()));
    let offset = 0.02 * squared.iter().sum::<f64>() / squared.len() as f64;
    let active: Vec<bool> = ma_peak
        .iter()
        .zip(&ma_beat)
        .map(|(p, b)| *p > b + offset)
        .collect();
    beats_in_spans(cleaned, &active, |_| peak_kernel as f64, samples(0.3, fs))
}

/// Heart rate and time-domain HRV from beat times in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct HeartRate {
    /// Mean of the instantaneous rates 60/RR, beats/min (NeuroKit2's mean `ECG_Rate`
    /// without interpolation).
    pub mean_bpm: f64,
    /// Root mean square of successive RR differences, ms.
    pub rmssd_ms: f64,
    /// Standard deviation of RR intervals (ddof 1), ms.
    pub sdnn_ms: f64,
    /// Fraction of successive RR differences over 50 ms, `[0,1]`.
    pub pnn50: f64,
}

/// None with fewer than two beats. HRV fields need at least three beats (else 0).
pub fn heart_rate(beat_times_s: &[f64]) -> Option<HeartRate> {
    if beat_times_s.len() < 2 {
        return None;
    }
    let rr: Vec<f64> = beat_times_s.windows(2).map(|w| w[1] - w[0]).collect();
    let mean_bpm = rr.iter().map(|r| 60.0 / r).sum::<f64>() / rr.len() as f64;
    let mut out = HeartRate {
        mean_bpm,
        ..HeartRate::default()
    };
    if rr.len() >= 2 {
        let diffs: Vec<f64> = rr.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect();
        out.rmssd_ms = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
        out.pnn50 = diffs.iter().filter(|d| d.abs() > 50.0).count() as f64 / diffs.len() as f64;
        let mean_rr = rr.iter().sum::<f64>() / rr.len() as f64;
        out.sdnn_ms =
            (rr.iter().map(|r| (r - mean_rr).powi(2)).sum::<f64>() / (rr.len() - 1) as f64).sqrt()
                * 1000.0;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrv_of_a_known_rr_series() {
        // RR 1.0, 1.1, 0.9 s.
        let hr = heart_rate(&[0.0, 1.0, 2.1, 3.0]).unwrap();
        let expected_bpm = (60.0 + 60.0 / 1.1 + 60.0 / 0.9) / 3.0;
        assert!((hr.mean_bpm - expected_bpm).abs() < 1e-12);
        assert!((hr.rmssd_ms - ((100.0f64.powi(2) + 200.0f64.powi(2)) / 2.0).sqrt()).abs() < 1e-9);
        assert!((hr.sdnn_ms - 100.0).abs() < 1e-9);
        assert_eq!(hr.pnn50, 1.0);
        assert!(heart_rate(&[1.0]).is_none());
    }
}
