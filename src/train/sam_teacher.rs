//! The SAM teacher's fine-tuning (`ed-train-teacher` on a dataset with masks): the image
//! and prompt encoders frozen, LoRA adapters on the mask decoder's attention projections
//! (or, to compare, the whole decoder trained), box prompts from the ground truth with
//! jitter, SAM's focal + dice + IoU-MSE loss, AdamW with warmup and cosine decay, gradient
//! clipping at 0.1, mask IoU on the validation set each epoch, and `fit`'s checkpoints and
//! resume. The frozen encoder's embeddings are computed once per image into an on-disk
//! cache, so every epoch after the first runs only the decoder.
use super::config::TrainConfig;
use super::embed_cache::{CacheKey, EmbeddingCache};
use super::sam_data::{Item, items_of, jitter_box};
use super::trainer::{EpochCtx, FitSummary, StepCtx, StepLoss, TrainTask, fit, step_seed};
use crate::data::Coco;
use crate::data::dataset::Dataset;
use crate::data::masks::Rle;
use crate::data::preprocess::SamResize;
use crate::io::save_adapter;
use crate::loss::sam::{SamLossConfig, sam_loss};
use crate::models::sam::postprocess::post_process_masks;
use crate::models::sam::{DecoderOutput, Prompts, SamModel};
use crate::nn::{LoraConfig, Module, ParamCount, TargetModules, freeze, load_state_dict};
use crate::optim::{GroupKind, OptimizerKind};
use crate::tensor::Rng;
use crate::train::checkpoint::Checkpoint;
use crate::{Error, Result, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A loss and its named items.
type LossItems = (Tensor, Vec<(String, f64)>);

/// What is trained.
#[derive(Clone, Debug)]
pub enum Tune {
    /// LoRA adapters (PEFT semantics) on the Linears the config targets.
    Lora(LoraConfig),
    /// Every mask-decoder parameter (the comparison for memory and quality).
    FullDecoder,
}

/// The issue's default adapter: r 8, alpha 16, dropout 0.05 on the mask decoder's
/// attention projections.
pub fn default_lora() -> LoraConfig {
    LoraConfig::new(
        8,
        16.0,
        0.05,
        TargetModules::Regex(r".*mask_decoder.*\.(q_proj|k_proj|v_proj|out_proj)".into()),
    )
}

/// A `fit` config for adapter training: AdamW 1e-4, one warmup epoch, cosine to 1 %,
/// clipping at 0.1, no EMA, no accumulation, fitness = validation mask IoU.
pub fn default_train_config() -> TrainConfig {
    TrainConfig {
        epochs: 10,
        batch: 1,
        nbs: 1,
        optimizer: OptimizerKind::adamw(),
        lr0: 1e-4,
        lrf: 0.01,
        momentum: 0.9,
        weight_decay: 0.01,
        warmup_epochs: 1.0,
        warmup_momentum: 0.9,
        warmup_bias_lr: 0.0,
        cos_lr: true,
        close_mosaic: 0,
        max_grad_norm: 0.1,
        patience: 0,
        ema_decay: 0.0,
        fitness_key: "val/miou".into(),
        ..TrainConfig::default()
    }
}

#[derive(Clone, Debug)]
pub struct TeacherOptions {
    pub tune: Tune,
    /// Objects prompted per image and step (a random subset when there are more).
    pub prompts_per_image: usize,
    /// Box noise: each side moves by up to this fraction of the box size ...
    pub jitter: f64,
    /// ... and at most this many pixels.
    pub max_jitter_px: f64,
    pub loss: SamLossConfig,
    pub train: TrainConfig,
    /// Where the embedding caches live (default `out/embeddings`).
    pub cache_dir: Option<PathBuf>,
    pub resume: bool,
    pub lora_seed: u64,
}

impl Default for TeacherOptions {
    fn default() -> Self {
        TeacherOptions {
            tune: Tune::Lora(default_lora()),
            prompts_per_image: 16,
            jitter: 0.1,
            max_jitter_px: 20.0,
            loss: SamLossConfig::default(),
            train: default_train_config(),
            cache_dir: None,
            resume: false,
            lora_seed: 0,
        }
    }
}

/// Exactly the trainable parameters, by their model names: what the optimizer steps and
/// what checkpoints hold (a few MB, not the frozen encoder).
pub struct Trainable(pub Vec<(String, Tensor)>);

impl Trainable {
    pub fn of(m: &dyn Module) -> Trainable {
        Trainable(
            m.named_parameters()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .collect(),
        )
    }
}

impl Module for Trainable {
    fn visit_own_params(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        for (n, t) in &self.0 {
            f(n, t);
        }
    }
}

/// Freeze what `tune` does not train. Errors when nothing is left to train or when a
/// trainable parameter sits in the image encoder (its embeddings are cached).
pub fn prepare_trainable(model: &SamModel, tune: &Tune) -> Result<Trainable> {
    if let Tune::FullDecoder = tune {
        freeze(model)?;
        for (_, t) in model.mask_decoder.named_parameters() {
            t.set_requires_grad(true)?;
        }
    }
    let t = Trainable::of(model);
    if t.0.is_empty() {
        return Err(Error::msg("SAM teacher: no trainable parameter"));
    }
    if let Some((n, _)) = t.0.iter().find(|(n, _)| n.starts_with("vision_encoder.")) {
        return Err(Error::msg(format!(
            "SAM teacher: {n} is trainable, but the image encoder stays frozen (its embeddings \
             are computed once and cached); target only prompt-encoder/mask-decoder modules"
        )));
    }
    Ok(t)
}

pub struct SamTask<'a> {
    pub model: &'a SamModel,
    view: Trainable,
    train: Vec<Item>,
    val: Vec<Item>,
    train_cache: EmbeddingCache,
    val_cache: EmbeddingCache,
    order: Vec<usize>,
    opts: TeacherOptions,
    /// The image positional encoding, computed once (the Gaussian is frozen).
    image_pe: Tensor,
}

