//! Graph capture of a YOLOv8 student: walks the BN-folded model layer by layer (the same
//! `from` wiring as `YoloModel::forward_raw`) and emits one node per conv, split, concat,
//! pool, upsample and add, then the head's flatten/concat, box decode, class sigmoid and
//! the Proto branch. Values are named after the module that makes them (`model.2.cv1`),
//! weights by their fused state-dict names (`model.2.cv1.conv.weight`).
use super::graph::{Act, Graph, Level, Node, Op, ValueInfo, Weight};
use crate::models::yolov8::YoloModel;
use crate::models::yolov8::blocks::{C2f, Conv, Sppf};
use crate::models::yolov8::head::{Branch, Head};
use crate::models::yolov8::model::Layer;
use crate::models::yolov8::proto::{ConvTranspose2d, Proto};
use crate::nn::Conv2d;
use crate::{Error, Result, Tensor};

/// Name of the graph's single input.
pub const INPUT: &str = "images";
/// `[N, 4 + nc + nm, A]`: xywh boxes in input pixels, class probabilities, mask coefficients.
pub const PRED: &str = "pred";
/// `[N, nm, S/4, S/4]` mask prototypes (seg models only).
pub const PROTO: &str = "proto";

/// The inference graph of `model` (folded here if it is not yet) for square inputs of
/// side `imgsz`, which must be a multiple of the largest stride.
pub fn capture_yolo(model: &YoloModel, imgsz: usize) -> Result<Graph> {
    let fused;
    let m = if model.is_fused() {
        model
    } else {
        fused = model.fuse()?;
        &fused
    };
    let smax = m.strides().iter().copied().fold(1.0f32, f32::max) as usize;
    if imgsz == 0 || smax == 0 || !imgsz.is_multiple_of(smax) {
        return Err(Error::msg(format!(
            "capture: input size {imgsz} is not a positive multiple of the largest stride {smax}"
        )));
    }
    let mut b = Builder::default();
    b.g.input = Some(ValueInfo {
        name: INPUT.into(),
        shape: vec![1, 3, imgsz, imgsz],
    });
    let layers = &m.model.0;
    let mut outs: Vec<String> = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let ins: Vec<String> = m
            .layer_inputs(i)
            .iter()
            .map(|f| match f {
                None => Ok(INPUT.to_string()),
                Some(j) => outs.get(*j).cloned().ok_or_else(|| {
                    Error::msg(format!("capture: model.{i} reads layer {j}, not yet made"))
                }),
            })
            .collect::<Result<_>>()?;
        let first = || {
            ins.first()
                .cloned()
                .ok_or_else(|| Error::msg(format!("capture: model.{i} has no input")))
        };
        let p = format!("model.{i}");
        let y = match layer {
            Layer::Conv(c) => b.conv(&p, &first()?, c)?,
            Layer::C2f(c) => b.c2f(&p, &first()?, c)?,
            Layer::Sppf(s) => b.sppf(&p, &first()?, s)?,
            Layer::Upsample(k) => b.node(&p, Op::Upsample { scale: *k }, vec![first()?]),
            Layer::Concat => b.node(&p, Op::Concat { axis: 1 }, ins.clone()),
            Layer::Head(h) => {
                b.head(&p, &ins, h, m, imgsz)?;
                return Ok(b.g);
            }
        };
        outs.push(y);
    }
    Err(Error::msg("capture: the model has no Detect/Segment head"))
}

#[derive(Default)]
struct Builder {
    g: Graph,
}

