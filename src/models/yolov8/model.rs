//! `YoloModel`: ultralytics DetectionModel / SegmentationModel built from its yaml config,
//! with the state-dict names `model.<i>.…`. Train forward (batch-statistics BN, graph
//! recorded) gives the raw head outputs the loss takes; eval forward decodes them.
use super::blocks::{C2f, Conv, Sppf};
use super::config::YoloConfig;
use super::head::{Head, HeadOutput};
use super::plan::LayerKind;
use crate::io::StateDict;
use crate::nn::{Module, load_state_dict};
use crate::tensor::Rng;
use crate::{Error, Result, ResultExt, Tensor};

/// One layer of `model.<i>`.
pub enum Layer {
    Conv(Conv),
    C2f(C2f),
    Sppf(Sppf),
    Upsample(usize),
    Concat,
    Head(Box<Head>),
}

impl Module for Layer {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        match self {
            Layer::Conv(m) => m.visit_children(f),
            Layer::C2f(m) => m.visit_children(f),
            Layer::Sppf(m) => m.visit_children(f),
            Layer::Head(m) => m.visit_children(f),
            Layer::Upsample(_) | Layer::Concat => {}
        }
    }
}

/// The `model` ModuleList.
pub struct Layers(pub Vec<Layer>);

impl Module for Layers {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, m) in self.0.iter().enumerate() {
            f(&i.to_string(), m);
        }
    }
}

/// Training-mode outputs: ultralytics 8.4's prediction dict.
pub struct TrainOutput {
    /// `[B, 4·reg_max, A]` box distributions (levels concatenated, row-major per level).
    pub boxes: Tensor,
    /// `[B, nc, A]` class logits.
    pub scores: Tensor,
    /// The head's inputs, `[B, C_i, h_i, w_i]` per level (ultralytics `preds["feats"]`;
    /// the loss takes the anchor grid from their sizes).
    pub feats: Vec<Tensor>,
    /// `[B, nm, A]` mask coefficients (Segment only).
    pub mask_coef: Option<Tensor>,
    /// `[B, nm, H/4, W/4]` mask prototypes (Segment only).
    pub proto: Option<Tensor>,
}

/// Eval-mode outputs.
pub struct EvalOutput {
    /// `[B, 4 + nc (+ nm), A]`: xywh in input pixels, class sigmoid, mask coefficients.
    pub pred: Tensor,
    /// `[B, nm, H/4, W/4]` (Segment only).
    pub proto: Option<Tensor>,
}

/// A YOLOv8 detect or seg model.
pub struct YoloModel {
    pub model: Layers,
    from: Vec<Vec<Option<usize>>>,
    /// Whether each layer's output is needed by a later non-adjacent layer.
    save: Vec<bool>,
    strides: Vec<f32>,
    nc: usize,
    nm: usize,
    reg_max: usize,
    fused: bool,
}

impl YoloModel {
    /// A freshly initialised model (PyTorch defaults + Detect.bias_init), in train mode.
    pub fn new(cfg: &YoloConfig, rng: &mut Rng) -> Result<Self> {
        let (plans, strides) = cfg.plan()?;
        let mut layers = Vec::with_capacity(plans.len());
        let (mut nc, mut nm) = (0, 0);
        for p in &plans {
            let l = match &p.kind {
                &LayerKind::Conv {
                    c1,
                    c2,
                    k,
                    s,
                    p,
                    g,
                    d,
                } => Layer::Conv(Conv::new(c1, c2, k, s, p, g, d, true, rng)?),
                &LayerKind::C2f {
                    c1,
                    c2,
                    n,
                    shortcut,
                    g,
                    e,
                } => Layer::C2f(C2f::new(c1, c2, n, shortcut, g, e, rng)?),
                &LayerKind::Sppf {
                    c1,
                    c2,
                    k,
                    n,
                    shortcut,
                    cv1_act,
                } => Layer::Sppf(Sppf::new(c1, c2, k, n, shortcut, cv1_act, rng)?),
                &LayerKind::Upsample { scale } => Layer::Upsample(scale),
                LayerKind::Concat => Layer::Concat,
                LayerKind::Head {
                    nc: hnc,
                    ch,
                    nm: hnm,
                    npr,
                } => {
                    (nc, nm) = (*hnc, *hnm);
                    Layer::Head(Box::new(Head::new(
                        *hnc,
                        *hnm,
                        *npr,
                        cfg.reg_max,
                        ch,
                        &strides,
                        rng,
                    )?))
                }
            };
            layers.push(l);
        }
        let from: Vec<Vec<Option<usize>>> = plans.iter().map(|p| p.from.clone()).collect();
        let mut save = vec![false; from.len()];
        for (i, f) in from.iter().enumerate() {
            for j in f.iter().flatten() {
                if *j + 1 != i {
                    save[*j] = true;
                }
            }
        }
        Ok(YoloModel {
            model: Layers(layers),
            from,
            save,
            strides,
            nc,
            nm,
            reg_max: cfg.reg_max,
            fused: false,
        })
    }

