//! Reading XDF (LabRecorder's format for Lab Streaming Layer recordings), with the time-stamp
//! processing of pyxdf 1.17's `load_xdf` defaults: clock synchronisation from the clock
//! offset chunks (robust Huber fit per clock-reset segment), then jitter removal (a least
//! squares line per break-free segment). Hand-written: the `xdf` crate interpolates clock
//! offsets instead of fitting them, so its times differ from pyxdf's, and it keeps the raw
//! offsets private. tests/signals_readers.rs holds this to pyxdf's time stamps.
//!
//! Not ported: pyxdf's repair of a corrupted last clock offset (liblsl#246) and the
//! `can_drop_samples` stream flag.

#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric(Vec<Vec<f64>>),
    Text(Vec<Vec<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct XdfStream {
    pub id: u32,
    pub name: String,
    pub stream_type: String,
    pub channel_count: usize,
    /// 0 for irregular streams (markers).
    pub nominal_srate: f64,
    pub channel_format: String,
    pub labels: Vec<String>,
    pub units: Vec<String>,
    /// Synchronised and de-jittered, recorder clock, s.
    pub time_stamps: Vec<f64>,
    /// One row per sample.
    pub values: Values,
    pub effective_srate: f64,
    /// Break-free segments, inclusive sample ranges.
    pub segments: Vec<(usize, usize)>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "unexpected end of data at byte {} (wanted {n} more bytes)",
                    self.at
                )
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn varlen(&mut self) -> Result<u64, String> {
        match self.u8()? {
            1 => Ok(self.u8()? as u64),
            4 => Ok(self.u32()? as u64),
            8 => Ok(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            n => Err(format!(
                "invalid variable-length integer size {n} at byte {}",
                self.at - 1
            )),
        }
    }
}

struct Building {
    stream: XdfStream,
    raw_stamps: Vec<f64>,
    last_timestamp: f64,
    clock_times: Vec<f64>,
    clock_values: Vec<f64>,
}

fn xml_text(node: roxmltree::Node, path: &[&str]) -> Option<String> {
    let mut n = node;
    for name in path {
        n = n.children().find(|c| c.has_tag_name(*name))?;
    }
    Some(n.text().unwrap_or("").trim().to_string())
}

fn stream_header(id: u32, xml: &str) -> Result<Building, String> {
    let doc =
        roxmltree::Document::parse(xml).map_err(|e| format!("stream {id}: bad header XML: {e}"))?;
    let info = doc.root_element();
    let get = |p: &[&str]| xml_text(info, p);
    let channel_count: usize = get(&["channel_count"])
        .and_then(|v| v.parse().ok())
        .filter(|&c| (1..=65_536).contains(&c))
        .ok_or_else(|| format!("stream {id}: channel_count missing or out of range"))?;
    let nominal_srate: f64 = get(&["nominal_srate"])
        .and_then(|v| v.parse().ok())
        .filter(|r: &f64| r.is_finite() && *r >= 0.0)
        .ok_or_else(|| format!("stream {id}: nominal_srate missing or invalid"))?;
    let channel_format = get(&["channel_format"]).unwrap_or_default();
    if ![
        "int8", "int16", "int32", "int64", "float32", "double64", "string",
    ]
    .contains(&channel_format.as_str())
    {
        return Err(format!(
            "stream {id}: unknown channel_format {channel_format:?}"
        ));
    }
    let mut labels = Vec::new();
    let mut units = Vec::new();
    if let Some(channels) = info
        .children()
        .find(|c| c.has_tag_name("desc"))
        .and_then(|d| d.children().find(|c| c.has_tag_name("channels")))
    {
        for ch in channels.children().filter(|c| c.has_tag_name("channel")) {
            labels.push(xml_text(ch, &["label"]).unwrap_or_default());
            units.push(xml_text(ch, &["unit"]).unwrap_or_default());
        }
    }
    if labels.len() != channel_count {
        labels = (1..=channel_count).map(|i| format!("ch{i}")).collect();
        units = vec![String::new(); channel_count];
    }
    let values = if channel_format == "string" {
        Values::Text(Vec::new())
    } else {
        Values::Numeric(Vec::new())
    };
    Ok(Building {
        stream: XdfStream {
            id,
            name: get(&["name"]).unwrap_or_else(|| format!("stream{id}")),
            stream_type: get(&["type"]).unwrap_or_default(),
            channel_count,
            nominal_srate,
            channel_format,
            labels,
            units,
            time_stamps: Vec::new(),
            values,
            effective_srate: 0.0,
            segments: Vec::new(),
        },
        raw_stamps: Vec::new(),
        last_timestamp: 0.0,
        clock_times: Vec::new(),
        clock_values: Vec::new(),
    })
}

fn read_samples(r: &mut Reader, b: &mut Building) -> Result<(), String> {
    let count = r.varlen()?;
    let channels = b.stream.channel_count;
    let tdiff = if b.stream.nominal_srate > 0.0 {
        1.0 / b.stream.nominal_srate
    } else {
        0.0
    };
    let width = match b.stream.channel_format.as_str() {
        "int8" => 1,
        "int16" => 2,
        "int32" | "float32" => 4,
        _ => 8,
    };
    // Each sample takes at least one byte: a count beyond the data is a lie.
    if count > (r.bytes.len() - r.at) as u64 {
        return Err(format!(
            "stream {}: a chunk claims {count} samples, more than its bytes",
            b.stream.id
        ));
    }
    for _ in 0..count {
        let stamp = match r.u8()? {
            0 => b.last_timestamp + tdiff,
            8 => r.f64()?,
            n => {
                return Err(format!(
                    "stream {}: invalid time-stamp size {n}",
                    b.stream.id
                ));
            }
        };
        b.last_timestamp = stamp;
        b.raw_stamps.push(stamp);
        match &mut b.stream.values {
            Values::Text(rows) => {
                let mut row = Vec::with_capacity(channels);
                for _ in 0..channels {
                    let len = r.varlen()?;
                    let len = usize::try_from(len).map_err(|_| "string too long".to_string())?;
                    row.push(String::from_utf8_lossy(r.take(len)?).into_owned());
                }
                rows.push(row);
            }
            Values::Numeric(rows) => {
                let raw = r.take(width * channels)?;
                let format = b.stream.channel_format.as_str();
                rows.push(
                    raw.chunks_exact(width)
                        .map(|v| match format {
                            "int8" => v[0] as i8 as f64,
                            "int16" => i16::from_le_bytes([v[0], v[1]]) as f64,
                            "int32" => i32::from_le_bytes(v.try_into().expect("4")) as f64,
                            "int64" => i64::from_le_bytes(v.try_into().expect("8")) as f64,
                            "float32" => f32::from_le_bytes(v.try_into().expect("4")) as f64,
                            _ => f64::from_le_bytes(v.try_into().expect("8")),
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(())
}

/// Reads every stream of an XDF file, with pyxdf's clock synchronisation and de-jittering.
pub fn load(bytes: &[u8]) -> Result<Vec<XdfStream>, String> {
    if bytes.len() < 4 || &bytes[..4] != b"XDF:" {
        return Err("it does not start with the magic bytes \"XDF:\"".into());
    }
    let mut r = Reader { bytes, at: 4 };
    let mut streams: Vec<Building> = Vec::new();
    let mut saw_file_header = false;
    while r.at < bytes.len() {
        let start = r.at;
        let len = r.varlen()?;
        if len < 2 || len > (bytes.len() - r.at) as u64 {
            return Err(format!(
                "the chunk at byte {start} claims {len} bytes, but {} remain (truncated or corrupt)",
                bytes.len() - r.at
            ));
        }
        let body = r.take(len as usize)?;
        let tag = u16::from_le_bytes([body[0], body[1]]);
        let mut c = Reader {
            bytes: &body[2..],
            at: 0,
        };
        let find = |streams: &mut Vec<Building>, id: u32| -> Result<usize, String> {
            streams
                .iter()
                .position(|s| s.stream.id == id)
                .ok_or_else(|| {
                    format!("chunk at byte {start} refers to stream {id} before its header")
                })
        };
        match tag {
            1 => saw_file_header = true,
            2 => {
                let id = c.u32()?;
                let xml = String::from_utf8_lossy(&c.bytes[4..]);
                if streams.iter().any(|s| s.stream.id == id) {
                    return Err(format!("stream {id} has two headers"));
                }
                streams.push(stream_header(id, &xml)?);
            }
            3 => {
                let id = c.u32()?;
                let k = find(&mut streams, id)?;
                read_samples(&mut c, &mut streams[k])
                    .map_err(|e| format!("samples chunk at byte {start}: {e}"))?;
            }
            4 => {
                let id = c.u32()?;
                let k = find(&mut streams, id)?;
                let (t, v) = (c.f64()?, c.f64()?);
                if t.is_finite() && v.is_finite() {
                    streams[k].clock_times.push(t);
                    streams[k].clock_values.push(v);
                }
            }
            // Boundary chunks, stream footers and unknown tags carry nothing we need.
            _ => {}
        }
    }
    if !saw_file_header {
        return Err("there is no file header chunk".into());
    }
    Ok(streams
        .into_iter()
        .map(|mut b| {
            let mut stamps = std::mem::take(&mut b.raw_stamps);
            clock_sync(&mut stamps, &b.clock_times, &b.clock_values);
            let (segments, effective) = dejitter(&mut stamps, b.stream.nominal_srate);
            b.stream.time_stamps = stamps;
            b.stream.segments = segments;
            b.stream.effective_srate = effective;
            b.stream
        })
        .collect())
}

/// pyxdf `_find_segment_indices`: inclusive ranges between breaks.
fn segments_between(breaks: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in breaks.iter().enumerate() {
        if b {
            out.push((start, i));
            start = i + 1;
        }
    }
    out.push((start, breaks.len()));
    out
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// pyxdf `_segment_clock_diff`.
fn glitches(diff: &[f64], stds: f64, secs: f64) -> Vec<bool> {
    let m = median(diff);
    let shifted: Vec<f64> = diff.iter().map(|d| d - m).collect();
    let abs: Vec<f64> = shifted.iter().map(|d| d.abs()).collect();
    let mad = median(&abs) + f64::EPSILON;
    shifted
        .iter()
        .zip(&abs)
        .map(|(s, a)| (s / mad).abs() > stds && *a > secs)
        .collect()
}

/// pyxdf `_clock_sync` with clock-reset handling (its default thresholds).
fn clock_sync(stamps: &mut [f64], clock_times: &[f64], clock_values: &[f64]) {
    if stamps.is_empty() || clock_times.is_empty() {
        return;
    }
    let ranges = if clock_times.len() > 1 {
        let time_diff: Vec<f64> = clock_times.windows(2).map(|w| w[1] - w[0]).collect();
        let value_diff: Vec<f64> = clock_values.windows(2).map(|w| w[1] - w[0]).collect();
        let time_glitch = glitches(&time_diff, 5.0, 5.0);
        let value_glitch = glitches(&value_diff, 10.0, 1.0);
        let resets: Vec<bool> = (0..time_diff.len())
            .map(|i| time_diff[i] < 0.0 || (time_glitch[i] && value_glitch[i]))
            .collect();
        segments_between(&resets)
    } else {
        vec![(0, 0)]
    };
    const WINSOR: f64 = 0.0001;
    let coefs: Vec<(f64, f64)> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                (clock_values[a], 0.0)
            } else {
                let x: Vec<f64> = clock_times[a..=b].iter().map(|t| t / WINSOR).collect();
                let y: Vec<f64> = clock_values[a..=b].iter().map(|v| v / WINSOR).collect();
                let (c0, c1) = robust_fit(&x, &y);
                (c0 * WINSOR, c1)
            }
        })
        .collect();
    if ranges.len() == 1 {
        let (c0, c1) = coefs[0];
        stamps.iter_mut().for_each(|t| *t += c0 + c1 * *t);
        return;
    }
    let mut ts_start = 0;
    for (&(c0, c1), &(_, end)) in coefs.iter().zip(&ranges) {
        let stop = end + 1;
        let ts_stop = if stop < clock_times.len() {
            let (current_end, next_start) = (clock_times[end], clock_times[stop]);
            // The first sample closer to the next segment's clock than to this one's.
            stamps[ts_start..]
                .iter()
                .position(|t| (t - current_end).abs() >= (t - next_start).abs())
                .map_or(stamps.len(), |p| ts_start + p)
        } else {
            stamps.len()
        };
        for t in &mut stamps[ts_start..ts_stop] {
            *t += c0 + c1 * *t;
        }
        ts_start = ts_stop;
    }
}

/// pyxdf `_robust_fit`: Huber regression of y on [1, x] by ADMM (rho 1, 1000 iterations).
fn robust_fit(x: &[f64], y: &[f64]) -> (f64, f64) {
    let offset = x.iter().copied().fold(f64::INFINITY, f64::min);
    let a1: Vec<f64> = x.iter().map(|v| v - offset).collect();
    let n = x.len();
    // A^T A = [[n, s1], [s1, s2]] and its Cholesky factor L.
    let s1: f64 = a1.iter().sum();
    let s2: f64 = a1.iter().map(|v| v * v).sum();
    let l00 = (n as f64).sqrt();
    let l10 = s1 / l00;
    let l11 = (s2 - l10 * l10).sqrt();
    let aty = (
        y.iter().sum::<f64>(),
        a1.iter().zip(y).map(|(a, b)| a * b).sum::<f64>(),
    );
    let rho = 1.0;
    let mut z = vec![0.0; n];
    let mut u = vec![0.0; n];
    let mut coef = (0.0, 0.0);
    for _ in 0..1000 {
        let w: Vec<f64> = z.iter().zip(&u).map(|(z, u)| z - u).collect();
        let rhs = (
            aty.0 + w.iter().sum::<f64>(),
            aty.1 + a1.iter().zip(&w).map(|(a, w)| a * w).sum::<f64>(),
        );
        // Solve L q = rhs, then L^T coef = q.
        let q0 = rhs.0 / l00;
        let q1 = (rhs.1 - l10 * q0) / l11;
        let c1 = q1 / l11;
        let c0 = (q0 - l10 * c1) / l00;
        coef = (c0, c1);
        for i in 0..n {
            let d = c0 + c1 * a1[i] - y[i] + u[i];
            let d_inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            let tmp = (1.0 - (1.0 + 1.0 / rho) * d_inv.abs()).max(0.0);
            z[i] = rho / (1.0 + rho) * d + 1.0 / (1.0 + rho) * tmp * d;
            u[i] = d - z[i];
        }
    }
    (coef.0 - coef.1 * offset, coef.1)
}

/// pyxdf `_jitter_removal`: returns the segments and the effective sample rate.
fn dejitter(stamps: &mut [f64], nominal_srate: f64) -> (Vec<(usize, usize)>, f64) {
    let n = stamps.len();
    if n == 0 {
        return (Vec::new(), 0.0);
    }
    if nominal_srate == 0.0 {
        return (vec![(0, n - 1)], 0.0);
    }
    let threshold = 1.0f64.max(500.0 / nominal_srate);
    let breaks: Vec<bool> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).abs() > threshold)
        .collect();
    let segments = segments_between(&breaks);
    for &(a, b) in &segments {
        // Least squares t = c0 + c1 * index, in centred form.
        let count = (b - a + 1) as f64;
        let mean_i = (a + b) as f64 / 2.0;
        let mean_t = stamps[a..=b].iter().sum::<f64>() / count;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, t) in stamps[a..=b].iter().enumerate() {
            let di = (a + i) as f64 - mean_i;
            sxy += di * (t - mean_t);
            sxx += di * di;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        for (i, t) in stamps[a..=b].iter_mut().enumerate() {
            *t = mean_t + slope * ((a + i) as f64 - mean_i);
        }
    }
    let (mut samples, mut duration) = (0.0, 0.0);
    for &(a, b) in &segments {
        samples += (b - a) as f64;
        duration += stamps[b] - stamps[a];
    }
    let effective = if samples > 0.0 && duration > 0.0 {
        samples / duration
    } else {
        0.0
    };
    (segments, effective)
}
