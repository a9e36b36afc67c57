//! Generated instance-segmentation datasets (the demo's data): coloured shapes (circle,
//! square, triangle, star, hexagon) of 8–40 % of the image side, rotated, over gradient,
//! stripe or blotch backgrounds with noise, 1..=`max_objects` per image, later ones drawn
//! over earlier ones (an object must stay ≥ 40 % visible, without holes; see [`scene`]).
//!
//! Each annotation is the object's *visible* region: its pixels are traced to COCO
//! polygons ([`mask_to_polygons`], pixel-corner convention, so pycocotools rasterises them
//! back to exactly those pixels), and `bbox`/`area` come from that rasterisation
//! (pycocotools `toBbox`/`area`). Deterministic: a seed gives the same bytes, whatever the
//! thread count (each image has its own random stream).
//!
//! Layout under `out_dir`: `images/train/000000.png ...`, `images/val/...`, `train.json`,
//! `val.json`; `file_name`s are relative to `out_dir/images`. Every file is written
//! atomically and the JSON files last, so a crash never leaves a JSON naming missing images.
pub mod background;
pub mod scene;
pub mod shapes;

use crate::data::coco::{Annotation, Category, Coco, Image, Segmentation};
use crate::data::masks::{Rle, mask_to_polygons};
use crate::data::progress::Progress;
use crate::io::atomic::write_atomic;
use crate::tensor::Rng;
use crate::{Error, Result};
use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use rayon::prelude::*;
use serde_json::Map;
use shapes::ShapeKind;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    pub n_train: usize,
    pub n_val: usize,
    /// Square image side in pixels (≥ 32).
    pub size: u32,
    /// Class names, each one of [`ShapeKind::ALL`]; category ids are 1.. in this order.
    pub classes: Vec<String>,
    /// Objects per image are drawn uniformly from 1..=max_objects (fewer when they do not fit).
    pub max_objects: usize,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            n_train: 500,
            n_val: 100,
            size: 256,
            classes: ["circle", "square", "triangle", "star"]
                .map(String::from)
                .to_vec(),
            max_objects: 6,
            seed: 0,
        }
    }
}

/// Where the dataset went and how big it is.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOutput {
    /// The folder `file_name`s are relative to (`out_dir/images`).
    pub images_dir: PathBuf,
    pub train_json: PathBuf,
    pub val_json: PathBuf,
    pub train_images: usize,
    pub val_images: usize,
    pub train_annotations: usize,
    pub val_annotations: usize,
}

/// Images at or above this count show a progress line on stderr.
const PROGRESS_FROM: usize = 200;

/// Generate the dataset of `cfg` under `out_dir` (created if missing; files of an earlier
/// run with the same names are replaced).
pub fn generate(cfg: &SynthConfig, out_dir: &Path) -> Result<SynthOutput> {
    let kinds = check_config(cfg)?;
    let images_dir = out_dir.join("images");
    let progress = Progress::new("synthetic images", (cfg.n_train + cfg.n_val) as u64);
    let progress = if cfg.n_train + cfg.n_val >= PROGRESS_FROM {
        progress
    } else {
        progress.hidden()
    };
    let mut counts = Vec::new();
    let mut jsons = Vec::new();
    for (split, n, idx) in [("train", cfg.n_train, 0u64), ("val", cfg.n_val, 1)] {
        let dir = images_dir.join(split);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let coco = make_split(cfg, &kinds, split, n, idx, &images_dir, &progress)?;
        counts.push((coco.images.len(), coco.annotations.len()));
        jsons.push((out_dir.join(format!("{split}.json")), coco));
    }
    progress.finish();
    for (path, coco) in &jsons {
        coco.write(path)?;
    }
    Ok(SynthOutput {
        images_dir,
        train_json: jsons[0].0.clone(),
        val_json: jsons[1].0.clone(),
        train_images: counts[0].0,
        val_images: counts[1].0,
        train_annotations: counts[0].1,
        val_annotations: counts[1].1,
    })
}

