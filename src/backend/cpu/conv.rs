//! 2-D convolution (NCHW) as GEMMs over tiles of output pixels. A tile's im2col block
//! `[C/g·kh·kw, tile]` is sized to stay in L2, so the full im2col matrix is never built;
//! tiles run in parallel (rayon). f32 on AVX-512 CPUs multiplies with `conv_avx512`'s
//! kernel (about 1.5× the generic GEMM on these shapes), everything else with `gemm`.
//! 1×1 stride-1 convolutions skip im2col: the input planes are the GEMM operand. Larger
//! stride-1 kernels in f32 on AVX-512 go to `conv_implicit` (no im2col, no col2im); this
//! file stays the reference path and serves every other shape and type.
//! The same three kernels serve conv_transpose2d (its forward is conv2d's input gradient).
use super::SendPtr;
use super::gemm::gemm;
use crate::tensor::Float;
use rayon::prelude::*;

/// Shapes of one convolution: input `[n, c, h, w]`, weight `[o, c/groups, kh, kw]`,
/// output `[n, o, ho, wo]`. `ho`/`wo` are stored, not recomputed, so conv_transpose2d can
/// use an input size that the output size does not determine (output_padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub pad: (usize, usize),
    pub dil: (usize, usize),
    pub groups: usize,
    pub ho: usize,
    pub wo: usize,
}

/// Bytes of im2col block per tile: a few hundred KiB keeps it (and the output tile) in L2.
const TILE_BYTES: usize = 256 << 10;

impl ConvGeom {
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    pub fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the im2col matrix per group (the GEMM's inner dimension).
    pub fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    pub fn p(&self) -> usize {
        self.ho * self.wo
    }
    /// 1×1, stride 1, no padding: the input planes already are the im2col matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == (1, 1) && self.pad == (0, 0)
    }
    /// Output pixels per tile.
    fn tile<T>(&self, q: usize) -> usize {
        let per = self.k() * std::mem::size_of::<T>();
        let t = (TILE_BYTES / per.max(1)) / q * q;
        t.clamp(16, 4096).min(self.p()).max(1)
    }
}

fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// The part `[lo, hi)` of `0..run` whose input column `(ox0 + i)·s + off` lies in `[0, w)`.
pub(super) fn valid_cols(ox0: usize, run: usize, s: usize, off: isize, w: usize) -> (usize, usize) {
    let first = if off >= 0 {
        0
    } else {
        (off.unsigned_abs()).div_ceil(s)
    };
    let lim = w as isize - 1 - off;
    if lim < 0 {
        return (0, 0);
    }
    let end = lim as usize / s + 1;
    let lo = first.saturating_sub(ox0).min(run);
    let hi = end.saturating_sub(ox0).min(run).max(lo);
    (lo, hi)
}

/// Visit each im2col entry of output pixels `p0..p0+t` as runs along one output row:
/// `f(row, j, iy_row_start, lo, hi, ox0, off)`; `row` is the im2col row (c, ky, kx), `j` the
/// column in the tile where the run starts; `iy_row` is None when the input row is padding.
fn for_each_run(
    g: &ConvGeom,
    p0: usize,
    t: usize,
    mut f: impl FnMut(usize, usize, usize, Option<usize>, (usize, usize), usize, isize),
) {
    let (sh, sw) = g.stride;
    let mut j = 0;
    while j < t {
        let p = p0 + j;
        let (oy, ox0) = (p / g.wo, p % g.wo);
        let run = (g.wo - ox0).min(t - j);
        for ky in 0..g.kh {
            let iy = (oy * sh + ky * g.dil.0) as isize - g.pad.0 as isize;
            let iy = (iy >= 0 && (iy as usize) < g.h).then_some(iy as usize);
            for kx in 0..g.kw {
                let off = (kx * g.dil.1) as isize - g.pad.1 as isize;
                let cols = valid_cols(ox0, run, sw, off, g.w);
                f(ky * g.kw + kx, j, run, iy, cols, ox0, off);
            }
        }
        j += run;
    }
}

