//! The run-length mask of pycocotools' maskApi.c and the operations on it: encode, decode,
//! area, box, merge and IoU, each a port of the C function it names so results are equal.
use super::MaskError;
use image::GrayImage;

/// A binary `h × w` mask as maskApi's RLE: run lengths over the pixels in **column-major**
/// order (down the first column, then the next), alternating background and foreground and
/// starting with background (a mask whose first pixel is set starts with a 0 run).
///
/// Invariant (checked by every constructor): the counts sum to `h·w`, and `h·w` fits in
/// `u32`, as maskApi's counts are `uint`. Zero-length runs elsewhere are allowed and kept,
/// because pycocotools keeps them (its compressed strings and boxes depend on them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rle {
    h: u32,
    w: u32,
    counts: Vec<u32>,
}

/// `h·w` when it fits maskApi's `uint` counts.
pub(crate) fn pixels(h: u32, w: u32) -> Result<u32, MaskError> {
    u32::try_from(u64::from(h) * u64::from(w)).map_err(|_| MaskError::TooLarge {
        h: h.into(),
        w: w.into(),
    })
}

impl Rle {
    /// An RLE from its run counts: pycocotools' `frPyObjects` on an uncompressed RLE
    /// (`{"size": [h, w], "counts": [...]}`). Errors unless the counts sum to `h·w`.
    pub fn from_counts(h: u32, w: u32, counts: Vec<u32>) -> Result<Rle, MaskError> {
        let n = pixels(h, w)?;
        let sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if sum != u64::from(n) {
            return Err(MaskError::CountsSum { sum, h, w });
        }
        Ok(Rle { h, w, counts })
    }

    /// [`Rle::from_counts`] for counts as a JSON reader holds them: errors on a count
    /// outside `0..=u32::MAX` (naming its index) before the sum check.
    pub fn from_uncompressed(h: u32, w: u32, counts: &[i64]) -> Result<Rle, MaskError> {
        let counts = (counts.iter().enumerate())
            .map(|(index, &value)| {
                u32::try_from(value).map_err(|_| MaskError::CountOutOfRange { index, value })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        Rle::from_counts(h, w, counts)
    }

    /// Counts already known to sum to `h·w` (built by this module).
    pub(crate) fn from_valid(h: u32, w: u32, counts: Vec<u32>) -> Rle {
        debug_assert_eq!(
            counts.iter().map(|&c| u64::from(c)).sum::<u64>(),
            u64::from(h) * u64::from(w)
        );
        Rle { h, w, counts }
    }

    /// Encodes a **row-major** `h × w` mask (our images are row-major; the runs are taken
    /// column-major as maskApi's `rleEncode`). Any non-zero byte is foreground — where
    /// pycocotools would start a new run at every change of byte value, so the two agree
    /// on 0/1 masks, which is what both are meant for.
    pub fn encode(mask: &[u8], h: u32, w: u32) -> Result<Rle, MaskError> {
        let n = pixels(h, w)?;
        if mask.len() as u64 != u64::from(n) {
            return Err(MaskError::DenseLen {
                len: mask.len(),
                h,
                w,
            });
        }
        let (hu, wu) = (h as usize, w as usize);
        let mut counts = Vec::new();
        let (mut prev, mut run) = (false, 0u32);
        for x in 0..wu {
            for y in 0..hu {
                let v = mask[y * wu + x] != 0;
                if v != prev {
                    counts.push(run);
                    run = 0;
                    prev = v;
                }
                run += 1;
            }
        }
        counts.push(run);
        Ok(Rle { h, w, counts })
    }

    /// Encodes a 0/1 (any non-zero is foreground) gray image, as the masks of
    /// `crate::data::Sample`.
    pub fn from_gray(img: &GrayImage) -> Result<Rle, MaskError> {
        Rle::encode(img.as_raw(), img.height(), img.width())
    }

    /// Mask height in pixels.
    pub fn h(&self) -> u32 {
        self.h
    }

    /// Mask width in pixels.
    pub fn w(&self) -> u32 {
        self.w
    }

    /// The run counts (column-major, background first).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The run counts, by value.
    pub fn into_counts(self) -> Vec<u32> {
        self.counts
    }

    /// Calls `f(x, y0, y1)` for every column piece `y0..y1` of column `x` that is foreground.
    pub(crate) fn for_each_column_span(&self, mut f: impl FnMut(usize, usize, usize)) {
        let h = self.h as usize;
        let mut pos = 0usize;
        for (j, &c) in self.counts.iter().enumerate() {
            let (start, end) = (pos, pos + c as usize);
            pos = end;
            if j % 2 == 0 || c == 0 {
                continue;
            }
            // h > 0 here: a non-empty run means h·w > 0.
            let mut p = start;
            while p < end {
                let (x, y) = (p / h, p % h);
                let y1 = h.min(y + (end - p));
                f(x, y, y1);
                p += y1 - y;
            }
        }
    }

    /// Decodes to a **row-major** `h × w` mask of 0/1 bytes.
    pub fn decode(&self) -> Vec<u8> {
        let w = self.w as usize;
        let mut out = vec![0u8; self.h as usize * w];
        self.for_each_column_span(|x, y0, y1| {
            for y in y0..y1 {
                out[y * w + x] = 1;
            }
        });
        out
    }

    /// Decodes to a gray image of 0/1 pixels, the mask format of `crate::data::Sample`.
    pub fn to_gray(&self) -> GrayImage {
        GrayImage::from_raw(self.w, self.h, self.decode()).expect("decode gives exactly h·w bytes")
    }

    /// Foreground pixels: maskApi's `rleArea` (the sum of the odd-index runs).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| u64::from(c))
            .sum()
    }

    /// The box `[x, y, w, h]` of pycocotools' `toBbox` (maskApi `rleToBbox`), including its
    /// rules: a foreground run that crosses from one column into the next makes the box
    /// the full image height; no runs or an odd single run give `[0, 0, 0, 0]`; and a mask
    /// with two or more runs but no foreground pixel gives pycocotools' unsigned wrap-around
    /// `[w, h, 2³²−w+1, 2³²−h+1]` (use [`Rle::area`] to tell empty masks apart).
    pub fn to_bbox(&self) -> [f64; 4] {
        let (h, w) = (self.h, self.w);
        let m = self.counts.len() / 2 * 2;
        if m == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys, mut xe, mut ye, mut cc) = (w, h, 0u32, 0u32, 0u32);
        for (j, &c) in self.counts[..m].iter().enumerate() {
            let start = cc;
            cc = cc.wrapping_add(c);
            if j % 2 == 0 || c == 0 {
                continue;
            }
            let (y_start, y_end) = (start % h, (cc - 1) % h);
            let (x_start, x_end) = ((start - y_start) / h, (cc - 1 - y_end) / h);
            xs = xs.min(x_start);
            xe = xe.max(x_end);
            if x_start < x_end {
                (ys, ye) = (0, h - 1);
            } else {
                ys = ys.min(y_start);
                ye = ye.max(y_end);
            }
        }
        [
            f64::from(xs),
            f64::from(ys),
            f64::from(xe.wrapping_sub(xs).wrapping_add(1)),
            f64::from(ye.wrapping_sub(ys).wrapping_add(1)),
        ]
    }