impl Builder {
    /// A one-output node named `name` whose output value is also `name`.
    fn node(&mut self, name: &str, op: Op, inputs: Vec<String>) -> String {
        self.g.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
            outputs: vec![name.into()],
        });
        name.into()
    }

    fn weight(&mut self, name: String, t: &Tensor) -> Result<String> {
        let w = Weight::f32(t.dims().to_vec(), t.to_vec_f32()?);
        self.g.weights.push((name.clone(), w));
        Ok(name)
    }

    /// A Conv2d node `name` with weights `{wname}.weight` and `{wname}.bias` (if any).
    fn conv2d(&mut self, name: &str, wname: &str, x: &str, c: &Conv2d, act: Act) -> Result<String> {
        let p = c.params;
        let mut inputs = vec![
            x.to_string(),
            self.weight(format!("{wname}.weight"), &c.weight)?,
        ];
        if let Some(bias) = &c.bias {
            inputs.push(self.weight(format!("{wname}.bias"), bias)?);
        }
        let op = Op::Conv {
            stride: [p.stride.0, p.stride.1],
            pad: [p.padding.0, p.padding.1],
            dilation: [p.dilation.0, p.dilation.1],
            groups: p.groups,
            act,
        };
        Ok(self.node(name, op, inputs))
    }

    /// ultralytics Conv, folded: weights `name.conv.{weight,bias}`, SiLU or none.
    fn conv(&mut self, name: &str, x: &str, c: &Conv) -> Result<String> {
        if c.bn.is_some() {
            return Err(Error::msg(format!("capture: {name} still has a BatchNorm")));
        }
        let act = if c.act { Act::Silu } else { Act::None };
        self.conv2d(name, &format!("{name}.conv"), x, &c.conv, act)
    }

    fn c2f(&mut self, p: &str, x: &str, c: &C2f) -> Result<String> {
        let a = self.conv(&format!("{p}.cv1"), x, &c.cv1)?;
        let halves = vec![format!("{p}.split.0"), format!("{p}.split.1")];
        self.g.nodes.push(Node {
            name: format!("{p}.split"),
            op: Op::Split {
                axis: 1,
                sizes: vec![c.c, c.c],
            },
            inputs: vec![a],
            outputs: halves.clone(),
        });
        let mut parts = halves.clone();
        let mut last = halves[1].clone();
        for (j, bn) in c.m.0.iter().enumerate() {
            let q = format!("{p}.m.{j}");
            let h = self.conv(&format!("{q}.cv1"), &last, &bn.cv1)?;
            let y = self.conv(&format!("{q}.cv2"), &h, &bn.cv2)?;
            last = if bn.add {
                self.node(&format!("{q}.add"), Op::Add, vec![last.clone(), y])
            } else {
                y
            };
            parts.push(last.clone());
        }
        let cat = self.node(&format!("{p}.cat"), Op::Concat { axis: 1 }, parts);
        self.conv(&format!("{p}.cv2"), &cat, &c.cv2)
    }

    fn sppf(&mut self, p: &str, x: &str, s: &Sppf) -> Result<String> {
        let mut parts = vec![self.conv(&format!("{p}.cv1"), x, &s.cv1)?];
        for j in 0..s.n {
            let op = Op::MaxPool {
                kernel: s.k,
                stride: 1,
                pad: s.k / 2,
            };
            let y = self.node(&format!("{p}.pool.{j}"), op, vec![parts[j].clone()]);
            parts.push(y);
        }
        let cat = self.node(&format!("{p}.cat"), Op::Concat { axis: 1 }, parts);
        let y = self.conv(&format!("{p}.cv2"), &cat, &s.cv2)?;
        Ok(if s.add {
            self.node(&format!("{p}.add"), Op::Add, vec![y, x.to_string()])
        } else {
            y
        })
    }

    /// One branch per level, each flattened to `[N, C, h·w]`, concatenated over levels.
    fn branches(&mut self, p: &str, xs: &[String], list: &[Branch]) -> Result<String> {
        let mut flat = Vec::with_capacity(list.len());
        for (l, (br, x)) in list.iter().zip(xs).enumerate() {
            let q = format!("{p}.{l}");
            let a = self.conv(&format!("{q}.0"), x, &br.c0)?;
            let c = self.conv(&format!("{q}.1"), &a, &br.c1)?;
            let o = format!("{q}.2");
            let y = self.conv2d(&o, &o, &c, &br.out, Act::None)?;
            let shape = vec![0, 0, -1];
            flat.push(self.node(&format!("{q}.flat"), Op::Reshape { shape }, vec![y]));
        }
        Ok(self.node(&format!("{p}.cat"), Op::Concat { axis: 2 }, flat))
    }

    fn head(&mut self, p: &str, xs: &[String], h: &Head, m: &YoloModel, s: usize) -> Result<()> {
        let strides = m.strides();
        if xs.len() != strides.len() || xs.len() != h.cv2.0.len() {
            return Err(Error::msg(format!(
                "capture: head has {} inputs, {} strides, {} box branches",
                xs.len(),
                strides.len(),
                h.cv2.0.len()
            )));
        }
        let levels: Vec<Level> = strides
            .iter()
            .map(|&st| Level {
                h: s / st as usize,
                w: s / st as usize,
                stride: st,
            })
            .collect();
        let anchors: usize = levels.iter().map(|l| l.h * l.w).sum();
        let boxes = self.branches(&format!("{p}.cv2"), xs, &h.cv2.0)?;
        let scores = self.branches(&format!("{p}.cv3"), xs, &h.cv3.0)?;
        let op = Op::DecodeBoxes {
            reg_max: h.reg_max,
            levels,
        };
        let dbox = self.node(&format!("{p}.decode"), op, vec![boxes]);
        let cls = self.node(&format!("{p}.sigmoid"), Op::Sigmoid, vec![scores]);
        let mut parts = vec![dbox, cls];
        if let Some(cv4) = &h.cv4 {
            parts.push(self.branches(&format!("{p}.cv4"), xs, &cv4.0)?);
        }
        let pred = self.node(PRED, Op::Concat { axis: 1 }, parts);
        self.g.outputs.push(ValueInfo {
            name: pred,
            shape: vec![1, 4 + h.nc + h.nm, anchors],
        });
        if let Some(pr) = &h.proto {
            let y = self.proto(&format!("{p}.proto"), &xs[0], pr)?;
            // Rename the last value to the output name.
            let last = self.g.nodes.last_mut().expect("proto made nodes");
            last.outputs = vec![PROTO.into()];
            let side = s / strides[0] as usize * pr.upsample.params.stride.0;
            self.g.outputs.push(ValueInfo {
                name: PROTO.into(),
                shape: vec![1, h.nm, side, side],
            });
            debug_assert!(y.ends_with("cv3"));
        }
        Ok(())
    }

    fn proto(&mut self, p: &str, x: &str, pr: &Proto) -> Result<String> {
        let a = self.conv(&format!("{p}.cv1"), x, &pr.cv1)?;
        let u = self.conv_transpose(&format!("{p}.upsample"), &a, &pr.upsample)?;
        let c = self.conv(&format!("{p}.cv2"), &u, &pr.cv2)?;
        self.conv(&format!("{p}.cv3"), &c, &pr.cv3)
    }

    /// ConvTranspose2d with kernel = stride, no padding: a 1×1 conv to `c_out·k·k`
    /// channels then DepthToSpace (CRD), as `ConvTranspose2d::forward` runs it.
    fn conv_transpose(&mut self, p: &str, x: &str, ct: &ConvTranspose2d) -> Result<String> {
        let d = ct.weight.dims();
        let (ci, co, k) = (d[0], d[1], d[2]);
        let q = ct.params;
        if d[3] != k
            || q.stride != (k, k)
            || q.padding != (0, 0)
            || q.output_padding != (0, 0)
            || q.dilation != (1, 1)
            || q.groups != 1
        {
            return Err(Error::msg(format!(
                "capture: {p}: only ConvTranspose2d with kernel = stride and no padding is supported"
            )));
        }
        let w = ct
            .weight
            .permute(&[1, 2, 3, 0])?
            .contiguous()?
            .reshape([co * k * k, ci, 1, 1])?;
        let bias = ct
            .bias
            .unsqueeze(1)?
            .expand([co, k * k])?
            .contiguous()?
            .reshape(co * k * k)?;
        let conv = Conv2d {
            weight: w,
            bias: Some(bias),
            params: Default::default(),
        };
        let c = format!("{p}.conv");
        let y = self.conv2d(&c, &c, x, &conv, Act::None)?;
        Ok(self.node(&format!("{p}.d2s"), Op::DepthToSpace { block: k }, vec![y]))
    }
}
