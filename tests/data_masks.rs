//! `data::masks` against pycocotools 2.0.11. tests/fixtures/masks-pycocotools.safetensors (made
//! by tools/reference/make_masks_fixture.py, seed 0) holds pycocotools' answers for random
//! polygons, merges, IoUs, uncompressed RLEs and dense masks; every answer must be equal
//! (compressed strings byte for byte, areas and boxes exactly, IoU bit for bit). The shared
//! fixture coco-eval-visible.safetensors adds a real COCO file: every annotation and result.
mod common;
use common::shared_or_skip;
use edgedistill::Error;
use edgedistill::backend::cpu::mask_iou::{PackedMasks, mask_iou};
use edgedistill::data::masks::{MaskError, Rle, pack, polygon_extent};
use edgedistill::io::Safetensors;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/masks-pycocotools.safetensors"
);

struct Fx(Safetensors);

impl Fx {
    fn open() -> Fx {
        Fx(Safetensors::open(FIXTURE).unwrap())
    }
    fn i64(&self, name: &str) -> Vec<i64> {
        self.0.tensor(name).unwrap().to_vec::<i64>().unwrap()
    }
    fn f64(&self, name: &str) -> Vec<f64> {
        self.0.tensor(name).unwrap().to_vec::<f64>().unwrap()
    }
    fn u8(&self, name: &str) -> Vec<u8> {
        self.0.tensor(name).unwrap().to_vec::<u8>().unwrap()
    }
    /// Rows of a flat array cut at `{name}_off`.
    fn rows<T: Clone>(&self, name: &str, flat: Vec<T>) -> Vec<Vec<T>> {
        let off = self.i64(&format!("{name}_off"));
        off.windows(2)
            .map(|w| flat[w[0] as usize..w[1] as usize].to_vec())
            .collect()
    }
    fn strings(&self, name: &str) -> Vec<Vec<u8>> {
        self.rows(name, self.u8(name))
    }
    fn sizes(&self, name: &str) -> Vec<(u32, u32)> {
        let s = self.i64(name);
        s.chunks(2).map(|c| (c[0] as u32, c[1] as u32)).collect()
    }
    fn boxes(&self, name: &str) -> Vec<[f64; 4]> {
        let b = self.f64(name);
        b.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
    }
}

/// A polygon case: `(h, w)` and the parts.
type Case = ((u32, u32), Vec<Vec<f64>>);

fn polygon_cases(fx: &Fx) -> Vec<Case> {
    let parts = fx.rows("poly.coord", fx.f64("poly.coords"));
    let off = fx.i64("poly.part_off");
    fx.sizes("poly.size")
        .into_iter()
        .zip(off.windows(2))
        .map(|(hw, o)| (hw, parts[o[0] as usize..o[1] as usize].to_vec()))
        .collect()
}

fn polygon_rles(fx: &Fx) -> Vec<Rle> {
    polygon_cases(fx)
        .iter()
        .map(|((h, w), parts)| Rle::from_polygons(parts, *h, *w).unwrap())
        .collect()
}

