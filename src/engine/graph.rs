//! The captured student: a flat list of ops over named tensors, shared by the engine file,
//! its runtime, the ONNX writer and the quantizer. Each op is one ONNX node or a short,
//! fixed expansion (Conv+SiLU, the box decode), so the three readers cannot disagree on
//! what the network is. The batch dimension is free everywhere; spatial sizes are fixed
//! by the input size the graph was captured at.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Activation fused into a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    None,
    Silu,
}

/// One feature level of the head: grid size and stride (the box decode's anchors).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub h: usize,
    pub w: usize,
    pub stride: f32,
}

/// What a node computes. Inputs and outputs are named in [`Node`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// inputs `[x, weight [o, c/g, kh, kw], bias [o]?]`; NCHW; then `act`.
    Conv {
        stride: [usize; 2],
        pad: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        act: Act,
    },
    /// INT8 convolution: inputs `[x, weight i8 [o, c/g, kh, kw], weight scale f32 [o],
    /// bias f32 [o]?]`. `x` is quantized with `in_scale` (ONNX QuantizeLinear, int8, zero
    /// point 0), multiplied exactly in i32, then `acc · (in_scale · w_scale[o]) + bias`, then
    /// `act`; the output is f32 (the next INT8 layer quantizes its own input). This is what
    /// an ONNX QDQ pair before a Conv with DequantizeLinear'd weights computes.
    QConv {
        stride: [usize; 2],
        pad: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        act: Act,
        in_scale: f32,
    },
    /// `[N, C·b·b, H, W]` → `[N, C, H·b, W·b]`, ONNX DepthToSpace mode CRD. With a 1×1 conv
    /// before it this is a ConvTranspose2d whose kernel equals its stride (Proto's).
    DepthToSpace {
        block: usize,
    },
    /// Square max pooling, padding with −∞.
    MaxPool {
        kernel: usize,
        stride: usize,
        pad: usize,
    },
    /// Nearest-neighbour upsampling by an integer factor (ONNX Resize, nearest, asymmetric).
    Upsample {
        scale: usize,
    },
    Concat {
        axis: usize,
    },
    /// Consecutive parts of `sizes` along `axis`, one output each.
    Split {
        axis: usize,
        sizes: Vec<usize>,
    },
    /// Elementwise, same shapes.
    Add,
    Sigmoid,
    /// ONNX Reshape semantics: 0 copies the input's dim, −1 is inferred.
    Reshape {
        shape: Vec<i64>,
    },
    /// ultralytics `Detect._inference` box part: `[N, 4·reg_max, A]` distributions → DFL
    /// expectation (softmax over reg_max bins · 0..reg_max) → dist2bbox (xywh) around the
    /// anchors of `levels` → × stride: `[N, 4, A]` in input pixels. `reg_max` 1 skips DFL.
    DecodeBoxes {
        reg_max: usize,
        levels: Vec<Level>,
    },
}

impl Op {
    /// Short name for messages and profiles.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv",
            Op::QConv { .. } => "QConv",
            Op::DepthToSpace { .. } => "DepthToSpace",
            Op::MaxPool { .. } => "MaxPool",
            Op::Upsample { .. } => "Upsample",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Add => "Add",
            Op::Sigmoid => "Sigmoid",
            Op::Reshape { .. } => "Reshape",
            Op::DecodeBoxes { .. } => "DecodeBoxes",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique; the module path it came from (`model.2.cv1`).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// A graph input or output: name and shape with batch 1 in dim 0 (the batch is free).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueInfo {
    pub name: String,
    pub shape: Vec<usize>,
}

/// A constant tensor (weights, biases, scales), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub shape: Vec<usize>,
    pub data: WeightData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum WeightData {
    F32(Vec<f32>),
    /// Quantized conv weights (symmetric, per output channel; scales in their own f32 tensor).
    I8(Vec<i8>),
}

impl Weight {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Weight {
        Weight {
            shape,
            data: WeightData::F32(data),
        }
    }
    pub fn i8(shape: Vec<usize>, data: Vec<i8>) -> Weight {
        Weight {
            shape,
            data: WeightData::I8(data),
        }
    }
    pub fn len(&self) -> usize {
        match &self.data {
            WeightData::F32(v) => v.len(),
            WeightData::I8(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            WeightData::F32(v) => Some(v),
            WeightData::I8(_) => None,
        }
    }
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            WeightData::I8(v) => Some(v),
            WeightData::F32(_) => None,
        }
    }
    /// Bytes per element: 4 for f32, 1 for i8.
    pub fn elem_size(&self) -> usize {
        match &self.data {
            WeightData::F32(_) => 4,
            WeightData::I8(_) => 1,
        }
    }
}

