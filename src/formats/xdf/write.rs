//! Writing XDF 1.0 (the format LabRecorder writes; pyxdf, MNE via pyxdf, and EEGLAB read
//! it). Hand-written: the `xdf` crate only reads.

use std::io::Write;

/// XDF chunk tags (the XDF 1.0 specification).
mod tag {
    pub const FILE_HEADER: u16 = 1;
    pub const STREAM_HEADER: u16 = 2;
    pub const SAMPLES: u16 = 3;
    pub const CLOCK_OFFSET: u16 = 4;
    pub const STREAM_FOOTER: u16 = 6;
}

/// XDF's variable-length integer: a byte giving the width (1, 4 or 8), then the value.
fn varlen(out: &mut Vec<u8>, n: u64) {
    if n < 256 {
        out.extend([1, n as u8]);
    } else if n <= u32::MAX as u64 {
        out.push(4);
        out.extend((n as u32).to_le_bytes());
    } else {
        out.push(8);
        out.extend(n.to_le_bytes());
    }
}

/// Text for an XML element body.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One channel's description.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelHeader {
    pub label: String,
    pub unit: String,
    /// XDF's channel type, e.g. "EEG".
    pub kind: String,
}

/// What a stream header says.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHeader {
    pub name: String,
    /// XDF's stream type: "EEG", "EDA", "ECG", "PPG", "RESP", "Markers", "Misc".
    pub stream_type: String,
    pub channel_count: usize,
    /// Hz; 0 for an irregular stream (markers).
    pub nominal_srate: f64,
    /// A float32 stream, or (false) a string stream.
    pub numeric: bool,
    pub source_id: String,
    /// Seconds, the writer's clock.
    pub created_at: f64,
    /// Empty for a stream without channel descriptions.
    pub channels: Vec<ChannelHeader>,
}

/// Writes XDF chunks in order: the file header first (by [`XdfWriter::new`]), then for each
/// stream its header, sample chunks and clock offsets, and its footer.
pub struct XdfWriter<W: Write> {
    out: W,
}

impl<W: Write> XdfWriter<W> {
    /// Starts a file: the magic bytes and a file header with the given extra XML elements
    /// (already escaped), e.g. `<writer>affectd 0.1</writer>`.
    pub fn new(mut out: W, info_xml: &str) -> std::io::Result<Self> {
        out.write_all(b"XDF:")?;
        let mut writer = Self { out };
        writer.chunk(
            tag::FILE_HEADER,
            format!("<?xml version=\"1.0\"?><info><version>1.0</version>{info_xml}</info>")
                .as_bytes(),
        )?;
        Ok(writer)
    }

    fn chunk(&mut self, tag: u16, content: &[u8]) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(11);
        varlen(&mut head, content.len() as u64 + 2);
        head.extend(tag.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(content)
    }

    pub fn stream_header(&mut self, id: u32, h: &StreamHeader) -> std::io::Result<()> {
        let channels: String = h
            .channels
            .iter()
            .map(|c| {
                format!(
                    "<channel><label>{}</label><unit>{}</unit><type>{}</type></channel>",
                    xml_escape(&c.label),
                    xml_escape(&c.unit),
                    xml_escape(&c.kind)
                )
            })
            .collect();
        let desc = if channels.is_empty() {
            String::new()
        } else {
            format!("<desc><channels>{channels}</channels></desc>")
        };
        let mut content = id.to_le_bytes().to_vec();
        content.extend(
            format!(
                "<?xml version=\"1.0\"?><info><name>{}</name><type>{}</type><channel_count>{}</channel_count><nominal_srate>{}</nominal_srate><channel_format>{}</channel_format><source_id>{}</source_id><created_at>{}</created_at>{desc}</info>",
                xml_escape(&h.name),
                xml_escape(&h.stream_type),
                h.channel_count,
                h.nominal_srate,
                if h.numeric { "float32" } else { "string" },
                xml_escape(&h.source_id),
                h.created_at,
            )
            .as_bytes(),
        );
        self.chunk(tag::STREAM_HEADER, &content)
    }

    /// One chunk of float32 samples: (time stamp, one value per channel) each.
    pub fn numeric_samples<'a>(
        &mut self,
        id: u32,
        samples: impl ExactSizeIterator<Item = (f64, &'a [f32])>,
    ) -> std::io::Result<()> {
        if samples.len() == 0 {
            return Ok(());
        }
        let mut content = id.to_le_bytes().to_vec();
        varlen(&mut content, samples.len() as u64);
        for (t, values) in samples {
            content.push(8);
            content.extend(t.to_le_bytes());
            for v in values {
                content.extend(v.to_le_bytes());
            }
        }
        self.chunk(tag::SAMPLES, &content)
    }

    /// One string sample (a marker).
    pub fn string_sample(&mut self, id: u32, t: f64, text: &str) -> std::io::Result<()> {
        let mut content = id.to_le_bytes().to_vec();
        varlen(&mut content, 1);
        content.push(8);
        content.extend(t.to_le_bytes());
        varlen(&mut content, text.len() as u64);
        content.extend(text.as_bytes());
        self.chunk(tag::SAMPLES, &content)
    }

    /// A clock offset: at `collection_time` (the stream's clock), the recorder's clock was
    /// ahead of the stream's by `offset` seconds.
    pub fn clock_offset(
        &mut self,
        id: u32,
        collection_time: f64,
        offset: f64,
    ) -> std::io::Result<()> {
        let mut content = id.to_le_bytes().to_vec();
        content.extend(collection_time.to_le_bytes());
        content.extend(offset.to_le_bytes());
        self.chunk(tag::CLOCK_OFFSET, &content)
    }

    pub fn stream_footer(
        &mut self,
        id: u32,
        first: f64,
        last: f64,
        count: u64,
    ) -> std::io::Result<()> {
        let mut content = id.to_le_bytes().to_vec();
        content.extend(
            format!(
                "<?xml version=\"1.0\"?><info><first_timestamp>{first}</first_timestamp><last_timestamp>{last}</last_timestamp><sample_count>{count}</sample_count></info>"
            )
            .as_bytes(),
        );
        self.chunk(tag::STREAM_FOOTER, &content)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