/// The cache of every image's embedding for `ds`: built on first use, then memory-mapped.
pub fn embedding_cache(
    model: &SamModel,
    ds: &Dataset,
    coco: &Coco,
    images: &Path,
    dir: &Path,
    progress: bool,
) -> Result<(EmbeddingCache, bool)> {
    let vc = &model.config.vision;
    let resize = SamResize {
        longest_edge: vc.image_size as u32,
        pad_size: vc.image_size as u32,
    };
    // Key: the encoder's config and weights, and every image file (name, size, mtime).
    let mut key = CacheKey::default();
    key.add(format!("{:?}", model.config.vision).as_bytes());
    for (n, t) in model.vision_encoder.named_parameters() {
        key.add(n.as_bytes());
        t.with_slice(|v: &[f32]| key.add(bytemuck::cast_slice(v)))?;
    }
    key.add_images(coco, images);
    let key = key.hex();
    let ids: Vec<u64> = (0..ds.len()).filter_map(|i| ds.image_id(i)).collect();
    let g = vc.grid();
    let dims = [model.config.decoder.hidden_size, g, g];
    EmbeddingCache::open_or_build(dir, &key, &ids, &dims, progress, |i| {
        let _g = crate::no_grad();
        let s = ds.load(i)?;
        let x = resize.apply(&s.image)?.pixel_values.unsqueeze(0)?;
        model.image_embeddings(&x)
    })
}

impl<'a> SamTask<'a> {
    /// Data and caches for a run; the model's trainable set must be prepared already.
    pub fn new(
        model: &'a SamModel,
        train: (&Dataset, &Coco),
        val: (&Dataset, &Coco),
        images: &Path,
        cache_dir: &Path,
        opts: TeacherOptions,
    ) -> Result<(SamTask<'a>, [bool; 2])> {
        let view = prepare_trainable(model, &opts.tune)?;
        let s = model.config.vision.image_size as u32;
        let resize = SamResize {
            longest_edge: s,
            pad_size: s,
        };
        let l = 4 * model.config.vision.grid();
        let progress = opts.train.progress;
        let (train_cache, b1) = embedding_cache(
            model,
            train.0,
            train.1,
            images,
            &cache_dir.join("train"),
            progress,
        )?;
        let (val_cache, b2) = embedding_cache(
            model,
            val.0,
            val.1,
            images,
            &cache_dir.join("val"),
            progress,
        )?;
        let train_items = items_of(train.0, &resize, l)?;
        let val_items = items_of(val.0, &resize, l)?;
        if !train_items.iter().any(|it| !it.objects.is_empty()) {
            return Err(Error::msg("SAM teacher: the training set has no object"));
        }
        Ok((
            SamTask {
                model,
                view,
                order: (0..train_items.len()).collect(),
                train: train_items,
                val: val_items,
                train_cache,
                val_cache,
                opts,
                image_pe: {
                    let _g = crate::no_grad();
                    model.image_pe()?
                },
            },
            [b1, b2],
        ))
    }

