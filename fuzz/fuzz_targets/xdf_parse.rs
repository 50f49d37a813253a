//! XDF bytes, through parsing, clock synchronisation and de-jittering: read or refused,
//! never a panic. Seed: tests/reference/golden/synthetic.xdf.
#![no_main]

use affectd::signals::readers::xdf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(recording) = xdf::parse(bytes) {
        for stream in &recording.streams {
            let n = stream.channels[0].samples.len();
            assert!(stream.channels.iter().all(|c| c.samples.len() == n));
        }
    }
});
