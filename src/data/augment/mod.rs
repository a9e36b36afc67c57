//! Training-time augmentation that moves boxes and masks with the pixels, following
//! ultralytics' semantics (ultralytics/data/augment.py) where they exist.
//!
//! | transform | reference | geometry |
//! |---|---|---|
//! | [`Transform::FlipLr`], [`Transform::FlipUd`] | `RandomFlip` | mirrored |
//! | [`Transform::Affine`] | `RandomPerspective` (perspective 0) | warped; boxes from masks or corners; `box_candidates` |
//! | [`Transform::Hsv`] | `RandomHSV` (cv2 8-bit HSV LUTs) | unchanged |
//! | [`Transform::Blur`], [`Transform::Noise`] | albumentations `Blur`, Gaussian noise | unchanged |
//! | [`Transform::Cutout`] | YOLOv5 cutout | masks lose covered pixels; > 60 % hidden removed |
//! | [`Transform::Mosaic`] | `Mosaic` (n = 4) | 2s × 2s canvas; the next affine crops back to s |
//! | [`Transform::MixUp`] | `MixUp` (Beta(32, 32)) | instances of both images |
//! | [`Transform::CopyPaste`] | `CopyPaste` (flip or partner mode) | pasted objects added, covered masks updated |
//!
//! An [`Augmenter`] holds a list of [`TransformSpec`]s (a transform and the probability of
//! applying it) and runs them in order with the caller's [`Rng`]: one uniform draw per step
//! decides whether it runs (`u < p`), then the transform draws its own parameters. The same
//! seed, input and partner samples give the same output bit for bit, on any platform (the
//! RNG, the Beta sampler and the trigonometry are our own; no libm call decides a pixel).
//! [`registry::plan`] builds the list from dataset characteristics.
//!
//! # Sizes
//! `Augmenter::new(specs, imgsz)`: the affine step always outputs `imgsz × imgsz` (as
//! ultralytics' `RandomPerspective(size=(imgsz, imgsz))`), mosaic builds a
//! `2·imgsz × 2·imgsz` canvas, so every mosaic must be followed by an affine step with
//! `p = 1` (checked by `new`). The loader should hand over samples resized so their long
//! side is `imgsz`, as ultralytics' `load_image` does.
//!
//! # Partner samples (mosaic, mixup, copy-paste from another image)
//! [`Augmenter::apply`] takes `partners: &mut dyn FnMut(&mut Rng) -> Result<Sample>`; the
//! loader implements it by drawing a random index with the given `Rng` and returning that
//! decoded sample (ultralytics' `get_indexes`). Mosaic calls it three times and uses the
//! samples as they come. MixUp and `CopyPaste { mode: Partner }` call it once and first run
//! the partner through the steps that precede them in the list (ultralytics'
//! `pre_transform`), then crop or pad it to the main sample's size if it still differs. A
//! pipeline without these steps never calls it; pass [`no_partners`].
//!
//! # What is removed
//! Instances that leave the frame are removed, not kept as empty boxes: affine
//! (`box_candidates`), mosaic (cut off the canvas), copy-paste and cutout (hidden), and
//! partner fitting. [`AugStats::removed_instances`] counts them all, partners' included, so
//! the loader can report it.
//!
//! # Example
//! ```
//! use edgedistill::data::augment::{Augmenter, Environment, plan};
//! use edgedistill::data::{Instance, Sample};
//! use edgedistill::tensor::Rng;
//! use image::{GrayImage, Luma, RgbImage};
//!
//! let make = |id: u64| {
//!     let mut mask = GrayImage::new(64, 48);
//!     for (x, y) in (20..40).flat_map(|x| (10..30).map(move |y| (x, y))) {
//!         mask.put_pixel(x, y, Luma([1]));
//!     }
//!     let inst = Instance { class: 0, bbox: [20.0, 10.0, 40.0, 30.0], mask: Some(mask), crowd: false };
//!     Sample { id, image: RgbImage::new(64, 48), instances: vec![inst] }
//! };
//! let specs = plan(&["multiple_objects"], &Environment::default(), "medium")?;
//! let aug = Augmenter::new(specs, 64)?;
//! // The loader's partner source: a random dataset index drawn with the same Rng.
//! let mut partners = |rng: &mut Rng| Ok(make(rng.below(100)));
//! let (out, stats) = aug.apply(make(0), &mut partners, &mut Rng::new(7))?;
//! assert_eq!(out.image.dimensions(), (64, 64));
//! assert!(stats.applied.contains(&"affine"));
//! # Ok::<(), edgedistill::Error>(())
//! ```
use crate::data::Sample;
use crate::tensor::Rng;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

