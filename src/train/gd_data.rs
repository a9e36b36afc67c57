//! Grounding DINO training targets from a COCO split: per image its size and every object's
//! box as normalised cxcywh with its class (= phrase) index. Crowd regions are not targets
//! (as in DETR-style training); a box of zero width or height is an error naming it.
use crate::data::dataset::Dataset;
use crate::{Error, Result, Tensor};

#[derive(Clone, Debug)]
pub struct GdItem {
    pub id: u64,
    pub orig_w: u32,
    pub orig_h: u32,
    pub boxes: Vec<[f32; 4]>,
    pub labels: Vec<usize>,
}

impl GdItem {
    /// [n, 4] cxcywh tensor of the targets.
    pub fn boxes_tensor(&self) -> Result<Tensor> {
        let v: Vec<f32> = self.boxes.iter().flatten().copied().collect();
        Tensor::from_vec(v, [self.boxes.len(), 4])
    }
}

pub fn items_of(ds: &Dataset, source: &str) -> Result<Vec<GdItem>> {
    (0..ds.len())
        .map(|i| {
            let (id, (w, h), inst) = ds.load_annotations(i)?;
            let mut it = GdItem {
                id,
                orig_w: w,
                orig_h: h,
                boxes: Vec::new(),
                labels: Vec::new(),
            };
            for (k, o) in inst.iter().enumerate().filter(|(_, o)| !o.crowd) {
                let [x0, y0, x1, y1] = o.bbox;
                if !(x1 > x0 && y1 > y0) {
                    return Err(Error::Format {
                        path: source.to_string(),
                        record: format!("image {id}, object {k}"),
                        msg: format!("box {:?} has no area", o.bbox),
                    });
                }
                let (wf, hf) = (w as f32, h as f32);
                it.boxes.push([
                    (x0 + x1) / 2.0 / wf,
                    (y0 + y1) / 2.0 / hf,
                    (x1 - x0) / wf,
                    (y1 - y0) / hf,
                ]);
                it.labels.push(o.class);
            }
            Ok(it)
        })
        .collect()
}
