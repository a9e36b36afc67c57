//! The training loader: decode + augment in parallel, letterbox to `imgsz`, collate into
//! padded batches, prefetched on a background thread.
//!
//! Determinism: the epoch's order is a shuffle seeded by `(seed, epoch)`, and every sample
//! gets its own `Rng` seeded by `(seed, epoch, position)`, so a batch's content does not
//! depend on thread count or timing. Same seed → same batches, bit for bit.
//!
//! Per sample, as ultralytics' training dataset: load, resize so the long side is `imgsz`
//! (cv2 INTER_LINEAR for the image, nearest for masks), augment (partners for mosaic/mixup
//! are drawn from the dataset with the sample's `Rng`), then letterbox to `imgsz × imgsz`
//! (a no-op after an affine step, which already outputs that size).
use super::augment::Augmenter;
use super::dataset::Dataset;
use super::preprocess::resize_cv2::resize_linear_cv2;
use super::preprocess::{Letterbox, Placement};
use super::sample::{Instance, Sample};
use crate::tensor::Rng;
use crate::{Error, Result, Tensor};
use image::GrayImage;
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Square model input side (640 for YOLOv8).
    pub imgsz: u32,
    pub shuffle: bool,
    pub seed: u64,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    /// Masks come out at `imgsz / mask_ratio` (ultralytics' `mask_ratio`, 4), nearest
    /// sampled at pixel centres.
    pub mask_ratio: u32,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 16,
            imgsz: 640,
            shuffle: true,
            seed: 0,
            prefetch: 2,
            mask_ratio: 4,
            drop_last: false,
        }
    }
}

/// One batch with targets padded to the most instances of any image in it.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[B, 3, S, S]` f32 in 0..1.
    pub images: Tensor,
    /// `[B, N, 4]` f32, xyxy in input pixels; zero on padding.
    pub boxes: Tensor,
    /// `[B, N]` i64 class index; −1 on padding.
    pub classes: Tensor,
    /// `[B, N]` u8, 1 for crowd regions (to ignore, not to learn).
    pub crowd: Tensor,
    /// Real instances per image (the rest of `N` is padding).
    pub counts: Vec<usize>,
    /// `[B, N, S/r, S/r]` u8 0/1, when the dataset has masks.
    pub masks: Option<Tensor>,
    pub image_ids: Vec<u64>,
    /// How each image sits in the input relative to its augmented source.
    pub placements: Vec<Placement>,
    /// Instances augmentation removed (left the frame, hidden), for the training log.
    pub removed_instances: usize,
}

pub struct Loader {
    dataset: Arc<Dataset>,
    augmenter: Option<Arc<Augmenter>>,
    cfg: LoaderConfig,
}

impl Loader {
    pub fn new(
        dataset: Arc<Dataset>,
        augmenter: Option<Augmenter>,
        cfg: LoaderConfig,
    ) -> Result<Self> {
        if cfg.batch_size == 0
            || cfg.imgsz == 0
            || cfg.mask_ratio == 0
            || !cfg.imgsz.is_multiple_of(cfg.mask_ratio)
        {
            return Err(Error::msg(format!(
                "loader: batch_size {} and imgsz {} must be positive and imgsz a multiple of mask_ratio {}",
                cfg.batch_size, cfg.imgsz, cfg.mask_ratio
            )));
        }
        Ok(Loader {
            dataset,
            augmenter: augmenter.map(Arc::new),
            cfg,
        })
    }

    /// Batches in one epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        if self.cfg.drop_last {
            n / self.cfg.batch_size
        } else {
            n.div_ceil(self.cfg.batch_size)
        }
    }

    /// The dataset positions of `epoch`, in batch order.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.cfg.shuffle {
            Rng::new(mix(self.cfg.seed, epoch, u64::MAX)).shuffle(&mut order);
        }
        order
    }

    /// Iterates over the batches of `epoch`, prepared `prefetch` ahead on a background
    /// thread (samples of a batch in parallel on rayon). Dropping the iterator stops it.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let order = self.order(epoch);
        let (tx, rx) = sync_channel(self.cfg.prefetch.max(1));
        let (dataset, augmenter, cfg) = (
            self.dataset.clone(),
            self.augmenter.clone(),
            self.cfg.clone(),
        );
        let n_batches = self.num_batches();
        let worker = std::thread::spawn(move || {
            for b in 0..n_batches {
                let lo = b * cfg.batch_size;
                let hi = (lo + cfg.batch_size).min(order.len());
                let batch = make_batch(
                    &dataset,
                    augmenter.as_deref(),
                    &cfg,
                    epoch,
                    &order[lo..hi],
                    lo,
                );
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return; // consumer gone, or the error was the last word
                }
            }
        });
        Batches {
            rx,
            _worker: worker,
        }
    }
}