    /// Union (`intersect == false`) or intersection of masks of one size: maskApi's
    /// `rleMerge`, pairwise left to right in O(runs). One mask gives a copy of it. Errors
    /// on no masks and on masks of different sizes (pycocotools answers a 0×0 mask).
    ///
    /// One deliberate difference: maskApi stops as soon as both masks are at a zero-length
    /// run at once, which past the first run happens only in hand-made RLEs, and then
    /// returns runs that stop short of `h·w` (pycocotools merges `[1, 0, 0, 1, 2]` and
    /// `[1, 0, 0, 2, 1]` of a 2×2 mask to `[1]`). This walks on to the end, so the result is
    /// the true union or intersection; wherever maskApi's result covers the image, the two
    /// are the same.
    pub fn merge(rles: &[Rle], intersect: bool) -> Result<Rle, MaskError> {
        let first = rles.first().ok_or(MaskError::NoMasks { op: "merge" })?;
        check_sizes(rles, first.h, first.w)?;
        let total = u64::from(first.h) * u64::from(first.w);
        let mut acc = first.counts.clone();
        for b in &rles[1..] {
            acc = merge2(&acc, &b.counts, intersect, total);
        }
        Ok(Rle::from_valid(first.h, first.w, acc))
    }

    /// IoU of every `dt` mask with every `gt` mask: pycocotools' `maskUtils.iou(dt, gt,
    /// iscrowd)` (maskApi `rleIou`, with its box gate `bbIou` on `to_bbox` boxes), as a
    /// row-major `[dt.len(), gt.len()]` vector. With `iscrowd[g]` the union is the area of
    /// the `dt` mask. Walks past simultaneous zero-length runs as [`Rle::merge`] does
    /// (pycocotools stops there and answers the IoU of the pixels before). Errors when the
    /// masks differ in size (pycocotools answers −1 for such
    /// pairs; the error's index is within `dt` or `gt`, whichever holds the odd one) or
    /// `iscrowd.len() != gt.len()`.
    pub fn iou(dt: &[Rle], gt: &[Rle], iscrowd: &[bool]) -> Result<Vec<f64>, MaskError> {
        if iscrowd.len() != gt.len() {
            return Err(MaskError::CrowdLen {
                flags: iscrowd.len(),
                masks: gt.len(),
            });
        }
        if let Some(f) = dt.first().or(gt.first()) {
            check_sizes(dt, f.h, f.w)?;
            check_sizes(gt, f.h, f.w)?;
        }
        let db: Vec<[f64; 4]> = dt.iter().map(Rle::to_bbox).collect();
        let gb: Vec<[f64; 4]> = gt.iter().map(Rle::to_bbox).collect();
        let mut out = vec![0.0; dt.len() * gt.len()];
        for (d, row) in out.chunks_mut(gt.len().max(1)).enumerate().take(dt.len()) {
            for (g, o) in row.iter_mut().enumerate() {
                if box_iou(&db[d], &gb[g], iscrowd[g]) > 0.0 {
                    *o = run_iou(&dt[d], &gt[g], iscrowd[g]);
                }
            }
        }
        Ok(out)
    }
}