    pub fn trainable(&self) -> &Trainable {
        &self.view
    }

    /// Single-mask decoding of one image's embedding with xyxy input-frame `boxes`.
    fn decode_boxes(&self, emb: &Tensor, boxes: Vec<f32>) -> Result<DecoderOutput> {
        let n = boxes.len() / 4;
        let boxes = Tensor::from_vec(boxes, [1, n, 4])?;
        let prompts = Prompts {
            boxes: Some(&boxes),
            ..Default::default()
        };
        self.model
            .decode_with_pe(emb, &self.image_pe, &prompts, false)
    }

    /// Loss of image `i` with its (jittered) box prompts.
    fn image_loss(&self, i: usize, rng: &mut Rng) -> Result<Option<LossItems>> {
        let it = &self.train[i];
        if it.objects.is_empty() {
            return Ok(None);
        }
        let mut pick: Vec<usize> = (0..it.objects.len()).collect();
        rng.shuffle(&mut pick);
        pick.truncate(self.opts.prompts_per_image.max(1));
        let p = &it.placement;
        let mut boxes = Vec::with_capacity(pick.len() * 4);
        let mut targets = Vec::new();
        for &k in &pick {
            let o = &it.objects[k];
            let b = jitter_box(
                o.bbox,
                self.opts.jitter,
                self.opts.max_jitter_px,
                p.orig_w,
                p.orig_h,
                rng,
            );
            boxes.extend(p.box_to_input(b));
            targets.extend(o.low.iter().map(|&v| v as f32));
        }
        let n = pick.len();
        let l = 4 * self.model.config.vision.grid();
        let out = self.decode_boxes(&self.train_cache.get(i)?, boxes)?;
        let logits = out.masks.reshape([n, l, l])?;
        let iou = out.iou_scores.reshape([n])?;
        let targets = Tensor::from_vec(targets, [n, l, l])?;
        Ok(Some(sam_loss(&logits, &iou, &targets, &self.opts.loss)?))
    }

    /// Mean IoU of the single-mask predictions from the exact boxes with the ground truth,
    /// at the original image size, over every validation object.
    pub fn val_miou(&self) -> Result<(f64, usize)> {
        let _g = crate::no_grad();
        let (mut sum, mut n) = (0.0, 0usize);
        let k = self.opts.prompts_per_image.max(1);
        for (i, it) in self.val.iter().enumerate() {
            if it.objects.is_empty() {
                continue;
            }
            let emb = self.val_cache.get(i)?;
            let p = &it.placement;
            for chunk in it.objects.chunks(k) {
                let boxes: Vec<f32> = chunk.iter().flat_map(|o| p.box_to_input(o.bbox)).collect();
                let out = self.decode_boxes(&emb, boxes)?;
                let l = out.masks.dims()[3];
                let masks =
                    post_process_masks(&out.masks.reshape([chunk.len(), 1, l, l])?, p, 0.0)?;
                let v = masks.contiguous()?.to_vec::<u8>()?;
                let px = (p.orig_w * p.orig_h) as usize;
                for (j, o) in chunk.iter().enumerate() {
                    let dt = Rle::encode(&v[j * px..(j + 1) * px], p.orig_h, p.orig_w)
                        .map_err(|e| Error::msg(format!("image {}: {e}", it.id)))?;
                    let iou = Rle::iou(&[dt], std::slice::from_ref(&o.full), &[false])
                        .map_err(|e| Error::msg(format!("image {}: {e}", it.id)))?;
                    sum += iou[0];
                    n += 1;
                }
            }
        }
        Ok((if n == 0 { 0.0 } else { sum / n as f64 }, n))
    }
}

