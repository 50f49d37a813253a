//! CSV/TSV with a header row: one column per channel, plus an optional time column.
//! Units may be given in the header as `EDA (uS)` or `ECG [mV]`.

use super::{RecordedChannel, Recording, group_channels, infer_kind, to_microvolts};
use crate::signals::features::SignalKind;

#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Sample rate, Hz; required when there is no time column.
    pub rate_hz: Option<f64>,
    /// Signal kind for every channel, instead of guessing from the column names.
    pub kind: Option<SignalKind>,
}

const TIME_COLUMNS: [&str; 6] = ["time", "timestamp", "timestamps", "t", "seconds", "time_s"];

fn split_unit(header: &str) -> (String, String) {
    let h = header.trim();
    for (open, close) in [('(', ')'), ('[', ']')] {
        if let (Some(a), Some(b)) = (h.rfind(open), h.rfind(close))
            && a < b
            && b == h.len() - 1
        {
            return (h[..a].trim().to_string(), h[a + 1..b].trim().to_string());
        }
    }
    (h.to_string(), String::new())
}

/// Sample rates that recorders commonly run at, Hz; an estimate this close to one of them
/// is taken to be it.
const COMMON_RATES_HZ: [f64; 23] = [
    1.0, 2.0, 4.0, 8.0, 10.0, 16.0, 20.0, 25.0, 30.0, 32.0, 50.0, 64.0, 100.0, 128.0, 200.0, 250.0,
    256.0, 500.0, 512.0, 1000.0, 1024.0, 2000.0, 2048.0,
];
/// How far (relative) an estimate may lie from a common rate and still be taken as it:
/// 0.1 %, wider than the error of a time column written at 6 decimals over a few seconds of
/// samples, and than the crystal drift of an amplifier (tens of ppm), narrower than the
/// distance between any two common rates.
pub const RATE_SNAP_TOLERANCE: f64 = 1e-3;

/// The sample rate a strictly increasing time column implies, and a warning when it is
/// irregular or matches no common rate.
///
/// The rate comes from the whole span, (n - 1) / (last - first), not from the median step:
/// a column written at 6 decimals rounds every step (256 Hz gives steps of 0.003906 and
/// 0.003907 s), so the median step is off by up to 1e-6 s (0.026 % at 256 Hz), while the
/// span's rounding error is spread over all n - 1 steps. An estimate within
/// [`RATE_SNAP_TOLERANCE`] of a common rate (256, 500, 1000 Hz, ...) is that rate.
pub fn rate_from_time_column(column: &str, times: &[f64]) -> (f64, Option<String>) {
    let n = times.len();
    let span = times[n - 1] - times[0];
    let estimate = (n - 1) as f64 / span;
    let mut steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    let (shortest, longest) = (steps[0], steps[steps.len() - 1]);
    let nearest = COMMON_RATES_HZ
        .iter()
        .copied()
        .min_by(|a, b| {
            ((a - estimate) / a)
                .abs()
                .total_cmp(&((b - estimate) / b).abs())
        })
        .expect("the list is not empty");
    let deviation = (estimate - nearest) / nearest;
    let snapped = deviation.abs() <= RATE_SNAP_TOLERANCE;
    let rate = if snapped { nearest } else { estimate };
    // Steps that differ by more than half a sample period are not rounding.
    let irregular = (longest - shortest) * estimate > 0.5;
    let mut problems = Vec::new();
    if irregular {
        problems.push(format!(
            "is irregular (steps {shortest:.6}-{longest:.6} s: gaps or jitter; samples are analysed as if evenly spaced)"
        ));
    }
    if !snapped {
        problems.push(format!(
            "implies {estimate:.4} Hz over its span, {:+.3} % from the nearest common rate {nearest} Hz (more than the {} % taken as equal)",
            deviation * 100.0,
            RATE_SNAP_TOLERANCE * 100.0
        ));
    }
    let warning = (!problems.is_empty()).then(|| {
        format!(
            "column {column:?} {}; analysed at {rate:.4} Hz; pass --rate HZ if the recorder's rate is known",
            problems.join(" and ")
        )
    });
    (rate, warning)
}

