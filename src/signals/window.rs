//! Cutting a multichannel stream into fixed windows (length and hop in samples) with
//! bounded memory: at most one window of samples per channel is kept, whatever the chunk
//! sizes. The windows produced do not depend on how the stream was chunked.

use std::collections::VecDeque;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("window length and hop must be at least 1 sample (got length {len}, hop {hop})")]
    Size { len: usize, hop: usize },
    #[error("a multichannel stream needs at least one channel")]
    NoChannels,
    #[error("chunk of {samples} values is not a whole number of {channels}-channel samples")]
    Ragged { samples: usize, channels: usize },
}

/// One window: the index of its first sample since the stream began, and its samples,
/// channel-major (one Vec per channel).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: u64,
    pub channels: Vec<Vec<f64>>,
}

#[derive(Debug, Clone)]
pub struct Windower {
    len: usize,
    hop: usize,
    /// Per channel, the most recent samples (never more than `len`).
    buffers: Vec<VecDeque<f64>>,
    /// Samples received so far.
    received: u64,
    /// First sample of the next window.
    next_start: u64,
}

impl Windower {
    pub fn new(channels: usize, len: usize, hop: usize) -> Result<Self, WindowError> {
        if len == 0 || hop == 0 {
            return Err(WindowError::Size { len, hop });
        }
        if channels == 0 {
            return Err(WindowError::NoChannels);
        }
        Ok(Self {
            len,
            hop,
            buffers: (0..channels)
                .map(|_| VecDeque::with_capacity(len))
                .collect(),
            received: 0,
            next_start: 0,
        })
    }

    /// Samples held now, per channel (the memory bound: at most the window length).
    pub fn held(&self) -> usize {
        self.buffers[0].len()
    }

    /// Appends sample-major interleaved samples (as LSL and SignalChunk carry them) and
    /// returns the windows they complete, in order.
    pub fn push(&mut self, interleaved: &[f64]) -> Result<Vec<Window>, WindowError> {
        let channels = self.buffers.len();
        if !interleaved.len().is_multiple_of(channels) {
            return Err(WindowError::Ragged {
                samples: interleaved.len(),
                channels,
            });
        }
        let mut out = Vec::new();
        for frame in interleaved.chunks_exact(channels) {
            let index = self.received;
            self.received += 1;
            // Samples before the next window's start (hop > length) are not needed.
            if index < self.next_start {
                continue;
            }
            for (buffer, &v) in self.buffers.iter_mut().zip(frame) {
                if buffer.len() == self.len {
                    buffer.pop_front();
                }
                buffer.push_back(v);
            }
            if index + 1 == self.next_start + self.len as u64 {
                out.push(Window {
                    start: self.next_start,
                    channels: self
                        .buffers
                        .iter()
                        .map(|b| b.iter().copied().collect())
                        .collect(),
                });
                self.next_start += self.hop as u64;
                // Drop what the next window will not use.
                let keep = (self.received.saturating_sub(self.next_start)) as usize;
                for buffer in &mut self.buffers {
                    while buffer.len() > keep {
                        buffer.pop_front();
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_block(signal: &[f64], channels: usize, len: usize, hop: usize) -> Vec<Window> {
        Windower::new(channels, len, hop)
            .unwrap()
            .push(signal)
            .unwrap()
    }

    proptest! {
        /// The same stream in random-sized chunks gives exactly the windows of one block,
        /// and never holds more than one window of samples.
        #[test]
        fn windows_do_not_depend_on_chunking(
            channels in 1usize..5,
            len in 1usize..40,
            hop in 1usize..60,
            samples in 0usize..300,
            cuts in proptest::collection::vec(0usize..50, 0..40),
        ) {
            let signal: Vec<f64> = (0..samples * channels).map(|i| (i as f64 * 0.37).sin()).collect();
            let expected = one_block(&signal, channels, len, hop);
            let mut windower = Windower::new(channels, len, hop).unwrap();
            let mut got = Vec::new();
            let mut rest = &signal[..];
            for cut in cuts {
                let take = (cut * channels).min(rest.len());
                got.extend(windower.push(&rest[..take]).unwrap());
                prop_assert!(windower.held() <= len);
                rest = &rest[take..];
            }
            got.extend(windower.push(rest).unwrap());
            prop_assert_eq!(&got, &expected);
            // Every window starts on the hop grid and holds `len` samples of each channel.
            for (k, w) in expected.iter().enumerate() {
                prop_assert_eq!(w.start, (k * hop) as u64);
                let first = w.start as usize;
                for (c, data) in w.channels.iter().enumerate() {
                    let want: Vec<f64> = (first..first + len).map(|s| signal[s * channels + c]).collect();
                    prop_assert_eq!(data, &want);
                }
            }
            let complete = if samples >= len { (samples - len) / hop + 1 } else { 0 };
            prop_assert_eq!(expected.len(), complete);
        }
    }

    #[test]
    fn bad_shapes_are_rejected() {
        assert_eq!(
            Windower::new(2, 0, 1).unwrap_err(),
            WindowError::Size { len: 0, hop: 1 }
        );
        assert_eq!(Windower::new(0, 4, 1).unwrap_err(), WindowError::NoChannels);
        let mut w = Windower::new(3, 4, 2).unwrap();
        assert_eq!(
            w.push(&[1.0; 4]).unwrap_err(),
            WindowError::Ragged {
                samples: 4,
                channels: 3
            }
        );
    }
}