/// im2col of pixels `p0..p0+t` of one image and group: `col[(c·kh+ky)·kw+kx][j]`.
fn im2col_tile<T: Float>(x: &[T], g: &ConvGeom, p0: usize, t: usize, col: &mut [T]) {
    let (hw, kk, sw) = (g.hw(), g.kh * g.kw, g.stride.1);
    for_each_run(g, p0, t, |r, j, run, iy, (lo, hi), ox0, off| {
        for c in 0..g.cg() {
            let dst = &mut col[(c * kk + r) * t + j..][..run];
            let Some(iy) = iy else {
                dst.fill(T::ZERO);
                continue;
            };
            let src = &x[c * hw + iy * g.w..][..g.w];
            dst[..lo].fill(T::ZERO);
            dst[hi..].fill(T::ZERO);
            if sw == 1 {
                let s0 = ((ox0 + lo) as isize + off) as usize;
                dst[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
            } else {
                for (i, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                    *d = src[(((ox0 + i) * sw) as isize + off) as usize];
                }
            }
        }
    });
}

/// The adjoint of `im2col_tile` for channels `c0..c0+nc`: adds each entry of `col` (rows
/// `[nc·kh·kw, t]`) into the input position it was read from.
fn col2im_tile<T: Float>(col: &[T], g: &ConvGeom, p0: usize, t: usize, nc: usize, dx: &mut [T]) {
    let (hw, kk, sw) = (g.hw(), g.kh * g.kw, g.stride.1);
    for_each_run(g, p0, t, |r, j, _run, iy, (lo, hi), ox0, off| {
        let Some(iy) = iy else { return };
        for c in 0..nc {
            let src = &col[(c * kk + r) * t + j..];
            let dst = &mut dx[c * hw + iy * g.w..][..g.w];
            if sw == 1 {
                let s0 = ((ox0 + lo) as isize + off) as usize;
                for (d, &v) in dst[s0..s0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                    *d += v;
                }
            } else {
                for (i, &v) in src.iter().enumerate().take(hi).skip(lo) {
                    dst[(((ox0 + i) * sw) as isize + off) as usize] += v;
                }
            }
        }
    });
}

/// `y = conv(x, w) + bias`: x `[n, c, h, w]`, w `[o, c/g·kh·kw]`, y `[n, o, ho, wo]`.
pub fn conv2d_forward<T: Float>(x: &[T], wt: &[T], bias: Option<&[T]>, g: &ConvGeom) -> Vec<T> {
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && super::conv_implicit::applies(g) {
        let b = bias.map(|b| bytemuck::cast_slice(b));
        let y =
            super::conv_implicit::forward(bytemuck::cast_slice(x), bytemuck::cast_slice(wt), b, g);
        return bytemuck::allocation::cast_vec(y);
    }
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && super::conv_implicit::applies_s2(g) {
        let b = bias.map(|b| bytemuck::cast_slice(b));
        let (x, wt) = (bytemuck::cast_slice(x), bytemuck::cast_slice(wt));
        let y = super::conv_implicit::forward_s2(x, wt, b, g);
        return bytemuck::allocation::cast_vec(y);
    }
    let (og, cg, k, p, hw) = (g.og(), g.cg(), g.k(), g.p(), g.hw());
    let len = g.n * g.o * p;
    if len == 0 {
        return Vec::new();
    }
    // Every value is written once by the jobs below, so no zero-fill first.
    let mut out: Vec<T> = Vec::with_capacity(len);
    let lhs: Vec<Lhs<T>> = (0..g.groups)
        .map(|grp| Lhs::new(og, k, &wt[grp * og * k..][..og * k], k, 1))
        .collect();
    let t = g.tile::<T>(48);
    let tiles = p.div_ceil(t);
    let jobs = g.n * g.groups * tiles;
    let optr = SendPtr(out.as_mut_ptr() as *mut std::mem::MaybeUninit<T>);
    let pointwise = g.pointwise();
    let job = |(colbuf, ct): &mut (Vec<T>, Vec<T>), jb: usize| {
        let (img, grp, tile) = (jb / (g.groups * tiles), jb / tiles % g.groups, jb % tiles);
        let (p0, tt) = (tile * t, t.min(p - tile * t));
        let xg = &x[(img * g.c + grp * cg) * hw..][..cg * hw];
        let ct = &mut ct[..og * tt];
        // The B operand: the input planes themselves (1×1) or this tile's im2col block.
        let (b, bs): (&[T], usize) = if pointwise {
            (&xg[p0..], hw)
        } else {
            // 64-byte aligned start so the kernel's vector loads do not split cache lines.
            let a = colbuf.as_ptr().align_offset(64).min(16);
            let col = &mut colbuf[a..a + k * tt];
            im2col_tile(xg, g, p0, tt, col);
            (col, tt)
        };
        lhs[grp].mul(og, k, b, bs, tt, ct);
        for oc in 0..og {
            let bv = bias.map_or(T::ZERO, |b| b[grp * og + oc]);
            // SAFETY: job (img, grp, tile) alone writes out[img, grp·og + oc, p0..p0+tt],
            // which lies inside `out`'s capacity; `out` outlives the parallel loop.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(
                    optr.get().add((img * g.o + grp * og + oc) * p + p0),
                    tt,
                )
            };
            for (d, &s) in dst.iter_mut().zip(&ct[oc * tt..(oc + 1) * tt]) {
                d.write(s + bv);
            }
        }
    };
    let col_len = if pointwise { 0 } else { k * t + 16 };
    let init = || (vec![T::ZERO; col_len], vec![T::ZERO; og * t]);
    (0..jobs).into_par_iter().for_each_init(init, job);
    // SAFETY: the jobs cover every (image, group, tile) and write all og channels × tt
    // pixels of theirs: all `len` values are initialised.
    unsafe { out.set_len(len) };
    out
}

