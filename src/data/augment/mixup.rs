//! MixUp (ultralytics `MixUp`): blend two same-sized images with a ratio `r ~ Beta(32, 32)`
//! (`pixel = trunc(a·r + b·(1 - r))`, as numpy's `astype(uint8)`) and keep the instances of
//! both (the main sample's first). The Beta draw is our own (Marsaglia–Tsang gamma on the
//! crate's portable normal and log), so it is the same on every platform.
use crate::data::Sample;
use crate::tensor::Rng;
use crate::tensor::rng::portable_ln;
use crate::{Error, Result};

/// Gamma(alpha, 1) for alpha ≥ 1 (Marsaglia & Tsang 2000).
fn gamma(alpha: f64, rng: &mut Rng) -> f64 {
    let d = alpha - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = rng.uniform();
        let x2 = x * x;
        if u < 1.0 - 0.0331 * x2 * x2 {
            return d * v;
        }
        if u > 0.0 && portable_ln(u) < 0.5 * x2 + d * (1.0 - v + portable_ln(v)) {
            return d * v;
        }
    }
}

/// Beta(a, b) as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)` (a, b ≥ 1).
pub fn beta(a: f64, b: f64, rng: &mut Rng) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    x / (x + y)
}

/// The MixUp ratio, Beta(32, 32): mean 0.5, standard deviation ≈ 0.062.
pub fn mixup_ratio(rng: &mut Rng) -> f64 {
    beta(32.0, 32.0, rng)
}

/// Blend `b` into `a` with weight `r` on `a`; instances of `a` then of `b`. The two images
/// must be the same size (the pipeline fits the partner first).
pub fn mix(a: Sample, b: Sample, r: f64) -> Result<Sample> {
    if a.image.dimensions() != b.image.dimensions() {
        return Err(Error::Shape {
            op: "mixup",
            msg: format!(
                "image id {} is {}x{} but partner id {} is {}x{}",
                a.id,
                a.width(),
                a.height(),
                b.id,
                b.width(),
                b.height()
            ),
        });
    }
    let Sample {
        id,
        mut image,
        mut instances,
    } = a;
    for (p, q) in image.iter_mut().zip(b.image.iter()) {
        *p = (*p as f64 * r + *q as f64 * (1.0 - r)) as u8;
    }
    instances.extend(b.instances);
    Ok(Sample {
        id,
        image,
        instances,
    })
}
