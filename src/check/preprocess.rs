//! Replays the cases of a `preprocess` fixture (tools/reference/make_preprocess_fixture.py)
//! with src/data/preprocess: YOLO letterbox (ultralytics `LetterBox`), SAM
//! (`SamImageProcessor`) and Grounding DINO (`GroundingDinoImageProcessor`).
//!
//! Every entry of the `config` list names a case, its model, its image (`inputs.<image>`,
//! u8 `[H, W, 3]` RGB) and the processor's params. Under `outputs.<case>.` the fixture
//! holds any of:
//! - `placement` i64 `[8]`: orig_w, orig_h, new_w, new_h, left, top, input_w, input_h;
//! - `u8_rows` u8 `[R, W, 3]`: rows 0, s, 2s, ... (`u8_row_stride`) of the u8 image before
//!   normalisation (letterbox: padded; SAM/Grounding DINO: resized, unpadded);
//! - `u8_checksum` i64 `[3, 2]`: per channel, sum(v) and sum(v · ((y·W + x) % 65521 + 1));
//! - `pixel_values_rows` f32 `[3, R, W]`: rows 0, s, ... (`f32_row_stride`) of the input;
//! - `pixel_values_sums` f64 `[3, 2]`: per channel, sum and sum of squares of the input;
//! - `pixel_mask_sum` i64 `[1]`: ones in the pixel mask (Grounding DINO);
//! - `boxes` `[N, 4]`: the model's box mapping of `inputs.<case>.boxes` (letterbox: input →
//!   original, clipped; SAM: original → input; Grounding DINO: normalised cxcywh → original).
use super::{CheckLine, Fixture};
use crate::data::preprocess::{GroundingDinoResize, Letterbox, Placement, Preprocessed, SamResize};
use crate::{DType, Error, Result, Tensor};
use image::RgbImage;
use serde_json::Value;
use std::collections::BTreeMap;

/// One entry of the fixture's `config` list.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PreprocessCase {
    /// Its tensors live under `inputs.<name>.` and `outputs.<name>.`.
    pub name: String,
    /// `letterbox`, `sam` or `grounding_dino`.
    pub model: String,
    /// The image tensor is `inputs.<image>`.
    pub image: String,
    /// The processor's settings (see [`letterbox_case`], [`sam_case`],
    /// [`grounding_dino_case`]).
    #[serde(default)]
    pub params: Value,
    /// Row stride of `u8_rows`; needed only when the fixture has that tensor.
    #[serde(default)]
    pub u8_row_stride: Option<usize>,
    /// Row stride of `pixel_values_rows`; needed only when the fixture has that tensor.
    #[serde(default)]
    pub f32_row_stride: Option<usize>,
}

/// What one model's preprocessing gives for an image.
pub struct ModelRun {
    /// The u8 image before normalisation, as the reference's `u8_rows` describe it.
    pub u8_image: RgbImage,
    /// The model input and its placement.
    pub pre: Preprocessed,
    /// The box mapping the reference applied to `inputs.<case>.boxes`.
    pub map_box: fn(&Placement, [f32; 4]) -> [f32; 4],
}

/// Largest size param accepted: a fixture asking for more is a typo, not a model.
const MAX_SIZE: u64 = 1 << 15;

/// Read the integer size params `keys` (all required; any other key is an error, so a
/// setting we do not implement cannot pass unnoticed).
fn size_params<const N: usize>(model: &str, p: &Value, keys: [&str; N]) -> Result<[u32; N]> {
    if let Some(obj) = p.as_object() {
        if let Some(k) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(Error::msg(format!(
                "{model}: param {k:?} is not supported (known: {})",
                keys.join(", ")
            )));
        }
    } else {
        return Err(Error::msg(format!(
            "{model}: params must be an object, got {p}"
        )));
    }
    let mut out = [0u32; N];
    for (o, k) in out.iter_mut().zip(keys) {
        let v = p
            .get(k)
            .ok_or_else(|| Error::msg(format!("{model}: param {k:?} missing")))?;
        *o = v
            .as_u64()
            .filter(|&n| (1..=MAX_SIZE).contains(&n))
            .ok_or_else(|| {
                Error::msg(format!(
                    "{model}: param {k:?} = {v}: expected an integer in 1..={MAX_SIZE}"
                ))
            })? as u32;
    }
    Ok(out)
}

/// ultralytics `LetterBox` to `size`×`size` (params `{"size"}`); boxes map input → original.
pub fn letterbox_case(img: &RgbImage, params: &Value) -> Result<ModelRun> {
    let [size] = size_params("letterbox", params, ["size"])?;
    let lb = Letterbox { size };
    Ok(ModelRun {
        u8_image: lb.apply_u8(img)?.0,
        pre: lb.apply(img)?,
        map_box: Placement::box_to_original,
    })
}

