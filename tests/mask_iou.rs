//! `mask_iou` (bit-packed masks, pycocotools semantics) against two references written here
//! over unpacked pixels: the definition (tight boxes, f64 box-IoU gate, i/u from counts) and
//! a line-by-line port of pycocotools' maskApi.c (column-major RLE, rleToBbox, bbIou,
//! rleIou). All three compute i/u in f64 from the same integers, so equality is exact.
use edgedistill::Error;
use edgedistill::backend::cpu::mask_iou::{PackedMasks, mask_iou};

/// splitmix64: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in lo..hi (hi exclusive, hi > lo).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

type Mask = Vec<u8>;

/// One random mask of h × w pixels (0/1 bytes; some use other non-zero values) of a random
/// kind, sometimes a shifted copy of `base` so that pairs overlap realistically.
fn random_mask(rng: &mut Rng, h: usize, w: usize, base: Option<&Mask>) -> Mask {
    let mut m = vec![0u8; h * w];
    let kind = rng.range(0, 9);
    let (x0, x1) = {
        let a = rng.range(0, w);
        (a, rng.range(a + 1, w + 1))
    };
    let (y0, y1) = {
        let a = rng.range(0, h);
        (a, rng.range(a + 1, h + 1))
    };
    match kind {
        // Rectangle.
        0 => (y0..y1).for_each(|y| (x0..x1).for_each(|x| m[y * w + x] = 1)),
        // Rectangle touching the right (and sometimes bottom) edge.
        1 => {
            let yb = if rng.chance(0.5) { h } else { y1 };
            (y0..yb).for_each(|y| (x0..w).for_each(|x| m[y * w + x] = 255))
        }
        // Ellipse inscribed in the random box.
        2 => {
            let (cx, cy) = ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0);
            let (rx, ry) = ((x1 - x0) as f64 / 2.0, (y1 - y0) as f64 / 2.0);
            for y in y0..y1 {
                for x in x0..x1 {
                    let (dx, dy) = ((x as f64 + 0.5 - cx) / rx, (y as f64 + 0.5 - cy) / ry);
                    if dx * dx + dy * dy <= 1.0 {
                        m[y * w + x] = 1;
                    }
                }
            }
        }
        // Random blob: sparse-to-dense noise inside the box.
        3 => {
            let p = [0.05, 0.3, 0.7][rng.range(0, 3)];
            (y0..y1).for_each(|y| (x0..x1).for_each(|x| m[y * w + x] = rng.chance(p) as u8))
        }
        // Random walk.
        4 => {
            let (mut x, mut y) = (x0, y0);
            for _ in 0..rng.range(1, 4 * (h + w)) {
                m[y * w + x] = 7;
                match rng.range(0, 4) {
                    0 if x + 1 < w => x += 1,
                    1 if x > 0 => x -= 1,
                    2 if y + 1 < h => y += 1,
                    3 if y > 0 => y -= 1,
                    _ => {}
                }
            }
        }
        // Empty.
        5 => {}
        // A single pixel, often in a corner.
        6 => {
            let (x, y) = if rng.chance(0.5) {
                ([0, w - 1][rng.range(0, 2)], [0, h - 1][rng.range(0, 2)])
            } else {
                (x0, y0)
            };
            m[y * w + x] = 1;
        }
        // Full image.
        7 if rng.chance(0.3) => m.fill(1),
        // A shifted, slightly eroded copy of another mask.
        _ => match base {
            Some(b) => {
                let (dx, dy) = (rng.range(0, 7) as isize - 3, rng.range(0, 7) as isize - 3);
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        let (sx, sy) = (x - dx, y - dy);
                        if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                            let v = b[sy as usize * w + sx as usize];
                            m[y as usize * w + x as usize] = (v != 0 && !rng.chance(0.05)) as u8;
                        }
                    }
                }
            }
            None => (y0..y1).for_each(|y| (x0..x1).for_each(|x| m[y * w + x] = 1)),
        },
    }
    m
}

// ---- Reference 1: the definition, over pixels. ----

