//! IoU of N predicted × M reference binary masks stored bit-packed, with the semantics of
//! pycocotools' `maskUtils.iou(dt, gt, iscrowd)`. This is the reference for the CUDA kernel
//! `kernels/mask_iou.cu` (`mask_iou_f64`); both follow the contract below.
//!
//! # Bit layout (shared with `kernels/mask_iou.cu`)
//! A mask of `h × w` pixels is stored row-major and bit-packed into `u64` words, each image
//! row padded to whole words: `words_per_row = ceil(w / 64)`, and pixel `(y, x)` is bit
//! `x % 64` (bit 0 = least significant) of word `y·words_per_row + x / 64`. Padding bits
//! (x ≥ w in a row's last word) are zero. `n` masks of one call lie back to back, mask `i`
//! at words `i·h·words_per_row ..`; all masks of a call share `h` and `w`. Padding each row
//! lets a pair visit only the rows and words of the intersection of the two masks' boxes.
//!
//! # Semantics (pycocotools `rleIou` / `bbIou` / `rleToBbox`)
//! For prediction `d` and reference `g`: `i = |d ∧ g|`, `u = |d|` if `g` is crowd, else
//! `|d| + |g| − i`, and `iou = i / u` (in f64 from the integer counts). As pycocotools, the
//! IoU of the masks' tight boxes comes first (boxes `x, y, w, h`; an empty mask's box is
//! `0, 0, 0, 0`; a crowd `g` makes the box union the area of `d`'s box), and pairs whose box
//! IoU is not > 0 are 0 without looking at pixels. Box IoU > 0 exactly when the two boxes
//! overlap with positive width and height, so empty masks give 0, never NaN; a pair whose
//! boxes overlap but whose pixels do not gives 0 as well (pycocotools sets `u = 1` there).
//! The result is row-major `[n_pred, n_gt]`, pycocotools' `m_dt × n_gt` matrix. pycocotools
//! answers −1 for masks of different sizes; here that is a shape error.
use super::PAR_MIN;
use crate::{Error, Result};
use rayon::prelude::*;

const OP: &str = "mask_iou";

/// `n` binary masks of `h × w` pixels, bit-packed as described in the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedMasks {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// `ceil(w / 64)`.
    pub words_per_row: usize,
    /// `n × h × words_per_row` words.
    pub data: Vec<u64>,
}

/// Per-mask pixel counts and tight boxes, computed once per mask (not per pair). The two
/// vectors are exactly the `*_area` and `*_box` buffers `mask_iou_f64` takes
/// (`bytemuck::cast_slice(&bbox)` gives the flat `n × 4` `u32` array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskStats {
    /// Set pixels per mask.
    pub area: Vec<u64>,
    /// `[x0, y0, x1, y1]` per mask, end-exclusive; `[0, 0, 0, 0]` for an empty mask.
    pub bbox: Vec<[u32; 4]>,
}

impl PackedMasks {
    /// `ceil(w / 64)`: words per padded image row.
    pub fn words_per_row_for(w: usize) -> usize {
        w.div_ceil(64)
    }

    /// Packs `n` masks of `h × w` bytes each (row-major, back to back); a non-zero byte is a
    /// set pixel. Errors when `masks.len() != n·h·w`.
    pub fn from_u8(masks: &[u8], n: usize, h: usize, w: usize) -> Result<Self> {
        let expect = n.checked_mul(h).and_then(|v| v.checked_mul(w));
        if expect != Some(masks.len()) {
            return Err(Error::Shape {
                op: "PackedMasks::from_u8",
                msg: format!(
                    "{} bytes do not hold {n} masks of {h}×{w} pixels",
                    masks.len()
                ),
            });
        }
        let wpr = Self::words_per_row_for(w);
        let mut data = vec![0u64; n * h * wpr];
        if wpr > 0 {
            for (src, dst) in masks.chunks_exact(w).zip(data.chunks_exact_mut(wpr)) {
                for (bits, word) in src.chunks(64).zip(dst.iter_mut()) {
                    *word = bits
                        .iter()
                        .enumerate()
                        .fold(0u64, |acc, (b, &v)| acc | (u64::from(v != 0) << b));
                }
            }
        }
        Ok(PackedMasks {
            n,
            h,
            w,
            words_per_row: wpr,
            data,
        })
    }

