//! `Engine`: an engine file ready to run. `Engine::load(path)?.run(&image)` letterboxes
//! the image as the header says, runs the graph on CPU with the weights read in place from
//! the file, and applies the student's postprocess (NMS, masks, back to the image's own
//! pixels) — the same code path as the model-file `Predictor`.
use super::exec;
use super::format::EngineFile;
use crate::data::preprocess::Placement;
use crate::models::yolov8::Detector;
use crate::models::yolov8::postprocess::{Binarize, NmsConfig, Prediction};
use crate::models::yolov8::predictor::{letterbox_batch, postprocess};
use crate::{Error, Result, Tensor};
use image::RgbImage;
use std::path::Path;

pub struct Engine {
    file: EngineFile,
    nms: NmsConfig,
    rule: Binarize,
    /// Kernel choices of the CPU executor (`ExecOptions::default()` unless set).
    exec: exec::ExecOptions,
    /// Set by `on_cuda`: the GPU and the plan for the last batch size run.
    cuda: Option<CudaSlot>,
}

struct CudaSlot {
    dev: &'static crate::backend::cuda::CudaDevice,
    plan: std::sync::Mutex<Option<super::cuda_exec::CudaEngine>>,
}

/// Whether `path` is an engine file (by its magic), not a model file.
pub fn is_engine_file(path: &Path) -> bool {
    use std::io::Read;
    let mut m = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut m))
        .is_ok_and(|_| &m == super::format::MAGIC)
}

impl Engine {
    /// Open and check an engine file; NMS from its header's postprocess defaults.
    pub fn load(path: &Path) -> Result<Engine> {
        Self::from_file(EngineFile::open(path)?)
    }

    pub fn from_file(file: EngineFile) -> Result<Engine> {
        let h = file.header();
        if h.input.preprocess.resize != "letterbox" || h.input.shape.len() != 4 {
            return Err(Error::msg(format!(
                "{}: input preprocess {:?} with shape {:?} is not supported",
                file.path(),
                h.input.preprocess.resize,
                h.input.shape
            )));
        }
        let s = h.input.preprocess.size;
        let (nc, m) = (h.model.nc, &h.model);
        let raw_ok = h
            .raw_outputs
            .first()
            .is_some_and(|p| p.shape.len() == 3 && p.shape[1] == 4 + nc + m.nm)
            && (m.nm == 0) == (h.raw_outputs.len() == 1);
        if h.input.shape != [1, 3, s, s]
            || h.names.len() != nc
            || h.category_ids.len() != nc
            || !raw_ok
        {
            return Err(Error::msg(format!(
                "{}: header does not fit together (input {:?} for size {s}, {} names and {} ids for nc {nc}, outputs {:?})",
                file.path(),
                h.input.shape,
                h.names.len(),
                h.category_ids.len(),
                h.raw_outputs
            )));
        }
        let pp = &h.postprocess;
        let nms = NmsConfig {
            conf: pp.conf,
            iou: pp.iou,
            max_det: pp.max_det,
            ..NmsConfig::default()
        };
        Ok(Engine {
            file,
            nms,
            rule: Binarize::Half,
            exec: exec::ExecOptions::default(),
            cuda: None,
        })
    }

    pub fn file(&self) -> &EngineFile {
        &self.file
    }

    pub fn with_nms(mut self, nms: NmsConfig) -> Engine {
        self.nms = nms;
        self
    }

    /// The CPU executor's kernel choices: `ExecOptions::EXACT` gives the model's own
    /// forward bit for bit, `FAST` (the default) Winograd 3×3 convolutions.
    pub fn with_exec(mut self, opts: exec::ExecOptions) -> Engine {
        self.exec = opts;
        self
    }

    /// Run on GPU `ordinal` from now on: `Conv` layers in f16, `QConv` layers in INT8
    /// (dp4a), weights uploaded on the first run of each batch size. An error (not a
    /// silent CPU run) when the GPU cannot be opened.
    pub fn on_cuda(mut self, ordinal: usize) -> Result<Engine> {
        let dev = crate::backend::cuda::CudaDevice::get(ordinal)?;
        self.cuda = Some(CudaSlot {
            dev,
            plan: std::sync::Mutex::new(None),
        });
        Ok(self)
    }