/// Tight box as pycocotools' toBbox: x, y, w, h; (0, 0, 0, 0) when empty.
fn tight_box(m: &Mask, h: usize, w: usize) -> [f64; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if m[y * w + x] != 0 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    if x0 == usize::MAX {
        return [0.0; 4];
    }
    [x0 as f64, y0 as f64, (x1 - x0) as f64, (y1 - y0) as f64]
}

/// pycocotools' bbIou for one pair.
fn box_iou(d: [f64; 4], g: [f64; 4], crowd: bool) -> f64 {
    let (da, ga) = (d[2] * d[3], g[2] * g[3]);
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let u = if crowd { da } else { da + ga - i };
    i / u
}

fn naive_iou(pred: &[Mask], gt: &[Mask], crowd: &[bool], h: usize, w: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for d in pred {
        for (g, &c) in gt.iter().zip(crowd) {
            if box_iou(tight_box(d, h, w), tight_box(g, h, w), c) <= 0.0 {
                out.push(0.0);
                continue;
            }
            let count = |f: &dyn Fn(bool, bool) -> bool| {
                d.iter()
                    .zip(g)
                    .filter(|&(&a, &b)| f(a != 0, b != 0))
                    .count() as u64
            };
            let (i, ad, ag) = (count(&|a, b| a && b), count(&|a, _| a), count(&|_, b| b));
            let u = if c { ad } else { ad + ag - i };
            out.push(if i == 0 { 0.0 } else { i as f64 / u as f64 });
        }
    }
    out
}

// ---- Reference 2: pycocotools maskApi.c, ported line by line (column-major RLE). ----

fn rle_encode(m: &Mask, h: usize, w: usize) -> Vec<u32> {
    let (mut cnts, mut p, mut c) = (Vec::new(), false, 0u32);
    for x in 0..w {
        for y in 0..h {
            let v = m[y * w + x] != 0;
            if v != p {
                cnts.push(c);
                c = 0;
                p = v;
            }
            c += 1;
        }
    }
    cnts.push(c);
    cnts
}

fn rle_area(r: &[u32]) -> u32 {
    r.iter().skip(1).step_by(2).sum()
}

fn rle_to_bbox(r: &[u32], h: usize) -> [f64; 4] {
    let h = h as u32;
    let m = (r.len() / 2) * 2;
    if m == 0 {
        return [0.0; 4];
    }
    let (mut xs, mut ys, mut xe, mut ye, mut cc, mut xp) = (u32::MAX, h, 0u32, 0u32, 0u32, 0u32);
    for (j, &cnt) in r.iter().enumerate().take(m) {
        cc += cnt;
        let t = cc - (j % 2) as u32;
        let y = t % h;
        let x = (t - y) / h;
        if j % 2 == 0 {
            xp = x;
        } else if xp < x {
            ys = 0;
            ye = h - 1;
        }
        xs = xs.min(x);
        xe = xe.max(x);
        ys = ys.min(y);
        ye = ye.max(y);
    }
    [
        xs as f64,
        ys as f64,
        (xe - xs + 1) as f64,
        (ye - ys + 1) as f64,
    ]
}

fn rle_iou_pair(dt: &[u32], gt: &[u32], crowd: bool) -> f64 {
    let (mut ca, ka, mut cb, kb) = (dt[0], dt.len(), gt[0], gt.len());
    let (mut va, mut vb, mut a, mut b) = (false, false, 1, 1);
    let (mut i, mut u, mut ct) = (0u32, 0u32, 1u32);
    while ct > 0 {
        let c = ca.min(cb);
        if va || vb {
            u += c;
            if va && vb {
                i += c;
            }
        }
        ct = 0;
        ca -= c;
        if ca == 0 && a < ka {
            ca = dt[a];
            a += 1;
            va = !va;
        }
        ct += ca;
        cb -= c;
        if cb == 0 && b < kb {
            cb = gt[b];
            b += 1;
            vb = !vb;
        }
        ct += cb;
    }
    if i == 0 {
        u = 1;
    } else if crowd {
        u = rle_area(dt);
    }
    i as f64 / u as f64
}

