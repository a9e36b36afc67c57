//! Images: decoding (formats and pixel conversions, EXIF orientation, all eight), the
//! header-only reader (`read_header`, `image_size`: sizes checked against the `image`
//! crate's decoders on files it writes), and errors that name the file.
use edgedistill::Error;
use edgedistill::data::image::{
    ImageFormat as HeaderFormat, decode_rgb, header_from_bytes, image_size, load_rgb, read_header,
};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{
    DynamicImage, GrayAlphaImage, GrayImage, ImageBuffer, ImageDecoder, ImageEncoder, ImageFormat,
    ImageReader, Rgb, RgbImage, RgbaImage,
};
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-data-image-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, fmt).unwrap();
    buf.into_inner()
}

fn noise_rgb(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 73 + y * 151 + seed * 17).wrapping_mul(2654435761);
        Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
    })
}

#[test]
fn png_and_bmp_rgb_roundtrip_exactly() {
    let img = noise_rgb(37, 53, 1);
    for fmt in [ImageFormat::Png, ImageFormat::Bmp] {
        let bytes = encode(&DynamicImage::ImageRgb8(img.clone()), fmt);
        let got = decode_rgb(&bytes, "mem").unwrap();
        assert_eq!(got, img, "{fmt:?}");
    }
}

#[test]
fn grey_alpha_and_16_bit_become_rgb() {
    let (w, h) = (5, 3);
    // grey → R = G = B
    let g = GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 40 + y) as u8]));
    let got = decode_rgb(
        &encode(&DynamicImage::ImageLuma8(g.clone()), ImageFormat::Png),
        "g",
    )
    .unwrap();
    for (x, y, p) in got.enumerate_pixels() {
        let v = g.get_pixel(x, y)[0];
        assert_eq!(p.0, [v, v, v]);
    }
    // grey + alpha: alpha dropped, not composited
    let ga = GrayAlphaImage::from_fn(w, h, |x, _| image::LumaA([(x * 50) as u8, 0]));
    let got = decode_rgb(
        &encode(&DynamicImage::ImageLumaA8(ga.clone()), ImageFormat::Png),
        "ga",
    )
    .unwrap();
    assert_eq!(got.get_pixel(4, 1).0, [200, 200, 200]);
    // RGBA: alpha dropped
    let rgba = RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8 * 9, y as u8 * 7, 33, 10]));
    let got = decode_rgb(
        &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
        "rgba",
    )
    .unwrap();
    assert_eq!(got.get_pixel(3, 2).0, [27, 14, 33]);
    // 16-bit: scaled to 8 bits with rounding
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(w, h, |x, _| Rgb([x as u16 * 16000, 65535, 257 * 7]));
    let got = decode_rgb(
        &encode(&DynamicImage::ImageRgb16(rgb16), ImageFormat::Png),
        "rgb16",
    )
    .unwrap();
    assert_eq!(got.dimensions(), (w, h));
    assert_eq!(got.get_pixel(0, 0).0, [0, 255, 7]);
    assert_eq!(
        got.get_pixel(4, 0).0,
        [(64000.0f64 * 255.0 / 65535.0).round() as u8, 255, 7]
    );
}

/// A minimal TIFF (Exif) block with one Orientation tag.
fn exif_tiff(orientation: u16, big_endian: bool) -> Vec<u8> {
    let mut tiff = Vec::new();
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    tiff.extend_from_slice(if big_endian { b"MM" } else { b"II" });
    tiff.extend_from_slice(&u16b(42));
    tiff.extend_from_slice(&u32b(8)); // IFD0 right after the header
    tiff.extend_from_slice(&u16b(1)); // one entry
    tiff.extend_from_slice(&u16b(0x0112)); // Orientation
    tiff.extend_from_slice(&u16b(3)); // SHORT
    tiff.extend_from_slice(&u32b(1)); // count
    tiff.extend_from_slice(&u16b(orientation));
    tiff.extend_from_slice(&[0, 0]); // value field padding
    tiff.extend_from_slice(&u32b(0)); // no next IFD
    tiff
}

/// `tiff` as an APP1 Exif segment inserted into `jpeg` at byte `at` (2: right after SOI).
fn with_app1_exif(jpeg: &[u8], at: usize, tiff: &[u8]) -> Vec<u8> {
    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(tiff);
    let mut out = jpeg.to_vec();
    out.splice(at..at, seg);
    out
}

