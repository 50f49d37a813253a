//! CSV/TSV with a header row: one column per channel, plus an optional time column.
//! Units may be given in the header as "EDA (uS)" or "ECG [mV]".

use super::{RecordedChannel, Recording, group_channels, infer_kind, to_microvolts};
use crate::signals::stream::SignalKind;

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
                    let mut steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
                    steps.sort_by(f64::total_cmp);
                    let step = steps[steps.len() / 2];
                    let spread = (steps[steps.len() - 1] - steps[0]) / step;
                    if spread > 0.5 {
                        warnings.push(format!(
                            "column {:?} is irregular (steps {:.6}-{:.6} s); assumed {:.3} Hz from the median step",
                            headers[t],
                            steps[0],
                            steps[steps.len() - 1],
                            1.0 / step
                        ));
                    }
                    1.0 / step
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
