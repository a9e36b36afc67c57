//! Image width and height from the file header alone (JPEG, PNG, BMP), never decoding
//! pixels: converting a 10 000-image dataset must not decode 10 000 images. Hand-written
//! parsers (fuzzed: `fuzz/fuzz_targets/image_header.rs`) that skip every segment they do
//! not need by seeking, so a file costs a few KiB of reads however large it is.
//!
//! The size reported is the *displayed* size: an EXIF orientation of 5–8 (a quarter turn,
//! with or without a mirror) swaps width and height, because our image loader decodes with
//! the orientation applied and COCO `width`/`height` must describe those pixels. (Ultralytics'
//! `exif_size` swaps only for 6 and 8; 5 and 7 are the mirrored quarter turns and are
//! displayed turned as well, which is what PIL's `exif_transpose` and the `image` crate do.)
//! The orientation is read where the `image` crate's decoders read it, so sizes agree with
//! [`super::load_rgb`]: the *last* EXIF APP1 segment before a JPEG's first scan (its JPEG
//! decoder keeps the last one it meets), the `eXIf` chunk of a PNG (before the image data);
//! BMP has none.
//!
//! The format is taken from the file's magic bytes, not its extension.
use crate::{Error, Result};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// A container format we read headers of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Bmp,
}

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: ImageFormat,
    /// Stored (encoded) size, before orientation.
    pub stored_width: u32,
    pub stored_height: u32,
    /// EXIF orientation 1–8 (1 when absent or invalid).
    pub orientation: u8,
}

impl ImageHeader {
    /// `(width, height)` as displayed: swapped for orientations 5–8.
    pub fn display_size(&self) -> (u32, u32) {
        if self.orientation >= 5 {
            (self.stored_height, self.stored_width)
        } else {
            (self.stored_width, self.stored_height)
        }
    }
}

/// Displayed `(width, height)` of the image at `path`: `read_header(path)?.display_size()`,
/// the size [`super::load_rgb`] decodes to. Reads headers only.
pub fn image_size(path: impl AsRef<Path>) -> Result<(u32, u32)> {
    Ok(read_header(path)?.display_size())
}

/// Reads the header of the image at `path` (a few KiB at most; a JPEG's EXIF segment is
/// at most 64 KiB). A missing file is an `Error::Io`; anything wrong with the content is an
/// `Error::Format` naming the file.
pub fn read_header(path: impl AsRef<Path>) -> Result<ImageHeader> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    header_from_reader(&mut BufReader::with_capacity(4096, file))
        .map_err(|msg| header_error(&path.display().to_string(), msg))
}

/// The header of an image held in memory (the same parser; used by tests and the fuzzer).
pub fn header_from_bytes(bytes: &[u8]) -> std::result::Result<ImageHeader, String> {
    header_from_reader(&mut std::io::Cursor::new(bytes))
}

/// Parses a header from a seekable reader positioned at the start of the file; the error
/// says what is wrong.
pub fn header_from_reader<R: Read + Seek>(r: &mut R) -> std::result::Result<ImageHeader, String> {
    let mut magic = [0u8; 8];
    let n = read_up_to(r, &mut magic)?;
    let h = match &magic[..n] {
        [0xFF, 0xD8, 0xFF, ..] => jpeg(r)?.header,
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A] => png(r)?,
        [b'B', b'M', ..] => bmp(r)?,
        [] => return Err("empty file".into()),
        _ => return Err("not a JPEG, PNG or BMP file (unknown magic bytes)".into()),
    };
    if h.stored_width == 0 || h.stored_height == 0 {
        return Err(format!(
            "header gives a zero size ({}x{})",
            h.stored_width, h.stored_height
        ));
    }
    Ok(h)
}

/// Byte offset in a JPEG file where the first scan's entropy-coded data begins (just past
/// the first SOS segment), for the decoder's completeness check. Errors are those of
/// [`read_header`], with `name` as the file.
pub(crate) fn jpeg_scan_start(bytes: &[u8], name: &str) -> Result<u64> {
    let mut r = std::io::Cursor::new(bytes);
    let magic = bytes.get(..3);
    if magic != Some(&[0xFF, 0xD8, 0xFF][..]) {
        return Err(header_error(name, "not a JPEG file (no SOI marker)".into()));
    }
    jpeg(&mut r)
        .map(|j| j.scan_start)
        .map_err(|msg| header_error(name, msg))
}

