//! Any bytes a client sends as an encoded image: decoding must return an image or an
//! error, never panic, and never allocate past the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small limit keeps each run fast and exercises the too-large path.
    if let Ok(image) = affectd::vision::image::decode(data, 1 << 20) {
        assert!(image.width() > 0 && image.height() > 0);
        assert!(u64::from(image.width()) * u64::from(image.height()) <= 1 << 20);
    }
});
