//! Video frames through the ffmpeg command-line tools (Debian's `ffmpeg` package, installed by
//! scripts/setup.sh). Decoding in a child process keeps codec crashes out of affectd and
//! needs no libav headers at build time.

use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{Context, bail};
use image::RgbImage;

#[derive(Debug, Clone)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second (average).
    pub fps: f64,
    /// Frame count when the container says; 0 when unknown.
    pub frames: u64,
    /// Duration, s, when the container says.
    pub duration_s: Option<f64>,
}

fn parse_rate(rate: &str) -> Option<f64> {
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (d > 0.0 && n > 0.0).then_some(n / d)
}

pub fn probe(path: &Path) -> anyhow::Result<VideoInfo> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,avg_frame_rate,nb_frames,duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .context(
            "running ffprobe (install ffmpeg: `apt-get install ffmpeg`, or run scripts/setup.sh)",
        )?;
    if !out.status.success() {
        bail!(
            "{}: not a video ffmpeg can read: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::trim))
    };
    let width: u32 = field("width").and_then(|v| v.parse().ok()).unwrap_or(0);
    let height: u32 = field("height").and_then(|v| v.parse().ok()).unwrap_or(0);
    if width == 0 || height == 0 {
        bail!("{}: no video stream found", path.display());
    }
    Ok(VideoInfo {
        width,
        height,
        fps: field("avg_frame_rate").and_then(parse_rate).unwrap_or(30.0),
        frames: field("nb_frames").and_then(|v| v.parse().ok()).unwrap_or(0),
        duration_s: field("duration")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d > 0.0),
    })
}

/// Decoded RGB frames in order.
pub struct Frames {
    child: Child,
    stdout: ChildStdout,
    info: VideoInfo,
    path: String,
}

impl Frames {
    pub fn open(path: &Path, info: VideoInfo) -> anyhow::Result<Self> {
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running ffmpeg (install ffmpeg: `apt-get install ffmpeg`, or run scripts/setup.sh)")?;
        let stdout = child.stdout.take().expect("piped");
        Ok(Self {
            child,
            stdout,
            info,
            path: path.display().to_string(),
        })
    }

    /// The next frame; Ok(None) at the end of the stream.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<RgbImage>> {
        let len = self.info.width as usize * self.info.height as usize * 3;
        let mut buffer = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = self.stdout.read(&mut buffer[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            let status = self.child.wait()?;
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!("{}: ffmpeg failed to decode: {}", self.path, err.trim());
            }
            return Ok(None);
        }
        if filled < len {
            bail!(
                "{}: the last frame is truncated ({filled} of {len} bytes)",
                self.path
            );
        }
        Ok(RgbImage::from_raw(
            self.info.width,
            self.info.height,
            buffer,
        ))
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates() {
        assert_eq!(
            parse_rate("30000/1001").map(|r| (r * 1000.0).round()),
            Some(29970.0)
        );
        assert_eq!(parse_rate("25"), Some(25.0));
        assert_eq!(parse_rate("0/0"), None);
    }
}