impl TrainTask for SamTask<'_> {
    fn module(&self) -> &dyn Module {
        &self.view
    }
    fn batches_per_epoch(&self) -> usize {
        self.train.len().div_ceil(self.opts.train.batch.max(1))
    }
    fn on_epoch_start(&mut self, ctx: &EpochCtx) -> Result<()> {
        self.order = (0..self.train.len()).collect();
        Rng::new(step_seed(self.opts.train.seed, ctx.epoch, usize::MAX)).shuffle(&mut self.order);
        self.model.train();
        Ok(())
    }
    fn train_step(&mut self, ctx: &mut StepCtx) -> Result<StepLoss> {
        let b = self.opts.train.batch.max(1);
        let idx: Vec<usize> = self
            .order
            .iter()
            .skip(ctx.batch * b)
            .take(b)
            .copied()
            .collect();
        let mut rng = Rng::new(ctx.seed);
        let mut total: Option<Tensor> = None;
        let mut items: Vec<(String, f64)> = Vec::new();
        let mut n = 0usize;
        for i in idx {
            let Some((loss, it)) = self.image_loss(i, &mut rng)? else {
                continue;
            };
            total = Some(match total {
                Some(t) => t.add(&loss)?,
                None => loss,
            });
            if items.is_empty() {
                items = it;
            } else {
                for (a, b) in items.iter_mut().zip(it) {
                    a.1 += b.1;
                }
            }
            n += 1;
        }
        let Some(total) = total else {
            // A batch of images without objects: a zero loss that still reaches the graph.
            let p = &self.view.0[0].1;
            return Ok(StepLoss {
                loss: p.mul_scalar(0.0)?.sum_all()?,
                items: Vec::new(),
            });
        };
        for it in &mut items {
            it.1 /= n as f64;
        }
        let loss = total.div_scalar(n as f64)?;
        if !loss.to_scalar_f64()?.is_finite() {
            return Err(Error::msg(format!("non-finite loss {items:?}")));
        }
        Ok(StepLoss { loss, items })
    }
    fn validate(&mut self, _epoch: usize) -> Result<BTreeMap<String, f64>> {
        self.model.eval();
        let r = self.val_miou();
        self.model.train();
        let (miou, n) = r?;
        Ok(BTreeMap::from([
            ("val/miou".to_string(), miou),
            ("val/objects".to_string(), n as f64),
        ]))
    }
    fn param_group(&self, name: &str, t: &Tensor) -> GroupKind {
        crate::optim::classify_param(name, t)
    }
}

/// What a run leaves.
pub struct TeacherResult {
    pub fit: FitSummary,
    /// Validation mask IoU before training and of the saved (best) weights.
    pub miou_before: f64,
    pub miou_best: f64,
    pub params: ParamCount,
    /// The PEFT adapter folder (LoRA), or the decoder weights file (full decoder).
    pub saved: PathBuf,
    /// Whether the train/val embedding caches were built (false: reused).
    pub cache_built: [bool; 2],
}

/// Fine-tune `model` on the datasets and save the best weights: a PEFT adapter folder
/// `out/adapter` (LoRA) or `out/mask_decoder.safetensors` (full decoder).
pub fn train_teacher(
    model: &SamModel,
    train: (&Dataset, &Coco),
    val: (&Dataset, &Coco),
    images: &Path,
    out: &Path,
    opts: &TeacherOptions,
) -> Result<TeacherResult> {
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| out.join("embeddings"));
    let (mut task, built) = SamTask::new(model, train, val, images, &cache_dir, opts.clone())?;
    let params = ParamCount::of(model);
    if opts.train.progress {
        eprintln!("SAM teacher: {params}");
    }
    model.eval();
    let miou_before = task.val_miou()?.0;
    let summary = fit(&mut task, &opts.train, out, opts.resume)?;
    let best = summary
        .best_checkpoint
        .clone()
        .unwrap_or_else(|| summary.last_checkpoint.clone());
    load_state_dict(&task.view, &Checkpoint::open(&best)?.model_state(), true)?;
    model.eval();
    let miou_best = task.val_miou()?.0;
    let saved = match &opts.tune {
        Tune::Lora(cfg) => {
            let dir = out.join("adapter");
            save_adapter(
                &dir,
                cfg,
                model,
                "SamModel",
                "transformers.models.sam.modeling_sam",
            )?;
            dir
        }
        Tune::FullDecoder => {
            let path = out.join("mask_decoder.safetensors");
            let named: Vec<(String, Tensor)> = task
                .view
                .0
                .iter()
                .map(|(n, t)| (n.clone(), t.detach()))
                .collect();
            crate::io::save_safetensors(&path, &named, None)?;
            path
        }
    };
    Ok(TeacherResult {
        fit: summary,
        miou_before,
        miou_best,
        params,
        saved,
        cache_built: built,
    })
}