/// The left operand `[m, k]` of many GEMMs `c[m][n] = a · b[k][n]`: repacked once for the
/// AVX-512 f32 kernel when T is f32 and the CPU has it, else used in place by `gemm`.
enum Lhs<'a, T> {
    #[cfg(target_arch = "x86_64")]
    Packed(Vec<f32>),
    Strided(&'a [T], usize, usize),
}

impl<'a, T: Float> Lhs<'a, T> {
    fn new(m: usize, k: usize, a: &'a [T], rs: usize, cs: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && super::conv_avx512::available()
        {
            return Lhs::Packed(super::conv_avx512::pack::<8>(
                m,
                k,
                bytemuck::cast_slice(a),
                rs,
                cs,
            ));
        }
        let _ = (m, k);
        Lhs::Strided(a, rs, cs)
    }

    /// `c[m][n] = a · b` with b rows of stride `bs`, c rows of stride `n`.
    fn mul(&self, m: usize, k: usize, b: &[T], bs: usize, n: usize, c: &mut [T]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Lhs::Packed(p) => {
                assert!(
                    k == 0 || b.len() >= (k - 1) * bs + n,
                    "conv gemm: b too small"
                );
                assert!(c.len() >= m * n, "conv gemm: c too small");
                // SAFETY: `new` checked avx512f; the slices hold what the kernel reads and
                // writes (asserted above); `p` was packed for m×k.
                unsafe {
                    super::conv_avx512::gemm_packed::<8, 3>(
                        p,
                        m,
                        k,
                        bytemuck::cast_slice(b),
                        bs,
                        n,
                        bytemuck::cast_slice_mut(c),
                        KC,
                        false,
                    )
                }
            }
            Lhs::Strided(a, rs, cs) => gemm(m, n, k, c, n, 1, a, *rs, *cs, b, bs, 1, false),
        }
    }
}

/// Reduction steps per AVX-512 kernel pass (bounds the b block a pass streams: 256 rows ×
/// 48 pixels × 4 B = 48 KiB). Measured flat between 128 and 576 on the 3×3, 64-channel case.
#[cfg(target_arch = "x86_64")]
pub(super) const KC: usize = 256;

