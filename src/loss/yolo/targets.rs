//! Ground truth for the YOLO losses: the flat ultralytics layout (`batch_idx`, `cls`,
//! normalised xywh `bboxes`, per-instance masks) and its per-image pixel-xyxy form
//! (ultralytics `v8DetectionLoss.preprocess`).
use crate::data::loader::Batch;
use crate::{DType, Error, Result, Tensor};

/// Instances of a batch in ultralytics' flat layout, in batch order.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// Image of each instance (`0..B`).
    pub batch_idx: Vec<usize>,
    /// Class of each instance (`0..nc`).
    pub cls: Vec<usize>,
    /// Boxes as normalised (cx, cy, w, h), fractions of the input width/height.
    pub bboxes: Vec<[f32; 4]>,
    /// `[N, mh, mw]` f32 0/1, one mask per instance (overlap_mask = false), when segmenting.
    pub masks: Option<Tensor>,
}

impl Targets {
    /// The loader's padded batch as flat targets: padding (class < 0, beyond `counts`) and
    /// crowd regions are skipped; pixel xyxy boxes become normalised xywh; masks
    /// `[B, N, h, w]` u8 become `[Nreal, h, w]` f32.
    pub fn from_batch(b: &Batch) -> Result<Targets> {
        let bad = |m: String| Error::msg(format!("Targets::from_batch: {m}"));
        let idims = b.images.dims();
        if idims.len() != 4 {
            return Err(bad(format!(
                "images {} are not [B, 3, H, W]",
                b.images.shape()
            )));
        }
        let (nb, ih, iw) = (idims[0], idims[2] as f32, idims[3] as f32);
        let bd = b.boxes.dims();
        if bd.len() != 3 || bd[0] != nb || bd[2] != 4 {
            return Err(bad(format!(
                "boxes {} are not [{nb}, N, 4]",
                b.boxes.shape()
            )));
        }
        let n = bd[1];
        if b.classes.dims() != [nb, n] || b.crowd.dims() != [nb, n] || b.counts.len() != nb {
            return Err(bad(format!(
                "classes {}, crowd {} or {} counts do not match boxes {}",
                b.classes.shape(),
                b.crowd.shape(),
                b.counts.len(),
                b.boxes.shape()
            )));
        }
        let boxes = b.boxes.to_vec_f32()?;
        let classes = b.classes.to_vec_f64()?;
        let crowd = b.crowd.to_vec_f64()?;
        let mut t = Targets::default();
        let mut keep = Vec::new();
        for i in 0..nb {
            for j in 0..n.min(b.counts[i]) {
                let k = i * n + j;
                if classes[k] < 0.0 || crowd[k] != 0.0 {
                    continue;
                }
                let [x1, y1, x2, y2] = [0, 1, 2, 3].map(|c| boxes[k * 4 + c]);
                t.batch_idx.push(i);
                t.cls.push(classes[k] as usize);
                t.bboxes.push([
                    (x1 + x2) / 2.0 / iw,
                    (y1 + y2) / 2.0 / ih,
                    (x2 - x1) / iw,
                    (y2 - y1) / ih,
                ]);
                keep.push(k as i64);
            }
        }
        if let Some(m) = &b.masks {
            let md = m.dims();
            if md.len() != 4 || md[0] != nb || md[1] != n {
                return Err(bad(format!(
                    "masks {} are not [{nb}, {n}, h, w]",
                    m.shape()
                )));
            }
            let flat = m.reshape([nb * n, md[2], md[3]])?;
            let idx = Tensor::from_vec(keep.clone(), keep.len())?;
            t.masks = Some(flat.index_select(0, &idx)?.to_dtype(DType::F32)?);
        }
        Ok(t)
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.batch_idx.len()
    }
    pub fn is_empty(&self) -> bool {
        self.batch_idx.is_empty()
    }
}

