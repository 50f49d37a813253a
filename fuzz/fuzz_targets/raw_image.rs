//! Raw pixel buffers with arbitrary dimensions, layouts and strides.
#![no_main]

use affectd::vision::image::{PixelLayout, from_raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, u8, u16, Vec<u8>)| {
    let (width, height, layout, stride, pixels) = input;
    let layout = match layout % 5 {
        0 => PixelLayout::Rgb8,
        1 => PixelLayout::Bgr8,
        2 => PixelLayout::Rgba8,
        3 => PixelLayout::Bgra8,
        _ => PixelLayout::Gray8,
    };
    if let Ok(image) = from_raw(&pixels, u32::from(width), u32::from(height), layout, usize::from(stride), 1 << 22) {
        assert_eq!((image.width(), image.height()), (u32::from(width), u32::from(height)));
    }
});
