//! Post-training quantization of a captured graph: every Conv becomes an INT8 `QConv`
//! (per-output-channel symmetric weights, a per-tensor input scale amax/127 from
//! calibration) except the layers kept in f32 — by default the head's last convs, whose
//! outputs feed the DFL box decode, the class sigmoid and the mask coefficients, and the
//! last prototype conv, where INT8 error goes straight into boxes, scores and masks.
use super::graph::{Graph, Op, Weight};
use crate::backend::cpu::qconv::quantize_weights_per_channel;
use crate::{Error, Result};
use serde::Serialize;

/// Node-name patterns (`*` matches any run of characters) kept in f32 by default.
pub const DEFAULT_KEEP_FP32: [&str; 4] = ["*.cv2.*.2", "*.cv3.*.2", "*.cv4.*.2", "*.proto.cv3"];

/// Which layers stay in f32.
#[derive(Clone, Debug)]
pub struct QuantOptions {
    pub keep_fp32: Vec<String>,
}

impl Default for QuantOptions {
    fn default() -> Self {
        QuantOptions {
            keep_fp32: DEFAULT_KEEP_FP32.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// What was quantized.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QuantReport {
    pub int8_layers: Vec<String>,
    pub fp32_layers: Vec<String>,
}

pub use crate::io::glob::glob_match;

/// The values whose scales calibration must find: each Conv's input, in node order.
pub fn calibrated_values(g: &Graph, opts: &QuantOptions) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    g.nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv { .. }) && !kept(opts, &n.name))
        .filter_map(|n| n.inputs.first().cloned())
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

fn kept(opts: &QuantOptions, name: &str) -> bool {
    opts.keep_fp32.iter().any(|p| glob_match(p, name))
}

/// The INT8 version of `g`: `amax(value)` gives each quantized conv input's calibrated
/// range (0 — an input that was always zero — gets scale 1).
pub fn quantize_graph(
    g: &Graph,
    amax: &dyn Fn(&str) -> Result<f32>,
    opts: &QuantOptions,
) -> Result<(Graph, QuantReport)> {
    let mut out = g.clone();
    let mut report = QuantReport::default();
    let mut new_weights: Vec<(String, Weight)> = Vec::new();
    for node in &mut out.nodes {
        let Op::Conv {
            stride,
            pad,
            dilation,
            groups,
            act,
        } = node.op
        else {
            continue;
        };
        if kept(opts, &node.name) {
            report.fp32_layers.push(node.name.clone());
            continue;
        }
        let a = amax(&node.inputs[0]).map_err(|e| e.context(format!("quantize {}", node.name)))?;
        if !(a.is_finite() && a >= 0.0) {
            return Err(Error::msg(format!(
                "quantize {}: calibrated range {a} of {:?} is not a finite non-negative number",
                node.name, node.inputs[0]
            )));
        }
        let in_scale = if a > 0.0 { a / 127.0 } else { 1.0 };
        let wname = node.inputs[1].clone();
        let w = g
            .weight(&wname)
            .and_then(|w| Some((w.shape.clone(), w.as_f32()?)))
            .ok_or_else(|| {
                Error::msg(format!(
                    "quantize {}: weight {wname:?} is not an f32 constant",
                    node.name
                ))
            })?;
        let o = w.0[0];
        let (q, s) = quantize_weights_per_channel(w.1, o);
        let sname = format!("{wname}_scale");
        new_weights.push((wname.clone(), Weight::i8(w.0.clone(), q)));
        new_weights.push((sname.clone(), Weight::f32(vec![o], s)));
        node.op = Op::QConv {
            stride,
            pad,
            dilation,
            groups,
            act,
            in_scale,
        };
        node.inputs.insert(2, sname);
        report.int8_layers.push(node.name.clone());
    }
    // Replace quantized weights in place (same order: the file stays in first-use order)
    // and put each scale right after its weight.
    let mut weights = Vec::with_capacity(out.weights.len() + new_weights.len() / 2);
    for (n, w) in out.weights.drain(..) {
        match new_weights.iter().position(|(m, _)| *m == n) {
            Some(i) => {
                weights.push(new_weights[i].clone());
                weights.push(new_weights[i + 1].clone());
            }
            None => weights.push((n, w)),
        }
    }
    out.weights = weights;
    out.validate()?;
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::glob_match;
    #[test]
    fn globs() {
        assert!(glob_match("*.cv2.*.2", "model.22.cv2.0.2"));
        assert!(!glob_match("*.cv2.*.2", "model.2.cv2"));
        assert!(!glob_match("*.cv2.*.2", "model.2.m.0.cv2"));
        assert!(glob_match("*.proto.cv3", "model.22.proto.cv3"));
        assert!(!glob_match("*.proto.cv3", "model.22.proto.cv3.x"));
        assert!(glob_match("model.0", "model.0"));
        assert!(!glob_match("model.0", "model.01"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "a-b-b-c"));
        assert!(!glob_match("a*b*c", "a-c"));
    }
}
