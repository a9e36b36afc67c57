//! The Detect / Segment head (ultralytics nn/modules/head.py, the v8 "legacy" layout):
//! per level a box branch cv2 (Conv, Conv, Conv2d → 4·reg_max), a class branch cv3
//! (Conv, Conv, Conv2d → nc) and, for Segment, a mask-coefficient branch cv4 and the
//! Proto module. `decode` is `Detect._inference`: DFL expectation, dist2bbox (xywh) ×
//! stride, class sigmoid, mask coefficients appended.
use super::anchors::{dist2bbox, make_anchors};
use super::blocks::{Conv, List, copy_conv};
use super::proto::Proto;
use crate::nn::{Conv2d, Module};
use crate::tensor::{Conv2dParams, Rng};
use crate::{Result, Tensor};
use rayon::prelude::*;

/// One branch `nn.Sequential(Conv 3×3, Conv 3×3, Conv2d 1×1)`.
pub struct Branch {
    pub c0: Conv,
    pub c1: Conv,
    pub out: Conv2d,
}

impl Branch {
    fn new(c_in: usize, c_mid: usize, c_out: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Branch {
            c0: Conv::std(c_in, c_mid, 3, 1, rng)?,
            c1: Conv::std(c_mid, c_mid, 3, 1, rng)?,
            out: Conv2d::new(c_mid, c_out, (1, 1), Conv2dParams::default(), true, rng)?,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.c1.forward(&self.c0.forward(x)?)?;
        y.conv2d(&self.out.weight, self.out.bias.as_ref(), self.out.params)
    }
    fn fuse(&self) -> Result<Self> {
        Ok(Branch {
            c0: self.c0.fuse()?,
            c1: self.c1.fuse()?,
            out: copy_conv(&self.out)?,
        })
    }
    /// Fill the last conv's bias with `v`.
    fn set_out_bias(&self, v: f32) -> Result<()> {
        if let Some(b) = &self.out.bias {
            b.with_slice_mut(|s: &mut [f32]| s.fill(v))?;
        }
        Ok(())
    }
}

impl Module for Branch {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("0", &self.c0);
        f("1", &self.c1);
        f("2", &self.out);
    }
}

/// ultralytics DFL: a fixed 1×1 conv with weights 0..reg_max (`dfl.conv.weight`, in the
/// state dict, requires_grad False).
pub struct Dfl {
    pub conv: Conv2d,
}

impl Module for Dfl {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("conv", &self.conv);
    }
}

/// The raw head outputs (ultralytics' training-mode prediction dict).
pub struct HeadOutput {
    /// `[B, 4·reg_max, A]` box distributions, levels concatenated.
    pub boxes: Tensor,
    /// `[B, nc, A]` class logits.
    pub scores: Tensor,
    /// `[B, nm, A]` mask coefficients (Segment).
    pub mask_coefficient: Option<Tensor>,
    /// `[B, nm, H/4, W/4]` mask prototypes (Segment).
    pub proto: Option<Tensor>,
}

/// Detect (no `cv4`/`proto`) or Segment.
pub struct Head {
    pub nc: usize,
    pub nm: usize,
    pub reg_max: usize,
    pub cv2: List<Branch>,
    pub cv3: List<Branch>,
    pub dfl: Option<Dfl>,
    pub proto: Option<Proto>,
    pub cv4: Option<List<Branch>>,
}

impl Head {
    /// Fresh head over input channels `ch` (nm = 0: Detect), with ultralytics' bias_init
    /// for the given strides.
    pub fn new(
        nc: usize,
        nm: usize,
        npr: usize,
        reg_max: usize,
        ch: &[usize],
        strides: &[f32],
        rng: &mut Rng,
    ) -> Result<Self> {
        let ch0 = ch[0];
        let c2 = 16.max(ch0 / 4).max(reg_max * 4);
        let c3 = ch0.max(nc.min(100));
        let cv2 = List(
            ch.iter()
                .map(|&x| Branch::new(x, c2, 4 * reg_max, rng))
                .collect::<Result<_>>()?,
        );
        let cv3 = List(
            ch.iter()
                .map(|&x| Branch::new(x, c3, nc, rng))
                .collect::<Result<_>>()?,
        );
        let dfl = if reg_max > 1 {
            let w: Vec<f32> = (0..reg_max).map(|i| i as f32).collect();
            let weight = Tensor::from_vec(w, [1, reg_max, 1, 1])?;
            Some(Dfl {
                conv: Conv2d {
                    weight,
                    bias: None,
                    params: Conv2dParams::default(),
                },
            })
        } else {
            None
        };
        let (proto, cv4) = if nm > 0 {
            let c4 = (ch0 / 4).max(nm);
            let proto = Proto::new(ch0, npr, nm, rng)?;
            let cv4 = List(
                ch.iter()
                    .map(|&x| Branch::new(x, c4, nm, rng))
                    .collect::<Result<_>>()?,
            );
            (Some(proto), Some(cv4))
        } else {
            (None, None)
        };
        let head = Head {
            nc,
            nm,
            reg_max,
            cv2,
            cv3,
            dfl,
            proto,
            cv4,
        };
        // Detect.bias_init (8.4.190): box bias 2.0, class bias log(5 / nc / (640 / s)²).
        for ((a, b), s) in head.cv2.0.iter().zip(&head.cv3.0).zip(strides) {
            a.set_out_bias(2.0)?;
            let p = 640.0 / *s as f64;
            b.set_out_bias((5.0 / nc as f64 / (p * p)).ln() as f32)?;
        }
        Ok(head)
    }