/// The whole network: one input, named outputs, nodes in execution order, and the
/// weights in the order nodes first use them.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub input: Option<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub nodes: Vec<Node>,
    pub weights: Vec<(String, Weight)>,
}

impl Graph {
    pub fn weight(&self, name: &str) -> Option<&Weight> {
        self.weights.iter().find(|(n, _)| n == name).map(|(_, w)| w)
    }

    /// Names, order and references are consistent: every node input is the graph input, a
    /// weight or an earlier node's output; names are unique; outputs exist. Readers of
    /// untrusted files call this before running anything.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::msg(format!("engine graph: {m}")));
        let mut names = std::collections::HashSet::new();
        for (n, w) in &self.weights {
            if !names.insert(n.as_str()) {
                return bad(format!("weight {n:?} listed twice"));
            }
            if w.shape.iter().product::<usize>() != w.len() {
                return bad(format!(
                    "weight {n:?}: shape {:?} but {} values",
                    w.shape,
                    w.len()
                ));
            }
        }
        self.validate_with(&|n| names.contains(n))
    }

    /// As [`Self::validate`], with the constants' names answered by `is_weight` (an engine
    /// file keeps its weights outside the graph).
    pub fn validate_with(&self, is_weight: &dyn Fn(&str) -> bool) -> Result<()> {
        use std::collections::HashSet;
        let bad = |m: String| Err(Error::msg(format!("engine graph: {m}")));
        let Some(input) = &self.input else {
            return bad("no input".into());
        };
        if is_weight(&input.name) {
            return bad(format!("input {:?} is also a constant", input.name));
        }
        let mut values: HashSet<&str> = HashSet::new();
        values.insert(&input.name);
        let mut node_names = HashSet::new();
        for node in &self.nodes {
            if !node_names.insert(node.name.as_str()) {
                return bad(format!("node name {:?} used twice", node.name));
            }
            for i in &node.inputs {
                if !values.contains(i.as_str()) && !is_weight(i) {
                    return bad(format!(
                        "node {:?} reads {i:?}, which nothing produced before it",
                        node.name
                    ));
                }
            }
            check_arity(node)?;
            // Conv reads its weight and bias as constants; everything else reads values.
            for (k, i) in node.inputs.iter().enumerate() {
                let want_const = matches!(node.op, Op::Conv { .. } | Op::QConv { .. }) && k > 0;
                if want_const != is_weight(i) {
                    let what = if want_const { "a constant" } else { "a value" };
                    return bad(format!(
                        "node {:?} input {k} ({i:?}) must be {what}",
                        node.name
                    ));
                }
            }
            for o in &node.outputs {
                if is_weight(o) || !values.insert(o.as_str()) {
                    return bad(format!(
                        "node {:?} writes {o:?}, which already exists",
                        node.name
                    ));
                }
            }
        }
        for o in &self.outputs {
            if !values.contains(o.name.as_str()) {
                return bad(format!("output {:?} is produced by no node", o.name));
            }
        }
        Ok(())
    }

    /// Number of weight values (parameters).
    pub fn num_params(&self) -> usize {
        self.weights.iter().map(|(_, w)| w.len()).sum()
    }
}

/// Input/output counts each op needs.
fn check_arity(node: &Node) -> Result<()> {
    let (ni, no) = (node.inputs.len(), node.outputs.len());
    let ok = match &node.op {
        Op::Conv { .. } => (2..=3).contains(&ni) && no == 1,
        Op::QConv { .. } => (3..=4).contains(&ni) && no == 1,
        Op::Concat { .. } => ni >= 1 && no == 1,
        Op::Split { sizes, .. } => ni == 1 && no == sizes.len() && no >= 1,
        Op::Add => ni == 2 && no == 1,
        _ => ni == 1 && no == 1,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "engine graph: node {:?} ({}) has {ni} inputs and {no} outputs",
            node.name,
            node.op.kind()
        )))
    }
}
