//! Image files in, `RgbImage` out: JPEG, PNG and BMP (the `image` crate with only those
//! codecs), always 8-bit RGB, EXIF orientation applied.
//!
//! Sizes are *displayed* sizes: for EXIF orientations 5–8 (the 90° ones) width and height
//! are those after rotation. `image_size` (header only) and `load_rgb` (full decode) agree,
//! and they agree with what `cv2.imread` returns (ultralytics' `exif_size` differs for the
//! mirrored quarter turns 5 and 7, see `header`), so COCO `width`/`height` written from
//! `image_size` match the pixels the loader later sees.
//! [`read_header`] gives the whole header (format, stored size, orientation).
mod decode;
mod header;

pub use decode::{decode_rgb, load_rgb};
pub use header::{
    ImageFormat, ImageHeader, header_from_bytes, header_from_reader, image_size, read_header,
};
