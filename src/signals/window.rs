//! Cutting a multichannel stream into fixed windows (length and hop in samples) with
//! bounded memory: at most `context` samples per channel are kept (the window itself, or a
//! longer look-back for detectors that need one, e.g. a 0.05 Hz EDA split), whatever the
//! chunk sizes. The windows produced do not depend on how the stream was chunked.

use std::collections::VecDeque;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("window length and hop must be at least 1 sample (got length {len}, hop {hop})")]
    Size { len: usize, hop: usize },
    #[error("a multichannel stream needs at least one channel")]
    NoChannels,
    #[error("chunk of {samples} values is not a whole number of {channels}-channel samples")]
    Ragged { samples: usize, channels: usize },
    #[error("cannot allocate the stream's sample buffer: {0}; the server is short of memory")]
    Alloc(String),
}

/// One window [start, start + len): the index of its first sample since the stream began,
/// and the samples of its context, channel-major (one Vec per channel): the up to `context`
/// samples that end where the window ends, starting at sample `context_start`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: u64,
    pub context_start: u64,
    pub channels: Vec<Vec<f64>>,
}

#[derive(Debug, Clone)]
pub struct Windower {
    len: usize,
    hop: usize,
    context: usize,
    /// Per channel, the most recent samples: never more than `context` between pushes,
    /// and at most `context + len` while one is appended.
    buffers: Vec<VecDeque<f64>>,
    /// Samples received so far.
    received: u64,
    /// First sample of the next window.
    next_start: u64,
    /// Scratch for transposing incoming frames, channel-major.
    tile: Vec<f64>,
}

impl Windower {
    pub fn new(channels: usize, len: usize, hop: usize) -> Result<Self, WindowError> {
        Self::with_context(channels, len, hop, len)
    }

    /// Windows that carry up to `context` samples (at least `len`) ending at the window's
    /// end; the first windows of a stream carry what has arrived since its start.
    pub fn with_context(
        channels: usize,
        len: usize,
        hop: usize,
        context: usize,
    ) -> Result<Self, WindowError> {
        let context = context.max(len);
        if len == 0 || hop == 0 {
            return Err(WindowError::Size { len, hop });
        }
        if channels == 0 {
            return Err(WindowError::NoChannels);
        }
        // Sized by the client's window and rate (bounded by limits.max_values_held_per_stream
        // before this), so allocated fallibly.
        let mut buffers = Vec::new();
        buffers
            .try_reserve_exact(channels)
            .map_err(|e| WindowError::Alloc(e.to_string()))?;
        for _ in 0..channels {
            let mut buffer = VecDeque::new();
            buffer
                .try_reserve_exact(context)
                .map_err(|e| WindowError::Alloc(e.to_string()))?;
            buffers.push(buffer);
        }
        Ok(Self {
            len,
            hop,
            context,
            buffers,
            received: 0,
            next_start: 0,
            tile: Vec::new(),
        })
    }

    /// Samples held now, per channel (the memory bound: at most the context length).
    pub fn held(&self) -> usize {
        self.buffers[0].len()
    }

    /// A one-channel windower that holds nothing: what an analyzer keeps in place of its
    /// own while that one is out (see `stream.rs`).
    pub fn placeholder() -> Windower {
        Windower::new(1, 1, 1).expect("a valid size")
    }

    /// Samples between window starts.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Appends sample-major interleaved samples and returns the windows they complete, in
    /// order (tests; the analyzers take each window as it completes, [`Self::push_each`]).
    #[cfg(test)]
    pub fn push(&mut self, interleaved: &[f64]) -> Result<Vec<Window>, WindowError> {
        let mut out = Vec::new();
        self.push_each(interleaved, |w| out.push(w))?;
        Ok(out)
    }