/// dL/dx of conv2d given dy `[n, o, ho, wo]`: the GEMM `wᵀ·dy` per tile, then col2im.
/// Work splits over (image, group, block of input channels): each owns a contiguous part of
/// dx, so no two tasks add into the same element.
pub fn conv2d_backward_input<T: Float>(dy: &[T], wt: &[T], g: &ConvGeom) -> Vec<T> {
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && super::conv_implicit::applies(g) {
        let dx = super::conv_implicit::backward_input(
            bytemuck::cast_slice(dy),
            bytemuck::cast_slice(wt),
            g,
        );
        return bytemuck::allocation::cast_vec(dx);
    }
    let (og, cg, k, p, hw, kk) = (g.og(), g.cg(), g.k(), g.p(), g.hw(), g.kh * g.kw);
    let mut dx = vec![T::ZERO; g.n * g.c * hw];
    if dx.is_empty() || p == 0 {
        return dx;
    }
    // Enough channel blocks for every thread to get a few tasks.
    let want = 4 * rayon::current_num_threads();
    let per_grp = want.div_ceil(g.n * g.groups).clamp(1, cg);
    let cb = cg.div_ceil(per_grp);
    let mut blocks = Vec::new();
    let mut rest = dx.as_mut_slice();
    for img in 0..g.n {
        for grp in 0..g.groups {
            let mut c0 = 0;
            while c0 < cg {
                let nc = cb.min(cg - c0);
                let (blk, r) = std::mem::take(&mut rest).split_at_mut(nc * hw);
                blocks.push((img, grp, c0, nc, blk));
                rest = r;
                c0 += nc;
            }
        }
    }
    let pointwise = g.pointwise();
    blocks.into_par_iter().for_each(|(img, grp, c0, nc, blk)| {
        let dyg = &dy[(img * g.o + grp * og) * p..][..og * p];
        // wᵀ restricted to this block's rows: element (r, oc) = w[grp·og + oc][c0·kk + r].
        let rows = nc * kk;
        let wt_blk = Lhs::new(rows, og, &wt[grp * og * k + c0 * kk..], 1, k);
        if pointwise {
            wt_blk.mul(nc, og, dyg, p, p, blk);
            return;
        }
        // Pixels per tile: the column-gradient block stays in L2.
        let t = (TILE_BYTES / (rows * std::mem::size_of::<T>())).clamp(48, 4096) / 48 * 48;
        let mut col = vec![T::ZERO; rows * t.min(p)];
        let mut p0 = 0;
        while p0 < p {
            let tt = t.min(p - p0);
            let col = &mut col[..rows * tt];
            wt_blk.mul(rows, og, &dyg[p0..], p, tt, col);
            col2im_tile(col, g, p0, tt, nc, blk);
            p0 += tt;
        }
    });
    dx
}

/// dL/dw of conv2d `[o, c/g·kh·kw]`: Σ over images and tiles of `dy_tile · im2col_tileᵀ`,
/// accumulated per thread and summed at the end.
pub fn conv2d_backward_weight<T: Float>(x: &[T], dy: &[T], g: &ConvGeom) -> Vec<T> {
    let (og, cg, k, p, hw) = (g.og(), g.cg(), g.k(), g.p(), g.hw());
    let wlen = g.o * k;
    if wlen == 0 || p == 0 || g.n == 0 {
        return vec![T::ZERO; wlen];
    }
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && super::conv_avx512::available() {
        let (x, dy) = (bytemuck::cast_slice(x), bytemuck::cast_slice(dy));
        let v = if super::conv_implicit::applies(g) {
            super::conv_implicit::backward_weight(x, dy, g)
        } else {
            backward_weight_f32(x, dy, g)
        };
        return bytemuck::allocation::cast_vec(v);
    }
    let t = g.tile::<T>(16);
    let tiles = p.div_ceil(t);
    let jobs = g.n * g.groups * tiles;
    let pointwise = g.pointwise();
    let col_len = if pointwise { 0 } else { k * t };
    ordered_sum(jobs, wlen, T::ZERO, |dw, range| {
        let mut col = vec![T::ZERO; col_len];
        for jb in range {
            let (img, grp, tile) = (jb / (g.groups * tiles), jb / tiles % g.groups, jb % tiles);
            let (p0, tt) = (tile * t, t.min(p - tile * t));
            let xg = &x[(img * g.c + grp * cg) * hw..][..cg * hw];
            let dyg = &dy[(img * g.o + grp * og) * p + p0..];
            let dwg = &mut dw[grp * og * k..][..og * k];
            if pointwise {
                gemm(og, cg, tt, dwg, k, 1, dyg, p, 1, &xg[p0..], 1, hw, true);
            } else {
                let c = &mut col[..k * tt];
                im2col_tile(xg, g, p0, tt, c);
                gemm(og, k, tt, dwg, k, 1, dyg, p, 1, c, 1, tt, true);
            }
        }
    })
}

/// Jobs are split into at most `DW_CHUNKS` fixed ranges (independent of the thread
/// count), each summed into its own buffer in parallel, and the buffers added in range
/// order: the result is the same bytes on every run and every thread count, which a
/// seeded, resumable training run needs (rayon's fold/reduce groups by work stealing).
pub(super) fn ordered_sum<T: Copy + Send + Sync + std::ops::AddAssign>(
    jobs: usize,
    len: usize,
    zero: T,
    body: impl Fn(&mut [T], std::ops::Range<usize>) + Sync,
) -> Vec<T> {
    const DW_CHUNKS: usize = 8;
    let n = jobs.clamp(1, DW_CHUNKS);
    let per = jobs.div_ceil(n);
    let parts: Vec<Vec<T>> = (0..n)
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![zero; len];
            body(&mut acc, c * per..((c + 1) * per).min(jobs));
            acc
        })
        .collect();
    let mut it = parts.into_iter();
    let mut total = it.next().unwrap_or_else(|| vec![zero; len]);
    for part in it {
        total.iter_mut().zip(&part).for_each(|(a, &b)| *a += b);
    }
    total
}

