//! Image size from the file header only, orientation-aware, without decoding pixels.
//!
//! JPEG: a small marker walk reads SOF (size) and the APP1 Exif segment (orientation) and
//! stops at the first scan, skipping every other segment by seeking, so a file costs a few
//! KB of reads however large it is. PNG and BMP: the `image` crate's decoders read only
//! their headers (PNG: the chunks before the first IDAT, where eXIf must be).
use crate::{Error, Result};
use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

pub(crate) const JPEG_SOI: [u8; 2] = [0xFF, 0xD8];

/// Displayed `(width, height)` of the image at `path`: EXIF orientations 5–8 swap the
/// stored dimensions, exactly as `load_rgb` does. Reads headers only.
pub fn image_size(path: impl AsRef<Path>) -> Result<(u32, u32)> {
    let p = path.as_ref();
    let name = p.display().to_string();
    let io = |source| Error::Io {
        path: p.to_path_buf(),
        source,
    };
    let mut r = BufReader::with_capacity(16 * 1024, File::open(p).map_err(io)?);
    let is_jpeg = r.fill_buf().map_err(io)?.starts_with(&JPEG_SOI);
    let (w, h, orientation) = if is_jpeg {
        let j = jpeg_scan(&mut r, &name)?;
        (j.width, j.height, j.orientation)
    } else {
        let err = |msg: String| fmt_err(&name, msg);
        let mut dec = ImageReader::new(r)
            .with_guessed_format()
            .map_err(|e| err(format!("cannot read: {e}")))?
            .into_decoder()
            .map_err(|e| err(format!("cannot read the header: {e}")))?;
        let (w, h) = dec.dimensions();
        let o = dec
            .orientation()
            .map_err(|e| err(format!("cannot read EXIF orientation: {e}")))?;
        (w, h, o)
    };
    Ok(displayed_size(w, h, orientation))
}

fn displayed_size(w: u32, h: u32, o: Orientation) -> (u32, u32) {
    match o {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (h, w),
        _ => (w, h),
    }
}

fn fmt_err(name: &str, msg: impl Into<String>) -> Error {
    Error::Format {
        path: name.to_string(),
        record: "image header".into(),
        msg: msg.into(),
    }
}

/// What the marker walk found before the first scan.
pub(crate) struct JpegHeader {
    /// Stored (not rotated) size from the SOF segment.
    pub width: u32,
    pub height: u32,
    /// From the last APP1 Exif segment (the one the decoder also uses); none → identity.
    pub orientation: Orientation,
    /// Byte offset just after the first SOS marker's segment header, where scan data begins.
    pub sos_offset: u64,
}

/// Walk JPEG markers from SOI to the first SOS.
pub(crate) fn jpeg_scan<R: Read + Seek>(r: &mut BufReader<R>, name: &str) -> Result<JpegHeader> {
    let ioerr = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            fmt_err(
                name,
                "truncated JPEG header (file ends before the first scan)",
            )
        } else {
            fmt_err(name, format!("cannot read: {e}"))
        }
    };
    let mut pos: u64 = 0;
    let read = |r: &mut BufReader<R>, buf: &mut [u8], pos: &mut u64| -> Result<()> {
        r.read_exact(buf).map_err(ioerr)?;
        *pos += buf.len() as u64;
        Ok(())
    };
    let mut soi = [0u8; 2];
    read(r, &mut soi, &mut pos)?;
    if soi != JPEG_SOI {
        return Err(fmt_err(name, "not a JPEG file (no SOI marker)"));
    }
    let mut size: Option<(u32, u32)> = None;
    let mut orientation = Orientation::NoTransforms;
    loop {
        // A marker is FF followed by a non-FF code; extra FF bytes are fill.
        let mut b = [0u8; 1];
        read(r, &mut b, &mut pos)?;
        if b[0] != 0xFF {
            return Err(fmt_err(
                name,
                format!("corrupt JPEG: expected a marker at byte {}", pos - 1),
            ));
        }
        let mut code = 0xFF;
        while code == 0xFF {
            read(r, &mut b, &mut pos)?;
            code = b[0];
        }
        // Standalone markers carry no length.
        if code == 0x01 || (0xD0..=0xD7).contains(&code) {
            continue;
        }
        if code == 0xD9 {
            return Err(fmt_err(name, "corrupt JPEG: end of image before any scan"));
        }
        let mut len = [0u8; 2];
        read(r, &mut len, &mut pos)?;
        let len = u16::from_be_bytes(len) as usize;
        if len < 2 {
            return Err(fmt_err(
                name,
                format!("corrupt JPEG: segment FF{code:02X} has length {len}"),
            ));
        }
        let body = len - 2;
        match code {
            0xDA => {
                let (width, height) =
                    size.ok_or_else(|| fmt_err(name, "corrupt JPEG: scan before any SOF"))?;
                return Ok(JpegHeader {
                    width,
                    height,
                    orientation,
                    sos_offset: pos + body as u64,
                });
            }
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(code, 0xC4 | 0xC8 | 0xCC) => {
                let mut s = vec![0u8; body];
                read(r, &mut s, &mut pos)?;
                if s.len() < 5 {
                    return Err(fmt_err(name, "corrupt JPEG: SOF segment too short"));
                }
                let h = u16::from_be_bytes([s[1], s[2]]) as u32;
                let w = u16::from_be_bytes([s[3], s[4]]) as u32;
                if w == 0 || h == 0 {
                    return Err(fmt_err(name, format!("JPEG declares a {w}x{h} image")));
                }
                size = Some((w, h));
            }
            0xE1 => {
                let mut s = vec![0u8; body];
                read(r, &mut s, &mut pos)?;
                if let Some(tiff) = s.strip_prefix(b"Exif\0\0") {
                    // Same parser the decoder uses; an unreadable tag means identity there too.
                    orientation =
                        Orientation::from_exif_chunk(tiff).unwrap_or(Orientation::NoTransforms);
                }
            }
            _ => {
                r.seek_relative(body as i64)
                    .map_err(|e| fmt_err(name, format!("cannot read: {e}")))?;
                pos += body as u64;
            }
        }
    }
}
