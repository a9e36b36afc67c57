//! The loss itself: flatten the head outputs, assign, then the box (CIoU), DFL and class
//! terms as autograd ops on the foreground rows only, and the mask term (seg.rs).
use super::assign::{ImageAssignment, TalParams, assign_image};
use super::bce::bce_rows;
use super::iou::ciou;
use super::targets::{GtBox, per_image};
use super::{LossOutput, Targets, YoloLossConfig};
use crate::models::yolov8::anchors::{dist2bbox, make_anchors};
use crate::{DType, Error, Result, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Head outputs flattened to `[B, no, A]` plus everything the assigner produced.
pub(crate) struct Prepared {
    pub x: Tensor,
    pub batch: usize,
    pub anchors: usize,
    /// Anchor centres in grid units and each anchor's stride.
    pub points: Vec<[f32; 2]>,
    pub stride: Vec<f32>,
    /// Input (h, w) in pixels.
    pub imgsz: (f32, f32),
    pub gts: Vec<Vec<GtBox>>,
    pub assigned: Vec<ImageAssignment>,
}

pub(crate) fn prepare(cfg: &YoloLossConfig, feats: &[Tensor], t: &Targets) -> Result<Prepared> {
    let bad = |m: String| Error::msg(format!("yolo loss: {m}"));
    if cfg.overlap_mask {
        return Err(bad("overlap_mask = true is not supported".into()));
    }
    if cfg.reg_max < 2 {
        return Err(bad(format!(
            "reg_max {} < 2 (the L1 variant is not supported)",
            cfg.reg_max
        )));
    }
    if feats.is_empty() || feats.len() != cfg.strides.len() {
        return Err(bad(format!(
            "{} feature levels for {} strides",
            feats.len(),
            cfg.strides.len()
        )));
    }
    let no = 4 * cfg.reg_max + cfg.nc;
    let batch = feats[0].dims().first().copied().unwrap_or(0);
    let mut sizes = Vec::new();
    let mut flat = Vec::new();
    for (l, f) in feats.iter().enumerate() {
        let d = f.dims();
        if d.len() != 4 || d[0] != batch || d[1] != no {
            return Err(bad(format!(
                "level {l} is {}, expected [{batch}, {no}, h, w]",
                f.shape()
            )));
        }
        sizes.push((d[2], d[3]));
        flat.push(f.to_dtype(DType::F32)?.reshape([batch, no, d[2] * d[3]])?);
    }
    let x = Tensor::cat(&flat.iter().collect::<Vec<_>>(), 2)?;
    let na = x.dims()[2];
    if na < cfg.tal_topk {
        return Err(bad(format!(
            "{na} anchors, fewer than topk {}",
            cfg.tal_topk
        )));
    }
    let (pt, st) = make_anchors(&sizes, &cfg.strides, 0.5)?;
    let points: Vec<[f32; 2]> = pt.to_vec_f32()?.chunks(2).map(|c| [c[0], c[1]]).collect();
    let stride = st.to_vec_f32()?;
    let s0 = cfg.strides[0];
    let imgsz = (sizes[0].0 as f32 * s0, sizes[0].1 as f32 * s0);
    let gts = per_image(t, batch, cfg.nc, imgsz)?;
    let xv = x.detach().to_vec::<f32>()?;
    let tal = TalParams {
        topk: cfg.tal_topk,
        nc: cfg.nc,
        alpha: cfg.alpha,
        beta: cfg.beta,
        eps: 1e-9,
        stride_val: *cfg.strides.get(1).unwrap_or(&s0),
    };
    let rm = cfg.reg_max;
    let assigned = (0..batch)
        .into_par_iter()
        .map(|b| {
            let img = &xv[b * no * na..(b + 1) * no * na];
            let boxes = decode(img, rm, na, &points, &stride);
            let anc: Vec<[f32; 2]> = points
                .iter()
                .zip(&stride)
                .map(|(p, s)| [p[0] * s, p[1] * s])
                .collect();
            let cls = &img[4 * rm * na..];
            let score = |a: usize, c: usize| sigmoid(cls[c * na + a]);
            assign_image(&tal, score, &boxes, &anc, &gts[b])
        })
        .collect();
    Ok(Prepared {
        x,
        batch,
        anchors: na,
        points,
        stride,
        imgsz,
        gts,
        assigned,
    })
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `bbox_decode` (softmax over each side's bins, expectation) then dist2bbox, times the
/// stride: every anchor's predicted box in pixels, from one image's `[no, A]` values.
fn decode(img: &[f32], rm: usize, na: usize, points: &[[f32; 2]], stride: &[f32]) -> Vec<[f32; 4]> {
    (0..na)
        .map(|a| {
            let mut d = [0f32; 4];
            for (side, dv) in d.iter_mut().enumerate() {
                let v = |k: usize| img[(side * rm + k) * na + a];
                let m = (0..rm).map(v).fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = (0..rm).map(|k| (v(k) - m).exp()).sum();
                *dv = (0..rm).map(|k| (v(k) - m).exp() / sum * k as f32).sum();
            }
            let [px, py] = points[a];
            let s = stride[a];
            [
                (px - d[0]) * s,
                (py - d[1]) * s,
                (px + d[2]) * s,
                (py + d[3]) * s,
            ]
        })
        .collect()
}

/// Foreground rows in batch order and their constants.
pub(crate) struct Fg {
    /// Flat `b·A + a` of each foreground anchor.
    pub flat: Vec<i64>,
    pub image: Vec<usize>,
    pub anchor: Vec<usize>,
    /// Σ target_scores of the anchor (its box/DFL weight).
    pub weight: Vec<f32>,
}

pub(crate) fn run(
    cfg: &YoloLossConfig,
    feats: &[Tensor],
    seg: Option<(&Tensor, &Tensor)>,
    t: &Targets,
) -> Result<LossOutput> {
    let p = prepare(cfg, feats, t)?;
    let (nb, na, nc, rm) = (p.batch, p.anchors, cfg.nc, cfg.reg_max);
    // Dense target scores in the logits' [B, nc, A] layout, and the foreground list.
    let mut ts = vec![0f32; nb * nc * na];
    let mut fg = Fg {
        flat: Vec::new(),
        image: Vec::new(),
        anchor: Vec::new(),
        weight: Vec::new(),
    };
    let mut tss_img = vec![0f64; nb];
    for (b, asg) in p.assigned.iter().enumerate() {
        for a in 0..na {
            if asg.fg[a] {
                let s = asg.target_score[a];
                ts[(b * nc + asg.target_labels[a]) * na + a] = s;
                tss_img[b] += s as f64;
                fg.flat.push((b * na + a) as i64);
                fg.image.push(b);
                fg.anchor.push(a);
                fg.weight.push(s);
            }
        }
    }
    let tss = (tss_img.iter().sum::<f64>() as f32).max(1.0) as f64;
    // Class term: per-image BCE sums over [nc·A].
    let logits = p.x.narrow(1, 4 * rm, nc)?.reshape([nb, nc * na])?;
    let cls_rows = bce_rows(&logits, Arc::new(ts), None)?;
    let cls_img = cls_rows.to_vec_f32()?;
    let cls = cls_rows
        .sum_all()?
        .div_scalar(tss)?
        .mul_scalar(cfg.cls_gain as f64)?;
    // Box and DFL terms on the foreground rows.
    let nf = fg.flat.len();
    let dist = p.x.narrow(1, 0, 4 * rm)?;
    let (bx, dfl, box_a, dfl_a) = if nf == 0 {
        let z = dist.sum_all()?.mul_scalar(0.0)?;
        (z.clone(), z, Vec::new(), Vec::new())
    } else {
        box_dfl(cfg, &p, &fg, &dist, tss)?
    };
    // Mask term.
    let (sg, seg_rows) = match seg {
        Some((pm, proto)) => super::seg::mask_loss(cfg, &p, &fg, pm, proto, t)?,
        None => (Tensor::scalar(0f32), Vec::new()),
    };
    let items = [
        bx.to_scalar_f64()? as f32,
        sg.to_scalar_f64()? as f32,
        cls.to_scalar_f64()? as f32,
        dfl.to_scalar_f64()? as f32,
        0.0,
    ];
    let total = bx.add(&sg)?.add(&cls)?.add(&dfl)?.mul_scalar(nb as f64)?;
    // Per-image terms from the per-row values.
    let mut per = vec![[0f64; 4]; nb];
    let mut nfg = vec![0usize; nb];
    for (r, &b) in fg.image.iter().enumerate() {
        per[b][0] += box_a.get(r).copied().unwrap_or(0.0) as f64;
        per[b][1] += seg_rows.get(r).copied().unwrap_or(0.0) as f64;
        per[b][3] += dfl_a.get(r).copied().unwrap_or(0.0) as f64;
        nfg[b] += 1;
    }
    let per_image = (0..nb)
        .map(|b| {
            let d = tss_img[b].max(1.0);
            let g = |v: f64, gain: f32| (v * gain as f64) as f32;
            [
                g(per[b][0] / d, cfg.box_gain),
                g(per[b][1] / nfg[b].max(1) as f64, cfg.box_gain),
                g(cls_img[b] as f64 / d, cfg.cls_gain),
                g(per[b][3] / d, cfg.dfl_gain),
            ]
        })
        .collect();
    Ok(LossOutput {
        total,
        items,
        per_image,
    })
}

/// BboxLoss on the foreground rows: gained CIoU and DFL terms, and each row's ungained,
/// unnormalised `(1 − CIoU)·w` and DFL·w values.
fn box_dfl(
    cfg: &YoloLossConfig,
    p: &Prepared,
    fg: &Fg,
    dist: &Tensor,
    tss: f64,
) -> Result<(Tensor, Tensor, Vec<f32>, Vec<f32>)> {
    let (nb, na, rm) = (p.batch, p.anchors, cfg.reg_max);
    let nf = fg.flat.len();
    let idx = Tensor::from_vec(fg.flat.clone(), nf)?;
    let rows = dist
        .permute(&[0, 2, 1])?
        .reshape([nb * na, 4 * rm])?
        .index_select(0, &idx)?
        .reshape([nf, 4, rm])?;
    let proj = Tensor::arange(0.0, rm as f64, 1.0, DType::F32)?;
    let d = rows.softmax(-1)?.mul(&proj)?.sum(&[-1], false)?;
    let mut pts = Vec::with_capacity(nf * 2);
    let mut tgt = Vec::with_capacity(nf * 4);
    let mut wts = vec![0f32; nf * 4 * rm];
    for r in 0..nf {
        let (b, a) = (fg.image[r], fg.anchor[r]);
        let pt = p.points[a];
        pts.extend_from_slice(&pt);
        let s = p.stride[a];
        let tb = p.assigned[b].target_bboxes[a].map(|v| v / s);
        tgt.extend_from_slice(&tb);
        // bbox2dist, clamped to [0, reg_max − 1 − 0.01], split between the two nearest bins.
        let ltrb = [pt[0] - tb[0], pt[1] - tb[1], tb[2] - pt[0], tb[3] - pt[1]];
        let hi = ((rm - 1) as f64 - 0.01) as f32;
        for (side, v) in ltrb.iter().enumerate() {
            let v = v.clamp(0.0, hi);
            let tl = v as usize;
            let wl = (tl + 1) as f32 - v;
            let base = (r * 4 + side) * rm;
            wts[base + tl] = wl;
            wts[base + tl + 1] = 1.0 - wl;
        }
    }
    let pts = Tensor::from_vec(pts, [nf, 2])?;
    let pred = dist2bbox(&d, &pts, false, -1)?;
    let target = Tensor::from_vec(tgt, [nf, 4])?;
    let w = Tensor::from_vec(fg.weight.clone(), [nf, 1])?;
    let iou = ciou(&pred, &target)?;
    let box_rows = iou.neg()?.add_scalar(1.0)?.mul(&w)?.reshape([nf])?;
    let wts = Tensor::from_vec(wts, [nf, 4, rm])?;
    let dfl_rows = rows
        .log_softmax(-1)?
        .mul(&wts)?
        .sum(&[1, 2], false)?
        .mul_scalar(-0.25)?
        .mul(&w.reshape([nf])?)?;
    let box_a = box_rows.to_vec_f32()?;
    let dfl_a = dfl_rows.to_vec_f32()?;
    let bx = box_rows
        .sum_all()?
        .div_scalar(tss)?
        .mul_scalar(cfg.box_gain as f64)?;
    let dfl = dfl_rows
        .sum_all()?
        .div_scalar(tss)?
        .mul_scalar(cfg.dfl_gain as f64)?;
    Ok((bx, dfl, box_a, dfl_a))
}
