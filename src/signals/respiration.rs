//! Breathing rate. Cleaning follows NeuroKit2's `rsp_clean(method="khodadad2018")`
//! (0.05-3 Hz Butterworth band-pass, order 2, zero-phase). Breaths are then counted the
//! way Khodadad et al. (2018) do: the signal's zero crossings split it into half-cycles,
//! each half-cycle's extremum is an inhalation peak or exhalation trough, and breaths with
//! a peak-to-trough excursion under 30% of the median are merged into their neighbours.

use super::cardiac::{PhysioError, zero_phase};
use super::dsp::BandType;

pub fn rsp_clean(x: &[f64], fs: f64) -> Result<Vec<f64>, PhysioError> {
    zero_phase(
        "respiration cleaning",
        2,
        BandType::Bandpass(0.05, 3.0),
        fs,
        x,
    )
}

/// Sample indices of inhalation peaks in a cleaned respiration signal.
pub fn breath_peaks(cleaned: &[f64]) -> Vec<usize> {
    if cleaned.len() < 3 {
        return Vec::new();
    }
    let mean = cleaned.iter().sum::<f64>() / cleaned.len() as f64;
    let centred: Vec<f64> = cleaned.iter().map(|v| v - mean).collect();
    let crossings: Vec<usize> = (1..centred.len())
        .filter(|&i| (centred[i - 1] < 0.0) != (centred[i] < 0.0))
        .collect();
    // Extremum of each half-cycle between consecutive crossings: (index, value, is_peak).
    let mut extrema: Vec<(usize, f64, bool)> = crossings
        .windows(2)
        .map(|w| {
            let span = &centred[w[0]..w[1]];
            let is_peak = span[span.len() / 2] > 0.0;
            let (offset, value) =
                span.iter()
                    .copied()
                    .enumerate()
                    .fold((0, span[0]), |best, (i, v)| {
                        if (is_peak && v > best.1) || (!is_peak && v < best.1) {
                            (i, v)
                        } else {
                            best
                        }
                    });
            (w[0] + offset, value, is_peak)
        })
        .collect();
    // Merge shallow breaths: drop the peak/trough pair with the smallest excursion while
    // it is under 30% of the median excursion.
    loop {
        if extrema.len() < 3 {
            break;
        }
        let excursions: Vec<f64> = extrema
            .windows(2)
            .map(|w| (w[0].1 - w[1].1).abs())
            .collect();
        let mut sorted = excursions.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let (smallest, value) = excursions
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least two extrema");
        if value >= 0.3 * median {
            break;
        }
        extrema.drain(smallest..smallest + 2);
    }
    extrema.into_iter().filter(|e| e.2).map(|e| e.0).collect()
}

/// Breaths per minute from inhalation peak times (s): 60 / mean breath period.
pub fn breathing_rate(peak_times_s: &[f64]) -> Option<f64> {
    if peak_times_s.len() < 2 {
        return None;
    }
    let span = peak_times_s[peak_times_s.len() - 1] - peak_times_s[0];
    (span > 0.0).then(|| 60.0 * (peak_times_s.len() - 1) as f64 / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sine_at_15_breaths_per_minute() {
        let fs = 25.0;
        let x: Vec<f64> = (0..(60.0 * fs) as usize)
            .map(|i| {
                (2.0 * std::f64::consts::PI * 0.25 * i as f64 / fs).sin()
                    + 0.05 * ((i * 7919) % 13) as f64 / 13.0
            })
            .collect();
        let cleaned = rsp_clean(&x, fs).unwrap();
        let peaks = breath_peaks(&cleaned);
        let times: Vec<f64> = peaks.iter().map(|&p| p as f64 / fs).collect();
        let rate = breathing_rate(&times).unwrap();
        assert!((rate - 15.0).abs() < 0.5, "rate {rate}");
    }
}
