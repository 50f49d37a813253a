//! Turning client bytes into an 8-bit RGB frame, with every way it can go wrong reported
//! as a clear error (transports report these as invalid input).

use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// Default limit: 4096 x 4096 pixels. Larger images are refused before decoding, so a
/// decompression bomb (a tiny PNG that claims a huge size) costs nothing.
pub const DEFAULT_MAX_PIXELS: u64 = 4096 * 4096;

/// Decoded bytes in flight across the process (every request, session and explanation
/// decoding at once): each decode reserves its decoder's output plus the RGB8 copy before
/// decoding, and waits while the reservation does not fit. Fifty concurrent 4096x4096
/// 16-bit PNGs (150 MB each decoded, 130 KB each sent) otherwise peak at 7.5 GB.
/// Hand-written: a weighted blocking semaphore of a few lines (decodes run on blocking
/// threads; tokio's is async).
struct DecodeBudget {
    used: std::sync::Mutex<u64>,
    room: std::sync::Condvar,
    capacity: std::sync::atomic::AtomicU64,
}

static DECODE_BUDGET: DecodeBudget = DecodeBudget {
    used: std::sync::Mutex::new(0),
    room: std::sync::Condvar::new(),
    capacity: std::sync::atomic::AtomicU64::new(DEFAULT_MAX_DECODING_BYTES),
};

/// Default of `vision.max_decoding_bytes`: 1 GiB.
pub const DEFAULT_MAX_DECODING_BYTES: u64 = 1 << 30;

/// Sets the process's decode budget (`vision.max_decoding_bytes`).
pub fn set_decoding_budget(bytes: u64) {
    DECODE_BUDGET
        .capacity
        .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    DECODE_BUDGET.room.notify_all();
}

/// Room for `bytes` of decoded pixels, held until dropped. One decode larger than the
/// whole budget waits for the budget to be free and then runs alone.
struct Reservation(u64);

impl Reservation {
    fn take(bytes: u64) -> Reservation {
        let budget = &DECODE_BUDGET;
        let mut used = budget.used.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let capacity = budget.capacity.load(std::sync::atomic::Ordering::Relaxed);
            let bytes = bytes.min(capacity);
            if *used + bytes <= capacity {
                *used += bytes;
                return Reservation(bytes);
            }
            used = budget.room.wait(used).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let budget = &DECODE_BUDGET;
        let mut used = budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.0;
        budget.room.notify_all();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    Rgb8,
    Bgr8,
    Rgba8,
    Bgra8,
    Gray8,
}

impl PixelLayout {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelLayout::Rgb8 | PixelLayout::Bgr8 => 3,
            PixelLayout::Rgba8 | PixelLayout::Bgra8 => 4,
            PixelLayout::Gray8 => 1,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("the bytes are not a JPEG or PNG image ({0})")]
    UnknownFormat(String),
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    #[error("the image has zero size ({width}x{height})")]
    ZeroSized { width: u32, height: u32 },
    #[error("the image is {width}x{height} = {pixels} pixels, over the limit of {limit} pixels")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error(
        "raw pixel buffer has {actual} bytes, but {width}x{height} {layout:?} with a stride of {stride} bytes needs {expected}"
    )]
    RawLength {
        width: u32,
        height: u32,
        layout: PixelLayout,
        stride: usize,
        expected: usize,
        actual: usize,
    },
    #[error("raw stride {stride} bytes is smaller than one row ({row} bytes)")]
    RawStride { stride: usize, row: usize },
    #[error("raw pixel format is not set (RGB8, BGR8, RGBA8, BGRA8 or GRAY8)")]
    RawFormat,
}

fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    Ok(())
}

/// Decodes JPEG or PNG bytes to RGB8. Grayscale, 16-bit and alpha images are converted
/// (alpha is dropped, 16-bit is scaled to 8-bit) rather than refused.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format =
        image::guess_format(bytes).map_err(|e| ImageError::UnknownFormat(e.to_string()))?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(ImageError::UnknownFormat(format!(
            "{format:?} is not supported"
        )));
    }
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes)?;
    }
    let mut reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    // The image crate's own allocation limit is a second guard behind ours.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, max_pixels)?;
    let rgb8 = u64::from(width) * u64::from(height) * 3;
    let _room = Reservation::take(decoder.total_bytes().saturating_add(rgb8));
    let image = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    Ok(image.into_rgb8())
}