pub mod affine;
pub mod blur_noise;
pub mod boxes;
pub mod canvas;
pub mod color;
pub mod copy_paste;
pub mod cutout;
pub mod flip;
pub mod mixup;
pub mod mosaic;
pub mod registry;

pub use affine::AffineParams;
pub use blur_noise::{BlurParams, NoiseParams};
pub use color::HsvParams;
pub use copy_paste::{CopyPasteMode, CopyPasteParams};
pub use cutout::CutoutParams;
pub use registry::{Environment, plan};

/// One augmentation with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// Mirror left-right.
    FlipLr,
    /// Mirror top-bottom.
    FlipUd,
    /// Random rotation, scale, shear, translation; output `imgsz × imgsz`.
    Affine(AffineParams),
    /// Random hue/saturation/value gains.
    Hsv(HsvParams),
    /// Box blur with a random odd kernel.
    Blur(BlurParams),
    /// Additive Gaussian noise.
    Noise(NoiseParams),
    /// Random occluding rectangles.
    Cutout(CutoutParams),
    /// 4-image mosaic on a `2·imgsz` canvas (3 partner samples).
    Mosaic,
    /// Blend with a partner sample, Beta(32, 32) ratio.
    #[serde(rename = "mixup")]
    MixUp,
    /// Paste objects (mirrored own ones, or a partner's).
    CopyPaste(CopyPasteParams),
}

impl Transform {
    /// Short name, as in configs and [`AugStats::applied`].
    pub fn name(&self) -> &'static str {
        match self {
            Transform::FlipLr => "flip_lr",
            Transform::FlipUd => "flip_ud",
            Transform::Affine(_) => "affine",
            Transform::Hsv(_) => "hsv",
            Transform::Blur(_) => "blur",
            Transform::Noise(_) => "noise",
            Transform::Cutout(_) => "cutout",
            Transform::Mosaic => "mosaic",
            Transform::MixUp => "mixup",
            Transform::CopyPaste(_) => "copy_paste",
        }
    }

    /// Check the parameters are in their documented ranges.
    pub fn validate(&self) -> Result<()> {
        match self {
            Transform::Affine(p) => p.validate(),
            Transform::Hsv(p) => p.validate(),
            Transform::Blur(p) => p.validate(),
            Transform::Noise(p) => p.validate(),
            Transform::Cutout(p) => p.validate(),
            Transform::CopyPaste(p) => p.validate(),
            Transform::FlipLr | Transform::FlipUd | Transform::Mosaic | Transform::MixUp => Ok(()),
        }
    }
}

/// A transform and the probability (0..=1) that a sample goes through it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    pub transform: Transform,
    pub p: f64,
}

impl TransformSpec {
    pub fn new(transform: Transform, p: f64) -> Self {
        TransformSpec { transform, p }
    }
    /// Parameters in range and `p` in 0..=1.
    pub fn validate(&self) -> Result<()> {
        if !(self.p.is_finite() && (0.0..=1.0).contains(&self.p)) {
            return Err(Error::msg(format!(
                "{}: probability {} must lie in 0..=1",
                self.transform.name(),
                self.p
            )));
        }
        self.transform.validate()
    }
}

/// What happened to one sample.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AugStats {
    /// Instances that went in (main sample and partners) and did not come out.
    pub removed_instances: usize,
    /// Names of the steps that ran on the main sample, in order.
    pub applied: Vec<&'static str>,
}

/// The `partners` argument for a pipeline without multi-image steps: always an error.
pub fn no_partners(_: &mut Rng) -> Result<Sample> {
    Err(Error::msg(
        "augmentation: this pipeline needs partner samples (mosaic, mixup or copy-paste from another image) but none were supplied",
    ))
}

/// A validated list of steps and the output size.
#[derive(Clone, Debug)]
pub struct Augmenter {
    specs: Vec<TransformSpec>,
    imgsz: u32,
}

impl Augmenter {
    /// Check every step, `imgsz` in 1..=16384, and that each mosaic is followed by an
    /// affine step with `p = 1` (it crops the `2·imgsz` canvas back to `imgsz`).
    pub fn new(specs: Vec<TransformSpec>, imgsz: u32) -> Result<Self> {
        if !(1..=16384).contains(&imgsz) {
            return Err(Error::msg(format!(
                "augmentation: imgsz {imgsz} must lie in 1..=16384"
            )));
        }
        for (i, s) in specs.iter().enumerate() {
            s.validate()
                .map_err(|e| e.context(format!("augmentation step {i}")))?;
            if s.transform == Transform::Mosaic
                && !specs[i + 1..]
                    .iter()
                    .any(|t| matches!(t.transform, Transform::Affine(_)) && t.p == 1.0)
            {
                return Err(Error::msg(format!(
                    "augmentation step {i}: mosaic makes a {0}x{0} canvas; it needs an affine step with p = 1 after it to bring the image back to {1}x{1}",
                    2 * imgsz as u64,
                    imgsz
                )));
            }
        }
        Ok(Augmenter { specs, imgsz })
    }