fn show(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

/// Checks that hold for any mask: compressed string, dense, gray-image and packed forms all
/// round-trip.
fn assert_round_trips(r: &Rle, what: &str) {
    let (h, w) = (r.h(), r.w());
    let s = r.to_compressed();
    assert_eq!(
        &Rle::from_compressed(s.as_bytes(), h, w).unwrap(),
        r,
        "{what}"
    );
    let dense = r.decode();
    let again = Rle::encode(&dense, h, w).unwrap();
    assert_eq!(again.decode(), dense, "{what}: decode(encode(mask))");
    assert_eq!(again.area(), r.area(), "{what}");
    if h > 0 && w > 0 {
        let img = r.to_gray();
        assert_eq!(img.as_raw(), &dense, "{what}: to_gray");
        assert_eq!(Rle::from_gray(&img).unwrap().decode(), dense, "{what}");
    }
    let p = pack(std::slice::from_ref(r), h, w).unwrap();
    let want = PackedMasks::from_u8(&dense, 1, h as usize, w as usize).unwrap();
    assert_eq!(p, want, "{what}: pack");
    p.validate().unwrap();
}

#[test]
fn polygons_rasterise_exactly_as_pycocotools() {
    let fx = Fx::open();
    assert!(fx.0.metadata()["reference"].starts_with("pycocotools 2.0.11"));
    let cases = polygon_cases(&fx);
    let part_str = fx.strings("poly.part_str");
    let full = fx.strings("poly.str");
    let (area, bbox, ext) = (
        fx.i64("poly.area"),
        fx.boxes("poly.bbox"),
        fx.boxes("poly.extent"),
    );
    let (dsum, dwsum) = (fx.i64("poly.dsum"), fx.i64("poly.dwsum"));
    assert!(cases.len() >= 250 && part_str.len() >= 400);
    let (mut k, mut nonempty, mut multi) = (0, 0, 0);
    for (i, ((h, w), parts)) in cases.iter().enumerate() {
        let (h, w) = (*h, *w);
        for p in parts {
            let r = Rle::from_polygon(p, h, w).unwrap();
            let want = &part_str[k];
            assert_eq!(
                r.to_compressed().as_bytes(),
                &want[..],
                "case {i} part {k} ({h}×{w}) {p:?}: ours {} pycocotools {}",
                r.to_compressed(),
                show(want)
            );
            k += 1;
        }
        let r = Rle::from_polygons(parts, h, w).unwrap();
        assert_eq!(r.to_compressed().as_bytes(), &full[i][..], "case {i}");
        assert_eq!(r.area() as i64, area[i], "case {i}");
        assert_eq!(r.to_bbox(), bbox[i], "case {i}");
        assert_eq!(polygon_extent(parts), Some(ext[i]), "case {i}");
        let dense = r.decode();
        let sum: i64 = dense.iter().map(|&v| i64::from(v)).sum();
        let wsum: i64 = (dense.iter().enumerate())
            .map(|(j, &v)| i64::from(v) * j as i64)
            .sum();
        assert_eq!((sum, wsum), (dsum[i], dwsum[i]), "case {i}: decode");
        assert_round_trips(&r, &format!("case {i}"));
        nonempty += usize::from(area[i] > 0);
        multi += usize::from(parts.len() > 1);
    }
    assert_eq!(k, part_str.len());
    assert!(
        nonempty > 150 && multi > 40,
        "{nonempty} non-empty, {multi} multi-part"
    );
}

#[test]
fn merges_match_pycocotools() {
    let fx = Fx::open();
    let rles = polygon_rles(&fx);
    let pairs = fx.i64("merge.pairs");
    let (uni, inter) = (fx.strings("merge.union"), fx.strings("merge.inter"));
    let (ua, ia) = (fx.i64("merge.union_area"), fx.i64("merge.inter_area"));
    let mut overlapping = 0;
    for (k, p) in pairs.chunks(2).enumerate() {
        let two = [rles[p[0] as usize].clone(), rles[p[1] as usize].clone()];
        let u = Rle::merge(&two, false).unwrap();
        let i = Rle::merge(&two, true).unwrap();
        assert_eq!(u.to_compressed().as_bytes(), &uni[k][..], "pair {k} union");
        assert_eq!(
            i.to_compressed().as_bytes(),
            &inter[k][..],
            "pair {k} inter"
        );
        assert_eq!(
            (u.area() as i64, i.area() as i64),
            (ua[k], ia[k]),
            "pair {k}"
        );
        overlapping += usize::from(ia[k] > 0 && p[0] != p[1]);
    }
    assert!(overlapping > 20, "{overlapping} overlapping pairs");
    // One mask merges to itself.
    assert_eq!(Rle::merge(&rles[..1], true).unwrap(), rles[0]);
}

#[test]
fn iou_matches_pycocotools_for_rle_and_packed_masks() {
    let fx = Fx::open();
    let rles = polygon_rles(&fx);
    let crowd: Vec<bool> = fx.i64("iou.crowd").iter().map(|&c| c != 0).collect();
    let want = fx.f64("iou.values");
    let goff = fx.i64("poly.group_off");
    let (mut at, mut wide, mut partial) = (0, 0, 0);
    for g in goff.windows(2) {
        let (lo, hi) = (g[0] as usize, g[1] as usize);
        let set = &rles[lo..hi];
        let (h, w) = (set[0].h(), set[0].w());
        let want = &want[at..at + set.len() * set.len()];
        at += set.len() * set.len();
        let flags = &crowd[lo..hi];
        assert_eq!(Rle::iou(set, set, flags).unwrap(), want, "group {lo}..{hi}");
        let packed = pack(set, h, w).unwrap();
        let dense: Vec<u8> = set.iter().flat_map(|r| r.decode()).collect();
        let from_dense = PackedMasks::from_u8(&dense, set.len(), h as usize, w as usize).unwrap();
        assert_eq!(packed, from_dense, "group {lo}..{hi}: pack vs from_u8");
        assert_eq!(mask_iou(&packed, &packed, flags).unwrap(), want);
        wide += usize::from(packed.words_per_row > 1);
        partial += want.iter().filter(|&&v| v > 0.0 && v < 1.0).count();
    }
    assert_eq!(at, fx.f64("iou.values").len());
    assert!(
        wide >= 2 && partial > 100,
        "{wide} wide groups, {partial} partial IoUs"
    );
}

#[test]
fn uncompressed_rles_match_pycocotools() {
    let fx = Fx::open();
    let counts = fx.rows("ucrle.counts", fx.i64("ucrle.counts"));
    let strs = fx.strings("ucrle.str");
    let (area, bbox) = (fx.i64("ucrle.area"), fx.boxes("ucrle.bbox"));
    for (i, (hw, c)) in fx.sizes("ucrle.size").iter().zip(&counts).enumerate() {
        let r = Rle::from_uncompressed(hw.0, hw.1, c).unwrap();
        let c: Vec<u32> = c.iter().map(|&v| v as u32).collect();
        assert_eq!(r, Rle::from_counts(hw.0, hw.1, c.clone()).unwrap());
        assert_eq!(r.counts(), &c[..]);
        assert_eq!(
            r.to_compressed().as_bytes(),
            &strs[i][..],
            "ucrle {i} {c:?}"
        );
        assert_eq!(r.area() as i64, area[i], "ucrle {i}");
        assert_eq!(r.to_bbox(), bbox[i], "ucrle {i} {c:?}");
        assert_round_trips(&r, &format!("ucrle {i}"));
    }
    // pycocotools' unsigned wrap-around box of a mask with runs but no foreground.
    assert_eq!(bbox[1], [4.0, 4.0, 4294967293.0, 4294967293.0]);
}

#[test]
fn dense_masks_encode_as_pycocotools() {
    let fx = Fx::open();
    let pix = fx.rows("dense.pix", fx.u8("dense.pix"));
    let strs = fx.strings("dense.str");
    for (i, ((h, w), m)) in fx.sizes("dense.size").into_iter().zip(&pix).enumerate() {
        let r = Rle::encode(m, h, w).unwrap();
        assert_eq!(
            r.to_compressed().as_bytes(),
            &strs[i][..],
            "dense {i} {h}×{w}"
        );
        assert_eq!(&r.decode(), m, "dense {i}");
        assert_round_trips(&r, &format!("dense {i}"));
    }
}

#[test]
fn shared_coco_annotations_and_results_match_pycocotools() {
    let name = "coco-eval-visible.safetensors";
    let Some(path) = shared_or_skip(name) else {
        return;
    };
    let shared = Safetensors::open(&path).unwrap();
    let md = shared.metadata();
    let gt: serde_json::Value = serde_json::from_str(&md["gt"]).unwrap();
    let dt: serde_json::Value = serde_json::from_str(&md["dt"]).unwrap();
    let fx = Fx::open();
    let (ids, strs) = (fx.i64("gt.ann_id"), fx.strings("gt.str"));
    let (area, bbox, ext) = (
        fx.i64("gt.area"),
        fx.boxes("gt.bbox"),
        fx.boxes("gt.extent"),
    );
    let size_of = |image_id: &serde_json::Value| {
        let im = gt["images"].as_array().unwrap().iter();
        let im = im.clone().find(|i| &i["id"] == image_id).unwrap();
        (
            im["height"].as_u64().unwrap() as u32,
            im["width"].as_u64().unwrap() as u32,
        )
    };
    // The coordinates as Python's json parsed them (correctly rounded), stored by the
    // reference script: serde_json without its `float_roundtrip` feature may be 1 ulp off.
    let coords = fx.rows("gt.coord", fx.f64("gt.coords"));
    let part_off = fx.i64("gt.part_off");
    let anns = gt["annotations"].as_array().unwrap();
    assert_eq!(anns.len(), ids.len());
    let (mut gt_rles, mut ulp_off) = (Vec::new(), 0);
    for (i, a) in anns.iter().enumerate() {
        assert_eq!(a["id"].as_i64(), Some(ids[i]));
        let (h, w) = size_of(&a["image_id"]);
        // Every gt segmentation in this file is a polygon list (its notes also promise
        // compressed-RLE crowd regions; there are none).
        let parsed: Vec<Vec<f64>> = serde_json::from_value(a["segmentation"].clone()).unwrap();
        let parts = &coords[part_off[i] as usize..part_off[i + 1] as usize];
        assert_eq!(parsed.len(), parts.len(), "ann {}", ids[i]);
        for (p, q) in parsed.iter().flatten().zip(parts.iter().flatten()) {
            assert!((p.to_bits() as i64 - q.to_bits() as i64).abs() <= 1);
            ulp_off += usize::from(p != q);
        }
        let r = Rle::from_polygons(parts, h, w).unwrap();
        // Here the 1-ulp differences do not change a single pixel.
        assert_eq!(
            Rle::from_polygons(&parsed, h, w).unwrap(),
            r,
            "ann {}",
            ids[i]
        );
        assert_eq!(r.to_compressed().as_bytes(), &strs[i][..], "ann {}", ids[i]);
        assert_eq!(r.area() as i64, area[i], "ann {}", ids[i]);
        assert_eq!(r.to_bbox(), bbox[i], "ann {}", ids[i]);
        assert_eq!(polygon_extent(parts), Some(ext[i]), "ann {}", ids[i]);
        // The file's own area and bbox are pycocotools' annToRLE area and toBbox (the
        // reference script asserts the same), not the polygon extents.
        assert_eq!(a["area"].as_f64(), Some(area[i] as f64), "ann {}", ids[i]);
        let fbox: Vec<f64> = serde_json::from_value(a["bbox"].clone()).unwrap();
        assert_eq!(fbox, bbox[i], "ann {}", ids[i]);
        assert_round_trips(&r, &format!("ann {}", ids[i]));
        gt_rles.push((a["image_id"].clone(), a["iscrowd"].as_i64() == Some(1), r));
    }
    eprintln!("serde_json parsed {ulp_off} gt coordinates 1 ulp away from Python's json");
    // Results: compressed strings parse, re-encode byte for byte, and give pycocotools' area
    // and box.
    let (darea, dbox) = (fx.i64("dt.area"), fx.boxes("dt.bbox"));
    let dets = dt.as_array().unwrap();
    assert_eq!(dets.len(), darea.len());
    let mut dt_rles = Vec::new();
    for (i, d) in dets.iter().enumerate() {
        let seg = &d["segmentation"];
        let (h, w) = (
            seg["size"][0].as_u64().unwrap(),
            seg["size"][1].as_u64().unwrap(),
        );
        let s = seg["counts"].as_str().unwrap();
        let r = Rle::from_compressed(s.as_bytes(), h as u32, w as u32).unwrap();
        assert_eq!(r.to_compressed(), s, "dt {i}");
        assert_eq!(r.area() as i64, darea[i], "dt {i}");
        assert_eq!(r.to_bbox(), dbox[i], "dt {i}");
        assert_round_trips(&r, &format!("dt {i}"));
        dt_rles.push((d["image_id"].clone(), r));
    }
    // maskUtils.iou(dets, gts, iscrowd) on one image, dets and gts in file order.
    let config: serde_json::Value = serde_json::from_str(&md["config"]).unwrap();
    let img = &config["mask_iou_image_id"];
    let d: Vec<Rle> = (dt_rles.iter().filter(|(im, _)| im == img))
        .map(|(_, r)| r.clone())
        .collect();
    let (g, crowd): (Vec<Rle>, Vec<bool>) = (gt_rles.iter().filter(|(im, ..)| im == img))
        .map(|(_, c, r)| (r.clone(), *c))
        .unzip();
    let want = shared.tensor("outputs.mask_iou").unwrap();
    assert_eq!(want.dims(), &[d.len(), g.len()]);
    let want = want.to_vec_f64().unwrap();
    assert!(want.iter().any(|&v| v > 0.0));
    assert_eq!(Rle::iou(&d, &g, &crowd).unwrap(), want);
    let (h, w) = (g[0].h(), g[0].w());
    let got = mask_iou(&pack(&d, h, w).unwrap(), &pack(&g, h, w).unwrap(), &crowd).unwrap();
    assert_eq!(got, want);
}

/// `err` must be the given kind of problem and say `words` in its message.
fn assert_err<T: std::fmt::Debug>(r: Result<T, MaskError>, kind: &str, words: &[&str]) {
    let e = r.expect_err(kind);
    let msg = e.to_string();
    assert!(format!("{e:?}").starts_with(kind), "{e:?} is not {kind}");
    for w in words {
        assert!(msg.contains(w), "{msg:?} does not say {w:?}");
    }
}

#[test]
fn malformed_compressed_strings_are_errors() {
    let fr = |s: &[u8], h, w| Rle::from_compressed(s, h, w);
    // a valid one for reference: 2×2, runs [1, 2, 1]
    assert_eq!(fr(b"121", 2, 2).unwrap().counts(), &[1, 2, 1]);
    assert_err(fr(b"12!", 2, 2), "BadChar", &["byte 2", "'!'"]);
    assert_err(fr(b"1p1", 2, 2), "BadChar", &["'p'"]);
    assert_err(fr(b"1\x001", 2, 2), "BadChar", &["byte 1"]);
    assert_err(fr(&[b'1', 0xC3, 0xA9], 2, 2), "BadChar", &["byte 1"]);
    // 'P' (0x20 set) promises another character.
    assert_err(
        fr(b"1P", 2, 2),
        "Truncated",
        &["byte 2", "middle of a number"],
    );
    assert_err(fr(b"PPPPPPP0", 2, 2), "NumberTooLong", &["7 characters"]);
    // runs past h·w, short of it, and a delta that makes a count negative
    assert_err(
        fr(b"5", 2, 2),
        "CountsSum",
        &["sum to 5", "2×2", "4 pixels"],
    );
    assert_err(fr(b"12", 2, 2), "CountsSum", &["sum to 3"]);
    assert_err(fr(b"", 2, 2), "CountsSum", &["sum to 0"]);
    assert_err(fr(b"111N", 2, 2), "CountOutOfRange", &["count 3", "-1"]);
    assert_err(fr(b"1", 70000, 70000), "TooLarge", &["70000×70000"]);
    // The empty mask of an empty image is fine.
    assert_eq!(fr(b"", 0, 5).unwrap().area(), 0);
}

#[test]
fn bad_counts_polygons_and_sizes_are_errors() {
    assert_err(
        Rle::from_counts(2, 3, vec![1, 2, 2]),
        "CountsSum",
        &["sum to 5", "2×3", "6 pixels"],
    );
    assert_err(Rle::from_counts(2, 3, vec![7]), "CountsSum", &["sum to 7"]);
    assert_err(
        Rle::from_uncompressed(2, 3, &[1, -2, 7]),
        "CountOutOfRange",
        &["count 1 is -2"],
    );
    assert_err(
        Rle::from_uncompressed(2, 3, &[1 << 32]),
        "CountOutOfRange",
        &["4294967296"],
    );
    let r = Rle::from_uncompressed(2, 3, &[1, 2, 3]).unwrap();
    assert_eq!((r.counts(), r.area()), (&[1u32, 2, 3][..], 2));
    let p = |xy: &[f64]| Rle::from_polygon(xy, 10, 10);
    assert_err(
        p(&[1.0, 1.0, 5.0, 5.0]),
        "TooFewPoints",
        &["polygon 0", "2 point"],
    );
    assert_err(p(&[]), "TooFewPoints", &["0 point"]);
    assert_err(
        p(&[1.0, 1.0, 5.0, 5.0, 3.0]),
        "OddCoordinates",
        &["odd", "(5)"],
    );
    assert_err(
        p(&[1.0, 1.0, 5.0, f64::NAN, 3.0, 3.0]),
        "NonFinite",
        &["coordinate 3", "NaN"],
    );
    assert_err(
        p(&[1.0, 1.0, 5.0, 2.0, f64::INFINITY, 3.0]),
        "NonFinite",
        &["inf"],
    );
    assert_err(
        p(&[1.0, 1.0, 5.0, 2.0, -2e8, 3.0]),
        "CoordinateOutOfRange",
        &["-200000000"],
    );
    // A bad second part is named as such; no parts at all is an error too.
    let good = vec![1.0, 1.0, 5.0, 1.0, 3.0, 4.0];
    assert_err(
        Rle::from_polygons(&[good.clone(), vec![1.0, 2.0, 3.0, 4.0]], 10, 10),
        "TooFewPoints",
        &["polygon 1"],
    );
    assert_err(
        Rle::from_polygons::<Vec<f64>>(&[], 10, 10),
        "NoParts",
        &["no polygon"],
    );
    assert_err(
        Rle::encode(&[0, 1, 1], 2, 2),
        "DenseLen",
        &["3 bytes", "needs 4"],
    );
    let a = Rle::from_polygon(&good, 10, 10).unwrap();
    let b = Rle::from_polygon(&good, 10, 11).unwrap();
    assert_err(
        Rle::merge(&[a.clone(), b.clone()], false),
        "SizeMismatch",
        &["mask 1 is 10×11", "10×10"],
    );
    assert_err(Rle::merge(&[], false), "NoMasks", &["merge"]);
    assert_err(
        pack(&[a.clone(), b.clone()], 10, 10),
        "SizeMismatch",
        &["mask 1"],
    );
    assert_err(
        Rle::iou(std::slice::from_ref(&a), &[b], &[false]),
        "SizeMismatch",
        &["10×11"],
    );
    assert_err(
        Rle::iou(std::slice::from_ref(&a), std::slice::from_ref(&a), &[]),
        "CrowdLen",
        &["0 iscrowd flags"],
    );
    // The caller names the file and the record.
    let e = MaskError::NoParts.at("train.json", "annotation 17");
    assert!(matches!(&e, Error::Format { path, record, .. }
        if path == "train.json" && record == "annotation 17"));
    assert_eq!(
        e.to_string(),
        "train.json: annotation 17: segmentation has no polygon"
    );
}

#[test]
fn merge_and_iou_walk_past_simultaneous_zero_runs() {
    // pycocotools 2.0.11 stops at the first place where both masks are at a zero-length
    // run: merge([a, b]) gives counts [1] (3 pixels short of 2×2) and iou 0. Pixel 1 is
    // set in a, pixels 1 and 2 in b (column-major).
    let a = Rle::from_counts(2, 2, vec![1, 0, 0, 1, 2]).unwrap();
    let b = Rle::from_counts(2, 2, vec![1, 0, 0, 2, 1]).unwrap();
    let u = Rle::merge(&[a.clone(), b.clone()], false).unwrap();
    let i = Rle::merge(&[a.clone(), b.clone()], true).unwrap();
    assert_eq!(u.decode(), b.decode());
    assert_eq!(i.decode(), a.decode());
    let (a, b) = ([a], [b]);
    assert_eq!(Rle::iou(&a, &b, &[false]).unwrap(), [0.5]);
    let (pa, pb) = (pack(&a, 2, 2).unwrap(), pack(&b, 2, 2).unwrap());
    assert_eq!(mask_iou(&pa, &pb, &[false]).unwrap(), [0.5]);
    // The fuzzer's find: a 1×1 mask with 600 leading zero-length runs.
    let mut c = vec![0u32; 600];
    c.push(1);
    let r = Rle::from_counts(1, 1, c).unwrap();
    let m = Rle::merge(&[r.clone(), r.clone()], false).unwrap();
    assert_eq!(m.decode(), r.decode());
}

#[test]
fn empty_and_edge_sizes() {
    // No masks still packs to a valid empty set of the image size.
    let p = pack(&[], 7, 130).unwrap();
    assert_eq!(
        (p.n, p.h, p.w, p.words_per_row, p.data.len()),
        (0, 7, 130, 3, 0)
    );
    // Polygons on an empty image give pycocotools' [0].
    let r = Rle::from_polygon(&[0.0, 0.0, 3.0, 0.0, 0.0, 3.0], 0, 4).unwrap();
    assert_eq!((r.counts(), r.to_bbox()), (&[0u32][..], [0.0; 4]));
    // A polygon covering the whole image: one column-crossing run, full box.
    let r = Rle::from_polygon(&[-1.0, -1.0, 9.0, -1.0, 9.0, 9.0, -1.0, 9.0], 3, 5).unwrap();
    assert_eq!(
        (r.counts(), r.to_bbox()),
        (&[0u32, 15][..], [0.0, 0.0, 5.0, 3.0])
    );
}