    /// Unpacks to `n·h·w` bytes of 0/1 (the inverse of `from_u8` up to non-zero → 1).
    pub fn to_u8(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.n * self.h * self.w];
        if self.w > 0 {
            let rows = self.data.chunks_exact(self.words_per_row);
            for (dst, row) in out.chunks_exact_mut(self.w).zip(rows) {
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = ((row[x / 64] >> (x % 64)) & 1) as u8;
                }
            }
        }
        out
    }

    /// Number of masks.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Words of mask `i` (`h × words_per_row`). Panics when `i >= len()`.
    pub fn mask(&self, i: usize) -> &[u64] {
        let sz = self.h * self.words_per_row;
        &self.data[i * sz..(i + 1) * sz]
    }

    /// Set pixels of mask `i`.
    pub fn area(&self, i: usize) -> u64 {
        scan_dispatch(self.mask(i), self.words_per_row, has_popcnt()).0
    }

    /// Tight box of mask `i`'s set pixels, `[x0, y0, x1, y1]` end-exclusive (pycocotools'
    /// toBbox `x, y, w, h` is `x0, y0, x1 − x0, y1 − y0`); `[0, 0, 0, 0]` when empty.
    pub fn bbox(&self, i: usize) -> [u32; 4] {
        scan_dispatch(self.mask(i), self.words_per_row, has_popcnt()).1
    }

    /// Area and box of every mask, one pass over each (in parallel when there are many
    /// pixels).
    pub fn stats(&self) -> MaskStats {
        let pc = has_popcnt();
        let one = |i| scan_dispatch(self.mask(i), self.words_per_row, pc);
        let pairs: Vec<(u64, [u32; 4])> = if self.data.len() >= PAR_MIN {
            (0..self.n).into_par_iter().map(one).collect()
        } else {
            (0..self.n).map(one).collect()
        };
        let (area, bbox) = pairs.into_iter().unzip();
        MaskStats { area, bbox }
    }

    /// Checks the layout contract: `words_per_row == ceil(w/64)`, `data.len() == n·h·wpr`,
    /// padding bits zero, and sizes the kernel's `u32` boxes can hold.
    pub fn validate(&self) -> Result<()> {
        let wpr = Self::words_per_row_for(self.w);
        let shape_err = |msg: String| Error::Shape { op: OP, msg };
        if self.words_per_row != wpr {
            return Err(shape_err(format!(
                "masks [{}, {}, {}] need words_per_row = ceil({}/64) = {wpr}, got {}",
                self.n, self.h, self.w, self.w, self.words_per_row
            )));
        }
        let want = self.n.checked_mul(self.h).and_then(|v| v.checked_mul(wpr));
        if want != Some(self.data.len()) {
            return Err(shape_err(format!(
                "masks [{}, {}, {}] need {} words (n·h·words_per_row), got {}",
                self.n,
                self.h,
                self.w,
                self.n * self.h * wpr,
                self.data.len()
            )));
        }
        if self.h > u32::MAX as usize || self.w > u32::MAX as usize {
            return Err(shape_err(format!(
                "masks [{}, {}, {}] exceed u32 coordinates",
                self.n, self.h, self.w
            )));
        }
        if !self.w.is_multiple_of(64) && wpr > 0 {
            let pad = !0u64 << (self.w % 64);
            let rows = self.data.chunks_exact(wpr);
            if let Some(r) = rows.into_iter().position(|row| row[wpr - 1] & pad != 0) {
                return Err(shape_err(format!(
                    "masks [{}, {}, {}]: mask {} row {} has bits set past column {} \
                     (row padding must be zero)",
                    self.n,
                    self.h,
                    self.w,
                    r / self.h,
                    r % self.h,
                    self.w
                )));
            }
        }
        Ok(())
    }
}