/// Errors unless every mask is `h × w`.
pub(crate) fn check_sizes(rles: &[Rle], h: u32, w: u32) -> Result<(), MaskError> {
    match rles.iter().position(|r| r.h != h || r.w != w) {
        None => Ok(()),
        Some(index) => Err(MaskError::SizeMismatch {
            index,
            h: rles[index].h,
            w: rles[index].w,
            expect_h: h,
            expect_w: w,
        }),
    }
}

/// The walk over two run lists of one image that maskApi's `rleMerge` and `rleIou` share:
/// each step advances both by the shorter current run `c` and loads the next run (flipping
/// its value) on the side that ran out.
///
/// maskApi ends when both current runs are empty; the added `pos == total` only matters
/// when both lists hold a zero-length run at the same place (see [`Rle::merge`]). While
/// `pos < total` both lists still hold runs (each sums to `total`), so every step loads one
/// and the walk ends.
struct PairWalk<'a> {
    a: &'a [u32],
    b: &'a [u32],
    ca: u32,
    cb: u32,
    ia: usize,
    ib: usize,
    /// Values (foreground?) of the current runs.
    va: bool,
    vb: bool,
    pos: u64,
    total: u64,
}

impl<'a> PairWalk<'a> {
    fn new(a: &'a [u32], b: &'a [u32], total: u64) -> Self {
        let first = |r: &[u32]| r.first().copied().unwrap_or(0);
        PairWalk {
            a,
            b,
            ca: first(a),
            cb: first(b),
            ia: 1,
            ib: 1,
            va: false,
            vb: false,
            pos: 0,
            total,
        }
    }

    /// One step: the pixels `c` consumed, and whether the walk is over.
    fn step(&mut self) -> (u32, bool) {
        let c = self.ca.min(self.cb);
        self.pos += u64::from(c);
        self.ca -= c;
        if self.ca == 0 && self.ia < self.a.len() {
            self.ca = self.a[self.ia];
            self.ia += 1;
            self.va = !self.va;
        }
        self.cb -= c;
        if self.cb == 0 && self.ib < self.b.len() {
            self.cb = self.b[self.ib];
            self.ib += 1;
            self.vb = !self.vb;
        }
        (c, self.ca == 0 && self.cb == 0 && self.pos == self.total)
    }
}

/// One pairwise `rleMerge`: emit a run whenever the merged value changes, and at the end.
fn merge2(a: &[u32], b: &[u32], intersect: bool, total: u64) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut walk = PairWalk::new(a, b, total);
    let (mut v, mut cc) = (false, 0u32);
    loop {
        let (c, done) = walk.step();
        cc += c;
        let vp = v;
        v = if intersect {
            walk.va && walk.vb
        } else {
            walk.va || walk.vb
        };
        if v != vp || done {
            out.push(cc);
            cc = 0;
        }
        if done {
            return out;
        }
    }
}

/// maskApi's `bbIou` for one pair of `[x, y, w, h]` boxes.
fn box_iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
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
    i / if crowd { da } else { da + ga - i }
}

/// The run walk of maskApi's `rleIou` for one pair of equal-size masks.
fn run_iou(d: &Rle, g: &Rle, crowd: bool) -> f64 {
    let mut walk = PairWalk::new(&d.counts, &g.counts, u64::from(d.h) * u64::from(d.w));
    let (mut i, mut u) = (0u64, 0u64);
    loop {
        // The values of the runs the step consumes: read before it loads the next ones.
        let (va, vb) = (walk.va, walk.vb);
        let (c, done) = walk.step();
        if va || vb {
            u += u64::from(c);
            if va && vb {
                i += u64::from(c);
            }
        }
        if done {
            break;
        }
    }
    if i == 0 {
        u = 1;
    } else if crowd {
        u = d.area();
    }
    i as f64 / u as f64
}
