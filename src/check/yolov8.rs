//! Kinds `yolov8-seg` and `yolov8-detect`: an ultralytics model built from the fixture's
//! `config`, loaded from `weights.*`, run on `inputs.images` in eval mode (`outputs.pred`,
//! `outputs.proto`, again with BN folded) and in train mode with batch statistics
//! (`outputs.train.*`), then ultralytics' v8 loss on the train outputs and the fixture's
//! targets (`outputs.loss_items`, `outputs.loss_sum`) and its gradients (`grads.*`).
use super::{CheckLine, Fixture};
use crate::loss::yolo::Targets;
use crate::models::yolov8::{LossGains, YoloConfig, YoloModel, compute_loss};
use crate::nn::Module;
use crate::{Error, Result, Tensor};

/// Run every comparison the fixture holds tensors for; a fixture tensor we cannot
/// produce is a failed line.
pub fn check(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let raw = fx.config()?;
    let cfg = YoloConfig::from_json(&raw)?;
    let model = YoloModel::from_state_dict(&cfg, &fx.state_dict("weights."))?;
    let images = fx.tensor("inputs.images")?;
    let mut lines = Vec::new();
    let mut produced: Vec<String> = Vec::new();
    let mut push = |lines: &mut Vec<CheckLine>, name: &str, ours: &Tensor| {
        lines.push(fx.compare(name, ours));
        produced.push(name.to_string());
    };

    let ev = model.forward_eval(&images)?;
    push(&mut lines, "outputs.pred", &ev.pred);
    if let Some(p) = &ev.proto {
        push(&mut lines, "outputs.proto", p);
    }
    let fused = model.fuse()?.forward_eval(&images)?;
    let mut l = fx.compare("outputs.pred", &fused.pred);
    l.note = Some("BN folded".into());
    lines.push(l);

    let tr = model.forward_train(&images)?;
    // ultralytics 8.4's raw head outputs, when the fixture holds them.
    for (name, t) in [
        ("outputs.train.boxes", &tr.boxes),
        ("outputs.train.scores", &tr.scores),
    ] {
        if fx.file().contains(name) {
            push(&mut lines, name, t);
        }
    }
    for (i, f) in tr.feats.iter().enumerate() {
        push(&mut lines, &format!("outputs.train.feats.{i}"), f);
    }
    if let Some(m) = &tr.mask_coef {
        push(&mut lines, "outputs.train.mask_coefficient", m);
    }
    if let Some(p) = &tr.proto {
        push(&mut lines, "outputs.train.proto", p);
    }

    // A fixture may pin the forward only; with loss outputs it must also give targets.
    let has_loss = !fx.names_with_prefix("outputs.loss").is_empty()
        || !fx.names_with_prefix("grads.").is_empty();
    if !has_loss {
        return Ok(fx.with_unproduced(lines, &produced));
    }
    let targets = targets(fx, model.is_seg())?;
    let gains = LossGains::from_hyp(raw.get("hyp"));
    let loss = compute_loss(&model, &tr, &targets, &gains)?;
    // ultralytics names: (box, seg, cls, dfl, semantic) for seg, (box, cls, dfl) for detect.
    let items: Vec<f32> = if model.is_seg() {
        loss.items.to_vec()
    } else {
        vec![loss.items[0], loss.items[2], loss.items[3]]
    };
    let n = items.len();
    push(
        &mut lines,
        "outputs.loss_items",
        &Tensor::from_vec(items, [n])?,
    );
    push(&mut lines, "outputs.loss_sum", &loss.total.reshape([1])?);

    loss.total.backward()?;
    let params = model.named_parameters();
    for name in fx.names_with_prefix("grads.") {
        let pname = &name["grads.".len()..];
        let line = match params.iter().find(|(n, _)| n == pname) {
            Some((_, p)) => match p.grad() {
                Some(g) => fx.compare(&name, &g),
                None => CheckLine::failed(&name, p.shape().clone(), "no gradient reached it"),
            },
            None => CheckLine::failed(
                &name,
                fx.tensor(&name)?.shape().clone(),
                "the model has no such parameter",
            ),
        };
        lines.push(line);
        produced.push(name);
    }
    Ok(fx.with_unproduced(lines, &produced))
}

/// Every `outputs.*` tensor not compared is a failed line.
/// ultralytics' batch dict from `inputs.*`: batch_idx `[N]`, cls `[N, 1]`, bboxes
/// `[N, 4]` normalised xywh, masks `[N, h, w]` (seg).
fn targets(fx: &Fixture, seg: bool) -> Result<Targets> {
    let bad = |msg: String| Error::Format {
        path: fx.path().to_string(),
        record: "inputs".into(),
        msg,
    };
    let idx = fx.tensor("inputs.batch_idx")?.to_vec_f64()?;
    let cls = fx.tensor("inputs.cls")?.to_vec_f64()?;
    let bb = fx.tensor("inputs.bboxes")?.to_vec_f32()?;
    if cls.len() != idx.len() || bb.len() != 4 * idx.len() {
        return Err(bad(format!(
            "{} batch_idx, {} cls and {} bbox values do not describe the same instances",
            idx.len(),
            cls.len(),
            bb.len()
        )));
    }
    let whole = |v: f64, what: &str| -> Result<usize> {
        if v >= 0.0 && v.fract() == 0.0 && v < 1e9 {
            Ok(v as usize)
        } else {
            Err(bad(format!(
                "{what} {v} is not a non-negative whole number"
            )))
        }
    };
    let masks = if seg {
        Some(fx.tensor("inputs.masks")?.to_dtype(crate::DType::F32)?)
    } else {
        None
    };
    Ok(Targets {
        batch_idx: idx
            .iter()
            .map(|&v| whole(v, "batch_idx"))
            .collect::<Result<_>>()?,
        cls: cls
            .iter()
            .map(|&v| whole(v, "cls"))
            .collect::<Result<_>>()?,
        bboxes: bb
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
        masks,
    })
}
