//! What the SAM teacher trains on, per image: the preprocessing placement, and per object
//! its box prompt (from the annotation, or from the mask when the box is empty) and its
//! ground truth at the decoder's low resolution (loss) and, as RLE, at the original size
//! (validation IoU). Boxes outside the image are errors that name the image and object.
use crate::data::dataset::Dataset;
use crate::data::masks::Rle;
use crate::data::preprocess::{Placement, SamResize};
use crate::data::sample::Instance;
use crate::tensor::Rng;
use crate::{Error, Result};
use image::GrayImage;

pub struct Object {
    /// xyxy in original pixels.
    pub bbox: [f32; 4],
    /// L×L 0/1, row-major, in the padded input frame at the decoder's output size.
    pub low: Vec<u8>,
    pub full: Rle,
}

pub struct Item {
    pub id: u64,
    pub placement: Placement,
    pub objects: Vec<Object>,
}

/// Box of a mask's foreground, or None when it is empty.
pub fn mask_box(m: &GrayImage) -> Option<[f32; 4]> {
    let (w, h) = m.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if m.get_pixel(x, y)[0] != 0 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
    }
    (x0 != u32::MAX).then_some([x0 as f32, y0 as f32, x1 as f32, y1 as f32])
}

/// The box prompt of instance `k` of image `id`: its box, or its mask's when the box is
/// empty; an error when it leaves the image (more than a pixel of slack) or is empty.
pub fn prompt_box(inst: &Instance, id: u64, k: usize, w: u32, h: u32) -> Result<[f32; 4]> {
    let mut b = inst.bbox;
    if (b[2] - b[0] <= 0.0 || b[3] - b[1] <= 0.0)
        && let Some(m) = inst.mask.as_ref().and_then(mask_box)
    {
        b = m;
    }
    let (wf, hf) = (w as f32, h as f32);
    let finite = b.iter().all(|v| v.is_finite());
    if !finite || b[2] - b[0] <= 0.0 || b[3] - b[1] <= 0.0 {
        return Err(Error::msg(format!(
            "image {id}, object {k}: box {b:?} is empty and its mask gives none"
        )));
    }
    if b[0] < -1.0 || b[1] < -1.0 || b[2] > wf + 1.0 || b[3] > hf + 1.0 {
        return Err(Error::msg(format!(
            "image {id}, object {k}: box {b:?} (xyxy) lies outside the {w}×{h} image"
        )));
    }
    Ok([b[0].max(0.0), b[1].max(0.0), b[2].min(wf), b[3].min(hf)])
}

/// `mask` resampled (nearest, at cell centres) onto the `l`×`l` grid over the padded
/// input; cells over the padding are 0.
pub fn low_res_target(mask: &GrayImage, p: &Placement, l: usize) -> Vec<u8> {
    let (gx, gy) = p.gain();
    let cell_x = p.input_w as f64 / l as f64;
    let cell_y = p.input_h as f64 / l as f64;
    let mut out = vec![0u8; l * l];
    for y in 0..l {
        let v = (y as f64 + 0.5) * cell_y;
        if v >= p.new_h as f64 {
            continue;
        }
        let oy = ((v / gy) as u32).min(p.orig_h - 1);
        for x in 0..l {
            let u = (x as f64 + 0.5) * cell_x;
            if u >= p.new_w as f64 {
                continue;
            }
            let ox = ((u / gx) as u32).min(p.orig_w - 1);
            out[y * l + x] = u8::from(mask.get_pixel(ox, oy)[0] != 0);
        }
    }
    out
}

