//! Static shape inference over a graph (batch 1): a loader runs it before accepting a
//! file, so a graph whose ops do not fit together, or whose values would be absurdly large,
//! is an error at load time and never reaches a kernel.
use super::graph::{Graph, Op};
use crate::{Error, Result};
use std::collections::HashMap;

/// Largest value (elements, batch 1) a graph may make: 2^28 f32 = 1 GiB.
pub const MAX_ELEMS: usize = 1 << 28;

/// Shape of every value for batch 1, with `weight_shape` giving the constants' shapes.
pub fn infer_shapes(
    graph: &Graph,
    weight_shape: &dyn Fn(&str) -> Option<Vec<usize>>,
) -> Result<HashMap<String, Vec<usize>>> {
    let input = graph
        .input
        .as_ref()
        .ok_or_else(|| Error::msg("engine graph: no input"))?;
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    check_size(&input.name, &input.shape)?;
    shapes.insert(input.name.clone(), input.shape.clone());
    for node in &graph.nodes {
        let get = |n: &String| -> Result<Vec<usize>> {
            shapes
                .get(n)
                .cloned()
                .or_else(|| weight_shape(n))
                .ok_or_else(|| Error::msg(format!("{n:?} is unknown")))
        };
        let ins = node.inputs.iter().map(get).collect::<Result<Vec<_>>>();
        let outs = ins
            .and_then(|ins| node_shapes(&node.op, &ins))
            .map_err(|e| {
                e.context(format!(
                    "engine graph: node {:?} ({})",
                    node.name,
                    node.op.kind()
                ))
            })?;
        if outs.len() != node.outputs.len() {
            return Err(Error::msg(format!(
                "engine graph: node {:?} output count",
                node.name
            )));
        }
        for (n, s) in node.outputs.iter().zip(outs) {
            check_size(n, &s)?;
            shapes.insert(n.clone(), s);
        }
    }
    for o in &graph.outputs {
        match shapes.get(&o.name) {
            Some(s) if *s == o.shape => {}
            s => {
                return Err(Error::msg(format!(
                    "engine graph: output {:?} declared {:?}, computes {s:?}",
                    o.name, o.shape
                )));
            }
        }
    }
    Ok(shapes)
}

fn check_size(name: &str, s: &[usize]) -> Result<()> {
    let n = s.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n {
        Some(n) if n <= MAX_ELEMS => Ok(()),
        _ => Err(Error::msg(format!(
            "engine graph: value {name:?} of shape {s:?} is too large"
        ))),
    }
}

fn rank(s: &[usize], r: usize) -> Result<()> {
    if s.len() == r {
        Ok(())
    } else {
        Err(Error::msg(format!("expected rank {r}, got {s:?}")))
    }
}

/// Output size of a window op, None when the window does not fit.
fn span(i: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    if s == 0 || k == 0 || d == 0 {
        return None;
    }
    let eff = d.checked_mul(k - 1)?.checked_add(1)?;
    i.checked_add(p.checked_mul(2)?)?
        .checked_sub(eff)
        .map(|v| v / s + 1)
}