    /// Branch outputs per level, flattened to `[B, C, h·w]` and concatenated.
    fn run(branches: &List<Branch>, xs: &[Tensor]) -> Result<Tensor> {
        let outs = branches
            .0
            .iter()
            .zip(xs)
            .map(|(b, x)| b.forward(x)?.flatten(2, -1))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = outs.iter().collect();
        Tensor::cat(&refs, 2)
    }

    pub fn forward(&self, xs: &[Tensor]) -> Result<HeadOutput> {
        let boxes = Self::run(&self.cv2, xs)?;
        let scores = Self::run(&self.cv3, xs)?;
        let mask_coefficient = self.cv4.as_ref().map(|c| Self::run(c, xs)).transpose()?;
        let proto = match (&self.proto, xs.first()) {
            (Some(p), Some(x0)) => Some(p.forward(x0)?),
            _ => None,
        };
        Ok(HeadOutput {
            boxes,
            scores,
            mask_coefficient,
            proto,
        })
    }

    /// `[B, 4 + nc (+ nm), A]`: xywh boxes in input pixels, class probabilities, mask
    /// coefficients. `sizes` are the levels' (h, w).
    pub fn decode(
        &self,
        out: &HeadOutput,
        sizes: &[(usize, usize)],
        strides: &[f32],
    ) -> Result<Tensor> {
        let dbox = decode_boxes(&out.boxes, self.reg_max, sizes, strides)?;
        let cls = super::blocks::sigmoid(&out.scores)?;
        let mut parts = vec![&dbox, &cls];
        if let Some(mc) = &out.mask_coefficient {
            parts.push(mc);
        }
        Tensor::cat(&parts, 1)
    }

    pub fn fuse(&self) -> Result<Self> {
        let fuse_list = |l: &List<Branch>| -> Result<List<Branch>> {
            Ok(List(l.0.iter().map(Branch::fuse).collect::<Result<_>>()?))
        };
        let dfl = match &self.dfl {
            Some(d) => Some(Dfl {
                conv: Conv2d {
                    weight: d.conv.weight.deep_clone()?,
                    bias: None,
                    params: d.conv.params,
                },
            }),
            None => None,
        };
        Ok(Head {
            nc: self.nc,
            nm: self.nm,
            reg_max: self.reg_max,
            cv2: fuse_list(&self.cv2)?,
            cv3: fuse_list(&self.cv3)?,
            dfl,
            proto: self.proto.as_ref().map(Proto::fuse).transpose()?,
            cv4: self.cv4.as_ref().map(fuse_list).transpose()?,
        })
    }
}

/// The box part of `Detect._inference`: `[B, 4·reg_max, A]` distributions → DFL
/// expectation (softmax over the bins · 0..reg_max; `reg_max` 1: the distances themselves)
/// → dist2bbox (xywh) around the anchors of levels `sizes` → × stride: `[B, 4, A]` pixels.
pub fn decode_boxes(
    boxes: &Tensor,
    reg_max: usize,
    sizes: &[(usize, usize)],
    strides: &[f32],
) -> Result<Tensor> {
    let (b, a) = (boxes.dims()[0], boxes.dims()[2]);
    if reg_max > 1
        && !boxes.tracks_grad()
        && boxes.dtype() == crate::DType::F32
        && boxes.dims() == [b, 4 * reg_max, a]
        && sizes.iter().map(|(h, w)| h * w).sum::<usize>() == a
        && sizes.len() == strides.len()
    {
        return decode_boxes_eval(&boxes.contiguous()?, reg_max, sizes, strides);
    }
    let dist = if reg_max > 1 {
        let r = reg_max;
        let p = boxes.reshape([b, 4, r, a])?.softmax(2)?;
        // The DFL conv's fixed weights 0..reg_max.
        let w = Tensor::from_vec((0..r).map(|i| i as f32).collect::<Vec<_>>(), [1, 1, r, 1])?;
        p.mul(&w)?.sum(&[2], false)?
    } else {
        boxes.clone()
    };
    let (anchors, stride_t) = make_anchors(sizes, strides, 0.5)?;
    let anchors = anchors.t()?.unsqueeze(0)?;
    dist2bbox(&dist, &anchors, true, 1)?.mul(&stride_t.t()?)
}

