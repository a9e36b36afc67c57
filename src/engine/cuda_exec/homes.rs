//! Where values live on the GPU: each value's type, and which concat inputs are placed
//! inside their concat's output so that nothing is copied. Pure functions of the graph
//! (tested on the CPU in `tests/engine_cuda_plan.rs`).
use crate::engine::graph::{Graph, Node, Op};
use std::collections::HashMap;

/// A value's element type on the GPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dt {
    F16,
    F32,
}

impl Dt {
    pub fn size(self) -> usize {
        match self {
            Dt::F16 => 2,
            Dt::F32 => 4,
        }
    }
}

/// Each value's type on the GPU: f16, except the box decode's output and what it reaches
/// (concats with an f32 input, reshapes and splits of f32 values).
pub fn value_dtypes(graph: &Graph) -> HashMap<String, Dt> {
    let mut dts = HashMap::new();
    if let Some(i) = &graph.input {
        dts.insert(i.name.clone(), Dt::F16);
    }
    for node in &graph.nodes {
        let input_dt = |k: usize| {
            node.inputs
                .get(k)
                .and_then(|n| dts.get(n))
                .copied()
                .unwrap_or(Dt::F16)
        };
        let dt = match &node.op {
            Op::DecodeBoxes { .. } => Dt::F32,
            Op::Concat { .. } => {
                if node.inputs.iter().any(|n| dts.get(n) == Some(&Dt::F32)) {
                    Dt::F32
                } else {
                    Dt::F16
                }
            }
            Op::Reshape { .. } | Op::Split { .. } => input_dt(0),
            _ => Dt::F16,
        };
        for o in &node.outputs {
            dts.insert(o.clone(), dt);
        }
    }
    dts
}

/// Concat elision: where a concat's output is one contiguous run per input (nothing before
/// the axis but 1s — channel concats at batch 1), each input made by a node that writes
/// a buffer of its own is placed ("homed") inside the concat's output, so its producer
/// writes there and the concat copies nothing. A run of a Split's outputs, in order,
/// homes the split's input instead (C2f: cv1's output lands in the concat, its halves are
/// views). Later concats are planned first, so homes nest (a concat inside a concat).
/// A value is homed once, only with the concat's own type, never the graph input.
pub fn plan_homes(
    graph: &Graph,
    shapes: &HashMap<String, Vec<usize>>,
    dts: &HashMap<String, Dt>,
) -> HashMap<String, (String, usize)> {
    let mut producer: HashMap<&str, &Node> = HashMap::new();
    for n in &graph.nodes {
        for o in &n.outputs {
            producer.insert(o.as_str(), n);
        }
    }
    let numel = |v: &str| shapes.get(v).map_or(0, |s| s.iter().product::<usize>());
    let mut homes: HashMap<String, (String, usize)> = HashMap::new();
    for node in graph.nodes.iter().rev() {
        let Op::Concat { axis } = node.op else {
            continue;
        };
        let out = &node.outputs[0];
        let (Some(oshape), Some(&odt)) = (shapes.get(out), dts.get(out)) else {
            continue;
        };
        if axis > oshape.len() || oshape[..axis].iter().product::<usize>() != 1 {
            continue;
        }
        let fresh = |v: &str, homes: &HashMap<String, (String, usize)>| {
            !homes.contains_key(v)
                && dts.get(v) == Some(&odt)
                && producer
                    .get(v)
                    .is_some_and(|p| !matches!(p.op, Op::Reshape { .. } | Op::Split { .. }))
        };
        let (mut off, mut i) = (0, 0);
        while i < node.inputs.len() {
            let v = node.inputs[i].as_str();
            if let Some(sp) = producer.get(v).filter(|p| matches!(p.op, Op::Split { .. })) {
                let src = sp.inputs[0].as_str();
                let one_run = match &sp.op {
                    Op::Split { axis: sa, .. } => shapes
                        .get(src)
                        .is_some_and(|s| *sa <= s.len() && s[..*sa].iter().product::<usize>() == 1),
                    _ => false,
                };
                if one_run && node.inputs[i..].starts_with(&sp.outputs) && fresh(src, &homes) {
                    homes.insert(src.to_string(), (out.clone(), off));
                    off += numel(src);
                    i += sp.outputs.len();
                    continue;
                }
            }
            if fresh(v, &homes) {
                homes.insert(v.to_string(), (out.clone(), off));
            }
            off += numel(v);
            i += 1;
        }
    }
    homes
}
