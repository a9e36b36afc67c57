//! From one image's logits and boxes to class detections in original-image pixels: a
//! query's class score is the max sigmoid over the class's tokens; a query is kept when its
//! best token (any, as transformers' post_process_grounded_object_detection scores it)
//! passes `box_threshold` and its best class passes `text_threshold`.
use super::prompt::ClassPrompt;
use crate::{Error, Result, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct GdDetection {
    pub class: usize,
    pub score: f32,
    /// x0, y0, x1, y1 in pixels of the original image.
    pub bbox: [f32; 4],
}

#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub box_threshold: f32,
    pub text_threshold: f32,
}

impl Default for Thresholds {
    /// transformers' defaults (0.25 / 0.25).
    fn default() -> Self {
        Thresholds {
            box_threshold: 0.25,
            text_threshold: 0.25,
        }
    }
}

/// Class scores [Q, C] from logits [Q, T] (max sigmoid over each class's tokens).
pub fn class_scores(logits: &[f32], t: usize, prompt: &ClassPrompt) -> Vec<Vec<f32>> {
    logits
        .chunks(t)
        .map(|row| {
            prompt
                .class_tokens
                .iter()
                .map(|toks| toks.iter().map(|&k| sigmoid(row[k])).fold(0.0f32, f32::max))
                .collect()
        })
        .collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Detections of one image: `logits` [Q, T] and `boxes` [Q, 4] (normalised cxcywh) as the
/// model gives them for it, `orig` its (width, height). Sorted by score, highest first.
pub fn detections(
    logits: &Tensor,
    boxes: &Tensor,
    prompt: &ClassPrompt,
    orig: (u32, u32),
    th: Thresholds,
) -> Result<Vec<GdDetection>> {
    let (q, t) = (logits.dims()[0], logits.dims()[1]);
    if logits.rank() != 2 || boxes.dims() != [q, 4] {
        return Err(Error::Shape {
            op: "Grounding DINO postprocess",
            msg: format!(
                "logits {} must be [Q, T] and boxes {} [Q, 4]",
                logits.shape(),
                boxes.shape()
            ),
        });
    }
    if let Some(&k) = prompt.class_tokens.iter().flatten().find(|&&k| k >= t) {
        return Err(Error::msg(format!(
            "Grounding DINO postprocess: class token {k} is past the {t} logits"
        )));
    }
    let lg: Vec<f32> = logits.to_vec_f64()?.into_iter().map(|v| v as f32).collect();
    let bx: Vec<f32> = boxes.to_vec_f64()?.into_iter().map(|v| v as f32).collect();
    let scores = class_scores(&lg, t, prompt);
    let (w, h) = (orig.0 as f32, orig.1 as f32);
    let mut out = Vec::new();
    for (qi, cs) in scores.iter().enumerate() {
        let any = lg[qi * t..(qi + 1) * t]
            .iter()
            .map(|&v| sigmoid(v))
            .fold(0.0f32, f32::max);
        let (class, &score) = cs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("a prompt has at least one class");
        if any <= th.box_threshold || score <= th.text_threshold {
            continue;
        }
        let b = &bx[qi * 4..qi * 4 + 4];
        out.push(GdDetection {
            class,
            score,
            bbox: [
                (b[0] - 0.5 * b[2]) * w,
                (b[1] - 0.5 * b[3]) * h,
                (b[0] + 0.5 * b[2]) * w,
                (b[1] + 0.5 * b[3]) * h,
            ],
        });
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(out)
}