/// A JPEG or PNG of `img` written by the `image` crate's encoder, with `exif` (a TIFF
/// block) where that encoder puts it: an APP1 segment, an eXIf chunk.
fn encode_with_exif(img: &RgbImage, fmt: ImageFormat, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    let rgb = image::ExtendedColorType::Rgb8;
    match fmt {
        ImageFormat::Jpeg => {
            let mut enc = JpegEncoder::new_with_quality(&mut out, 95);
            if let Some(e) = exif {
                enc.set_exif_metadata(e).unwrap();
            }
            enc.write_image(img.as_raw(), w, h, rgb).unwrap();
        }
        ImageFormat::Png => {
            let mut enc = PngEncoder::new(&mut out);
            if let Some(e) = exif {
                enc.set_exif_metadata(e).unwrap();
            }
            enc.write_image(img.as_raw(), w, h, rgb).unwrap();
        }
        other => panic!("no EXIF for {other:?}"),
    }
    out
}

/// The `image` crate's size with its orientation applied (what our loader decodes to);
/// also checks that its decoder and `into_dimensions` agree on the stored size.
fn reference(bytes: &[u8]) -> (u32, u32) {
    let reader = || ImageReader::new(Cursor::new(bytes)).with_guessed_format();
    let mut dec = reader().unwrap().into_decoder().unwrap();
    let (w, h) = dec.dimensions();
    assert_eq!((w, h), reader().unwrap().into_dimensions().unwrap());
    match dec.orientation().unwrap() {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (h, w),
        _ => (w, h),
    }
}

/// Displayed pixel (x, y) ← stored pixel, by the EXIF definitions (stored size w×h).
fn exif_source(o: u16, x: u32, y: u32, w: u32, h: u32) -> (u32, u32) {
    match o {
        1 => (x, y),
        2 => (w - 1 - x, y),
        3 => (w - 1 - x, h - 1 - y),
        4 => (x, h - 1 - y),
        5 => (y, x),
        6 => (y, h - 1 - x),
        7 => (w - 1 - y, h - 1 - x),
        8 => (w - 1 - y, x),
        _ => unreachable!(),
    }
}

/// Four flat 32×16 quadrants (MCU-aligned, so JPEG keeps them flat).
fn quadrants() -> RgbImage {
    RgbImage::from_fn(64, 32, |x, y| match (x < 32, y < 16) {
        (true, true) => Rgb([255, 0, 0]),
        (false, true) => Rgb([0, 255, 0]),
        (true, false) => Rgb([0, 0, 255]),
        (false, false) => Rgb([255, 255, 255]),
    })
}