fn check_config(cfg: &SynthConfig) -> Result<Vec<ShapeKind>> {
    if cfg.size < 32 || cfg.size > 8192 {
        return Err(Error::msg(format!(
            "synthetic dataset: size {} must be in 32..=8192",
            cfg.size
        )));
    }
    if cfg.classes.is_empty() || !(1..=1000).contains(&cfg.max_objects) {
        return Err(Error::msg(
            "synthetic dataset: need at least one class and max_objects in 1..=1000",
        ));
    }
    let kinds = cfg
        .classes
        .iter()
        .map(|c| ShapeKind::from_name(c))
        .collect::<Result<Vec<_>>>()?;
    if let Some(d) = cfg
        .classes
        .iter()
        .enumerate()
        .find(|(i, c)| cfg.classes[..*i].contains(c))
    {
        return Err(Error::msg(format!(
            "synthetic dataset: class {:?} listed twice",
            d.1
        )));
    }
    Ok(kinds)
}

/// splitmix64: a seed per (run seed, split, image) so images are independent streams.
fn image_seed(seed: u64, split: u64, i: u64) -> u64 {
    let mut z =
        seed ^ split.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One image's record and its annotations (ids filled in later, in order).
type Made = (Image, Vec<Annotation>);

fn make_split(
    cfg: &SynthConfig,
    kinds: &[ShapeKind],
    split: &str,
    n: usize,
    split_idx: u64,
    images_dir: &Path,
    progress: &Progress,
) -> Result<Coco> {
    let made: Vec<Made> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = make_image(cfg, kinds, split, i, split_idx, images_dir);
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    let mut coco = Coco {
        categories: cfg
            .classes
            .iter()
            .enumerate()
            .map(|(i, name)| Category {
                id: i as u64 + 1,
                name: name.clone(),
                supercategory: Some("shape".into()),
                extra: Map::new(),
            })
            .collect(),
        ..Coco::default()
    };
    for (im, anns) in made {
        for mut a in anns {
            a.id = coco.annotations.len() as u64 + 1;
            coco.annotations.push(a);
        }
        coco.images.push(im);
    }
    Ok(coco)
}

fn make_image(
    cfg: &SynthConfig,
    kinds: &[ShapeKind],
    split: &str,
    i: usize,
    split_idx: u64,
    images_dir: &Path,
) -> Result<Made> {
    let mut rng = Rng::new(image_seed(cfg.seed, split_idx, i as u64));
    let sc = scene::render(&mut rng, cfg.size, kinds, cfg.max_objects);
    let file_name = format!("{split}/{i:06}.png");
    let path = images_dir.join(&file_name);
    write_png(&path, &sc.image)?;
    let id = i as u64 + 1;
    let anns = sc
        .objects
        .iter()
        .map(|o| visible_annotation(o, id, cfg.size))
        .collect::<Result<Vec<_>>>()?;
    let image = Image {
        id,
        file_name,
        width: Some(cfg.size),
        height: Some(cfg.size),
        extra: Map::new(),
    };
    Ok((image, anns))
}

/// The COCO record of one visible region of image `image_id` (`size`²): polygons traced
/// from its pixels, bbox and area from their pycocotools rasterisation; `id` is 0 (the
/// generator numbers annotations afterwards).
pub fn visible_annotation(o: &scene::Visible, image_id: u64, size: u32) -> Result<Annotation> {
    let [x0, y0, x1, y1] = o.rect;
    let polys: Vec<Vec<f64>> = mask_to_polygons(&o.bits, x1 - x0, y1 - y0)
        .into_iter()
        .map(|p| {
            p.chunks_exact(2)
                .flat_map(|xy| [xy[0] + x0 as f64, xy[1] + y0 as f64])
                .collect()
        })
        .collect();
    let rle = Rle::from_polygons(&polys, size, size)
        .map_err(|e| Error::msg(format!("synthetic dataset: image {image_id}: {e}")))?;
    Ok(Annotation {
        id: 0,
        image_id,
        category_id: o.class as u64 + 1,
        bbox: Some(rle.to_bbox().to_vec()),
        area: Some(rle.area() as f64),
        segmentation: Some(Segmentation::Polygons(polys)),
        iscrowd: Some(0),
        extra: Map::new(),
    })
}

/// PNG (fast compression: these images are noisy and compress little anyway), atomically.
fn write_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    write_atomic(path, |w| {
        PngEncoder::new_with_quality(w, CompressionType::Fast, FilterType::Sub)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::msg(format!("encoding {}: {e}", path.display())))
    })
}