/// transformers `SamImageProcessor` (params `{"longest_edge", "pad_size"}`); boxes map
/// original → input, as `SamProcessor` does for prompt boxes.
pub fn sam_case(img: &RgbImage, params: &Value) -> Result<ModelRun> {
    let [longest_edge, pad_size] = size_params("sam", params, ["longest_edge", "pad_size"])?;
    let s = SamResize {
        longest_edge,
        pad_size,
    };
    Ok(ModelRun {
        u8_image: s.apply_u8(img)?.0,
        pre: s.apply(img)?,
        map_box: Placement::box_to_input,
    })
}

/// transformers `GroundingDinoImageProcessor` (params `{"shortest_edge", "longest_edge"}`);
/// boxes map normalised cxcywh → original xyxy, as `post_process_object_detection`.
pub fn grounding_dino_case(img: &RgbImage, params: &Value) -> Result<ModelRun> {
    let [shortest_edge, longest_edge] =
        size_params("grounding_dino", params, ["shortest_edge", "longest_edge"])?;
    let g = GroundingDinoResize {
        shortest_edge,
        longest_edge,
    };
    Ok(ModelRun {
        u8_image: g.apply_u8(img)?.0,
        pre: g.apply(img)?,
        map_box: Placement::normalized_cxcywh_to_original,
    })
}

/// A model's replay: the image and the case's params in, its preprocessing out.
pub type ModelFn = fn(&RgbImage, &Value) -> Result<ModelRun>;

/// The models a case may name, with their replay.
pub const MODELS: &[(&str, ModelFn)] = &[
    ("letterbox", letterbox_case),
    ("sam", sam_case),
    ("grounding_dino", grounding_dino_case),
];

/// `inputs.<image>` as an RGB image (u8 `[H, W, 3]`).
fn image_from(fx: &Fixture, image: &str) -> Result<RgbImage> {
    let name = format!("inputs.{image}");
    let t = fx.tensor(&name)?;
    let bad = || {
        Error::msg(format!(
            "{name}: expected u8 [H, W, 3], got {} {}",
            t.dtype(),
            t.shape()
        ))
    };
    let &[h, w, 3] = t.dims() else {
        return Err(bad());
    };
    if t.dtype() != DType::U8 {
        return Err(bad());
    }
    let (w32, h32) = (
        u32::try_from(w).map_err(|_| bad())?,
        u32::try_from(h).map_err(|_| bad())?,
    );
    RgbImage::from_raw(w32, h32, t.contiguous()?.to_vec::<u8>()?).ok_or_else(bad)
}

fn stride(s: Option<usize>, key: &str) -> Result<usize> {
    s.filter(|&s| s >= 1)
        .ok_or_else(|| Error::msg(format!("config {key:?} missing or 0")))
}

/// Rows 0, s, 2s, ... of an RGB image → u8 `[R, W, 3]`.
pub fn u8_rows(img: &RgbImage, s: usize) -> Result<Tensor> {
    let row = img.width() as usize * 3;
    let rows: Vec<&[u8]> = img
        .as_raw()
        .chunks_exact(row.max(1))
        .step_by(s.max(1))
        .collect();
    Tensor::from_vec(rows.concat(), vec![rows.len(), img.width() as usize, 3])
}

/// Per channel: sum(v) and sum(v · (pixel index % 65521 + 1)) → i64 `[3, 2]`.
pub fn u8_checksum(img: &RgbImage) -> Result<Tensor> {
    let mut out = vec![0i64; 6];
    for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
        let wt = (i % 65521) as i64 + 1;
        for c in 0..3 {
            out[c * 2] += p[c] as i64;
            out[c * 2 + 1] += p[c] as i64 * wt;
        }
    }
    Tensor::from_vec(out, vec![3, 2])
}

/// Rows 0, s, ... of a `[C, H, W]` f32 tensor → `[C, R, W]`.
pub fn f32_rows(t: &Tensor, s: usize) -> Result<Tensor> {
    let &[c, h, w] = t.dims() else {
        return Err(Error::msg(format!(
            "pixel_values: expected [C, H, W], got {}",
            t.shape()
        )));
    };
    let v = t.contiguous()?.to_vec_f32()?;
    let s = s.max(1);
    let mut out = Vec::with_capacity(c * h.div_ceil(s) * w);
    for plane in v.chunks_exact((h * w).max(1)).take(c) {
        for r in plane.chunks_exact(w.max(1)).step_by(s) {
            out.extend_from_slice(r);
        }
    }
    Tensor::from_vec(out, vec![c, h.div_ceil(s), w])
}

/// Per channel: f64 sum and sum of squares of a `[C, H, W]` tensor → f64 `[C, 2]`.
pub fn f32_sums(t: &Tensor) -> Result<Tensor> {
    let c = t.dims().first().copied().unwrap_or(0);
    let v = t.contiguous()?.to_vec_f32()?;
    let n = v.len().checked_div(c).unwrap_or(0);
    let mut out = Vec::with_capacity(c * 2);
    for plane in v.chunks_exact(n.max(1)).take(c) {
        let (s, s2) = plane.iter().fold((0f64, 0f64), |(s, s2), &x| {
            (s + x as f64, s2 + x as f64 * x as f64)
        });
        out.extend([s, s2]);
    }
    Tensor::from_vec(out, vec![c, 2])
}

