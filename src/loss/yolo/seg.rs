//! The mask term of v8SegmentationLoss (`calculate_segmentation_loss` /
//! `single_mask_loss`, overlap_mask = false): for each foreground anchor, BCE of
//! coefficients·prototypes against its gt's mask, cropped to the gt box, averaged over the
//! mask, divided by the box's normalised area; summed and divided by the foreground count.
use super::Targets;
use super::YoloLossConfig;
use super::bce::{TargetFn, bce_rows_with};
use super::compute::{Fg, Prepared};
use crate::{DType, Error, Result, Tensor};
use std::sync::Arc;

/// The gained mask term and each foreground row's ungained `mean(crop(bce)) / area`.
pub(crate) fn mask_loss(
    cfg: &YoloLossConfig,
    p: &Prepared,
    fg: &Fg,
    pm: &Tensor,
    proto: &Tensor,
    t: &Targets,
) -> Result<(Tensor, Vec<f32>)> {
    let bad = |m: String| Error::msg(format!("yolo segmentation loss: {m}"));
    let (nb, na) = (p.batch, p.anchors);
    let pd = proto.dims();
    if pd.len() != 4 || pd[0] != nb {
        return Err(bad(format!(
            "proto {} is not [{nb}, nm, h, w]",
            proto.shape()
        )));
    }
    let nm = pd[1];
    if pm.dims() != [nb, nm, na] {
        return Err(bad(format!(
            "mask coefficients {} are not [{nb}, {nm}, {na}]",
            pm.shape()
        )));
    }
    let pm = pm.to_dtype(DType::F32)?;
    let proto0 = proto.to_dtype(DType::F32)?;
    let mut proto = proto0.clone();
    // Graph-keeping zero of the reference's `(proto * 0).sum() + (pred_masks * 0).sum()`,
    // added for every image without foreground.
    let zero = || -> Result<Tensor> { proto_zero(&proto0, &pm) };
    let nf = fg.flat.len();
    if nf == 0 {
        let z = zero()?.mul_scalar(cfg.box_gain as f64)?;
        return Ok((z, Vec::new()));
    }
    let masks = t
        .masks
        .as_ref()
        .ok_or_else(|| bad("targets have no masks".into()))?;
    let md = masks.dims();
    if md.len() != 3 || md[0] != t.len() {
        return Err(bad(format!(
            "masks {} are not [{}, h, w]",
            masks.shape(),
            t.len()
        )));
    }
    let (mh, mw) = (md[1], md[2]);
    if (mh, mw) != (pd[2], pd[3]) {
        proto = proto.upsample_bilinear2d((mh, mw), false)?;
    }
    let mv = Arc::new(masks.to_dtype(DType::F32)?.to_vec::<f32>()?);
    let hw = mh * mw;
    let idx = Tensor::from_vec(fg.flat.clone(), nf)?;
    let coef = pm
        .permute(&[0, 2, 1])?
        .reshape([nb * na, nm])?
        .index_select(0, &idx)?;
    let (ih, iw) = p.imgsz;
    let mut total: Option<Tensor> = None;
    let mut rows_out = Vec::with_capacity(nf);
    let mut start = 0;
    let mut any_empty = false;
    for b in 0..nb {
        let n = fg.image[start..].iter().take_while(|&&i| i == b).count();
        if n == 0 {
            any_empty = true;
            continue;
        }
        let mut inst = Vec::with_capacity(n);
        let mut crop = Vec::with_capacity(n);
        let mut area = Vec::with_capacity(n);
        for r in start..start + n {
            let a = fg.anchor[r];
            let asg = &p.assigned[b];
            inst.push(p.gts[b][asg.target_gt_idx[a]].instance);
            let [x1, y1, x2, y2] = asg.target_bboxes[a];
            let nx = [x1 / iw, y1 / ih, x2 / iw, y2 / ih];
            area.push((nx[2] - nx[0]) * (nx[3] - nx[1]));
            let [cx1, cy1, cx2, cy2] = [
                nx[0] * mw as f32,
                nx[1] * mh as f32,
                nx[2] * mw as f32,
                nx[3] * mh as f32,
            ];
            crop.push([cx1, cy1, cx2, cy2]);
        }
        // crop_mask: pixel (x, y) counts when x1 <= x < x2 and y1 <= y < y2.
        let mv = mv.clone();
        let tw: TargetFn = Arc::new(move |r, c| {
            let [x1, y1, x2, y2] = crop[r];
            let (x, y) = ((c % mw) as f32, (c / mw) as f32);
            let w = if x >= x1 && x < x2 && y >= y1 && y < y2 {
                1.0
            } else {
                0.0
            };
            (mv[inst[r] * hw + c], w)
        });
        let logits = coef
            .narrow(0, start, n)?
            .matmul(&proto.narrow(0, b, 1)?.reshape([nm, hw])?)?;
        let rows = bce_rows_with(&logits, tw)?
            .div_scalar(hw as f64)?
            .div(&Tensor::from_vec(area, n)?)?;
        rows_out.extend(rows.to_vec_f32()?);
        let s = rows.sum_all()?;
        total = Some(match total {
            Some(t) => t.add(&s)?,
            None => s,
        });
        start += n;
    }
    let mut loss = total.ok_or_else(|| bad("foreground rows out of order".into()))?;
    if any_empty {
        loss = loss.add(&zero()?)?;
    }
    let loss = loss
        .div_scalar(nf as f64)?
        .mul_scalar(cfg.box_gain as f64)?;
    Ok((loss, rows_out))
}

fn proto_zero(proto: &Tensor, pm: &Tensor) -> Result<Tensor> {
    proto
        .sum_all()?
        .mul_scalar(0.0)?
        .add(&pm.sum_all()?.mul_scalar(0.0)?)
}
