//! Electrodermal activity, ported from NeuroKit2 0.3's `eda_process` defaults:
//! `eda_clean` (3 Hz low-pass, Butterworth order 4, zero-phase; skipped at <= 6 Hz),
//! `eda_phasic(method="highpass")` (0.05 Hz Butterworth order 2 split, as Biopac
//! AcqKnowledge does) and `eda_peaks(method="neurokit")` (SCRs are local maxima of the
//! phasic signal with prominence >= 10% of the largest; onset = the nearest trough before).

use super::cardiac::{PhysioError, zero_phase};
use super::dsp::BandType;
use super::peaks::{find_peaks, find_troughs, peak_prominences};

pub fn eda_clean(x: &[f64], fs: f64) -> Result<Vec<f64>, PhysioError> {
    if fs <= 6.0 {
        return Ok(x.to_vec());
    }
    zero_phase("EDA cleaning", 4, BandType::Lowpass(3.0), fs, x)
}

/// Tonic (skin-conductance level) and phasic components, both in the input's unit (uS).
pub struct EdaComponents {
    pub tonic: Vec<f64>,
    pub phasic: Vec<f64>,
}

pub fn eda_decompose(cleaned: &[f64], fs: f64) -> Result<EdaComponents, PhysioError> {
    Ok(EdaComponents {
        phasic: zero_phase("EDA phasic split", 2, BandType::Highpass(0.05), fs, cleaned)?,
        tonic: zero_phase("EDA tonic split", 2, BandType::Lowpass(0.05), fs, cleaned)?,
    })
}

/// One skin-conductance response, as sample indices into the analysed signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScrIndices {
    pub onset: usize,
    pub peak: usize,
    /// Phasic value at the peak minus at the onset, uS.
    pub amplitude: f64,
    /// (peak - onset) / fs, s.
    pub rise_time_s: f64,
}

/// `nk.eda_peaks(phasic, fs, method="neurokit", amplitude_min=0.1)`. Peaks with no trough
/// before them (no onset) are dropped, as NeuroKit2 leaves their amplitude undefined.
pub fn scr_peaks(phasic: &[f64], fs: f64) -> Vec<ScrIndices> {
    const RELATIVE_PROMINENCE_MIN: f64 = 0.1;
    let peaks = find_peaks(phasic);
    let prominences = peak_prominences(phasic, &peaks);
    let largest = prominences
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let troughs = find_troughs(phasic);
    peaks
        .iter()
        .zip(&prominences)
        .filter(|(_, prom)| *prom / largest >= RELATIVE_PROMINENCE_MIN)
        .filter_map(|(&peak, _)| {
            // The closest trough strictly before the peak.
            let k = troughs.partition_point(|&t| t < peak);
            let onset = *troughs.get(k.checked_sub(1)?)?;
            Some(ScrIndices {
                onset,
                peak,
                amplitude: phasic[peak] - phasic[onset],
                rise_time_s: (peak - onset) as f64 / fs,
            })
        })
        .collect()
}
