//! The CUDA engine's placement of values, checked without a GPU (it is pure planning):
//! each value's type (f32 only from the box decode to `pred`), and the concat inputs
//! placed inside their concat's output — in bounds, never overlapping, a C2f's split
//! input placed whole, and nothing placed when the batch makes a concat's runs
//! non-contiguous.
mod common;

use edgedistill::engine::cuda_exec::{Dt, plan_homes, value_dtypes};
use edgedistill::engine::shapes::infer_shapes;
use edgedistill::engine::{Graph, Op};
use std::collections::HashMap;

fn graph() -> Graph {
    common::tiny_seg_graph(96)
}

fn shapes(g: &Graph, batch: usize) -> HashMap<String, Vec<usize>> {
    infer_shapes(g, &|n| g.weight(n).map(|w| w.shape.clone()))
        .unwrap()
        .into_iter()
        .map(|(k, mut v)| {
            v[0] *= batch;
            (k, v)
        })
        .collect()
}

#[test]
fn value_types_are_f16_but_the_box_path() {
    let g = graph();
    let dts = value_dtypes(&g);
    let decode = g
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::DecodeBoxes { .. }))
        .unwrap();
    assert_eq!(dts[&decode.outputs[0]], Dt::F32);
    assert_eq!(dts[&g.outputs[0].name], Dt::F32, "pred");
    assert_eq!(dts[&g.outputs[1].name], Dt::F16, "proto");
    let f32s = dts.values().filter(|d| **d == Dt::F32).count();
    assert!(
        f32s <= 4,
        "{f32s} f32 values: only the decode, pred and their reshapes"
    );
}

#[test]
fn concat_inputs_are_placed_in_bounds_without_overlap() {
    let g = graph();
    let dts = value_dtypes(&g);
    let sh = shapes(&g, 1);
    let homes = plan_homes(&g, &sh, &dts);
    let numel = |v: &str| sh[v].iter().product::<usize>();
    let mut by_host: HashMap<&str, Vec<(usize, usize, &str)>> = HashMap::new();
    for (v, (host, off)) in &homes {
        assert!(off + numel(v) <= numel(host), "{v} at {off} outside {host}");
        assert_eq!(
            dts[v.as_str()],
            dts[host.as_str()],
            "{v} in {host}: types differ"
        );
        by_host
            .entry(host.as_str())
            .or_default()
            .push((*off, off + numel(v), v.as_str()));
    }
    for (host, mut spans) in by_host {
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{host}: {:?} overlaps {:?}", w[0], w[1]);
        }
    }
    // Every C2f: cv1's output (a split's input) sits whole at the start of its concat.
    let split_inputs: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Split { .. }))
        .map(|n| n.inputs[0].as_str())
        .collect();
    assert!(!split_inputs.is_empty());
    for s in &split_inputs {
        assert_eq!(
            homes.get(*s).map(|h| h.1),
            Some(0),
            "{s} not placed at its concat's start"
        );
    }
    assert!(
        homes.len() > 2 * split_inputs.len(),
        "{} placed",
        homes.len()
    );
    // Batch 2: a channel concat's inputs are two runs each; nothing can be placed.
    let sh2 = shapes(&g, 2);
    let homes2 = plan_homes(&g, &sh2, &dts);
    for (v, (host, _)) in &homes2 {
        let n = g.nodes.iter().find(|n| n.outputs[0] == *host).unwrap();
        let Op::Concat { axis } = n.op else { panic!() };
        assert_eq!(
            sh2[host][..axis].iter().product::<usize>(),
            1,
            "{v} placed in {host}"
        );
    }
}
