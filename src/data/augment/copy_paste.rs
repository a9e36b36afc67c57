//! Copy-paste (ultralytics `CopyPaste`, Ghiasi et al. 2021). Donor objects are the main
//! sample's own instances mirrored left-right (`Flip` mode, ultralytics' default) or a
//! partner sample's instances (`Partner` mode, ultralytics' "mixup" mode). Only instances
//! with a mask and not crowd can be donors.
//!
//! Selection as ultralytics: a donor is eligible when its box covers less than 30 % of
//! every existing box (`bbox_ioa < 0.30`); eligible donors are taken least-overlapping
//! first, `round(fraction × eligible)` of them. Their pixels are copied through their
//! masks. Unlike ultralytics (which leaves the existing polygons as they were) the
//! existing masks lose the pixels now covered, and their boxes are recomputed; an existing
//! instance covered completely is removed and counted. Box-only instances keep their box.
use super::boxes::{bbox_ioa, refresh_box};
use super::flip::flip_lr;
use crate::data::{Instance, Sample};
use crate::{Error, Result};
use image::GrayImage;
use serde::{Deserialize, Serialize};

/// Where the pasted objects come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyPasteMode {
    /// The sample's own objects, mirrored left-right.
    Flip,
    /// The objects of a partner sample the loader supplies.
    Partner,
}

/// Fraction of eligible donors pasted, and their source.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyPasteParams {
    pub fraction: f32,
    pub mode: CopyPasteMode,
}

impl CopyPasteParams {
    /// `fraction` in 0..=1.
    pub fn validate(&self) -> Result<()> {
        if self.fraction.is_finite() && (0.0..=1.0).contains(&self.fraction) {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "copy_paste: fraction {} must lie in 0..=1",
                self.fraction
            )))
        }
    }
}

/// Paste donors into `s`: from `partner` when given (same size as `s`), else from `s`
/// mirrored. Deterministic (no random draws). Returns the sample and how many existing
/// instances were covered completely and removed.
pub fn copy_paste(s: Sample, partner: Option<&Sample>, fraction: f64) -> Result<(Sample, usize)> {
    if let Some(p) = partner
        && p.image.dimensions() != s.image.dimensions()
    {
        return Err(Error::Shape {
            op: "copy_paste",
            msg: format!(
                "image id {} is {}x{} but partner id {} is {}x{}",
                s.id,
                s.width(),
                s.height(),
                p.id,
                p.width(),
                p.height()
            ),
        });
    }
    let flipped;
    let donor = match partner {
        Some(p) => p,
        None => {
            if !s.instances.iter().any(|i| i.mask.is_some() && !i.crowd) {
                return Ok((s, 0));
            }
            flipped = flip_lr(s.clone());
            &flipped
        }
    };
    // Eligible donors with their largest overlap, least-overlapping first (stable).
    let mut eligible: Vec<(f32, &Instance)> = donor
        .instances
        .iter()
        .filter(|d| d.mask.is_some() && !d.crowd)
        .filter_map(|d| {
            let worst = s
                .instances
                .iter()
                .map(|e| bbox_ioa(d.bbox, e.bbox))
                .fold(0.0f32, f32::max);
            (worst < 0.30).then_some((worst, d))
        })
        .collect();
    eligible.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = ((fraction * eligible.len() as f64).round_ties_even() as usize).min(eligible.len());
    if n == 0 {
        return Ok((s, 0));
    }
    let chosen: Vec<Instance> = eligible[..n].iter().map(|(_, d)| (*d).clone()).collect();
    let (w, h) = s.image.dimensions();
    let mut union = GrayImage::new(w, h);
    for d in &chosen {
        if let Some(m) = &d.mask {
            for (u, &v) in union.iter_mut().zip(m.iter()) {
                *u |= (v != 0) as u8;
            }
        }
    }
    let Sample {
        id,
        mut image,
        instances,
    } = s;
    for ((px, dp), &u) in image
        .pixels_mut()
        .zip(donor.image.pixels())
        .zip(union.iter())
    {
        if u != 0 {
            *px = *dp;
        }
    }
    let mut kept = Vec::with_capacity(instances.len() + n);
    let mut removed = 0;
    for mut inst in instances {
        let mut covered = false;
        if let Some(m) = &mut inst.mask {
            for (v, &u) in m.iter_mut().zip(union.iter()) {
                if u != 0 && *v != 0 {
                    *v = 0;
                    covered = true;
                }
            }
        }
        // Only a mask that lost pixels gets a new box (others keep their annotation).
        if !covered || refresh_box(&mut inst, w, h) {
            kept.push(inst);
        } else {
            removed += 1;
        }
    }
    kept.extend(chosen);
    Ok((
        Sample {
            id,
            image,
            instances: kept,
        },
        removed,
    ))
}
