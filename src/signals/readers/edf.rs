//! EDF, EDF+, BDF and BDF+ (European Data Format, Kemp 1992/2003; BioSemi's 24-bit
//! variant). Hand-written: the `edfplus` crate reads EDF+ but not BDF, and `bdf` on
//! crates.io is a font format. Every header field is checked, and each lie gets a message
//! that names the field.

use super::{Annotation, RecordedChannel, Recording, group_channels, infer_kind, to_microvolts};

const FIXED_HEADER: usize = 256;
const PER_SIGNAL_HEADER: usize = 256;
const MAX_SIGNALS: usize = 4096;

struct SignalHeader {
    label: String,
    transducer: String,
    unit: String,
    physical_min: f64,
    physical_max: f64,
    digital_min: f64,
    digital_max: f64,
    samples_per_record: usize,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn number<T: std::str::FromStr>(bytes: &[u8], field: &str) -> Result<T, String> {
    let t = text(bytes);
    t.parse()
        .map_err(|_| format!("header field {field} is {t:?}, not a number"))
}

/// Parses a whole EDF/BDF file held in memory.
pub fn parse(bytes: &[u8]) -> Result<Recording, String> {
    if bytes.len() < FIXED_HEADER {
        return Err(format!(
            "the file has {} bytes, fewer than the 256-byte header",
            bytes.len()
        ));
    }
    let bdf = bytes[0] == 0xFF && &bytes[1..8] == b"BIOSEMI";
    if !bdf && &bytes[0..8] != b"0       " {
        return Err(
            "it does not start with the EDF version \"0\" or BDF's 0xFF \"BIOSEMI\"".into(),
        );
    }
    let sample_bytes = if bdf { 3 } else { 2 };
    let reserved = text(&bytes[192..236]);
    let plus = reserved.starts_with("EDF+") || reserved.starts_with("BDF+");
    let discontinuous = reserved.starts_with("EDF+D") || reserved.starts_with("BDF+D");
    let header_bytes: usize = number(&bytes[184..192], "'number of bytes in header'")?;
    let declared_records: i64 = number(&bytes[236..244], "'number of data records'")?;
    let record_duration: f64 = number(&bytes[244..252], "'duration of a data record'")?;
    let signals: usize = number(&bytes[252..256], "'number of signals'")?;
    if signals == 0 || signals > MAX_SIGNALS {
        return Err(format!(
            "it declares {signals} signals (1 to {MAX_SIGNALS} are readable)"
        ));
    }
    if header_bytes != FIXED_HEADER + signals * PER_SIGNAL_HEADER {
        return Err(format!(
            "the header length field says {header_bytes} bytes, but {signals} signals need {}",
            FIXED_HEADER + signals * PER_SIGNAL_HEADER
        ));
    }
    if bytes.len() < header_bytes {
        return Err(format!(
            "the file ends after {} bytes, inside its {header_bytes}-byte header (truncated)",
            bytes.len()
        ));
    }
    let h = &bytes[FIXED_HEADER..header_bytes];
    // Field i of signal s lives at offset(field) + s * width(field).
    let mut offset = 0;
    let mut field = |width: usize| {
        let start = offset;
        offset += width * signals;
        move |s: usize| &h[start + s * width..start + (s + 1) * width]
    };
    let (label, transducer, unit) = (field(16), field(80), field(8));
    let (pmin, pmax, dmin, dmax) = (field(8), field(8), field(8), field(8));
    let (_prefilter, samples) = (field(80), field(8));
    let mut headers = Vec::with_capacity(signals);
    for s in 0..signals {
        let name = text(label(s));
        let header = SignalHeader {
            transducer: text(transducer(s)),
            unit: text(unit(s)),
            physical_min: number(pmin(s), &format!("'physical minimum' of signal {name:?}"))?,
            physical_max: number(pmax(s), &format!("'physical maximum' of signal {name:?}"))?,
            digital_min: number(dmin(s), &format!("'digital minimum' of signal {name:?}"))?,
            digital_max: number(dmax(s), &format!("'digital maximum' of signal {name:?}"))?,
            samples_per_record: number(
                samples(s),
                &format!("'samples per record' of signal {name:?}"),
            )?,
            label: name,
        };
        if header.digital_max <= header.digital_min {
            return Err(format!(
                "signal {:?}: digital maximum {} is not above digital minimum {}",
                header.label, header.digital_max, header.digital_min
            ));
        }
        if header.physical_max == header.physical_min
            || !header.physical_max.is_finite()
            || !header.physical_min.is_finite()
        {
            return Err(format!(
                "signal {:?}: physical minimum and maximum ({}, {}) must differ",
                header.label, header.physical_min, header.physical_max
            ));
        }
        headers.push(header);
    }
    let record_bytes: usize = headers
        .iter()
        .map(|h| h.samples_per_record * sample_bytes)
        .sum();
    if record_bytes == 0 {
        return Err("its data records hold no samples".into());
    }
    let is_annotation =
        |h: &SignalHeader| plus && (h.label == "EDF Annotations" || h.label == "BDF Annotations");
    let has_data = headers
        .iter()
        .any(|h| !is_annotation(h) && h.samples_per_record > 0);
    if has_data && !(record_duration.is_finite() && record_duration > 0.0) {
        return Err(format!(
            "the data record duration is {record_duration} s; it must be positive"
        ));
    }

    let mut recording = Recording::default();
    let data = &bytes[header_bytes..];
    let complete = data.len() / record_bytes;
    let records = if declared_records < 0 {
        recording.warnings.push(format!(
            "the header leaves the number of data records unknown (-1); read {complete} from the file size"
        ));
        complete
    } else {
        let declared = declared_records as usize;
        if complete < declared {
            recording.warnings.push(format!(
                "the header declares {declared} data records but the file holds {complete} complete ones (truncated); read those"
            ));
            complete
        } else {
            if data.len() > declared * record_bytes {
                recording.warnings.push(format!(
                    "{} bytes after the {declared} declared data records were ignored",
                    data.len() - declared * record_bytes
                ));
            }
            declared
        }
    };
    if !data.len().is_multiple_of(record_bytes) && declared_records < 0 {
        recording.warnings.push(format!(
            "{} bytes of an incomplete last record were ignored",
            data.len() % record_bytes
        ));
    }

    let mut channels: Vec<Vec<f64>> = headers
        .iter()
        .map(|h| {
            Vec::with_capacity(if is_annotation(h) {
                0
            } else {
                h.samples_per_record * records
            })
        })
        .collect();
    let mut record_onsets = Vec::with_capacity(records);
    for r in 0..records {
        let mut at = r * record_bytes;
        for (s, h) in headers.iter().enumerate() {
            let len = h.samples_per_record * sample_bytes;
            let block = &data[at..at + len];
            at += len;
            if is_annotation(h) {
                parse_annotations(block, &mut recording.annotations, &mut record_onsets, r);
                continue;
            }
            let gain = (h.physical_max - h.physical_min) / (h.digital_max - h.digital_min);
            let out = &mut channels[s];
            if bdf {
                out.extend(block.chunks_exact(3).map(|b| {
                    let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                    h.physical_min + (v as f64 - h.digital_min) * gain
                }));
            } else {
                out.extend(block.chunks_exact(2).map(|b| {
                    let v = i16::from_le_bytes([b[0], b[1]]);
                    h.physical_min + (v as f64 - h.digital_min) * gain
                }));
            }
        }
    }
    if discontinuous {
        let gaps = record_onsets
            .windows(2)
            .filter(|w| (w[1] - w[0] - record_duration).abs() > 1e-6)
            .count();
        if gaps > 0 {
            recording.warnings.push(format!(
                "this EDF+D recording has {gaps} gaps between data records; the records are read back to back"
            ));
        }
    }
    // EDF+ onsets count from the header's start time; the first record may start a fraction
    // of a second later. Times here count from the first sample, as edflib's do.
    let start_offset = record_onsets.first().copied().unwrap_or(0.0);
    for a in &mut recording.annotations {
        a.onset -= start_offset;
    }
    let first_timestamp = 0.0;
    let named: Vec<(RecordedChannel, f64)> = headers
        .iter()
        .zip(channels)
        .filter(|(h, _)| !is_annotation(h))
        .map(|(h, mut samples)| {
            let kind = infer_kind(&h.label, &h.transducer);
            let (factor, unit) = to_microvolts(kind, &h.unit);
            if factor != 1.0 {
                samples.iter_mut().for_each(|v| *v *= factor);
            }
            let rate = h.samples_per_record as f64 / record_duration;
            (
                RecordedChannel {
                    label: h.label.clone(),
                    unit,
                    kind,
                    samples,
                },
                rate,
            )
        })
        .filter(|(c, _)| !c.samples.is_empty())
        .collect();
    recording.streams = group_channels(named, first_timestamp, "");
    Ok(recording)
}

/// EDF+ time-stamped annotation lists: "+onset[\x15duration]\x14text\x14...\x14\0". The
/// first TAL of each record, with empty text, keeps the record's start time.
fn parse_annotations(
    block: &[u8],
    out: &mut Vec<Annotation>,
    record_onsets: &mut Vec<f64>,
    record: usize,
) {
    let mut first = true;
    for tal in block.split(|&b| b == 0).filter(|t| !t.is_empty()) {
        let mut parts = tal.split(|&b| b == 0x14);
        let Some(timing) = parts.next() else { continue };
        let mut timing = timing.split(|&b| b == 0x15);
        let onset: Option<f64> = timing
            .next()
            .and_then(|o| std::str::from_utf8(o).ok()?.trim().parse().ok());
        let duration: f64 = timing
            .next()
            .and_then(|d| std::str::from_utf8(d).ok()?.trim().parse().ok())
            .unwrap_or(0.0);
        let Some(onset) = onset else { continue };
        let texts: Vec<String> = parts
            .map(|t| String::from_utf8_lossy(t).trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if first {
            if record_onsets.len() == record {
                record_onsets.push(onset);
            }
            first = false;
        }
        for text in texts {
            out.push(Annotation {
                onset,
                duration,
                text,
            });
        }
    }
}