    /// "cpu" or the GPU's name.
    pub fn device_name(&self) -> String {
        match &self.cuda {
            Some(c) => format!("cuda:{} ({})", c.dev.ordinal, c.dev.name),
            None => "cpu".into(),
        }
    }

    /// The graph's raw outputs (`pred`, then `proto` for seg) for a ready input.
    pub fn forward(&self, images: &Tensor) -> Result<Vec<Tensor>> {
        let ctx = |e: Error| e.context(format!("engine {}", self.file.path()));
        let Some(slot) = &self.cuda else {
            return exec::run_with(self.file.graph(), &self.file, images, self.exec).map_err(ctx);
        };
        let mut plan = slot.plan.lock().unwrap_or_else(|e| e.into_inner());
        if plan
            .as_ref()
            .is_none_or(|p| p.input_shape() != images.dims())
        {
            *plan = None; // free the old plan's buffers before allocating the new one
            let batch = images.dims().first().copied().unwrap_or(0);
            *plan = Some(
                super::cuda_exec::CudaEngine::new(slot.dev, self.file.graph(), &self.file, batch)
                    .map_err(ctx)?,
            );
        }
        match plan.as_ref() {
            Some(p) => p.run(images).map_err(ctx),
            None => Err(ctx(Error::msg("no CUDA plan"))),
        }
    }

    /// Detections of one image in its own pixels.
    pub fn run(&self, image: &RgbImage) -> Result<Prediction> {
        self.run_batch(std::slice::from_ref(image))?
            .pop()
            .ok_or_else(|| Error::msg("engine: no output for the image"))
    }

    /// Detections of several images run as one batch.
    pub fn run_batch(&self, images: &[RgbImage]) -> Result<Vec<Prediction>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let (batch, placements) = letterbox_batch(images, self.input_size())?;
        self.run_tensor(&batch, &placements)
    }

    /// Detections from a ready `[B, 3, S, S]` input with one placement per image.
    pub fn run_tensor(&self, batch: &Tensor, placements: &[Placement]) -> Result<Vec<Prediction>> {
        let outs = self.forward(batch)?;
        let nc = self.file.header().model.nc;
        postprocess(&outs[0], outs.get(1), nc, &self.nms, placements, self.rule)
    }
}

impl Detector for Engine {
    fn detect(&self, imgs: &[RgbImage]) -> Result<Vec<Prediction>> {
        self.run_batch(imgs)
    }
    fn class_names(&self) -> &[String] {
        &self.file.header().names
    }
    fn class_category_ids(&self) -> &[u64] {
        &self.file.header().category_ids
    }
    fn has_masks(&self) -> bool {
        self.file.header().model.nm > 0
    }
    fn input_size(&self) -> u32 {
        self.file.header().input.preprocess.size as u32
    }
    fn configure(&mut self, nms: NmsConfig, rule: Binarize) {
        self.nms = nms;
        self.rule = rule;
    }
}

/// A model file or an engine file (told apart by the engine magic), ready to predict.
pub fn load_detector(path: &Path) -> Result<Box<dyn Detector>> {
    load_detector_on(path, crate::Device::Cpu)
}

/// [`load_detector`] on `device`. Engine files run on CUDA; a model file runs on the CPU
/// only, so asking for CUDA with one is an error that says how to get an engine.
pub fn load_detector_on(path: &Path, device: crate::Device) -> Result<Box<dyn Detector>> {
    let engine = path.is_file() && is_engine_file(path);
    match (device, engine) {
        (crate::Device::Cpu, true) => Ok(Box::new(Engine::load(path)?)),
        (crate::Device::Cpu, false) => Ok(Box::new(crate::models::yolov8::Predictor::load(path)?)),
        (crate::Device::Cuda(n), true) => Ok(Box::new(Engine::load(path)?.on_cuda(n)?)),
        (crate::Device::Cuda(_), false) => Err(Error::msg(format!(
            "{}: only engine files run on CUDA; make one with `ed-export --model {} --format engine`",
            path.display(),
            path.display()
        ))),
    }
}
