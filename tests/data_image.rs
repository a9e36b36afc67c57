//! Image decoding: formats and pixel conversions, EXIF orientation (all eight), header-only
//! sizes, and errors that name the file.
use edgedistill::Error;
use edgedistill::data::image::{decode_rgb, image_size, load_rgb};
use image::{
    DynamicImage, GrayAlphaImage, GrayImage, ImageBuffer, ImageFormat, Rgb, RgbImage, RgbaImage,
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

/// A JPEG with an APP1 Exif segment holding one Orientation tag, inserted right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16, big_endian: bool) -> Vec<u8> {
    let mut seg = b"Exif\0\0".to_vec();
    seg.extend_from_slice(&exif_tiff(orientation, big_endian));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&seg);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG with an eXIf chunk (one Orientation tag) inserted right after IHDR.
fn png_with_exif_orientation(png: &[u8], orientation: u16) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut body = b"eXIf".to_vec();
    body.extend_from_slice(&exif_tiff(orientation, true));
    let mut chunk = ((body.len() - 4) as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    let mut out = png[..ihdr_end].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[ihdr_end..]);
    out
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

#[test]
fn exif_orientation_all_eight() {
    let dir = tmp_dir("exif");
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&quadrants())
        .unwrap();
    let stored = decode_rgb(&jpeg, "plain").unwrap();
    let (w, h) = stored.dimensions();
    assert_eq!((w, h), (64, 32));
    for o in 1..=8u16 {
        for be in [false, true] {
            let bytes = with_exif_orientation(&jpeg, o, be);
            let path = dir.join(format!("o{o}-{be}.jpg"));
            std::fs::write(&path, &bytes).unwrap();
            let img = load_rgb(&path).unwrap();
            let want = if o >= 5 { (h, w) } else { (w, h) };
            assert_eq!(img.dimensions(), want, "orientation {o}");
            assert_eq!(
                image_size(&path).unwrap(),
                want,
                "header size, orientation {o}"
            );
            for (x, y, p) in img.enumerate_pixels() {
                let (sx, sy) = exif_source(o, x, y, w, h);
                assert_eq!(p, stored.get_pixel(sx, sy), "orientation {o} at ({x},{y})");
            }
        }
    }
    // Semantics spelled out once: orientation 6 means "rotate 90° clockwise to display",
    // so the stored bottom-left (blue) quadrant shows at the top left.
    let six = decode_rgb(&with_exif_orientation(&jpeg, 6, false), "six").unwrap();
    let p = six.get_pixel(2, 2).0;
    assert!(p[2] > 200 && p[0] < 50 && p[1] < 50, "{p:?}");

    // PNG carries orientation in an eXIf chunk; decode and header size honour it too.
    let stored = noise_rgb(6, 4, 9);
    let png = encode(&DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Png);
    for o in [3u16, 6, 8] {
        let path = dir.join(format!("o{o}.png"));
        std::fs::write(&path, png_with_exif_orientation(&png, o)).unwrap();
        let img = load_rgb(&path).unwrap();
        let want = if o >= 5 { (4, 6) } else { (6, 4) };
        assert_eq!(
            (img.dimensions(), image_size(&path).unwrap()),
            (want, want),
            "png {o}"
        );
        for (x, y, p) in img.enumerate_pixels() {
            let (sx, sy) = exif_source(o, x, y, 6, 4);
            assert_eq!(
                p,
                stored.get_pixel(sx, sy),
                "png orientation {o} at ({x},{y})"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn image_size_reads_headers_only() {
    let dir = tmp_dir("size");
    let img = DynamicImage::ImageRgb8(noise_rgb(120, 200, 2));
    for (fmt, ext) in [(ImageFormat::Png, "png"), (ImageFormat::Bmp, "bmp")] {
        let p = dir.join(format!("a.{ext}"));
        std::fs::write(&p, encode(&img, fmt)).unwrap();
        assert_eq!(image_size(&p).unwrap(), (120, 200), "{ext}");
    }
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

fn assert_format_error_names(e: Error, name: &str, needle: &str) {
    let s = e.to_string();
    assert!(
        matches!(e, Error::Format { .. }) && s.contains(name) && s.contains(needle),
        "{s}"
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tmp_dir("err");
    let missing = dir.join("nope.jpg");
    match load_rgb(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    assert!(matches!(image_size(&missing), Err(Error::Io { .. })));

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
    let e = image_size(write("h.jpg", &jpeg[..20])).unwrap_err();
    assert!(e.to_string().contains("h.jpg"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
