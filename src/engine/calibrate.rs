//! Activation calibration for the INT8 engine (`ed-calibrate`): run the fp32 graph of the
//! trained student over a seeded sample of training images, letterboxed as the engine
//! will see them, and collect a histogram of every conv input that gets quantized; the
//! cache keeps each tensor's range by all three methods (minmax, percentile, entropy), so
//! the export can use any of them without running the images again.
use super::capture::capture_yolo;
use super::exec::run_observed;
use super::graph::Graph;
use super::quantize::{QuantOptions, calibrated_values};
use crate::data::Coco;
use crate::data::image::load_rgb;
use crate::data::progress::Progress;
use crate::models::yolov8::load_model;
use crate::models::yolov8::model_file::resolve_model_path;
use crate::models::yolov8::predictor::letterbox_batch;
use crate::quant::{CalibCache, Collector, Method};
use crate::tensor::Rng;
use crate::{Error, Result, Tensor};
use std::collections::HashSet;
use std::path::Path;

/// What to calibrate on.
#[derive(Clone, Debug)]
pub struct CalibOptions {
    /// Images used (TensorRT's guidance: about 500); fewer when the dataset is smaller.
    pub num: usize,
    pub seed: u64,
    pub batch: usize,
    /// The method the cache names as its default (the export may pick another).
    pub method: Method,
    pub quant: QuantOptions,
}

impl Default for CalibOptions {
    fn default() -> Self {
        CalibOptions {
            num: 512,
            seed: 0,
            batch: 4,
            method: Method::Entropy,
            quant: QuantOptions::default(),
        }
    }
}

/// Run the fp32 `graph` on one batch `x` and add the `wanted` values (conv inputs from
/// `calibrated_values`) to `col`.
pub fn observe(
    graph: &Graph,
    wanted: &HashSet<String>,
    x: &Tensor,
    col: &mut Collector,
) -> Result<()> {
    run_observed(graph, graph, x, &mut |name, t| {
        if wanted.contains(name) {
            t.with_slice(|s: &[f32]| col.observe(name, s))??;
        }
        Ok(())
    })?;
    Ok(())
}

/// Calibrate `model` (file or run directory) on images of the COCO file `data` (file
/// names relative to `images`). A missing or undecodable image stops it, naming the file.
pub fn calibrate(model: &Path, data: &Path, images: &Path, o: &CalibOptions) -> Result<CalibCache> {
    let path = resolve_model_path(model)?;
    let (m, meta) = load_model(&path)?;
    let graph = capture_yolo(&m, meta.imgsz as usize)?;
    let wanted: HashSet<String> = calibrated_values(&graph, &o.quant).into_iter().collect();
    let coco = Coco::read_strict(data)?;
    let mut ids: Vec<(u64, String)> = coco
        .images
        .iter()
        .map(|im| (im.id, im.file_name.clone()))
        .collect();
    if ids.is_empty() {
        return Err(Error::msg(format!(
            "{}: no images to calibrate on",
            data.display()
        )));
    }
    ids.sort();
    Rng::new(o.seed).shuffle(&mut ids);
    ids.truncate(o.num.max(1));
    let progress = Progress::new("calibration images", ids.len() as u64);
    let mut col = Collector::default();
    for chunk in ids.chunks(o.batch.max(1)) {
        let imgs = chunk
            .iter()
            .map(|(id, f)| {
                load_rgb(images.join(f))
                    .map_err(|e| e.context(format!("{} image id {id} ({f:?})", data.display())))
            })
            .collect::<Result<Vec<_>>>()?;
        let (x, _) = letterbox_batch(&imgs, meta.imgsz)?;
        observe(&graph, &wanted, &x, &mut col)?;
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    col.finish(ids.len(), &path.display().to_string(), o.method)
}