    /// The model for `cfg` holding exactly the tensors of `sd` (ultralytics names, e.g.
    /// `model.22.cv2.0.2.weight`). Every missing, unexpected or mis-shaped tensor is an
    /// error naming it (and both shapes); `num_batches_tracked` may be absent.
    pub fn from_state_dict(cfg: &YoloConfig, sd: &StateDict) -> Result<Self> {
        let m = Self::new(cfg, &mut Rng::new(0))?;
        load_state_dict(&m, sd, true)
            .with_context(|| format!("loading YOLO weights from {}", sd.source()))?;
        Ok(m)
    }

    pub fn nc(&self) -> usize {
        self.nc
    }
    /// Mask coefficients per anchor (0 for a detect model).
    pub fn nm(&self) -> usize {
        self.nm
    }
    pub fn reg_max(&self) -> usize {
        self.reg_max
    }
    pub fn is_seg(&self) -> bool {
        self.nm > 0
    }
    /// Whether BN has been folded into the convolutions (see `fuse`).
    pub fn is_fused(&self) -> bool {
        self.fused
    }
    /// Head strides per level (8, 16, 32 for YOLOv8), as ultralytics' 256×256 dummy pass.
    pub fn strides(&self) -> &[f32] {
        &self.strides
    }
    /// Where layer `i` reads from (`None` = the image), as ultralytics' `f` resolved.
    pub fn layer_inputs(&self, i: usize) -> &[Option<usize>] {
        self.from.get(i).map_or(&[], |f| f.as_slice())
    }

    fn head(&self) -> Result<&Head> {
        match self.model.0.last() {
            Some(Layer::Head(h)) => Ok(h),
            _ => Err(Error::msg("YOLO model has no Detect/Segment head")),
        }
    }