pub fn parse(bytes: &[u8], options: &CsvOptions) -> Result<Recording, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let first_line = text.lines().next().unwrap_or("");
    let delimiter = if first_line.contains('\t') {
        b'\t'
    } else if first_line.contains(';') && !first_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Err("the header row is empty; the first line must name the columns".into());
    }
    let time_column = headers
        .iter()
        .position(|h| TIME_COLUMNS.contains(&split_unit(h).0.to_ascii_lowercase().as_str()));
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); headers.len()];
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", row + 2))?;
        if record.len() != headers.len() {
            return Err(format!(
                "row {} has {} fields; the header has {}",
                row + 2,
                record.len(),
                headers.len()
            ));
        }
        for (c, field) in record.iter().enumerate() {
            let value = if field.is_empty() || field.eq_ignore_ascii_case("nan") {
                f64::NAN
            } else {
                field.parse().map_err(|_| {
                    format!(
                        "row {}, column {:?}: {field:?} is not a number",
                        row + 2,
                        headers[c]
                    )
                })?
            };
            columns[c].push(value);
        }
    }
    let rows = columns[0].len();
    if rows == 0 {
        return Err("no data rows after the header".into());
    }
    let mut warnings = Vec::new();
    let (rate, first_timestamp) = match (options.rate_hz, time_column) {
        (Some(rate), _) if !(rate.is_finite() && rate > 0.0) => {
            return Err(format!("the sample rate must be positive, got {rate}"));
        }
        (rate, Some(t)) => {
            let times = &columns[t];
            if let Some(i) = times
                .windows(2)
                .position(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
            {
                return Err(format!(
                    "column {:?} must increase strictly; row {} has {} after {}",
                    headers[t],
                    i + 3,
                    times[i + 1],
                    times[i]
                ));
            }
            let rate = match rate {
                Some(r) => r,
                None if rows >= 2 => {
                    let (rate, warning) = rate_from_time_column(&headers[t], times);
                    warnings.extend(warning);
                    rate
                }
                None => return Err("one row with no --rate: the sample rate is unknown".into()),
            };
            (rate, times[0])
        }
        (Some(rate), None) => (rate, 0.0),
        (None, None) => {
            return Err(format!(
                "no time column (one of {TIME_COLUMNS:?}) and no sample rate: pass --rate HZ"
            ));
        }
    };
    let named: Vec<(RecordedChannel, f64)> = headers
        .iter()
        .zip(columns)
        .enumerate()
        .filter(|(c, _)| Some(*c) != time_column)
        .map(|(_, (header, mut samples))| {
            let (label, unit) = split_unit(header);
            let kind = options.kind.unwrap_or_else(|| infer_kind(&label, ""));
            let (factor, unit) = to_microvolts(kind, &unit);
            if factor != 1.0 {
                samples.iter_mut().for_each(|v| *v *= factor);
            }
            (
                RecordedChannel {
                    label,
                    unit,
                    kind,
                    samples,
                },
                rate,
            )
        })
        .collect();
    if named.is_empty() {
        return Err("the only column is the time column; there is no signal".into());
    }
    Ok(Recording {
        streams: group_channels(named, first_timestamp, ""),
        annotations: Vec::new(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times as a recorder writes them: 6 decimals.
    fn rounded(rate: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| format!("{:.6}", 1234.5 + i as f64 / rate).parse().unwrap())
            .collect()
    }

    #[test]
    fn the_rate_comes_from_the_span_and_snaps_to_a_common_rate() {
        for rate in [128.0, 250.0, 256.0, 500.0, 512.0, 1000.0, 1024.0, 2048.0] {
            // Two seconds of samples are enough.
            let (got, warning) = rate_from_time_column("time", &rounded(rate, 2 * rate as usize));
            assert_eq!(got, rate);
            assert_eq!(warning, None);
        }
        // An amplifier 40 ppm fast is still its nominal rate.
        let (got, warning) = rate_from_time_column("t", &rounded(256.0 * (1.0 + 40e-6), 2560));
        assert_eq!((got, warning), (256.0, None));
    }

    #[test]
    fn a_rate_far_from_every_common_rate_is_kept_and_reported_with_its_figure() {
        let (got, warning) = rate_from_time_column("time", &rounded(255.3, 2553));
        assert!((got - 255.3).abs() < 1e-3, "{got}");
        let warning = warning.unwrap();
        assert!(warning.contains("255.30"), "{warning}");
        assert!(
            warning.contains("256 Hz") && warning.contains("--rate"),
            "{warning}"
        );
    }

    #[test]
    fn gaps_in_the_time_column_are_reported() {
        let mut times = rounded(256.0, 1024);
        let late: Vec<f64> = times[512..].iter().map(|t| t + 0.5).collect();
        times.splice(512.., late);
        let (_, warning) = rate_from_time_column("time", &times);
        assert!(warning.unwrap().contains("irregular"));
    }
}