/// The f32 AVX-512 weight gradient. The GEMM runs transposed, `dwᵀ[k][o] += col[k][p] ·
/// dyᵀ[p][o]`, so the kernel's vector axis is the output channels and its reduction the
/// tile's pixels (the im2col rows are packed, the dy tile transposed, both in L2).
#[cfg(target_arch = "x86_64")]
fn backward_weight_f32(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (og, cg, k, p, hw) = (g.og(), g.cg(), g.k(), g.p(), g.hw());
    let t = g.tile::<f32>(16);
    let tiles = p.div_ceil(t);
    let jobs = g.n * g.groups * tiles;
    let pointwise = g.pointwise();
    let len = g.groups * k * og;
    let acc = ordered_sum(jobs, len, 0f32, |acc, range| {
        let (mut col, mut packed, mut dyt) = (Vec::new(), Vec::new(), Vec::new());
        for jb in range {
            let (img, grp, tile) = (jb / (g.groups * tiles), jb / tiles % g.groups, jb % tiles);
            let (p0, tt) = (tile * t, t.min(p - tile * t));
            let xg = &x[(img * g.c + grp * cg) * hw..][..cg * hw];
            dyt.clear();
            dyt.resize(tt * og, 0.0);
            for o in 0..og {
                let row = &dy[(img * g.o + grp * og + o) * p + p0..][..tt];
                for (j, &v) in row.iter().enumerate() {
                    dyt[j * og + o] = v;
                }
            }
            let (src, rs) = if pointwise {
                (&xg[p0..], hw)
            } else {
                col.resize(k * tt, 0.0);
                im2col_tile(xg, g, p0, tt, &mut col[..k * tt]);
                (&col[..], tt)
            };
            let c = &mut acc[grp * k * og..][..k * og];
            wgrad_gemm(og, k, tt, src, |r| r * rs, &dyt, &mut packed, c);
        }
    });
    let mut dw = vec![0f32; g.o * k];
    for grp in 0..g.groups {
        for kk in 0..k {
            for o in 0..og {
                dw[(grp * og + o) * k + kk] = acc[(grp * k + kk) * og + o];
            }
        }
    }
    dw
}

/// One tile's `dwᵀ[k][og] += a[k][tt] · dyt[tt][og]`, row r of `a` at `src[row(r)..]`.
/// The kernel's vector axis is og: a block as wide as og, and as many rows as keep 24
/// accumulators (16 output channels would waste 3/4 of a 64-wide block).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) fn wgrad_gemm(
    og: usize,
    k: usize,
    tt: usize,
    src: &[f32],
    row: impl Fn(usize) -> usize,
    dyt: &[f32],
    packed: &mut Vec<f32>,
    c: &mut [f32],
) {
    use super::conv_avx512::{gemm_packed, pack_rows_into};
    assert!(
        dyt.len() >= tt * og && c.len() >= k * og,
        "wgrad_gemm: buffers too small"
    );
    // SAFETY: callers run this only where avx512f is available; `packed` is k × tt (made
    // just before), `dyt` tt rows of og, `c` k·og values (asserted).
    unsafe {
        match og.div_ceil(16) {
            1 => {
                pack_rows_into::<24>(k, tt, src, row, packed);
                gemm_packed::<24, 1>(packed, k, tt, dyt, og, og, c, KC, true)
            }
            2 => {
                pack_rows_into::<12>(k, tt, src, row, packed);
                gemm_packed::<12, 2>(packed, k, tt, dyt, og, og, c, KC, true)
            }
            _ => {
                pack_rows_into::<6>(k, tt, src, row, packed);
                gemm_packed::<6, 4>(packed, k, tt, dyt, og, og, c, KC, true)
            }
        }
    }
}

/// Σ over images and pixels of dy `[n, o, p]` per channel (the bias gradient).
pub fn channel_sums<T: Float>(dy: &[T], n: usize, o: usize, p: usize) -> Vec<T> {
    let mut s = vec![0f64; o];
    for img in 0..n {
        for (ch, acc) in s.iter_mut().enumerate() {
            *acc += dy[(img * o + ch) * p..][..p]
                .iter()
                .map(|v| v.to_f64())
                .sum::<f64>();
        }
    }
    s.into_iter().map(T::from_f64).collect()
}