    /// Run the network in the current train/eval mode, returning the raw head outputs.
    pub fn forward_raw(&self, images: &Tensor) -> Result<TrainOutput> {
        if images.rank() != 4 {
            return Err(Error::Shape {
                op: "YoloModel",
                msg: format!("images must be [B, C, H, W], got {}", images.shape()),
            });
        }
        let (h, w) = (images.dims()[2], images.dims()[3]);
        let s = self.strides.iter().copied().fold(1.0f32, f32::max) as usize;
        if s == 0 || h % s != 0 || w % s != 0 {
            return Err(Error::Shape {
                op: "YoloModel",
                msg: format!("image size {h}×{w} is not a multiple of the largest stride {s}"),
            });
        }
        let mut saved: Vec<Option<Tensor>> = vec![None; self.model.0.len()];
        let mut x = images.clone();
        let get =
            |i: usize, f: &Option<usize>, x: &Tensor, saved: &[Option<Tensor>]| -> Result<Tensor> {
                match f {
                    None => Ok(images.clone()),
                    Some(j) if j + 1 == i => Ok(x.clone()),
                    Some(j) => saved[*j].clone().ok_or_else(|| {
                        Error::msg(format!("layer {i}: output of layer {j} not kept"))
                    }),
                }
            };
        for (i, layer) in self.model.0.iter().enumerate() {
            let ins = self.from[i]
                .iter()
                .map(|f| get(i, f, &x, &saved))
                .collect::<Result<Vec<_>>>()?;
            let one = || {
                ins.first()
                    .ok_or_else(|| Error::msg(format!("layer {i} has no input")))
            };
            let y = match layer {
                Layer::Conv(m) => m.forward(one()?),
                Layer::C2f(m) => m.forward(one()?),
                Layer::Sppf(m) => m.forward(one()?),
                Layer::Upsample(k) => {
                    let t = one()?;
                    t.upsample_nearest2d((t.dims()[2] * k, t.dims()[3] * k))
                }
                Layer::Concat => Tensor::cat(&ins.iter().collect::<Vec<_>>(), 1),
                Layer::Head(hd) => {
                    let HeadOutput {
                        boxes,
                        scores,
                        mask_coefficient,
                        proto,
                    } = hd.forward(&ins)?;
                    return Ok(TrainOutput {
                        boxes,
                        scores,
                        feats: ins,
                        mask_coef: mask_coefficient,
                        proto,
                    });
                }
            }
            .with_context(|| format!("model.{i}"))?;
            if self.save[i] {
                saved[i] = Some(y.clone());
            }
            x = y;
        }
        Err(Error::msg("YOLO model has no Detect/Segment head"))
    }

    /// Training forward: switches to train mode (BN normalises with batch statistics and
    /// updates its running ones); the result is differentiable to every parameter.
    pub fn forward_train(&self, images: &Tensor) -> Result<TrainOutput> {
        self.train();
        self.forward_raw(images)
    }

    /// Inference forward: switches to eval mode (running statistics) and runs without
    /// recording a graph. Fused models skip BN entirely.
    pub fn forward_eval(&self, images: &Tensor) -> Result<EvalOutput> {
        self.eval();
        let _g = crate::no_grad();
        let raw = self.forward_raw(images)?;
        self.decode(&raw)
    }

    /// ultralytics `Detect._inference` on raw outputs (any mode; differentiable).
    pub fn decode(&self, raw: &TrainOutput) -> Result<EvalOutput> {
        let sizes: Vec<(usize, usize)> = raw
            .feats
            .iter()
            .map(|f| (f.dims()[2], f.dims()[3]))
            .collect();
        let out = HeadOutput {
            boxes: raw.boxes.clone(),
            scores: raw.scores.clone(),
            mask_coefficient: raw.mask_coef.clone(),
            proto: None,
        };
        let pred = self.head()?.decode(&out, &sizes, &self.strides)?;
        Ok(EvalOutput {
            pred,
            proto: raw.proto.clone(),
        })
    }

    /// A copy for inference with every BN folded into its convolution (from the running
    /// statistics now; later training of `self` does not reach the copy). Names become
    /// `….conv.weight` / `….conv.bias`, as ultralytics' fused model.
    pub fn fuse(&self) -> Result<YoloModel> {
        let layers = self
            .model
            .0
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Conv(m) => Layer::Conv(m.fuse()?),
                    Layer::C2f(m) => Layer::C2f(m.fuse()?),
                    Layer::Sppf(m) => Layer::Sppf(m.fuse()?),
                    Layer::Upsample(k) => Layer::Upsample(*k),
                    Layer::Concat => Layer::Concat,
                    Layer::Head(h) => Layer::Head(Box::new(h.fuse()?)),
                })
            })
            .collect::<Result<_>>()?;
        let m = YoloModel {
            model: Layers(layers),
            from: self.from.clone(),
            save: self.save.clone(),
            strides: self.strides.clone(),
            fused: true,
            ..*self
        };
        m.eval();
        Ok(m)
    }
}

impl Module for YoloModel {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("model", &self.model);
    }
}