fn pycoco_iou(pred: &[Mask], gt: &[Mask], crowd: &[bool], h: usize, w: usize) -> Vec<f64> {
    let dt: Vec<_> = pred.iter().map(|m| rle_encode(m, h, w)).collect();
    let gt: Vec<_> = gt.iter().map(|m| rle_encode(m, h, w)).collect();
    let mut out = Vec::new();
    for d in &dt {
        for (g, &c) in gt.iter().zip(crowd) {
            let o = box_iou(rle_to_bbox(d, h), rle_to_bbox(g, h), c);
            out.push(if o > 0.0 { rle_iou_pair(d, g, c) } else { o });
        }
    }
    out
}

// ---- Helpers. ----

fn pack(masks: &[Mask], h: usize, w: usize) -> PackedMasks {
    PackedMasks::from_u8(&masks.concat(), masks.len(), h, w).unwrap()
}

fn random_sets(rng: &mut Rng, np: usize, ng: usize, h: usize, w: usize) -> (Vec<Mask>, Vec<Mask>) {
    let mut gt: Vec<Mask> = Vec::new();
    for _ in 0..ng {
        gt.push(random_mask(rng, h, w, None));
    }
    let mut pred: Vec<Mask> = Vec::new();
    for _ in 0..np {
        let base = if gt.is_empty() {
            None
        } else {
            Some(&gt[rng.range(0, gt.len())])
        };
        pred.push(random_mask(rng, h, w, base));
    }
    (pred, gt)
}

fn check(pred: &[Mask], gt: &[Mask], crowd: &[bool], h: usize, w: usize, what: &str) -> Vec<f64> {
    let got = mask_iou(&pack(pred, h, w), &pack(gt, h, w), crowd).unwrap();
    let want = naive_iou(pred, gt, crowd, h, w);
    let coco = pycoco_iou(pred, gt, crowd, h, w);
    assert_eq!(want, coco, "{what}: definition vs pycocotools port");
    assert_eq!(got.len(), pred.len() * gt.len(), "{what}");
    for (k, (g, e)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_bits(),
            e.to_bits(),
            "{what}: pair (pred {}, gt {}): got {g}, want {e}",
            k / gt.len().max(1),
            k % gt.len().max(1)
        );
    }
    got
}

// ---- Tests. ----

#[test]
fn layout_is_row_padded_lsb_first() {
    let (h, w) = (3, 130);
    let mut m = vec![0u8; h * w];
    for &(y, x) in &[(0, 0), (0, 63), (1, 64), (2, 129), (1, 100)] {
        m[y * w + x] = 1;
    }
    let p = PackedMasks::from_u8(&m, 1, h, w).unwrap();
    assert_eq!(p.words_per_row, 3);
    assert_eq!(p.data.len(), 9);
    let mut want = vec![0u64; 9];
    want[0] = 1 | 1 << 63; // (0, 0), (0, 63)
    want[3 + 1] = 1 | 1 << (100 - 64); // (1, 64), (1, 100)
    want[2 * 3 + 2] = 1 << (129 - 128); // (2, 129)
    assert_eq!(p.data, want);
    assert_eq!(p.area(0), 5);
    assert_eq!(p.bbox(0), [0, 0, 130, 3]);
    assert_eq!(p.to_u8(), m);
    p.validate().unwrap();
}

#[test]
fn area_and_bbox_match_pixels_and_pycocotools_to_bbox() {
    let mut rng = Rng(7);
    for &(h, w) in &[
        (70, 130),
        (64, 64),
        (1, 1),
        (9, 1),
        (1, 300),
        (33, 63),
        (17, 65),
    ] {
        let masks: Vec<Mask> = (0..40).map(|_| random_mask(&mut rng, h, w, None)).collect();
        let p = pack(&masks, h, w);
        let stats = p.stats();
        assert_eq!(p.len(), 40);
        for (i, m) in masks.iter().enumerate() {
            let area = m.iter().filter(|&&v| v != 0).count() as u64;
            let b = p.bbox(i);
            let xywh = [b[0], b[1], b[2] - b[0], b[3] - b[1]].map(f64::from);
            assert_eq!(p.area(i), area);
            assert_eq!(xywh, tight_box(m, h, w), "mask {i} of {h}×{w}");
            assert_eq!(
                xywh,
                rle_to_bbox(&rle_encode(m, h, w), h),
                "mask {i} of {h}×{w}"
            );
            assert_eq!((stats.area[i], stats.bbox[i]), (area, b));
        }
        let unpacked: Vec<u8> = masks.concat().iter().map(|&v| (v != 0) as u8).collect();
        assert_eq!(p.to_u8(), unpacked);
    }
}