/// The JPEG decoder fills a truncated scan with grey rather than failing; a frame cut off
/// in transit must be an error, not a half-grey face. Walks the marker segments to the
/// first scan, then requires the end-of-image marker after it. (Inside entropy-coded data
/// 0xFF is always stuffed, so FF D9 there can only be the real EOI; a thumbnail's EOI sits
/// inside an APPn segment, which the walk skips.)
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), ImageError> {
    let truncated = || {
        ImageError::Corrupt("truncated JPEG: the data ends before the end-of-image marker".into())
    };
    let mut pos = 2; // after SOI
    loop {
        // Skip fill bytes before a marker.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if bytes.get(pos) != Some(&0xFF) {
            return Err(if pos >= bytes.len() {
                truncated()
            } else {
                ImageError::Corrupt("malformed JPEG marker".into())
            });
        }
        let marker = *bytes.get(pos + 1).ok_or_else(truncated)?;
        match marker {
            0xD9 => {
                return Err(ImageError::Corrupt(
                    "JPEG ends before any image scan".into(),
                ));
            }
            0xDA => {
                let scan = &bytes[pos..];
                return if scan.windows(2).any(|w| w == [0xFF, 0xD9]) {
                    Ok(())
                } else {
                    Err(truncated())
                };
            }
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let len = bytes.get(pos + 2..pos + 4).ok_or_else(truncated)?;
                pos += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
}

/// An image as a client sends it: encoded bytes, or raw pixels with their layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageInput {
    /// JPEG or PNG bytes.
    Encoded(Vec<u8>),
    /// Uncompressed rows, top to bottom.
    Raw {
        pixels: Vec<u8>,
        width: u32,
        height: u32,
        /// None when the client named no layout this version knows.
        layout: Option<PixelLayout>,
        /// Bytes per row; 0 = packed.
        stride: usize,
    },
}

impl ImageInput {
    /// Decodes to RGB8, refusing images over `max_pixels` before decoding.
    pub fn decode(&self, max_pixels: u64) -> Result<RgbImage, ImageError> {
        match self {
            ImageInput::Encoded(bytes) => decode(bytes, max_pixels),
            ImageInput::Raw {
                pixels,
                width,
                height,
                layout,
                stride,
            } => from_raw(
                pixels,
                *width,
                *height,
                layout.ok_or(ImageError::RawFormat)?,
                *stride,
                max_pixels,
            ),
        }
    }
}