/// All eight orientations, in both TIFF byte orders, in a JPEG (APP1) and a PNG (eXIf):
/// the header reads the orientation, its displayed size is the `image` crate's and the
/// decoded size, and the decoded pixels are the stored ones moved as EXIF defines.
#[test]
fn exif_orientation_all_eight() {
    let dir = tmp_dir("exif");
    for (fmt, src) in [
        (ImageFormat::Jpeg, quadrants()),
        (ImageFormat::Png, noise_rgb(6, 4, 9)),
    ] {
        // JPEG is lossy: compare with the decoded plain file (the scan data is the same).
        let stored = decode_rgb(&encode_with_exif(&src, fmt, None), "plain").unwrap();
        let (w, h) = stored.dimensions();
        for o in 1..=8u16 {
            for be in [false, true] {
                let what = format!("{fmt:?} orientation {o} big-endian {be}");
                let bytes = encode_with_exif(&src, fmt, Some(exif_tiff(o, be)));
                let path = dir.join(format!("o{o}-{be}.{fmt:?}"));
                std::fs::write(&path, &bytes).unwrap();
                let want = if o >= 5 { (h, w) } else { (w, h) };
                let head = header_from_bytes(&bytes).unwrap();
                assert_eq!(head.orientation, o as u8, "{what}");
                assert_eq!(head.display_size(), want, "{what}");
                assert_eq!(reference(&bytes), want, "{what}");
                assert_eq!(image_size(&path).unwrap(), want, "{what}");
                let img = load_rgb(&path).unwrap();
                assert_eq!(img.dimensions(), want, "{what}");
                for (x, y, p) in img.enumerate_pixels() {
                    let (sx, sy) = exif_source(o, x, y, w, h);
                    assert_eq!(p, stored.get_pixel(sx, sy), "{what} at ({x},{y})");
                }
            }
        }
    }
    // Semantics spelled out once: orientation 6 means "rotate 90° clockwise to display",
    // so the stored bottom-left (blue) quadrant shows at the top left.
    let jpeg = encode_with_exif(&quadrants(), ImageFormat::Jpeg, None);
    let six = decode_rgb(&with_app1_exif(&jpeg, 2, &exif_tiff(6, false)), "six").unwrap();
    let p = six.get_pixel(2, 2).0;
    assert!(p[2] > 200 && p[0] < 50 && p[1] < 50, "{p:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The JPEG decoder reads every APP1 up to the first scan and keeps the last EXIF one (if
/// its body is more than the 6-byte tag); the header must pick the same one.
#[test]
fn jpeg_orientation_comes_from_the_segment_the_decoder_uses() {
    let jpeg = encode_with_exif(&noise_rgb(40, 10, 5), ImageFormat::Jpeg, None);
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    let sos = jpeg.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    let six = exif_tiff(6, false);
    let three = exif_tiff(3, true);
    let first_six_then_three = with_app1_exif(&with_app1_exif(&jpeg, 2, &three), 2, &six);
    let after_sof = with_app1_exif(&jpeg, sos, &six);
    // A bare "Exif\0\0" APP1 (no TIFF block) after a real one is not EXIF to the decoder.
    let bare_after = with_app1_exif(&with_app1_exif(&jpeg, sos, &[]), 2, &six);
    for (bytes, o, what) in [
        (first_six_then_three, 3, "last of two"),
        (after_sof, 6, "after the frame header"),
        (bare_after, 6, "bare tag after"),
    ] {
        let head = header_from_bytes(&bytes).unwrap();
        assert_eq!(head.orientation, o, "{what}");
        assert_eq!(head.display_size(), reference(&bytes), "{what}");
        assert_eq!(
            decode_rgb(&bytes, what).unwrap().dimensions(),
            head.display_size(),
            "{what}"
        );
    }
    // Two frame headers: the decoder refuses the file, and the header says so.
    let sof_seg_len = usize::from(u16::from_be_bytes([jpeg[sof + 2], jpeg[sof + 3]])) + 2;
    let mut two = jpeg.clone();
    two.splice(sos..sos, jpeg[sof..sof + sof_seg_len].to_vec());
    assert!(
        header_from_bytes(&two)
            .unwrap_err()
            .contains("second frame header")
    );
    assert!(decode_rgb(&two, "two").is_err());
}

#[test]
fn header_sizes_match_the_image_crate() {
    let dir = tmp_dir("sizes");
    for (w, h) in [(1, 1), (7, 3), (64, 48), (3, 250), (1000, 17)] {
        let img = noise_rgb(w, h, 2);
        let dynamic = DynamicImage::ImageRgb8(img.clone());
        for (bytes, fmt) in [
            (encode(&dynamic, ImageFormat::Jpeg), HeaderFormat::Jpeg),
            (encode(&dynamic, ImageFormat::Png), HeaderFormat::Png),
            (encode(&dynamic, ImageFormat::Bmp), HeaderFormat::Bmp),
        ] {
            let got = header_from_bytes(&bytes).unwrap();
            assert_eq!(got.format, fmt);
            assert_eq!((got.stored_width, got.stored_height), (w, h), "{fmt:?}");
            assert_eq!(got.display_size(), reference(&bytes), "{fmt:?} {w}x{h}");
            // From a file too (the name does not decide the format: all are ".img").
            let p = dir.join(format!("{w}x{h}-{fmt:?}.img"));
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(read_header(&p).unwrap(), got, "{fmt:?} {w}x{h}");
            assert_eq!(image_size(&p).unwrap(), (w, h), "{fmt:?} {w}x{h}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn progressive_and_top_down_and_core_headers() {
    let bmp = |w, h| {
        encode(
            &DynamicImage::ImageRgb8(noise_rgb(w, h, 6)),
            ImageFormat::Bmp,
        )
    };
    // Progressive JPEG: the frame marker is SOF2 instead of SOF0.
    let mut j = encode_with_exif(&noise_rgb(33, 21, 6), ImageFormat::Jpeg, None);
    let at = j.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    j[at + 1] = 0xC2;
    let got = header_from_bytes(&j).unwrap();
    assert_eq!((got.stored_width, got.stored_height), (33, 21));
    // Top-down BMP: negative height.
    let mut b = bmp(5, 9);
    b[22..26].copy_from_slice(&(-9i32).to_le_bytes());
    assert_eq!(header_from_bytes(&b).unwrap().display_size(), (5, 9));
    assert_eq!(reference(&b), (5, 9));
    // OS/2 BITMAPCOREHEADER (12 bytes, u16 sizes), 2×3 24-bit.
    let mut core = b"BM".to_vec();
    core.extend(((14 + 12 + 24) as u32).to_le_bytes());
    core.extend([0, 0, 0, 0]);
    core.extend(26u32.to_le_bytes());
    core.extend(12u32.to_le_bytes());
    core.extend(2u16.to_le_bytes());
    core.extend(3u16.to_le_bytes());
    core.extend(1u16.to_le_bytes());
    core.extend(24u16.to_le_bytes());
    core.extend([0u8; 24]);
    assert_eq!(header_from_bytes(&core).unwrap().display_size(), (2, 3));
    assert_eq!(reference(&core), (2, 3));
}

#[test]
fn image_size_reads_headers_only() {
    let dir = tmp_dir("size");
    let img = DynamicImage::ImageRgb8(noise_rgb(120, 200, 2));
    // A JPEG whose scan data is garbage: decoding fails, the header-only size still works,
    // which shows image_size never touches the pixels.
    let mut jpeg = encode(&img, ImageFormat::Jpeg);
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    jpeg.truncate(sos + 40);
    let p = dir.join("cut.jpg");
    std::fs::write(&p, &jpeg).unwrap();
    assert_eq!(image_size(&p).unwrap(), (120, 200));
    assert!(load_rgb(&p).is_err());

    // Speed: a 10 000-image dataset must be sized in well under 5 s; header reads of a
    // cached 1 MB JPEG with a 60 KB thumbnail segment (which must be skipped, not read).
    let big = DynamicImage::ImageRgb8(noise_rgb(1024, 768, 3));
    let mut jpeg = encode(&big, ImageFormat::Jpeg);
    let mut app = vec![0xFF, 0xE2, 0xEA, 0x60]; // APP2, length 60000
    app.resize(4 + 59998, 0x55);
    jpeg.splice(2..2, app);
    let p = dir.join("big.jpg");
    std::fs::write(&p, &jpeg).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..10_000 {
        assert_eq!(image_size(&p).unwrap(), (1024, 768));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "image_size: 10000 calls on a {} KB JPEG in {secs:.3} s",
        jpeg.len() / 1024
    );
    assert!(secs < 5.0, "{secs} s");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn header_errors_name_the_file() {
    let dir = tmp_dir("header-err");
    let missing = dir.join("nope.jpg");
    match image_size(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    let j = encode_with_exif(
        &noise_rgb(16, 16, 7),
        ImageFormat::Jpeg,
        Some(exif_tiff(6, false)),
    );
    let sof = j.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    let sos = j.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    let p = encode(
        &DynamicImage::ImageRgb8(noise_rgb(4, 4, 7)),
        ImageFormat::Png,
    );
    let b = encode(
        &DynamicImage::ImageRgb8(noise_rgb(4, 4, 7)),
        ImageFormat::Bmp,
    );
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty.jpg".into(), vec![], "empty file"),
        (
            "gif.jpg".into(),
            b"GIF89a\x01\0\x01\0".to_vec(),
            "not a JPEG, PNG or BMP",
        ),
        ("png-cut.png".into(), p[..20].to_vec(), "truncated"),
        ("bmp-cut.bmp".into(), b[..20].to_vec(), "truncated"),
    ];
    // Cut in the APP segments, in the frame header, and between it and the first scan.
    for cut in [3, 5, 20, 21, sof + 3, sof + 7, sos, sos + 3] {
        cases.push((
            format!("jpeg-cut-{cut}.jpg"),
            j[..cut].to_vec(),
            "truncated",
        ));
    }
    let mut zero = b.clone();
    zero[18..22].copy_from_slice(&0i32.to_le_bytes());
    cases.push(("zero.bmp".into(), zero, "zero size"));
    for (name, bytes, needle) in cases {
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let e = read_header(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: header: ", path.display())) && e.contains(needle),
            "{name}: {e}"
        );
        assert_eq!(image_size(&path).unwrap_err().to_string(), e, "{name}");
        assert!(load_rgb(&path).is_err(), "{name} decodes");
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn assert_format_error_names(e: Error, name: &str, needle: &str) {
    let s = e.to_string();
    assert!(
        matches!(e, Error::Format { .. }) && s.contains(name) && s.contains(needle),
        "{s}"
    );
}

#[test]
fn decode_errors_name_the_file() {
    let dir = tmp_dir("err");
    let missing = dir.join("nope.jpg");
    match load_rgb(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }

    let img = DynamicImage::ImageRgb8(noise_rgb(40, 30, 4));
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let check = |p: &Path, needle: &str| {
        let name = p.display().to_string();
        assert_format_error_names(load_rgb(p).unwrap_err(), &name, needle);
    };
    // truncated JPEG (the decoder alone would fill the rest with grey)
    let jpeg = encode(&img, ImageFormat::Jpeg);
    check(&write("t.jpg", &jpeg[..jpeg.len() * 2 / 3]), "truncated");
    // truncated PNG and BMP
    let png = encode(&img, ImageFormat::Png);
    check(&write("t.png", &png[..png.len() / 2]), "Png");
    let bmp = encode(&img, ImageFormat::Bmp);
    check(&write("t.bmp", &bmp[..bmp.len() / 2]), "Bmp");
    // unsupported: GIF signature, and plain text
    check(
        &write("a.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
        "image",
    );
    check(
        &write("a.txt", b"hello, not an image"),
        "not a JPEG, PNG or BMP",
    );
    std::fs::remove_dir_all(&dir).ok();
}