#[test]
fn random_masks_match_references_exactly() {
    let mut rng = Rng(2024);
    let mut nonzero = 0;
    let mut crowd_nonzero = 0;
    let sizes = [
        (70, 130),
        (64, 64),
        (64, 128),
        (33, 63),
        (1, 1),
        (5, 200),
        (100, 65),
    ];
    for (round, &(h, w)) in sizes.iter().cycle().take(28).enumerate() {
        let (np, ng) = (rng.range(1, 16), rng.range(1, 12));
        let (pred, gt) = random_sets(&mut rng, np, ng, h, w);
        let crowd: Vec<bool> = (0..ng).map(|_| rng.chance(0.3)).collect();
        let got = check(&pred, &gt, &crowd, h, w, &format!("round {round} {h}×{w}"));
        for (k, v) in got.iter().enumerate() {
            assert!((0.0..=1.0).contains(v), "{v}");
            if *v > 0.0 {
                nonzero += 1;
                crowd_nonzero += crowd[k % ng] as usize;
            }
        }
    }
    // The generator must give real overlaps, crowd ones included.
    assert!(
        nonzero > 200 && crowd_nonzero > 30,
        "{nonzero} {crowd_nonzero}"
    );
}

#[test]
fn large_masks_parallel_path_matches() {
    let mut rng = Rng(99);
    let (h, w) = (240, 320);
    let (pred, gt) = random_sets(&mut rng, 24, 18, h, w);
    let crowd: Vec<bool> = (0..18).map(|i| i % 4 == 0).collect();
    check(&pred, &gt, &crowd, h, w, "240×320");
}

#[test]
fn crowd_rule_and_special_pairs() {
    let (h, w) = (70, 130);
    let rect = |x0: usize, y0: usize, x1: usize, y1: usize| {
        let mut m = vec![0u8; h * w];
        (y0..y1).for_each(|y| (x0..x1).for_each(|x| m[y * w + x] = 1));
        m
    };
    let empty = vec![0u8; h * w];
    // Two triangles whose boxes overlap but whose pixels do not meet.
    let (mut upper, mut lower) = (empty.clone(), empty.clone());
    for y in 10..40 {
        for x in 70..100 {
            if x - 70 > y - 10 {
                upper[y * w + x] = 1;
            } else if x - 70 < y - 10 {
                lower[y * w + x] = 1;
            }
        }
    }
    upper[10 * w + 70] = 1; // on the diagonal, in one triangle only
    lower[39 * w + 99] = 1;
    let small = rect(100, 20, 130, 30); // touches the right edge
    let big = rect(90, 10, 130, 50);
    let pred = vec![
        small.clone(),
        big.clone(),
        empty.clone(),
        upper.clone(),
        rect(0, 0, 130, 70),
    ];
    let gt = vec![big.clone(), small.clone(), empty.clone(), lower.clone()];
    let (a_small, a_big, a_full) = (300.0, 1600.0, 9100.0);
    for crowd in [[false; 4], [true; 4], [true, false, true, false]] {
        let got = check(&pred, &gt, &crowd, h, w, &format!("crowd {crowd:?}"));
        let at = |p: usize, g: usize| got[p * 4 + g];
        // small ⊂ big: with big crowd the union is |small| alone, so IoU is 1.
        assert_eq!(at(0, 0), if crowd[0] { 1.0 } else { a_small / a_big });
        // big vs small: crowd union is |big|, same value either way.
        assert_eq!(at(1, 1), a_small / a_big);
        // full vs big: i = |big|; the union is |full| with or without the crowd rule.
        assert_eq!(at(4, 0), a_big / a_full);
        // Empty masks and boxes that overlap without common pixels give 0, never NaN.
        for g in 0..4 {
            assert_eq!(at(2, g), 0.0);
        }
        for p in 0..5 {
            assert_eq!(at(p, 2), 0.0);
        }
        assert_eq!(at(3, 3), 0.0);
    }
}