/// `decode_boxes` in one pass for inference (nothing records a graph): per side, the
/// softmax over the reg_max bins and its expectation run along contiguous anchor rows
/// (max, then Σe and Σi·e with `exp_f32`), then dist2bbox as xywh times the stride.
/// The same arithmetic as the op chain up to rounding; eval forward and the engine both
/// come here, so they stay equal bit for bit.
fn decode_boxes_eval(
    boxes: &Tensor,
    r: usize,
    sizes: &[(usize, usize)],
    strides: &[f32],
) -> Result<Tensor> {
    use crate::backend::cpu::math::exp_f32;
    let (b, a) = (boxes.dims()[0], boxes.dims()[2]);
    let x = boxes.to_vec_f32()?;
    // Anchor centres and strides, in anchor order.
    let [ax, ay, st] = super::anchors::anchor_columns(sizes, strides, 0.5);
    // Anchors are independent: chunks of them (per image) run in parallel, each giving
    // its four output rows `[4][len]`.
    const CHUNK: usize = 1024;
    let nch = a.div_ceil(CHUNK).max(1);
    let parts: Vec<Vec<f32>> = (0..b * nch)
        .into_par_iter()
        .map(|job| {
            let (bi, j0) = (job / nch, job % nch * CHUNK);
            let len = CHUNK.min(a - j0);
            let xb = &x[bi * 4 * r * a..][..4 * r * a];
            let mut d = vec![0f32; 4 * len];
            let (mut m, mut se, mut sw) = (vec![0f32; len], vec![0f32; len], vec![0f32; len]);
            for side in 0..4 {
                let row_of = |i: usize| &xb[(side * r + i) * a + j0..][..len];
                m.fill(f32::NEG_INFINITY);
                for i in 0..r {
                    for (mv, &v) in m.iter_mut().zip(row_of(i)) {
                        *mv = mv.max(v);
                    }
                }
                se.fill(0.0);
                sw.fill(0.0);
                for i in 0..r {
                    let fi = i as f32;
                    for (((e, w), &mv), &v) in
                        se.iter_mut().zip(sw.iter_mut()).zip(&m).zip(row_of(i))
                    {
                        let p = exp_f32(v - mv);
                        *e += p;
                        *w += fi * p;
                    }
                }
                for ((dv, &e), &w) in d[side * len..][..len].iter_mut().zip(&se).zip(&sw) {
                    *dv = w / e;
                }
            }
            let mut o = vec![0f32; 4 * len];
            let (l, t, rr, bb) = (
                &d[..len],
                &d[len..2 * len],
                &d[2 * len..3 * len],
                &d[3 * len..],
            );
            let (cx, rest) = o.split_at_mut(len);
            let (cy, rest) = rest.split_at_mut(len);
            let (bw, bh) = rest.split_at_mut(len);
            for i in 0..len {
                let j = j0 + i;
                let (x1, y1) = (ax[j] - l[i], ay[j] - t[i]);
                let (x2, y2) = (ax[j] + rr[i], ay[j] + bb[i]);
                cx[i] = (x1 + x2) * 0.5 * st[j];
                cy[i] = (y1 + y2) * 0.5 * st[j];
                bw[i] = (x2 - x1) * st[j];
                bh[i] = (y2 - y1) * st[j];
            }
            o
        })
        .collect();
    let mut out = vec![0f32; b * 4 * a];
    for (job, o) in parts.iter().enumerate() {
        let (bi, j0) = (job / nch, job % nch * CHUNK);
        let len = o.len() / 4;
        for side in 0..4 {
            out[(bi * 4 + side) * a + j0..][..len].copy_from_slice(&o[side * len..][..len]);
        }
    }
    Tensor::from_vec(out, [b, 4, a])
}

impl Module for Head {
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("cv2", &self.cv2);
        f("cv3", &self.cv3);
        if let Some(d) = &self.dfl {
            f("dfl", d);
        }
        if let Some(p) = &self.proto {
            f("proto", p);
        }
        if let Some(c) = &self.cv4 {
            f("cv4", c);
        }
    }
}