/// Copies a raw buffer (rows top to bottom, `stride` bytes apart; 0 = packed) to RGB8.
pub fn from_raw(
    pixels: &[u8],
    width: u32,
    height: u32,
    layout: PixelLayout,
    stride: usize,
    max_pixels: u64,
) -> Result<RgbImage, ImageError> {
    check_size(width, height, max_pixels)?;
    let bpp = layout.bytes_per_pixel();
    let row = width as usize * bpp;
    let stride = if stride == 0 { row } else { stride };
    if stride < row {
        return Err(ImageError::RawStride { stride, row });
    }
    // The last row need not be padded to a full stride.
    let expected = stride * (height as usize - 1) + row;
    if pixels.len() != expected && pixels.len() != stride * height as usize {
        return Err(ImageError::RawLength {
            width,
            height,
            layout,
            stride,
            expected,
            actual: pixels.len(),
        });
    }
    let mut out = RgbImage::new(width, height);
    for (y, out_row) in out.chunks_exact_mut(width as usize * 3).enumerate() {
        let src = &pixels[y * stride..y * stride + row];
        for (dst, px) in out_row.chunks_exact_mut(3).zip(src.chunks_exact(bpp)) {
            let rgb = match layout {
                PixelLayout::Rgb8 | PixelLayout::Rgba8 => [px[0], px[1], px[2]],
                PixelLayout::Bgr8 | PixelLayout::Bgra8 => [px[2], px[1], px[0]],
                PixelLayout::Gray8 => [px[0]; 3],
            };
            dst.copy_from_slice(&rgb);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(image: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut bytes), format)
            .unwrap();
        bytes
    }

    #[test]
    fn decodes_rgb_gray_16bit_and_alpha() {
        let rgb =
            image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 7]));
        let back = decode(
            &encode(rgb.clone().into(), ImageFormat::Png),
            DEFAULT_MAX_PIXELS,
        )
        .unwrap();
        assert_eq!(back, rgb);

        let gray = image::GrayImage::from_fn(3, 2, |x, _| image::Luma([x as u8 * 50]));
        let back = decode(&encode(gray.into(), ImageFormat::Png), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(back.get_pixel(2, 1).0, [100, 100, 100]);

        let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(2, 2, |_, _| {
            image::Luma([65535u16])
        });
        let back = decode(
            &encode(image::DynamicImage::ImageLuma16(gray16), ImageFormat::Png),
            DEFAULT_MAX_PIXELS,
        )
        .unwrap();
        assert_eq!(back.get_pixel(0, 0).0, [255, 255, 255]);

        let rgba = image::RgbaImage::from_fn(2, 2, |_, _| image::Rgba([1, 2, 3, 0]));
        let back = decode(&encode(rgba.into(), ImageFormat::Png), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(back.get_pixel(1, 1).0, [1, 2, 3]);

        let jpeg = encode(
            image::RgbImage::from_pixel(16, 16, image::Rgb([200, 100, 50])).into(),
            ImageFormat::Jpeg,
        );
        let back = decode(&jpeg, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(back.dimensions(), (16, 16));
    }

    #[test]
    fn refuses_garbage_truncation_and_bombs() {
        assert_eq!(decode(b"", DEFAULT_MAX_PIXELS), Err(ImageError::Empty));
        assert!(matches!(
            decode(b"hello world", DEFAULT_MAX_PIXELS),
            Err(ImageError::UnknownFormat(_))
        ));
        let png = encode(
            image::RgbImage::from_pixel(64, 64, image::Rgb([9, 9, 9])).into(),
            ImageFormat::Png,
        );
        assert!(matches!(
            decode(&png[..png.len() / 2], DEFAULT_MAX_PIXELS),
            Err(ImageError::Corrupt(_))
        ));
        assert!(matches!(
            decode(&png, 64 * 63),
            Err(ImageError::TooLarge { .. })
        ));
        // A PNG header that claims 100000 x 100000 pixels: refused from the header alone.
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            decode(&bomb, DEFAULT_MAX_PIXELS),
            Err(ImageError::TooLarge { .. }) | Err(ImageError::Corrupt(_))
        ));
    }

    #[test]
    fn raw_buffers_are_checked_and_converted() {
        let bgr = [1u8, 2, 3, 4, 5, 6];
        let image = from_raw(&bgr, 2, 1, PixelLayout::Bgr8, 0, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(image.as_raw(), &[3, 2, 1, 6, 5, 4]);
        let padded = [1u8, 2, 3, 0, 4, 5, 6, 0];
        let image = from_raw(&padded, 1, 2, PixelLayout::Rgb8, 4, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(image.as_raw(), &[1, 2, 3, 4, 5, 6]);
        let gray = from_raw(&[7, 8], 2, 1, PixelLayout::Gray8, 0, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(gray.as_raw(), &[7, 7, 7, 8, 8, 8]);
        assert!(matches!(
            from_raw(&bgr[..5], 2, 1, PixelLayout::Bgr8, 0, DEFAULT_MAX_PIXELS),
            Err(ImageError::RawLength {
                expected: 6,
                actual: 5,
                ..
            })
        ));
        assert!(matches!(
            from_raw(&[], 0, 1, PixelLayout::Rgb8, 0, DEFAULT_MAX_PIXELS),
            Err(ImageError::ZeroSized { .. })
        ));
        assert!(matches!(
            from_raw(&bgr, 2, 1, PixelLayout::Bgr8, 3, DEFAULT_MAX_PIXELS),
            Err(ImageError::RawStride { .. })
        ));
    }
}