    /// Appends sample-major interleaved samples (as LSL and SignalChunk carry them) and
    /// hands each window they complete to `on_window`, in order, as it completes: a chunk
    /// that completes many windows (a hop of one sample) never holds their copies at once.
    pub fn push_each(
        &mut self,
        interleaved: &[f64],
        mut on_window: impl FnMut(Window),
    ) -> Result<(), WindowError> {
        let channels = self.buffers.len();
        if !interleaved.len().is_multiple_of(channels) {
            return Err(WindowError::Ragged {
                samples: interleaved.len(),
                channels,
            });
        }
        let mut frames = interleaved;
        while !frames.is_empty() {
            // Samples before the next window's context (hop > context) are not needed.
            let skip = (self.first_needed().saturating_sub(self.received) as usize)
                .min(frames.len() / channels);
            self.received += skip as u64;
            frames = &frames[skip * channels..];
            // Then up to the end of the next window, one channel at a time: a strided
            // copy per channel instead of a push per sample and channel.
            let window_end = self.next_start + self.len as u64;
            let take = ((window_end - self.received) as usize).min(frames.len() / channels);
            let (now, rest) = frames.split_at(take * channels);
            // Transposed in tiles of 64 frames (64 channels x 64 frames = 32 KiB, within
            // the L1 cache), then appended a channel run at a time (a memcpy).
            for tile in now.chunks(TILE_FRAMES * channels) {
                let frames_in_tile = tile.len() / channels;
                self.tile.resize(tile.len(), 0.0);
                for (f, frame) in tile.chunks_exact(channels).enumerate() {
                    for (c, &v) in frame.iter().enumerate() {
                        self.tile[c * frames_in_tile + f] = v;
                    }
                }
                for (buffer, column) in self
                    .buffers
                    .iter_mut()
                    .zip(self.tile.chunks_exact(frames_in_tile))
                {
                    buffer.extend(column);
                }
            }
            for buffer in &mut self.buffers {
                let excess = buffer.len().saturating_sub(self.context);
                buffer.drain(..excess);
            }
            self.received += take as u64;
            frames = rest;
            if self.received == window_end {
                let held = self.buffers[0].len() as u64;
                on_window(Window {
                    start: self.next_start,
                    context_start: self.received - held,
                    channels: self.buffers.iter().map(contiguous).collect(),
                });
                self.next_start += self.hop as u64;
                // Drop what the next window will not use.
                let keep = (self.received.saturating_sub(self.first_needed())) as usize;
                for buffer in &mut self.buffers {
                    let excess = buffer.len().saturating_sub(keep);
                    buffer.drain(..excess);
                }
            }
        }
        Ok(())
    }

    /// The samples held now, channel-major, and the index of the first of them.
    pub fn held_samples(&self) -> (u64, Vec<Vec<f64>>) {
        let held = self.buffers[0].len() as u64;
        (
            self.received - held,
            self.buffers.iter().map(contiguous).collect(),
        )
    }

    /// First sample the next window's context uses.
    fn first_needed(&self) -> u64 {
        (self.next_start.saturating_add(self.len as u64)).saturating_sub(self.context as u64)
    }
}

const TILE_FRAMES: usize = 64;

/// A ring buffer's samples in order, copied as (at most) two slices.
fn contiguous(buffer: &VecDeque<f64>) -> Vec<f64> {
    let (front, back) = buffer.as_slices();
    let mut samples = Vec::with_capacity(buffer.len());
    samples.extend_from_slice(front);
    samples.extend_from_slice(back);
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_block(
        signal: &[f64],
        channels: usize,
        len: usize,
        hop: usize,
        context: usize,
    ) -> Vec<Window> {
        Windower::with_context(channels, len, hop, context)
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
            extra_context in 0usize..50,
            samples in 0usize..300,
            cuts in proptest::collection::vec(0usize..50, 0..40),
        ) {
            let signal: Vec<f64> = (0..samples * channels).map(|i| (i as f64 * 0.37).sin()).collect();
            let context = len + extra_context;
            let expected = one_block(&signal, channels, len, hop, context);
            let mut windower = Windower::with_context(channels, len, hop, context).unwrap();
            let mut got = Vec::new();
            let mut rest = &signal[..];
            for cut in cuts {
                let take = (cut * channels).min(rest.len());
                got.extend(windower.push(&rest[..take]).unwrap());
                prop_assert!(windower.held() <= context);
                rest = &rest[take..];
            }
            got.extend(windower.push(rest).unwrap());
            prop_assert_eq!(&got, &expected);
            // Every window starts on the hop grid and holds the up-to-`context` samples of
            // each channel that end where it ends.
            for (k, w) in expected.iter().enumerate() {
                prop_assert_eq!(w.start, (k * hop) as u64);
                let end = w.start as usize + len;
                let first = end.saturating_sub(context);
                prop_assert_eq!(w.context_start, first as u64);
                for (c, data) in w.channels.iter().enumerate() {
                    let want: Vec<f64> = (first..end).map(|s| signal[s * channels + c]).collect();
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