/// orig_w, orig_h, new_w, new_h, left, top, input_w, input_h → i64 `[8]`.
pub fn placement_tensor(p: &Placement) -> Result<Tensor> {
    let v = [
        p.orig_w, p.orig_h, p.new_w, p.new_h, p.left, p.top, p.input_w, p.input_h,
    ];
    Tensor::from_vec(v.map(i64::from).to_vec(), vec![8])
}

/// Apply `f` to every box of a `[..., 4]` tensor (f32 result, same shape).
fn map_boxes(t: &Tensor, f: impl Fn([f32; 4]) -> [f32; 4]) -> Result<Tensor> {
    if t.dims().last() != Some(&4) {
        return Err(Error::msg(format!(
            "boxes: expected [N, 4], got {}",
            t.shape()
        )));
    }
    let v = t.contiguous()?.to_vec_f32()?;
    let out: Vec<f32> = v
        .chunks_exact(4)
        .flat_map(|b| f([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(out, t.dims().to_vec())
}

/// Our value for each output a case can have, by the suffix after `outputs.<case>.`; an
/// output we could not make holds the reason.
pub fn replay(
    fx: &Fixture,
    case: &PreprocessCase,
) -> Result<BTreeMap<&'static str, Result<Tensor>>> {
    let run = MODELS
        .iter()
        .find(|(m, _)| *m == case.model)
        .map(|(_, f)| f)
        .ok_or_else(|| {
            let known: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
            Error::msg(format!(
                "model {:?} has no preprocessing in edgedistill (known: {})",
                case.model,
                known.join(", ")
            ))
        })?;
    let r = run(&image_from(fx, &case.image)?, &case.params)?;
    let pre = &r.pre;
    let boxes_name = format!("inputs.{}.boxes", case.name);
    let map = r.map_box;
    let mask_sum = pre
        .pixel_mask
        .as_ref()
        .ok_or_else(|| Error::msg(format!("{} gives no pixel mask", case.model)))
        .and_then(|m| {
            let ones: i64 = m.to_vec_f64()?.iter().map(|&v| v as i64).sum();
            Tensor::from_vec(vec![ones], vec![1])
        });
    Ok(BTreeMap::from([
        ("placement", placement_tensor(&pre.placement)),
        (
            "u8_rows",
            stride(case.u8_row_stride, "u8_row_stride").and_then(|s| u8_rows(&r.u8_image, s)),
        ),
        ("u8_checksum", u8_checksum(&r.u8_image)),
        (
            "pixel_values_rows",
            stride(case.f32_row_stride, "f32_row_stride")
                .and_then(|s| f32_rows(&pre.pixel_values, s)),
        ),
        ("pixel_values_sums", f32_sums(&pre.pixel_values)),
        ("pixel_mask_sum", mask_sum),
        (
            "boxes",
            fx.tensor(&boxes_name)
                .and_then(|b| map_boxes(&b, |x| map(&pre.placement, x))),
        ),
    ]))
}

/// The `preprocess` kind: replay every case of `config` and compare every `outputs.*`
/// tensor of the fixture. A tensor we cannot produce (unknown model or output, bad params,
/// missing input, or no case it belongs to) is a failed line, never a skip.
pub fn check(fx: &Fixture) -> Result<Vec<CheckLine>> {
    let cases: Vec<PreprocessCase> =
        serde_json::from_value(fx.config()?).map_err(|e| Error::Format {
            path: fx.path().to_string(),
            record: "metadata config".into(),
            msg: format!("not a list of preprocess cases: {e}"),
        })?;
    // Each output belongs to the case with the longest matching name, so case `a` never
    // claims `outputs.a.b.placement` of case `a.b`.
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); cases.len()];
    let mut orphans = Vec::new();
    for n in fx.names_with_prefix("outputs.") {
        let owner = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| n.starts_with(&format!("outputs.{}.", c.name)))
            .max_by_key(|(_, c)| c.name.len());
        match owner {
            Some((i, _)) => owned[i].push(n),
            None => orphans.push(n),
        }
    }
    // The header's shape: a failed line needs no tensor data.
    let shape_of = |n: &str| {
        fx.file()
            .info(n)
            .map(|i| i.shape.clone())
            .unwrap_or_default()
    };
    let mut lines = Vec::new();
    for (case, names) in cases.iter().zip(&owned) {
        let ours = replay(fx, case).map_err(|e| e.context(format!("case {}", case.name)));
        for n in names {
            let suffix = &n[format!("outputs.{}.", case.name).len()..];
            let why = match &ours {
                Ok(m) => match m.get(suffix) {
                    Some(Ok(t)) => {
                        lines.push(fx.compare(n, t));
                        continue;
                    }
                    Some(Err(e)) => format!("case {}: {e}", case.name),
                    None => format!("no preprocess output named {suffix:?}"),
                },
                Err(e) => e.to_string(),
            };
            lines.push(CheckLine::failed(n, shape_of(n), why));
        }
    }
    for n in orphans {
        let why = "no case in config produces it";
        lines.push(CheckLine::failed(&n, shape_of(&n), why));
    }
    Ok(lines)
}