/// Whether `count_ones` may use the popcnt instruction (x86-64 baseline lacks it).
fn has_popcnt() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("popcnt");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Area and tight box of one mask (`h × wpr` words) in one pass. The OR of all rows gives
/// the occupied columns; the first and last non-empty rows the vertical extent.
#[inline(always)]
fn scan(m: &[u64], wpr: usize) -> (u64, [u32; 4]) {
    if wpr == 0 {
        return (0, [0; 4]);
    }
    let (mut area, mut y0, mut y1) = (0u64, usize::MAX, 0);
    // Column occupancy: on the stack up to 64 words (4096 px) a row, else on the heap.
    let mut cols = [0u64; 64];
    let mut wide = Vec::new();
    let cols: &mut [u64] = if wpr <= 64 {
        &mut cols[..wpr]
    } else {
        wide.resize(wpr, 0);
        &mut wide
    };
    for (y, row) in m.chunks_exact(wpr).enumerate() {
        let mut any = 0u64;
        for (c, &v) in cols.iter_mut().zip(row) {
            *c |= v;
            any |= v;
            area += u64::from(v.count_ones());
        }
        if any != 0 {
            y0 = y0.min(y);
            y1 = y + 1;
        }
    }
    if y0 == usize::MAX {
        return (0, [0; 4]);
    }
    let first = cols.iter().position(|&v| v != 0).unwrap();
    let last = cols.iter().rposition(|&v| v != 0).unwrap();
    let x0 = first * 64 + cols[first].trailing_zeros() as usize;
    let x1 = last * 64 + 64 - cols[last].leading_zeros() as usize;
    (area, [x0 as u32, y0 as u32, x1 as u32, y1 as u32])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn scan_popcnt(m: &[u64], wpr: usize) -> (u64, [u32; 4]) {
    scan(m, wpr)
}

fn scan_dispatch(m: &[u64], wpr: usize, popcnt: bool) -> (u64, [u32; 4]) {
    #[cfg(target_arch = "x86_64")]
    if popcnt {
        // SAFETY: the caller checked that the CPU has popcnt.
        return unsafe { scan_popcnt(m, wpr) };
    }
    let _ = popcnt;
    scan(m, wpr)
}

/// `|a ∧ b|` over rows `y0..y1`, words `k0..k1` of each row; `count_ones` becomes one
/// instruction when inlined into `and_count_popcnt`.
#[inline(always)]
fn and_count(a: &[u64], b: &[u64], wpr: usize, rows: (usize, usize), k: (usize, usize)) -> u64 {
    let mut n = 0u64;
    for y in rows.0..rows.1 {
        let (s, e) = (y * wpr + k.0, y * wpr + k.1);
        for (x, z) in a[s..e].iter().zip(&b[s..e]) {
            n += u64::from((x & z).count_ones());
        }
    }
    n
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn and_count_popcnt(
    a: &[u64],
    b: &[u64],
    wpr: usize,
    rows: (usize, usize),
    k: (usize, usize),
) -> u64 {
    and_count(a, b, wpr, rows, k)
}

/// IoU of every prediction against every reference, row-major `[pred.len(), gt.len()]`,
/// pycocotools semantics (module docs). `gt_crowd[g]` marks reference `g` as crowd.
/// Errors when the masks differ in size, `gt_crowd.len() != gt.len()`, or either set
/// breaks the layout contract (`PackedMasks::validate`).
pub fn mask_iou(pred: &PackedMasks, gt: &PackedMasks, gt_crowd: &[bool]) -> Result<Vec<f64>> {
    check_inputs(pred, gt, gt_crowd)?;
    mask_iou_with_stats(pred, &pred.stats(), gt, &gt.stats(), gt_crowd)
}

/// `mask_iou` with each set's `stats()` computed once by the caller: packing and stats are
/// the "encoding" step (pycocotools' RLE encode), done once per mask however many times it
/// is compared. The stats must be those of the given masks (lengths are checked).
pub fn mask_iou_with_stats(
    pred: &PackedMasks,
    ps: &MaskStats,
    gt: &PackedMasks,
    gs: &MaskStats,
    gt_crowd: &[bool],
) -> Result<Vec<f64>> {
    check_inputs(pred, gt, gt_crowd)?;
    check_stats(pred, ps, "pred")?;
    check_stats(gt, gs, "gt")?;
    let (np, ng) = (pred.n, gt.n);
    let mut out = vec![0.0f64; np * ng];
    if np == 0 || ng == 0 {
        return Ok(out);
    }
    let wpr = pred.words_per_row;
    #[cfg(target_arch = "x86_64")]
    let popcnt = has_popcnt();

    let row = |p: usize, dst: &mut [f64]| {
        let (pm, pb, pa) = (pred.mask(p), ps.bbox[p], ps.area[p]);
        for (g, o) in dst.iter_mut().enumerate() {
            let gb = gs.bbox[g];
            let (x0, y0) = (pb[0].max(gb[0]) as usize, pb[1].max(gb[1]) as usize);
            let (x1, y1) = (pb[2].min(gb[2]) as usize, pb[3].min(gb[3]) as usize);
            // pycocotools' box gate: box IoU > 0 iff the boxes overlap in both axes (then
            // the box intersection is ≥ 1 and the union ≥ the intersection).
            if x0 >= x1 || y0 >= y1 {
                *o = 0.0;
                continue;
            }
            // Outside its box a mask is zero, so d ∧ g is zero outside the box
            // intersection: whole words covering columns x0..x1 count it exactly.
            let k = (x0 / 64, x1.div_ceil(64));
            let gm = gt.mask(g);
            #[cfg(target_arch = "x86_64")]
            let inter = if popcnt {
                // SAFETY: the CPU has popcnt (checked above).
                unsafe { and_count_popcnt(pm, gm, wpr, (y0, y1), k) }
            } else {
                and_count(pm, gm, wpr, (y0, y1), k)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let inter = and_count(pm, gm, wpr, (y0, y1), k);
            *o = if inter == 0 {
                0.0 // pycocotools: i = 0 → u = 1
            } else {
                let union = if gt_crowd[g] {
                    pa
                } else {
                    pa + gs.area[g] - inter
                };
                inter as f64 / union as f64
            };
        }
    };
    if np.saturating_mul(ng).saturating_mul(pred.h * wpr) >= PAR_MIN {
        out.par_chunks_mut(ng)
            .enumerate()
            .for_each(|(p, dst)| row(p, dst));
    } else {
        out.chunks_mut(ng)
            .enumerate()
            .for_each(|(p, dst)| row(p, dst));
    }
    Ok(out)
}

/// The checks every mask-IoU implementation (this one, the CUDA kernel's launcher) makes
/// before touching the data: layout contract, equal mask sizes, one crowd flag per gt.
pub fn check_inputs(pred: &PackedMasks, gt: &PackedMasks, gt_crowd: &[bool]) -> Result<()> {
    pred.validate()?;
    gt.validate()?;
    if pred.h != gt.h || pred.w != gt.w {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "pred masks [{}, {}, {}] and gt masks [{}, {}, {}] differ in size",
                pred.n, pred.h, pred.w, gt.n, gt.h, gt.w
            ),
        });
    }
    if gt_crowd.len() != gt.n {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "gt_crowd has {} flags [{}] but gt masks are [{}, {}, {}]",
                gt_crowd.len(),
                gt_crowd.len(),
                gt.n,
                gt.h,
                gt.w
            ),
        });
    }
    Ok(())
}

/// Stats given with a mask set must have one entry per mask.
pub fn check_stats(m: &PackedMasks, st: &MaskStats, which: &str) -> Result<()> {
    if st.area.len() != m.n || st.bbox.len() != m.n {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "{which} stats have {} areas and {} boxes for {} masks",
                st.area.len(),
                st.bbox.len(),
                m.n
            ),
        });
    }
    Ok(())
}