fn header_error(name: &str, msg: String) -> Error {
    Error::Format {
        path: name.to_string(),
        record: "header".into(),
        msg,
    }
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::result::Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    Ok(n)
}

fn exact<R: Read, const N: usize>(r: &mut R, what: &str) -> std::result::Result<[u8; N], String> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(|e| eof(e, what))?;
    Ok(b)
}

fn eof(e: std::io::Error, what: &str) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        format!("truncated: the file ends inside the {what}")
    } else {
        format!("read failed in the {what}: {e}")
    }
}

/// Skips `n` bytes. `seek_relative` keeps a `BufReader`'s buffer when the target is inside
/// it (a plain seek would drop it and cost a read per skipped segment).
fn skip<R: Seek>(r: &mut R, n: u64, what: &str) -> std::result::Result<(), String> {
    let n = i64::try_from(n).map_err(|_| format!("{what}: length out of range"))?;
    r.seek_relative(n)
        .map_err(|e| format!("seek failed in the {what}: {e}"))
}

/// A JPEG's header and where its first scan's data starts.
struct Jpeg {
    header: ImageHeader,
    scan_start: u64,
}

/// JPEG: walk the marker segments (each names its own length) from SOI to the first SOS,
/// as the `image` crate's decoder does: the size from the frame header (SOFn), the
/// orientation from the last EXIF APP1 on the way. Skipping everything else by seeking.
fn jpeg<R: Read + Seek>(r: &mut R) -> std::result::Result<Jpeg, String> {
    r.seek(SeekFrom::Start(2))
        .map_err(|e| format!("seek failed: {e}"))?;
    let mut size: Option<(u16, u16)> = None;
    let mut orientation = 1;
    loop {
        // A marker is 0xFF, any number of 0xFF fill bytes, then the code. Stray bytes
        // before it are skipped, as libjpeg does (with a warning) and decoders accept.
        while exact::<_, 1>(r, "JPEG marker list")? != [0xFF] {}
        let mut code = 0xFF;
        while code == 0xFF {
            [code] = exact::<_, 1>(r, "JPEG marker list")?;
        }
        match code {
            // Stand-alone markers carry no length; a stuffed 0xFF00 is not a marker.
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err("JPEG: a second start-of-image marker".into()),
            0xD9 | 0xDA if size.is_none() => {
                return Err("JPEG: no frame header (SOFn) before the image data".into());
            }
            0xD9 => return Err("JPEG: end of image before the first scan".into()),
            _ => {}
        }
        let len = u16::from_be_bytes(exact::<_, 2>(r, "JPEG segment length")?);
        let body = u64::from(len)
            .checked_sub(2)
            .ok_or_else(|| format!("JPEG: segment 0xFF{code:02X} has length {len} (< 2)"))?;
        match code {
            0xDA => {
                let (width, height) = size.unwrap_or_default();
                let at = r
                    .stream_position()
                    .map_err(|e| format!("seek failed: {e}"))?;
                return Ok(Jpeg {
                    header: ImageHeader {
                        format: ImageFormat::Jpeg,
                        stored_width: width.into(),
                        stored_height: height.into(),
                        orientation,
                    },
                    scan_start: at + body,
                });
            }
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(code, 0xC4 | 0xC8 | 0xCC) => {
                if size.is_some() {
                    // The decoder refuses such a file; say so now rather than at load time.
                    return Err("JPEG: a second frame header (SOFn) before the first scan".into());
                }
                if body < 5 {
                    return Err(format!("JPEG: frame header of {body} bytes (< 5)"));
                }
                let f = exact::<_, 5>(r, "JPEG frame header")?;
                let height = u16::from_be_bytes([f[1], f[2]]);
                let width = u16::from_be_bytes([f[3], f[4]]);
                if height == 0 {
                    // Height given later by a DNL marker: legal, vanishingly rare, and
                    // only known after the first scan, i.e. not from the header.
                    return Err("JPEG: height 0 in the frame header (DNL) is not supported".into());
                }
                size = Some((width, height));
                skip(r, body - 5, "JPEG frame header")?;
            }
            // The decoder takes an APP1 as EXIF when its body is longer than the 6-byte
            // "Exif\0\0" tag, and a later one replaces an earlier one.
            0xE1 if body > 6 => {
                let tag = exact::<_, 6>(r, "JPEG APP1 segment")?;
                if &tag == b"Exif\0\0" {
                    let mut tiff = vec![0u8; (body - 6) as usize];
                    r.read_exact(&mut tiff)
                        .map_err(|e| eof(e, "JPEG APP1 segment"))?;
                    orientation = exif_orientation(&tiff);
                } else {
                    skip(r, body - 6, "JPEG APP1 segment")?;
                }
            }
            _ => skip(r, body, "JPEG segment")?,
        }
    }
}

