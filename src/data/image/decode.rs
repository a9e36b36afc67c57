//! Full decode to 8-bit RGB with EXIF orientation applied.
//!
//! Conversions (all by the `image` crate): grey → R=G=B; alpha is dropped, not composited
//! (as `cv2.imread(IMREAD_COLOR)` and PIL's `convert("RGB")` do); 16-bit channels are
//! scaled to 8 bits with rounding (`v * 255 / 65535`).
use super::header::jpeg_scan_start;
use crate::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Refuse to allocate more than this for one decoded image (a corrupt header can claim
/// 65535×65535 pixels).
const MAX_DECODED_BYTES: u64 = 1 << 30;

/// Read and decode the image file at `path`. A missing file is an `Error::Io` naming it;
/// a truncated, corrupt or unsupported file is an `Error::Format` naming it.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    let p = path.as_ref();
    let bytes = std::fs::read(p).map_err(|source| Error::Io {
        path: p.to_path_buf(),
        source,
    })?;
    decode_rgb(&bytes, &p.display().to_string())
}

/// Decode an in-memory image; `name` is used in error messages (a path, a zip entry).
pub fn decode_rgb(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let err = |msg: String| Error::Format {
        path: name.to_string(),
        record: "image".into(),
        msg,
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let format = reader
        .format()
        .ok_or_else(|| err("not a JPEG, PNG or BMP file (unrecognised signature)".to_string()))?;
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes, name)?;
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| err(format!("cannot decode {format:?}: {e}")))?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        let (w, h) = decoder.dimensions();
        return Err(err(format!(
            "{w}x{h} pixels is larger than this loader accepts ({} GiB decoded)",
            MAX_DECODED_BYTES >> 30
        )));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| err(format!("cannot read EXIF orientation: {e}")))?;
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| err(format!("cannot decode {format:?} pixels: {e}")))?;
    img.apply_orientation(orientation);
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// The JPEG decoder fills missing scan data with grey instead of failing, so a truncated
/// file would decode "successfully". A complete file has an EOI marker (FF D9) after its
/// first scan; inside entropy-coded data FF is always followed by 00 or a restart marker,
/// so any FF D9 found there is the EOI.
fn check_jpeg_complete(bytes: &[u8], name: &str) -> Result<()> {
    let start = jpeg_scan_start(bytes, name)?;
    let scan = usize::try_from(start)
        .ok()
        .and_then(|o| bytes.get(o..))
        .unwrap_or(&[]);
    // From the end: the EOI is normally the last two bytes.
    if scan.windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(Error::Format {
            path: name.to_string(),
            record: "image".into(),
            msg: "truncated JPEG: no end-of-image marker after the scan data".into(),
        })
    }
}
