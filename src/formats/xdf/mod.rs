//! XDF 1.0, read and written in one place: `read` loads LabRecorder files with pyxdf's
//! time-stamp processing; `write` writes the session exports.

mod read;
mod write;

pub use read::{Values, XdfStream, load};
pub use write::{ChannelHeader, StreamHeader, XdfWriter, xml_escape};

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a float32 stream and a marker stream, reads them back: the same values,
    /// labels, units and time stamps.
    #[test]
    fn what_is_written_reads_back_equal() {
        let rate = 250.0;
        let samples: Vec<[f32; 2]> = (0..1000)
            .map(|i| [i as f32 * 0.5 - 3.25, (i as f32).sin() * 40.0])
            .collect();
        let t0 = 1234.5;
        let times: Vec<f64> = (0..samples.len()).map(|i| t0 + i as f64 / rate).collect();
        let mut w = XdfWriter::new(Vec::new(), "<writer>test</writer>").unwrap();
        w.stream_header(
            1,
            &StreamHeader {
                name: "eeg".into(),
                stream_type: "EEG".into(),
                channel_count: 2,
                nominal_srate: rate,
                numeric: true,
                source_id: "test/eeg".into(),
                created_at: 1.0,
                channels: ["F3", "F4"]
                    .map(|l| ChannelHeader {
                        label: l.into(),
                        unit: "uV".into(),
                        kind: "EEG".into(),
                    })
                    .to_vec(),
            },
        )
        .unwrap();
        // Two sample chunks, as a session's chunks are written.
        for part in [0..600, 600..1000] {
            w.numeric_samples(
                1,
                part.clone()
                    .map(|i| (times[i], samples[i].as_slice()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
            .unwrap();
        }
        w.stream_footer(1, times[0], times[999], 1000).unwrap();
        w.stream_header(
            2,
            &StreamHeader {
                name: "Markers".into(),
                stream_type: "Markers".into(),
                channel_count: 1,
                nominal_srate: 0.0,
                numeric: false,
                source_id: "test/markers".into(),
                created_at: 1.0,
                channels: Vec::new(),
            },
        )
        .unwrap();
        w.string_sample(2, 1235.0, "stimulus <a & b>").unwrap();
        w.string_sample(2, 1236.25, "rest").unwrap();
        w.stream_footer(2, 1235.0, 1236.25, 2).unwrap();
        let bytes = w.finish().unwrap();

        let streams = load(&bytes).unwrap();
        assert_eq!(streams.len(), 2);
        let eeg = streams.iter().find(|s| s.name == "eeg").unwrap();
        assert_eq!(eeg.labels, ["F3", "F4"]);
        assert_eq!(eeg.units, ["uV", "uV"]);
        assert_eq!(eeg.nominal_srate, rate);
        let Values::Numeric(rows) = &eeg.values else {
            panic!("numeric stream read as text");
        };
        assert_eq!(rows.len(), 1000);
        for (row, want) in rows.iter().zip(&samples) {
            assert_eq!(row[0], want[0] as f64);
            assert_eq!(row[1], want[1] as f64);
        }
        for (t, want) in eeg.time_stamps.iter().zip(&times) {
            assert!((t - want).abs() < 1e-9, "{t} vs {want}");
        }
        let markers = streams.iter().find(|s| s.name == "Markers").unwrap();
        assert_eq!(
            markers.values,
            Values::Text(vec![vec!["stimulus <a & b>".into()], vec!["rest".into()]])
        );
        assert_eq!(markers.time_stamps, [1235.0, 1236.25]);
    }
}