/// PNG: IHDR must be the first chunk; then look for `eXIf` in the chunks before the first
/// `IDAT` (the PNG spec puts it there), skipping each chunk's data by its length.
fn png<R: Read + Seek>(r: &mut R) -> std::result::Result<ImageHeader, String> {
    let ihdr = exact::<_, 16>(r, "PNG IHDR chunk")?;
    if &ihdr[4..8] != b"IHDR" {
        return Err("PNG: the first chunk is not IHDR".into());
    }
    let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
    let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
    let ihdr_len = u32::from_be_bytes([ihdr[0], ihdr[1], ihdr[2], ihdr[3]]);
    if ihdr_len != 13 {
        return Err(format!("PNG: IHDR length {ihdr_len} (must be 13)"));
    }
    // Rest of IHDR (5 bytes) and its CRC (4).
    skip(r, 9, "PNG IHDR chunk")?;
    let mut orientation = 1;
    loop {
        let mut head = [0u8; 8];
        if read_up_to(r, &mut head)? < 8 {
            break; // The size is known; a short tail is the decoder's business.
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        match &head[4..8] {
            b"IDAT" | b"IEND" => break,
            b"eXIf" => {
                let mut data = vec![0u8; len.min(1 << 20) as usize];
                if read_up_to(r, &mut data)? == data.len() {
                    orientation = exif_orientation(&data);
                }
                break;
            }
            _ => skip(r, u64::from(len) + 4, "PNG chunk")?,
        }
    }
    Ok(ImageHeader {
        format: ImageFormat::Png,
        stored_width: width,
        stored_height: height,
        orientation,
    })
}

/// BMP: 14-byte file header, then the DIB header whose size tells its kind:
/// BITMAPCOREHEADER (12 bytes, u16 sizes) or BITMAPINFOHEADER and later (≥ 40, i32 sizes,
/// a negative height meaning rows stored top-down).
fn bmp<R: Read + Seek>(r: &mut R) -> std::result::Result<ImageHeader, String> {
    r.seek(SeekFrom::Start(14))
        .map_err(|e| format!("seek failed: {e}"))?;
    let dib = u32::from_le_bytes(exact::<_, 4>(r, "BMP DIB header")?);
    let (width, height) = match dib {
        12 => {
            let b = exact::<_, 4>(r, "BMP core header")?;
            (
                u32::from(u16::from_le_bytes([b[0], b[1]])),
                u32::from(u16::from_le_bytes([b[2], b[3]])),
            )
        }
        40.. => {
            let b = exact::<_, 8>(r, "BMP info header")?;
            let w = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let h = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            if w < 0 {
                return Err(format!("BMP: negative width {w}"));
            }
            (w.unsigned_abs(), h.unsigned_abs())
        }
        _ => return Err(format!("BMP: unknown DIB header size {dib}")),
    };
    Ok(ImageHeader {
        format: ImageFormat::Bmp,
        stored_width: width,
        stored_height: height,
        orientation: 1,
    })
}

/// Orientation (tag 0x0112, one SHORT) from IFD0 of a TIFF-structured EXIF block; 1 when
/// absent or out of range. Same rule as the `image` crate's `Orientation::from_exif_chunk`
/// (which reads whole 12-byte entries), so sizes agree with decoding.
fn exif_orientation(tiff: &[u8]) -> u8 {
    let big = match tiff.get(..4) {
        Some([0x49, 0x49, 42, 0]) => false,
        Some([0x4D, 0x4D, 0, 42]) => true,
        _ => return 1,
    };
    let u16_at = |o: usize| {
        let b = tiff.get(o..o.checked_add(2)?)?;
        Some(if big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |o: usize| {
        let b = tiff.get(o..o.checked_add(4)?)?;
        Some(if big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    };
    let found = (|| {
        let ifd = usize::try_from(u32_at(4)?).ok()?;
        let n = u16_at(ifd)?;
        for i in 0..usize::from(n) {
            let e = ifd.checked_add(2 + 12 * i)?;
            // The whole entry must be there, padding included, as the image crate reads it.
            tiff.get(e..e.checked_add(12)?)?;
            let (tag, kind, count) = (u16_at(e)?, u16_at(e + 2)?, u32_at(e + 4)?);
            if tag == 0x0112 && kind == 3 && count == 1 {
                return u16_at(e + 8);
            }
        }
        None
    })();
    match found {
        Some(v @ 1..=8) => v as u8,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exif(big: bool, orient: u16) -> Vec<u8> {
        let mut t: Vec<u8> = if big {
            vec![0x4D, 0x4D, 0, 42, 0, 0, 0, 8, 0, 1]
        } else {
            vec![0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0]
        };
        let entry = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        t.extend(entry(0x0112));
        t.extend(entry(3));
        t.extend(if big {
            1u32.to_be_bytes()
        } else {
            1u32.to_le_bytes()
        });
        t.extend(entry(orient));
        t.extend([0, 0, 0, 0, 0, 0]);
        t
    }

    #[test]
    fn exif_orientation_both_byte_orders() {
        for o in 1..=8 {
            assert_eq!(exif_orientation(&exif(false, o)), o as u8);
            assert_eq!(exif_orientation(&exif(true, o)), o as u8);
        }
        assert_eq!(exif_orientation(&exif(false, 9)), 1);
        assert_eq!(exif_orientation(&exif(false, 6)[..19]), 1);
        // Value present but the entry's padding cut off: the image crate reads no
        // orientation there, so neither do we.
        assert_eq!(exif_orientation(&exif(false, 6)[..20]), 1);
        assert_eq!(exif_orientation(&exif(false, 6)[..22]), 6);
        assert_eq!(exif_orientation(b"garbage"), 1);
    }

    #[test]
    fn jpeg_fill_bytes_and_restart_markers() {
        // SOI, fill bytes, RST0 (no length), APP0 of 4 bytes, two stray bytes and a stuffed
        // 0xFF00, SOF0 100 tall × 300 wide, SOS (length 8) and 2 bytes of scan data.
        let b = [
            0xFF, 0xD8, 0xFF, 0xFF, 0xD0, 0xFF, 0xE0, 0, 4, 1, 2, 0x00, 0x12, 0xFF, 0x00, 0xFF,
            0xC0, 0, 11, 8, 0, 100, 1, 44, 3, 0, 0, 0, 0, 0, 0, 0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63,
            0, 0xAB, 0xCD,
        ];
        let h = header_from_bytes(&b).unwrap();
        assert_eq!((h.stored_width, h.stored_height), (300, 100));
        assert_eq!(jpeg_scan_start(&b, "mem").unwrap(), 41);
        assert!(
            header_from_bytes(&b[..14])
                .unwrap_err()
                .contains("truncated")
        );
        // Ends after the frame header, before any scan.
        assert!(
            header_from_bytes(&b[..31])
                .unwrap_err()
                .contains("truncated")
        );
        let e = jpeg_scan_start(&b[..20], "cut.jpg")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cut.jpg: header: truncated"), "{e}");
    }
}