/// The objects of image `id` of size `w`×`h` (crowd regions skipped; they are not single
/// objects).
pub fn item_of(
    id: u64,
    (w, h): (u32, u32),
    instances: &[Instance],
    resize: &SamResize,
    l: usize,
) -> Result<Item> {
    let placement = resize.placement(w, h);
    let mut objects = Vec::new();
    for (k, inst) in instances.iter().enumerate() {
        if inst.crowd {
            continue;
        }
        let Some(mask) = &inst.mask else {
            return Err(Error::msg(format!(
                "image {id}, object {k}: no mask (the SAM teacher needs masks on every object)"
            )));
        };
        let bbox = prompt_box(inst, id, k, w, h)?;
        let full =
            Rle::from_gray(mask).map_err(|e| Error::msg(format!("image {id}, object {k}: {e}")))?;
        objects.push(Object {
            bbox,
            low: low_res_target(mask, &placement, l),
            full,
        });
    }
    Ok(Item {
        id,
        placement,
        objects,
    })
}

/// Items of every image of `ds`, from the annotations alone (no image is decoded).
pub fn items_of(ds: &Dataset, resize: &SamResize, l: usize) -> Result<Vec<Item>> {
    (0..ds.len())
        .map(|i| {
            let (id, size, instances) = ds.load_annotations(i)?;
            item_of(id, size, &instances, resize, l)
        })
        .collect()
}

/// `b` with each side moved by up to ±`frac` of the box's size, at most `max_px` pixels
/// (SAM-style box noise), kept inside the `w`×`h` image and non-empty.
pub fn jitter_box(b: [f32; 4], frac: f64, max_px: f64, w: u32, h: u32, rng: &mut Rng) -> [f32; 4] {
    if frac <= 0.0 {
        return b;
    }
    let (bw, bh) = ((b[2] - b[0]) as f64, (b[3] - b[1]) as f64);
    let mut o = b;
    for (i, side, lim) in [(0, bw, w), (1, bh, h), (2, bw, w), (3, bh, h)] {
        let amp = (frac * side).min(max_px);
        let v = b[i] as f64 + (2.0 * rng.uniform() - 1.0) * amp;
        o[i] = v.clamp(0.0, lim as f64) as f32;
    }
    if o[2] - o[0] < 1.0 || o[3] - o[1] < 1.0 {
        b
    } else {
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sample::Instance;

    fn inst(bbox: [f32; 4], mask: Option<GrayImage>) -> Instance {
        Instance {
            class: 0,
            bbox,
            mask,
            crowd: false,
        }
    }

    #[test]
    fn boxes_outside_or_empty_are_errors_naming_image_and_object() {
        let e = prompt_box(&inst([10.0, 10.0, 90.0, 40.0], None), 7, 2, 64, 48)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("image 7") && e.contains("object 2") && e.contains("64×48"),
            "{e}"
        );
        let e = prompt_box(&inst([5.0, 5.0, 5.0, 9.0], None), 3, 0, 64, 48)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image 3") && e.contains("empty"), "{e}");
        // Within a pixel of the border is clamped, not refused.
        assert_eq!(
            prompt_box(&inst([-0.5, 0.0, 64.5, 48.0], None), 1, 0, 64, 48).unwrap(),
            [0.0, 0.0, 64.0, 48.0]
        );
    }

    #[test]
    fn empty_box_comes_from_the_mask() {
        let mut m = GrayImage::new(20, 10);
        for (x, y) in [(3, 2), (8, 6)] {
            m.put_pixel(x, y, image::Luma([1]));
        }
        let b = prompt_box(&inst([0.0, 0.0, 0.0, 0.0], Some(m)), 1, 0, 20, 10).unwrap();
        assert_eq!(b, [3.0, 2.0, 9.0, 7.0]);
    }

    #[test]
    fn jitter_stays_inside_and_bounded() {
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let b = jitter_box([10.0, 10.0, 50.0, 30.0], 0.1, 20.0, 60, 40, &mut rng);
            assert!(
                b[0] >= 6.0 && b[0] <= 14.0 && b[1] >= 8.0 && b[1] <= 12.0,
                "{b:?}"
            );
            assert!(b[2] <= 54.0 && b[3] <= 32.0 && b[2] - b[0] >= 1.0, "{b:?}");
        }
    }
}