    pub fn specs(&self) -> &[TransformSpec] {
        &self.specs
    }

    pub fn imgsz(&self) -> u32 {
        self.imgsz
    }

    /// True when some step may call `partners`.
    pub fn needs_partners(&self) -> bool {
        self.specs.iter().any(|s| {
            matches!(
                s.transform,
                Transform::Mosaic
                    | Transform::MixUp
                    | Transform::CopyPaste(CopyPasteParams {
                        mode: CopyPasteMode::Partner,
                        ..
                    })
            )
        })
    }

    /// Run the pipeline on `sample`. Errors: a sample whose masks are not image-sized or
    /// whose boxes are not finite (named by image id and instance), or a `partners` error.
    pub fn apply(
        &self,
        sample: Sample,
        partners: &mut dyn FnMut(&mut Rng) -> Result<Sample>,
        rng: &mut Rng,
    ) -> Result<(Sample, AugStats)> {
        let mut stats = AugStats::default();
        let out = self.run(&self.specs, sample, partners, rng, &mut stats, true)?;
        Ok((out, stats))
    }

    fn run(
        &self,
        specs: &[TransformSpec],
        mut s: Sample,
        partners: &mut dyn FnMut(&mut Rng) -> Result<Sample>,
        rng: &mut Rng,
        stats: &mut AugStats,
        record: bool,
    ) -> Result<Sample> {
        boxes::check_sample(&s, "augment")?;
        for (i, spec) in specs.iter().enumerate() {
            if rng.uniform() >= spec.p {
                continue;
            }
            let (w, h) = s.image.dimensions();
            s = match &spec.transform {
                Transform::FlipLr => flip::flip_lr(s),
                Transform::FlipUd => flip::flip_ud(s),
                Transform::Affine(p) => {
                    let (o, r) = affine::random_affine(s, p, self.imgsz, self.imgsz, rng);
                    stats.removed_instances += r;
                    o
                }
                Transform::Hsv(p) => {
                    color::random_hsv(&mut s.image, p, rng);
                    s
                }
                Transform::Blur(p) => {
                    s.image = blur_noise::random_blur(&s.image, p, rng);
                    s
                }
                Transform::Noise(p) => {
                    blur_noise::random_noise(&mut s.image, p, rng);
                    s
                }
                Transform::Cutout(p) => {
                    let (o, r) = cutout::cutout(s, p, rng);
                    stats.removed_instances += r;
                    o
                }
                Transform::Mosaic => {
                    let mut next = || -> Result<Sample> {
                        let o = partners(rng)?;
                        boxes::check_sample(&o, "mosaic")?;
                        Ok(o)
                    };
                    let (b, c, d) = (next()?, next()?, next()?);
                    let (o, r) = mosaic::mosaic4([s, b, c, d], self.imgsz, rng);
                    stats.removed_instances += r;
                    o
                }
                Transform::MixUp => {
                    let pt = self.partner(&specs[..i], (w, h), partners, rng, stats)?;
                    let r = mixup::mixup_ratio(rng);
                    mixup::mix(s, pt, r)?
                }
                Transform::CopyPaste(p) => {
                    let pt = match p.mode {
                        CopyPasteMode::Flip => None,
                        CopyPasteMode::Partner => {
                            Some(self.partner(&specs[..i], (w, h), partners, rng, stats)?)
                        }
                    };
                    let (o, r) = copy_paste::copy_paste(s, pt.as_ref(), p.fraction as f64)?;
                    stats.removed_instances += r;
                    o
                }
            };
            if record {
                stats.applied.push(spec.transform.name());
            }
        }
        Ok(s)
    }

    /// A partner for mixup / copy-paste: drawn, run through `prefix`, fitted to `size`.
    fn partner(
        &self,
        prefix: &[TransformSpec],
        size: (u32, u32),
        partners: &mut dyn FnMut(&mut Rng) -> Result<Sample>,
        rng: &mut Rng,
        stats: &mut AugStats,
    ) -> Result<Sample> {
        let p = partners(rng)?;
        let p = self.run(prefix, p, partners, rng, stats, false)?;
        let (p, r) = canvas::fit_to(p, size.0, size.1);
        stats.removed_instances += r;
        Ok(p)
    }
}
