//! The Grounding DINO teacher's fine-tuning (`ed-train-teacher` on a dataset with boxes):
//! backbone, text encoder, feature enhancer and query selection frozen, LoRA on the
//! decoder's attention projections (or the whole decoder, for a base), the class names as
//! one fixed prompt, the reference's Hungarian-matched focal + L1 + GIoU loss on every
//! decoder layer and the encoder stage, AdamW with warmup and cosine decay, validation box
//! mAP50 each epoch, and `fit`'s checkpoints, resume and early stopping. Encoder outputs
//! are computed once per image into a disk cache, so later epochs run only the decoder.
use super::config::TrainConfig;
use super::embed_cache::CacheKey;
use super::gd_cache::EncoderCache;
use super::gd_data::{GdItem, items_of};
use super::sam_teacher::Trainable;
use super::trainer::{EpochCtx, FitSummary, StepCtx, StepLoss, TrainTask, fit, step_seed};
use crate::data::Coco;
use crate::data::dataset::Dataset;
use crate::data::preprocess::grounding_dino::GroundingDinoResize;
use crate::eval::cocoeval::{IouType, evaluate};
use crate::eval::grounding_dino_eval::records_of;
use crate::eval::results::Results;
use crate::io::save_adapter;
use crate::loss::grounding_dino::{GroundingDinoLossConfig, grounding_dino_loss};
use crate::loss::grounding_dino_match::{
    GdPrediction, GdTarget, LabelMap, build_label_maps, build_text_mask,
};
use crate::models::grounding_dino::{ClassPrompt, GroundingDino, Inputs, Thresholds, detections};
use crate::nn::{LoraConfig, Module, ParamCount, TargetModules, freeze, load_state_dict};
use crate::optim::{GroupKind, OptimizerKind};
use crate::tensor::Rng;
use crate::train::checkpoint::Checkpoint;
use crate::{Error, Result, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The decoder's attention projections: self- and text cross-attention q/k/v/out, and the
/// deformable attention's value and output projections.
pub const DEFAULT_TARGETS: &str = r"model\.decoder\.layers\.\d+\.((self_attn|encoder_attn_text)\.(query|key|value|out_proj)|encoder_attn\.(value_proj|output_proj))";

/// The issue's default adapter: r 16, alpha 32, dropout 0.1.
pub fn default_lora() -> LoraConfig {
    LoraConfig::new(16, 32.0, 0.1, TargetModules::Regex(DEFAULT_TARGETS.into()))
}

/// AdamW 1e-4, one warmup epoch, cosine to 1 %, clipping at 0.1, fitness = val mAP50.
pub fn default_train_config() -> TrainConfig {
    TrainConfig {
        epochs: 10,
        batch: 2,
        nbs: 2,
        optimizer: OptimizerKind::adamw(),
        lr0: 1e-4,
        lrf: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
        warmup_epochs: 1.0,
        warmup_momentum: 0.9,
        warmup_bias_lr: 0.0,
        cos_lr: true,
        close_mosaic: 0,
        max_grad_norm: 0.1,
        patience: 0,
        ema_decay: 0.0,
        fitness_key: "val/map50".into(),
        ..TrainConfig::default()
    }
}

#[derive(Clone, Debug)]
pub enum GdTune {
    Lora(LoraConfig),
    /// Every decoder parameter and the box heads (to make a base, or to compare).
    Decoder,
    /// Every parameter (a base from scratch): no encoder cache, each step encodes anew.
    All,
}

#[derive(Clone, Debug)]
pub struct GdOptions {
    pub tune: GdTune,
    pub resize: GroundingDinoResize,
    pub loss: GroundingDinoLossConfig,
    /// Losses on every decoder layer and the encoder stage (the reference's training
    /// setting); false: the final layer only.
    pub aux_loss: bool,
    pub train: TrainConfig,
    pub cache_dir: Option<PathBuf>,
    pub resume: bool,
    pub lora_seed: u64,
}

impl Default for GdOptions {
    fn default() -> Self {
        GdOptions {
            tune: GdTune::Lora(default_lora()),
            resize: GroundingDinoResize::default(),
            loss: GroundingDinoLossConfig::default(),
            aux_loss: true,
            train: default_train_config(),
            cache_dir: None,
            resume: false,
            lora_seed: 0,
        }
    }
}

/// Names of parameters that `encode` reads (everything but the decoder, its query
/// embedding and the box heads): they must stay frozen for the cache to hold.
fn is_encoder_side(name: &str) -> bool {
    !(name.starts_with("model.decoder.")
        || name.starts_with("bbox_embed.")
        || name.starts_with("model.query_position_embeddings"))
}

/// Freeze what `tune` does not train; refuse a trainable encoder-side parameter.
pub fn prepare_trainable(model: &GroundingDino, tune: &GdTune) -> Result<Trainable> {
    if let GdTune::All = tune {
        crate::nn::unfreeze(model)?;
        return Ok(Trainable::of(model));
    }
    if let GdTune::Decoder = tune {
        freeze(model)?;
        for (n, t) in model.named_parameters() {
            if !is_encoder_side(&n) {
                t.set_requires_grad(true)?;
            }
        }
    }
    let t = Trainable::of(model);
    if t.0.is_empty() {
        return Err(Error::msg("Grounding DINO teacher: no trainable parameter"));
    }
    if let Some((n, _)) = t.0.iter().find(|(n, _)| is_encoder_side(n)) {
        return Err(Error::msg(format!(
            "Grounding DINO teacher: {n} is trainable, but everything before the decoder stays \
             frozen (its outputs are computed once and cached); target only model.decoder modules"
        )));
    }
    Ok(t)
}

/// The encoder cache of a split, keyed by the encoder-side weights and config, the prompt,
/// the resize and every image file (name, size, mtime).
fn encoder_cache(
    model: &GroundingDino,
    prompt: &ClassPrompt,
    resize: &GroundingDinoResize,
    ds: &Dataset,
    coco: &Coco,
    images: &Path,
    dir: &Path,
    progress: bool,
) -> Result<(EncoderCache, bool)> {
    let mut key = CacheKey::default();
    key.add(format!("{:?} {:?} {:?}", model.config, prompt.text, resize).as_bytes());
    for (n, t) in model.named_parameters() {
        if is_encoder_side(&n) {
            key.add(n.as_bytes());
            t.with_slice(|v: &[f32]| key.add(bytemuck::cast_slice(v)))?;
        }
    }
    key.add_images(coco, images);
    let ids: Vec<u64> = (0..ds.len()).filter_map(|i| ds.image_id(i)).collect();
    let (input_ids, mask, types) = (
        prompt.input_ids()?,
        prompt.attention_mask()?,
        prompt.token_type_ids()?,
    );
    EncoderCache::open_or_build(dir, &key.hex(), &ids, progress, |i| {
        let _g = crate::no_grad();
        let s = ds.load(i)?;
        let x = resize.apply(&s.image)?.pixel_values.unsqueeze(0)?;
        model.encode(&Inputs {
            pixel_values: &x,
            pixel_mask: None,
            input_ids: &input_ids,
            attention_mask: Some(&mask),
            token_type_ids: Some(&types),
        })
    })
}

pub struct GdTask<'a> {
    pub model: &'a GroundingDino,
    pub prompt: ClassPrompt,
    view: Trainable,
    label_map: LabelMap,
    text_mask: Vec<bool>,
    train: Vec<GdItem>,
    val: Vec<GdItem>,
    val_coco: Coco,
    class_ids: Vec<u64>,
    /// None when the encoder trains too (`GdTune::All`): every step encodes anew.
    caches: Option<[EncoderCache; 2]>,
    datasets: [&'a Dataset; 2],
    order: Vec<usize>,
    opts: GdOptions,
}

impl<'a> GdTask<'a> {
    pub fn new(
        model: &'a GroundingDino,
        prompt: ClassPrompt,
        train: (&'a Dataset, &Coco),
        val: (&'a Dataset, &Coco),
        images: &Path,
        cache_dir: &Path,
        opts: GdOptions,
    ) -> Result<(GdTask<'a>, [bool; 2])> {
        let view = prepare_trainable(model, &opts.tune)?;
        let max = model.config.max_text_len;
        let label_map = build_label_maps(&prompt.input_ids()?, max)?.remove(0);
        if label_map.phrases.len() != prompt.class_tokens.len() {
            return Err(Error::msg(format!(
                "Grounding DINO teacher: the prompt {:?} has {} phrases for {} classes",
                prompt.text,
                label_map.phrases.len(),
                prompt.class_tokens.len()
            )));
        }
        let text_mask = build_text_mask(&prompt.attention_mask()?, max)?.remove(0);
        let progress = opts.train.progress;
        let (caches, built) = if let GdTune::All = opts.tune {
            (None, [false, false])
        } else {
            let (c1, b1) = encoder_cache(
                model,
                &prompt,
                &opts.resize,
                train.0,
                train.1,
                images,
                &cache_dir.join("train"),
                progress,
            )?;
            let (c2, b2) = encoder_cache(
                model,
                &prompt,
                &opts.resize,
                val.0,
                val.1,
                images,
                &cache_dir.join("val"),
                progress,
            )?;
            (Some([c1, c2]), [b1, b2])
        };
        let train_items = items_of(train.0, "training set")?;
        let val_items = items_of(val.0, "validation set")?;
        if !train_items.iter().any(|it| !it.boxes.is_empty()) {
            return Err(Error::msg(
                "Grounding DINO teacher: the training set has no object",
            ));
        }
        Ok((
            GdTask {
                model,
                prompt,
                view,
                label_map,
                text_mask,
                order: (0..train_items.len()).collect(),
                train: train_items,
                val: val_items,
                val_coco: val.1.clone(),
                class_ids: val.0.classes.ids.clone(),
                caches,
                datasets: [train.0, val.0],
                opts,
            },
            built,
        ))
    }

    /// Image `i` of split 0 (train) or 1 (val), encoded: from the cache, or run now.
    fn encoded(&self, split: usize, i: usize) -> Result<crate::models::grounding_dino::Encoded> {
        if let Some(c) = &self.caches {
            return c[split].get(i);
        }
        let s = self.datasets[split].load(i)?;
        let x = self
            .opts
            .resize
            .apply(&s.image)?
            .pixel_values
            .unsqueeze(0)?;
        let (ids, mask, types) = (
            self.prompt.input_ids()?,
            self.prompt.attention_mask()?,
            self.prompt.token_type_ids()?,
        );
        self.model.encode(&Inputs {
            pixel_values: &x,
            pixel_mask: None,
            input_ids: &ids,
            attention_mask: Some(&mask),
            token_type_ids: Some(&types),
        })
    }

    pub fn trainable(&self) -> &Trainable {
        &self.view
    }

    /// Loss of the images `idx` decoded together (one batch, as the reference normalises).
    fn batch_loss(&self, idx: &[usize]) -> Result<(Tensor, Vec<(String, f64)>)> {
        let mut per_layer: Vec<Vec<(Tensor, Tensor)>> = Vec::new();
        let mut enc_pred = Vec::new();
        let mut targets = Vec::new();
        for &i in idx {
            let out = self.model.decode(&self.encoded(0, i)?)?;
            let layers: Vec<(Tensor, Tensor)> = if self.opts.aux_loss {
                out.layer_logits.into_iter().zip(out.layer_boxes).collect()
            } else {
                vec![(out.logits, out.pred_boxes)]
            };
            if per_layer.is_empty() {
                per_layer = vec![Vec::new(); layers.len()];
            }
            for (k, l) in layers.into_iter().enumerate() {
                per_layer[k].push(l);
            }
            enc_pred.push((out.encoder_logits, out.encoder_pred_boxes));
            let it = &self.train[i];
            targets.push(GdTarget {
                class_labels: it.labels.clone(),
                boxes: it.boxes_tensor()?,
            });
        }
        let cat = |v: &[(Tensor, Tensor)]| -> Result<GdPrediction> {
            let lg: Vec<&Tensor> = v.iter().map(|p| &p.0).collect();
            let bx: Vec<&Tensor> = v.iter().map(|p| &p.1).collect();
            Ok(GdPrediction {
                logits: Tensor::cat(&lg, 0)?,
                pred_boxes: Tensor::cat(&bx, 0)?,
            })
        };
        let decoder: Vec<GdPrediction> = per_layer.iter().map(|v| cat(v)).collect::<Result<_>>()?;
        let encoder = if self.opts.aux_loss {
            Some(cat(&enc_pred)?)
        } else {
            None
        };
        let n = idx.len();
        let maps = vec![self.label_map.clone(); n];
        let masks = vec![self.text_mask.clone(); n];
        let l = grounding_dino_loss(
            &decoder,
            encoder.as_ref(),
            &maps,
            &masks,
            &targets,
            &self.opts.loss,
        )?;
        let mut items = Vec::new();
        for (name, t) in &l.terms {
            if matches!(name.as_str(), "loss_ce" | "loss_bbox" | "loss_giou") {
                items.push((
                    name.trim_start_matches("loss_").to_string(),
                    t.to_scalar_f64()?,
                ));
            }
        }
        Ok((l.total, items))
    }

    /// Box mAP50-95 and mAP50 (COCOeval) of the validation split: one detection per query,
    /// its best class, no threshold.
    pub fn val_map(&self) -> Result<(f64, f64)> {
        let _g = crate::no_grad();
        let th = Thresholds {
            box_threshold: 0.0,
            text_threshold: 0.0,
        };
        let mut records = Vec::new();
        for (i, it) in self.val.iter().enumerate() {
            let out = self.model.decode(&self.encoded(1, i)?)?;
            let (q, t) = (out.logits.dims()[1], out.logits.dims()[2]);
            let dets = detections(
                &out.logits.reshape([q, t])?,
                &out.pred_boxes.reshape([q, 4])?,
                &self.prompt,
                (it.orig_w, it.orig_h),
                th,
            )?;
            records.extend(records_of(&dets, it.id, &self.class_ids));
        }
        if records.is_empty() {
            return Ok((0.0, 0.0));
        }
        let dt = Results::from_records(records, "validation predictions", &self.val_coco)?;
        let r = evaluate(&self.val_coco, &dt, IouType::Bbox)?;
        Ok((r.stats[0].max(0.0), r.stats[1].max(0.0)))
    }
}

impl TrainTask for GdTask<'_> {
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
        let (loss, items) = self.batch_loss(&idx)?;
        if !loss.to_scalar_f64()?.is_finite() {
            return Err(Error::msg(format!("non-finite loss {items:?}")));
        }
        Ok(StepLoss { loss, items })
    }
    fn validate(&mut self, _epoch: usize) -> Result<BTreeMap<String, f64>> {
        self.model.eval();
        let r = self.val_map();
        self.model.train();
        let (map, map50) = r?;
        Ok(BTreeMap::from([
            ("val/map50".to_string(), map50),
            ("val/map50_95".to_string(), map),
        ]))
    }
    fn param_group(&self, name: &str, t: &Tensor) -> GroupKind {
        crate::optim::classify_param(name, t)
    }
}

pub struct GdResult {
    pub fit: FitSummary,
    /// Validation box mAP50 before training and of the saved (best) weights.
    pub map50_before: f64,
    pub map50_best: f64,
    pub params: ParamCount,
    /// The PEFT adapter folder (LoRA) or the decoder weights file.
    pub saved: PathBuf,
    pub cache_built: [bool; 2],
}

/// Fine-tune `model` for `prompt` and save the best weights: the PEFT adapter files in
/// `out` for LoRA,
/// `out/trained.safetensors` (the trained tensors) otherwise.
pub fn train_grounding_dino(
    model: &GroundingDino,
    prompt: ClassPrompt,
    train: (&Dataset, &Coco),
    val: (&Dataset, &Coco),
    images: &Path,
    out: &Path,
    opts: &GdOptions,
) -> Result<GdResult> {
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| out.join("encoder_cache"));
    let (mut task, built) =
        GdTask::new(model, prompt, train, val, images, &cache_dir, opts.clone())?;
    let params = ParamCount::of(model);
    if opts.train.progress {
        eprintln!("Grounding DINO teacher: {params}");
    }
    model.eval();
    let map50_before = task.val_map()?.1;
    let summary = fit(&mut task, &opts.train, out, opts.resume)?;
    let best = summary
        .best_checkpoint
        .clone()
        .unwrap_or_else(|| summary.last_checkpoint.clone());
    load_state_dict(&task.view, &Checkpoint::open(&best)?.model_state(), true)?;
    model.eval();
    let map50_best = task.val_map()?.1;
    let saved = match &opts.tune {
        GdTune::Lora(cfg) => {
            // adapter_config.json + adapter_model.safetensors beside the run's metrics.
            save_adapter(
                out,
                cfg,
                model,
                "GroundingDinoForObjectDetection",
                "transformers.models.grounding_dino.modeling_grounding_dino",
            )?;
            out.to_path_buf()
        }
        GdTune::Decoder | GdTune::All => {
            let path = out.join("trained.safetensors");
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
    Ok(GdResult {
        fit: summary,
        map50_before,
        map50_best,
        params,
        saved,
        cache_built: built,
    })
}
