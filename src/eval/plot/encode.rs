//! Base64 and PNG data URIs, so images travel inside the page (no files beside it).
use crate::{Error, Result};
use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, with `=` padding).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `data:image/png;base64,...` for raw 8-bit pixels (`channels` = 3 for RGB, 4 for RGBA).
pub fn png_data_uri(pixels: &[u8], width: u32, height: u32, channels: u8) -> Result<String> {
    let color = match channels {
        3 => ExtendedColorType::Rgb8,
        4 => ExtendedColorType::Rgba8,
        _ => {
            return Err(Error::msg(format!(
                "png_data_uri: {channels} channels (want 3 or 4)"
            )));
        }
    };
    let want = u64::from(width) * u64::from(height) * u64::from(channels);
    if pixels.len() as u64 != want || width == 0 || height == 0 {
        return Err(Error::msg(format!(
            "png_data_uri: {} bytes for a {width}×{height}×{channels} image (want {want}, non-empty)",
            pixels.len()
        )));
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(pixels, width, height, color)
        .map_err(|e| Error::msg(format!("PNG encoding of a {width}×{height} image: {e}")))?;
    Ok(format!("data:image/png;base64,{}", base64(&png)))
}