#[test]
fn empty_sets_and_degenerate_sizes() {
    let some = pack(&[vec![1u8; 12]], 3, 4);
    let none = PackedMasks::from_u8(&[], 0, 3, 4).unwrap();
    assert!(none.is_empty());
    assert_eq!(mask_iou(&none, &some, &[false]).unwrap(), Vec::<f64>::new());
    assert_eq!(mask_iou(&some, &none, &[]).unwrap(), Vec::<f64>::new());
    assert_eq!(mask_iou(&some, &some, &[true]).unwrap(), vec![1.0]);
    // Zero-sized images: every mask is empty, every IoU 0.
    for (h, w) in [(0, 5), (5, 0), (0, 0)] {
        let z = PackedMasks::from_u8(&[], 2, h, w).unwrap();
        assert_eq!(z.len(), 2);
        assert_eq!(z.bbox(1), [0; 4]);
        assert_eq!(mask_iou(&z, &z, &[false, true]).unwrap(), vec![0.0; 4]);
    }
}

fn shape_msg(e: Error) -> String {
    match e {
        Error::Shape { msg, .. } => msg,
        other => panic!("expected a shape error, got {other}"),
    }
}

#[test]
fn shape_errors_name_both_shapes() {
    let a = PackedMasks::from_u8(&vec![0u8; 2 * 70 * 130], 2, 70, 130).unwrap();
    let b = PackedMasks::from_u8(&vec![0u8; 3 * 71 * 130], 3, 71, 130).unwrap();
    let c = PackedMasks::from_u8(&vec![0u8; 3 * 70 * 129], 3, 70, 129).unwrap();
    let msg = shape_msg(mask_iou(&a, &b, &[false; 3]).unwrap_err());
    assert!(
        msg.contains("[2, 70, 130]") && msg.contains("[3, 71, 130]"),
        "{msg}"
    );
    let msg = shape_msg(mask_iou(&a, &c, &[false; 3]).unwrap_err());
    assert!(
        msg.contains("[2, 70, 130]") && msg.contains("[3, 70, 129]"),
        "{msg}"
    );
    let msg = shape_msg(mask_iou(&a, &a, &[false; 3]).unwrap_err());
    assert!(msg.contains("[3]") && msg.contains("[2, 70, 130]"), "{msg}");
    let msg = shape_msg(PackedMasks::from_u8(&[0u8; 10], 1, 3, 4).unwrap_err());
    assert!(msg.contains("10") && msg.contains("3×4"), "{msg}");
}

#[test]
fn layout_violations_are_rejected() {
    let good = PackedMasks::from_u8(&vec![1u8; 2 * 4 * 70], 2, 4, 70).unwrap();
    let mut pad = good.clone();
    pad.data[5 * 2 + 1] |= 1 << 10; // mask 1, row 1, column 74 ≥ w
    let msg = shape_msg(mask_iou(&good, &pad, &[false; 2]).unwrap_err());
    assert!(msg.contains("mask 1 row 1"), "{msg}");
    let mut wpr = good.clone();
    wpr.words_per_row = 3;
    assert!(matches!(wpr.validate(), Err(Error::Shape { .. })));
    let mut short = good.clone();
    short.data.pop();
    assert!(matches!(
        mask_iou(&short, &good, &[false; 2]),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn cuda_kernel_source_is_embedded() {
    let src = edgedistill::backend::kernels::source("mask_iou").expect("kernels/mask_iou.cu");
    assert!(src.contains("extern \"C\" __global__ void mask_iou_f64("));
    // NVRTC compiles it with no headers.
    assert!(!src.lines().any(|l| l.trim_start().starts_with("#include")));
}
