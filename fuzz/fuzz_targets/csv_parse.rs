//! CSV text with and without a time column: read or refused, never a panic.
#![no_main]

use affectd::signals::readers::csv::{CsvOptions, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, &[u8])| {
    let (with_rate, bytes) = input;
    let options = CsvOptions {
        rate_hz: with_rate.then_some(250.0),
        kind: None,
    };
    let _ = parse(bytes, &options);
});