/// Iterator over one epoch's batches.
pub struct Batches {
    rx: Receiver<Result<Batch>>,
    _worker: std::thread::JoinHandle<()>,
}

impl Iterator for Batches {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

/// A seed for one `(seed, epoch, position)` (splitmix64 finaliser on each mixed word).
fn mix(seed: u64, epoch: u64, pos: u64) -> u64 {
    let f = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    f(f(f(seed) ^ epoch.wrapping_add(0x9e37_79b9_7f4a_7c15)) ^ pos)
}

fn make_batch(
    dataset: &Dataset,
    augmenter: Option<&Augmenter>,
    cfg: &LoaderConfig,
    epoch: u64,
    indices: &[usize],
    first_pos: usize,
) -> Result<Batch> {
    let prepared: Vec<(Sample, Placement, usize)> = indices
        .par_iter()
        .enumerate()
        .map(|(k, &idx)| {
            let mut rng = Rng::new(mix(cfg.seed, epoch, (first_pos + k) as u64));
            prepare(dataset, augmenter, cfg.imgsz, idx, &mut rng)
        })
        .collect::<Result<_>>()?;
    collate(prepared, cfg, dataset.with_masks)
}

/// One training sample: load, long side to `imgsz`, augment, letterbox.
pub fn prepare(
    dataset: &Dataset,
    augmenter: Option<&Augmenter>,
    imgsz: u32,
    index: usize,
    rng: &mut Rng,
) -> Result<(Sample, Placement, usize)> {
    let sample = resize_long_side(dataset.load(index)?, imgsz);
    let (sample, removed) = match augmenter {
        Some(aug) => {
            let n = dataset.len() as u64;
            let mut partners = |r: &mut Rng| {
                let j = r.below(n) as usize;
                Ok(resize_long_side(dataset.load(j)?, imgsz))
            };
            let (s, stats) = aug.apply(sample, &mut partners, rng)?;
            (s, stats.removed_instances)
        }
        None => (sample, 0),
    };
    let (sample, placement) = letterbox_sample(sample, imgsz)?;
    Ok((sample, placement, removed))
}

/// ultralytics `load_image`: scale so the long side is `imgsz` (sizes rounded up, capped at
/// `imgsz`), image by cv2 INTER_LINEAR, masks by nearest, boxes scaled.
pub fn resize_long_side(s: Sample, imgsz: u32) -> Sample {
    let (w0, h0) = s.image.dimensions();
    let r = f64::from(imgsz) / f64::from(w0.max(h0).max(1));
    if r == 1.0 {
        return s;
    }
    let w = ((f64::from(w0) * r).ceil() as u32).clamp(1, imgsz);
    let h = ((f64::from(h0) * r).ceil() as u32).clamp(1, imgsz);
    let (gx, gy) = (w as f32 / w0 as f32, h as f32 / h0 as f32);
    Sample {
        id: s.id,
        image: resize_linear_cv2(&s.image, w, h),
        instances: s
            .instances
            .into_iter()
            .map(|i| Instance {
                bbox: [
                    i.bbox[0] * gx,
                    i.bbox[1] * gy,
                    i.bbox[2] * gx,
                    i.bbox[3] * gy,
                ],
                mask: i.mask.map(|m| resize_nearest(&m, w, h)),
                ..i
            })
            .collect(),
    }
}

/// Letterbox image (as YOLO inference does), masks (nearest + zero padding) and boxes.
pub fn letterbox_sample(s: Sample, imgsz: u32) -> Result<(Sample, Placement)> {
    let lb = Letterbox { size: imgsz };
    let (image, p) = lb.apply_u8(&s.image)?;
    let instances = s
        .instances
        .into_iter()
        .map(|i| Instance {
            bbox: p.box_to_input(i.bbox),
            mask: i.mask.map(|m| {
                let content = resize_nearest(&m, p.new_w, p.new_h);
                let mut out = GrayImage::new(p.input_w, p.input_h);
                image::imageops::replace(&mut out, &content, i64::from(p.left), i64::from(p.top));
                out
            }),
            ..i
        })
        .collect();
    Ok((
        Sample {
            id: s.id,
            image,
            instances,
        },
        p,
    ))
}

/// cv2 INTER_NEAREST: destination pixel `x` takes source `floor(x · src_w / dst_w)`.
pub fn resize_nearest(m: &GrayImage, w: u32, h: u32) -> GrayImage {
    let (sw, sh) = m.dimensions();
    if (sw, sh) == (w, h) {
        return m.clone();
    }
    let xs: Vec<u32> = (0..w)
        .map(|x| ((u64::from(x) * u64::from(sw)) / u64::from(w)) as u32)
        .collect();
    GrayImage::from_fn(w, h, |x, y| {
        let sy = ((u64::from(y) * u64::from(sh)) / u64::from(h)) as u32;
        *m.get_pixel(xs[x as usize], sy)
    })
}

fn collate(
    prepared: Vec<(Sample, Placement, usize)>,
    cfg: &LoaderConfig,
    with_masks: bool,
) -> Result<Batch> {
    let b = prepared.len();
    let s = cfg.imgsz as usize;
    let n = prepared
        .iter()
        .map(|p| p.0.instances.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let ms = s / cfg.mask_ratio as usize;
    let mut images = vec![0f32; b * 3 * s * s];
    let mut boxes = vec![0f32; b * n * 4];
    let mut classes = vec![-1i64; b * n];
    let mut crowd = vec![0u8; b * n];
    let mut masks = if with_masks {
        vec![0u8; b * n * ms * ms]
    } else {
        Vec::new()
    };
    let (mut counts, mut image_ids, mut placements, mut removed) = (vec![], vec![], vec![], 0);
    for (i, (sample, placement, rem)) in prepared.into_iter().enumerate() {
        if sample.image.dimensions() != (cfg.imgsz, cfg.imgsz) {
            return Err(Error::msg(format!(
                "loader: image {} came out {:?}, expected {}²",
                sample.id,
                sample.image.dimensions(),
                cfg.imgsz
            )));
        }
        let plane = &mut images[i * 3 * s * s..(i + 1) * 3 * s * s];
        for (p, px) in sample.image.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                plane[c * s * s + p] = f32::from(px[c]) / 255.0;
            }
        }
        for (j, inst) in sample.instances.iter().enumerate() {
            boxes[(i * n + j) * 4..(i * n + j + 1) * 4].copy_from_slice(&inst.bbox);
            classes[i * n + j] = inst.class as i64;
            crowd[i * n + j] = u8::from(inst.crowd);
            if let (true, Some(m)) = (with_masks, &inst.mask) {
                let dst = &mut masks[(i * n + j) * ms * ms..(i * n + j + 1) * ms * ms];
                let r = cfg.mask_ratio;
                for y in 0..ms as u32 {
                    for x in 0..ms as u32 {
                        let v = m
                            .get_pixel_checked(x * r + r / 2, y * r + r / 2)
                            .map_or(0, |p| p[0]);
                        dst[(y * ms as u32 + x) as usize] = u8::from(v != 0);
                    }
                }
            }
        }
        counts.push(sample.instances.len());
        image_ids.push(sample.id);
        placements.push(placement);
        removed += rem;
    }
    Ok(Batch {
        images: Tensor::from_vec(images, [b, 3, s, s])?,
        boxes: Tensor::from_vec(boxes, [b, n, 4])?,
        classes: Tensor::from_vec(classes, [b, n])?,
        crowd: Tensor::from_vec(crowd, [b, n])?,
        counts,
        masks: if with_masks {
            Some(Tensor::from_vec(masks, [b, n, ms, ms])?)
        } else {
            None
        },
        image_ids,
        placements,
        removed_instances: removed,
    })
}