fn node_shapes(op: &Op, ins: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
    let bad = |m: String| Err(Error::msg(m));
    let x = ins.first().cloned().unwrap_or_default();
    Ok(vec![match op {
        Op::Conv {
            stride,
            pad,
            dilation,
            groups,
            ..
        } => {
            let w = ins.get(1).cloned().unwrap_or_default();
            rank(&x, 4)?;
            rank(&w, 4)?;
            if *groups == 0 || w[1] * groups != x[1] || w[0] % groups != 0 {
                return bad(format!(
                    "weight {w:?} does not fit input {x:?} in {groups} groups"
                ));
            }
            if let Some(b) = ins.get(2)
                && *b != [w[0]]
            {
                return bad(format!("bias {b:?} for {} channels", w[0]));
            }
            let ho = span(x[2], w[2], stride[0], pad[0], dilation[0]);
            let wo = span(x[3], w[3], stride[1], pad[1], dilation[1]);
            match (ho, wo) {
                (Some(h), Some(ww)) => vec![x[0], w[0], h, ww],
                _ => return bad(format!("window {w:?} does not fit {x:?}")),
            }
        }
        Op::QConv {
            stride,
            pad,
            dilation,
            groups,
            in_scale,
            ..
        } => {
            let w = ins.get(1).cloned().unwrap_or_default();
            if ins.get(2) != Some(&vec![w.first().copied().unwrap_or(0)]) {
                return bad(format!("weight scales {:?} for weight {w:?}", ins.get(2)));
            }
            if !(in_scale.is_finite() && *in_scale > 0.0) {
                return bad(format!("input scale {in_scale}"));
            }
            let mut conv_ins = vec![x.clone(), w];
            conv_ins.extend(ins.get(3).cloned());
            let op = Op::Conv {
                stride: *stride,
                pad: *pad,
                dilation: *dilation,
                groups: *groups,
                act: super::graph::Act::None,
            };
            return node_shapes(&op, &conv_ins);
        }
        Op::DepthToSpace { block: k } => {
            rank(&x, 4)?;
            let kk = k.checked_mul(*k).filter(|&v| v > 0);
            match kk {
                Some(kk) if x[1] % kk == 0 => vec![x[0], x[1] / kk, x[2] * k, x[3] * k],
                _ => return bad(format!("block {k} of {x:?}")),
            }
        }
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => {
            rank(&x, 4)?;
            if pad * 2 > *kernel {
                return bad(format!("pad {pad} over half the kernel {kernel}"));
            }
            match (
                span(x[2], *kernel, *stride, *pad, 1),
                span(x[3], *kernel, *stride, *pad, 1),
            ) {
                (Some(h), Some(w)) => vec![x[0], x[1], h, w],
                _ => return bad(format!("window {kernel} does not fit {x:?}")),
            }
        }
        Op::Upsample { scale } => {
            rank(&x, 4)?;
            let f = |d: usize| d.checked_mul(*scale).filter(|&v| v > 0 && v <= MAX_ELEMS);
            match (f(x[2]), f(x[3])) {
                (Some(h), Some(w)) => vec![x[0], x[1], h, w],
                _ => return bad(format!("scale {scale} of {x:?}")),
            }
        }
        Op::Concat { axis } => {
            let mut y = x.clone();
            if *axis >= y.len() {
                return bad(format!("axis {axis} of {x:?}"));
            }
            for s in &ins[1..] {
                let same = s.len() == y.len() && (0..y.len()).all(|d| d == *axis || s[d] == y[d]);
                if !same {
                    return bad(format!(
                        "{s:?} does not concatenate with {x:?} on axis {axis}"
                    ));
                }
                y[*axis] = y[*axis].saturating_add(s[*axis]);
            }
            y
        }
        Op::Split { axis, sizes } => {
            if *axis >= x.len()
                || sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(x[*axis])
            {
                return bad(format!("split {sizes:?} on axis {axis} of {x:?}"));
            }
            return Ok(sizes
                .iter()
                .map(|&s| {
                    let mut y = x.clone();
                    y[*axis] = s;
                    y
                })
                .collect());
        }
        Op::Add => {
            if ins.get(1) != Some(&x) {
                return bad(format!("Add of {x:?} and {:?}", ins.get(1)));
            }
            x
        }
        Op::Sigmoid => x,
        Op::Reshape { shape } => {
            let total: usize = x.iter().product();
            let mut y = Vec::with_capacity(shape.len());
            let mut infer = None;
            for (i, &s) in shape.iter().enumerate() {
                match s {
                    0 if i < x.len() => y.push(x[i]),
                    -1 if infer.is_none() => {
                        infer = Some(i);
                        y.push(1);
                    }
                    s if s > 0 && (s as u64) <= MAX_ELEMS as u64 => y.push(s as usize),
                    _ => return bad(format!("target {shape:?} for {x:?}")),
                }
            }
            let known = y
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(0);
            if let Some(i) = infer {
                if known == 0 || !total.is_multiple_of(known) {
                    return bad(format!("target {shape:?} for {x:?}"));
                }
                y[i] = total / known;
            }
            if y.iter().product::<usize>() != total {
                return bad(format!("target {shape:?} for {x:?}"));
            }
            y
        }
        Op::DecodeBoxes { reg_max, levels } => {
            rank(&x, 3)?;
            let a = levels.iter().try_fold(0usize, |a, l| {
                l.h.checked_mul(l.w).and_then(|v| a.checked_add(v))
            });
            if *reg_max == 0 || Some(x[1]) != reg_max.checked_mul(4) || Some(x[2]) != a {
                return bad(format!("reg_max {reg_max} over {a:?} anchors of {x:?}"));
            }
            if levels
                .iter()
                .any(|l| !(l.stride.is_finite() && l.stride > 0.0))
            {
                return bad("a level stride is not positive".into());
            }
            vec![x[0], 4, x[2]]
        }
    }])
}