/// One ground-truth box of one image: class, pixel xyxy, and its row in `Targets`.
#[derive(Clone, Copy, Debug)]
pub struct GtBox {
    pub label: usize,
    pub xyxy: [f32; 4],
    pub instance: usize,
}

/// Per-image gt boxes in input pixels, in the order they appear in `t` (ultralytics
/// `preprocess`: xywh × (W, H, W, H), then xywh → xyxy in f32).
pub(crate) fn per_image(
    t: &Targets,
    batch: usize,
    nc: usize,
    imgsz: (f32, f32),
) -> Result<Vec<Vec<GtBox>>> {
    let n = t.batch_idx.len();
    if t.cls.len() != n || t.bboxes.len() != n {
        return Err(Error::msg(format!(
            "yolo loss targets: {n} batch_idx, {} cls, {} bboxes",
            t.cls.len(),
            t.bboxes.len()
        )));
    }
    let (h, w) = imgsz;
    let mut out = vec![Vec::new(); batch];
    for k in 0..n {
        let (b, c, bb) = (t.batch_idx[k], t.cls[k], t.bboxes[k]);
        if b >= batch || c >= nc || bb.iter().any(|v| !v.is_finite()) {
            return Err(Error::msg(format!(
                "yolo loss targets: instance {k} has image {b} (batch {batch}), class {c} (nc {nc}), box {bb:?}"
            )));
        }
        let (cx, cy, bw, bh) = (bb[0] * w, bb[1] * h, bb[2] * w, bb[3] * h);
        let (hw, hh) = (bw / 2.0, bh / 2.0);
        out[b].push(GtBox {
            label: c,
            xyxy: [cx - hw, cy - hh, cx + hw, cy + hh],
            instance: k,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_batch_skips_padding_and_crowd_and_normalises() {
        let boxes = vec![
            4.0f32, 8.0, 20.0, 16.0, /* crowd */ 0.0, 0.0, 8.0, 8.0, //
            12.0, 0.0, 48.0, 32.0, /* padding */ 0.0, 0.0, 0.0, 0.0,
        ];
        let mut masks = vec![0u8; 2 * 2 * 8 * 12];
        masks[0] = 1; // image 0, instance 0
        masks[2 * 96 + 5] = 1; // image 1, instance 0
        let b = Batch {
            images: Tensor::zeros([2, 3, 32, 48], DType::F32),
            boxes: Tensor::from_vec(boxes, [2, 2, 4]).unwrap(),
            classes: Tensor::from_vec(vec![1i64, 2, 0, -1], [2, 2]).unwrap(),
            crowd: Tensor::from_vec(vec![0u8, 1, 0, 0], [2, 2]).unwrap(),
            counts: vec![2, 1],
            masks: Some(Tensor::from_vec(masks, [2, 2, 8, 12]).unwrap()),
            image_ids: vec![0, 1],
            placements: Vec::new(),
            removed_instances: 0,
        };
        let t = Targets::from_batch(&b).unwrap();
        assert_eq!(t.batch_idx, vec![0, 1]);
        assert_eq!(t.cls, vec![1, 0]);
        assert_eq!(
            t.bboxes[0],
            [12.0 / 48.0, 12.0 / 32.0, 16.0 / 48.0, 8.0 / 32.0]
        );
        assert_eq!(t.bboxes[1], [0.625, 0.5, 0.75, 1.0]);
        let m = t.masks.clone().unwrap();
        assert_eq!(m.dims(), &[2, 8, 12]);
        let v = m.to_vec_f32().unwrap();
        assert_eq!((v[0], v[96 + 5], v.iter().sum::<f32>()), (1.0, 1.0, 2.0));
        // back to pixels for the loss
        let g = per_image(&t, 2, 3, (32.0, 48.0)).unwrap();
        assert_eq!(g[0][0].xyxy, [4.0, 8.0, 20.0, 16.0]);
        assert_eq!((g[1][0].label, g[1][0].instance), (0, 1));
        assert!(per_image(&t, 1, 3, (32.0, 48.0)).is_err());
    }
}
