//! EDF/BDF bytes: any input is read or refused with a message, never a panic. Seeds: the
//! pyedflib test files in .testdata/ (copy them into fuzz/corpus/edf_parse/).
#![no_main]

use affectd::signals::readers::edf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(recording) = edf::parse(bytes) {
        for stream in &recording.streams {
            assert!(stream.rate_hz > 0.0);
            let n = stream.channels[0].samples.len();
            assert!(stream.channels.iter().all(|c| c.samples.len() == n));
        }
    }
});
