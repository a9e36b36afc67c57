//! The student's postprocess as standard opset-17 ONNX nodes, appended after the raw graph
//! ([`OnnxOutputs::Postprocessed`](super::OnnxOutputs::Postprocessed)): what
//! `models::yolov8::postprocess` does (`non_max_suppression`, `process_mask`, dropping empty
//! masks) in the letterboxed input's pixels, for one image (the input is `[1, 3, S, S]`).
//!
//! - candidates: per anchor the best class (`ReduceMax`, `ArgMax`: the first class with the
//!   maximum, as ours), xywh → xyxy as `c ∓ wh / 2`;
//! - class-aware NMS as ultralytics: boxes offset by `class_id · 7680`, one
//!   `NonMaxSuppression` with `score_threshold = conf` (onnxruntime and TensorRT keep
//!   `score > conf`, as ours), `iou_threshold = iou` (suppressed when `IoU > iou`, as ours;
//!   onnxruntime's IoU is the same f32 arithmetic as ours, so the same boxes survive),
//!   `max_output_boxes_per_class = max_det`. Its output is already best first (one class),
//!   so there is no `TopK`, which TensorRT before 10 accepts only with a constant K;
//! - masks: `coefficients @ proto` (`MatMul`), `Resize` linear / `half_pixel` by S / (S/4)
//!   to S × S (torch's `interpolate(bilinear, align_corners=False)`, as our upsample),
//!   `logit > ln(t / (1 − t))` (= `sigmoid(logit) > t`; 0 for t = 0.5, exactly our `> 0`),
//!   cropped to the box at input resolution (pixel `x` kept when `x1 ≤ x < x2`, rows
//!   alike) — ultralytics 8.4's order (upsample, then crop), which ours follows;
//! - detections whose mask is empty are dropped, as the predictor does;
//! - `masks` is bool: TensorRT 8.5 has no uint8 at all (8.6+ only as a network input or
//!   output), bool it supports throughout. Every op here is in onnx-tensorrt's 8.5 support
//!   list with its restrictions met (constant axes, NMS settings and split sizes;
//!   `NonZero` on float); `class_ids` may come out int32 from TensorRT before 10.
//!
//! Known differences from our CPU postprocess: exactly tied scores are ordered by
//! onnxruntime's heap (ours replays torch's sort), which can also change which of two tied,
//! overlapping boxes survives; the mask logits are summed in f32 by the runtime's MatMul
//! (ours in f64) and interpolated without our fused multiply-adds, so a pixel whose logit
//! is within ~1e-6 of the threshold can flip; we cap NMS candidates at 30000 (`max_nms`),
//! the ONNX graph never does (the anchor count stays below that up to S ≈ 1200), while
//! TensorRT's NMS considers at most 5000 candidates (2000 on SM 5.3/6.2). Intermediate
//! memory is K·S² floats (the upsampled logits) for K detections.
use super::proto::Msg;
use super::writer::{
    Builder, DTYPE_BOOL, DTYPE_FLOAT, DTYPE_INT64, Dim, a_int, a_ints, a_str, typed_value_info,
};
use crate::engine::format::PostprocessSpec;
use crate::engine::graph::Graph;
use crate::{Error, Result};

/// Per-class box offset of class-aware NMS (ultralytics' `max_wh`).
pub const MAX_WH: f32 = 7680.0;
/// The outputs, in order (`masks` for seg models only).
pub const OUTPUTS: [&str; 4] = ["boxes", "scores", "class_ids", "masks"];
/// The symbolic detection-count dimension of every output.
pub const NUM_DETS: &str = "num_dets";

fn err(m: impl std::fmt::Display) -> Error {
    Error::msg(format!("onnx postprocess: {m}"))
}

/// Emit the postprocess after the graph's nodes in `b`; returns the model's input and
/// output `ValueInfoProto`s. The graph must have the captured YOLOv8 outputs: `pred`
/// `[1, 4 + nc + nm, A]` first, then `proto` `[1, nm, mh, mw]` for a seg model.
pub(super) fn append(
    b: &mut Builder,
    g: &Graph,
    spec: &PostprocessSpec,
) -> Result<(Msg, Vec<Msg>)> {
    let input = g
        .input
        .as_ref()
        .ok_or_else(|| err("the graph has no input"))?;
    let &[_, _, h, w] = input.shape.as_slice() else {
        return Err(err(format!(
            "input {:?} has shape {:?}, not [1, 3, H, W]",
            input.name, input.shape
        )));
    };
    let (pred, proto) = match g.outputs.as_slice() {
        [p] => (p, None),
        [p, q] => (p, Some(q)),
        o => {
            return Err(err(format!(
                "the graph has {} outputs, expected pred (and proto)",
                o.len()
            )));
        }
    };
    let &[_, ch, anchors] = pred.shape.as_slice() else {
        return Err(err(format!(
            "{:?} has shape {:?}, not [1, 4 + nc + nm, A]",
            pred.name, pred.shape
        )));
    };
    let (nm, mh, mw) = match proto {
        None => (0, 0, 0),
        Some(q) => match *q.shape.as_slice() {
            [_, nm, mh, mw] if nm > 0 && mh > 0 && mw > 0 => (nm, mh, mw),
            _ => {
                return Err(err(format!(
                    "{:?} has shape {:?}, not [1, nm, mh, mw]",
                    q.name, q.shape
                )));
            }
        },
    };
    if ch < 5 + nm || anchors == 0 {
        return Err(err(format!(
            "{:?} has {ch} channels and {anchors} anchors: no class for nm = {nm}",
            pred.name
        )));
    }
    let nc = ch - 4 - nm;
    if proto.is_some() && (h % mh != 0 || w % mw != 0) {
        return Err(err(format!(
            "input {h}x{w} is not a multiple of the prototypes' {mh}x{mw}"
        )));
    }
    let PostprocessSpec {
        conf,
        iou,
        max_det,
        mask_threshold: t,
    } = *spec;
    if !conf.is_finite() || !(0.0..=1.0).contains(&iou) || max_det == 0 {
        return Err(err(format!(
            "conf {conf} must be finite, iou {iou} in [0, 1], max_det {max_det} ≥ 1"
        )));
    }
    if proto.is_some() && !(t > 0.0 && t < 1.0) {
        return Err(err(format!("mask threshold {t} must be in (0, 1)")));
    }
    let outs: &[&str] = if proto.is_some() {
        &OUTPUTS
    } else {
        &OUTPUTS[..3]
    };
    for o in outs {
        if !b.claim(o) {
            return Err(err(format!(
                "the output name {o:?} is already a value of the graph"
            )));
        }
    }

    let p = |s: &str| format!("post/{s}");
    let perm021 = [a_ints("perm", &[0, 2, 1])];
    let axes0 = b.const_i64(&p("axes0"), &[0]);

    // pred [1, ch, A] → xywh [1, 4, A], class scores [1, nc, A], coefficients [1, nm, A].
    let sizes: Vec<i64> = [4, nc, nm]
        .iter()
        .filter(|&&s| s > 0)
        .map(|&s| s as i64)
        .collect();
    let split = b.const_i64(&p("split_sizes"), &sizes);
    let (xywh, cls, coef) = (b.tmp(&p("xywh")), b.tmp(&p("cls")), b.tmp(&p("coef")));
    let parts: Vec<&str> = [xywh.as_str(), cls.as_str(), coef.as_str()][..sizes.len()].to_vec();
    b.node(
        "Split",
        &p("split"),
        &[&pred.name, &split],
        &parts,
        &[a_int("axis", 1)],
    );
    // Best class per anchor: [1, 1, A] each (ArgMax takes the first maximum).
    let keep1 = [a_ints("axes", &[1]), a_int("keepdims", 1)];
    let score = b.node1("ReduceMax", &p("score"), &[&cls], &keep1);
    let label = b.node1(
        "ArgMax",
        &p("label"),
        &[&cls],
        &[a_int("axis", 1), a_int("keepdims", 1)],
    );
    // xyxy = c ∓ wh / 2 (÷ 2 is exact, as our `/ 2.0`) → [1, A, 4].
    let (s0, s2, s4, ax1) = (
        b.const_i64(&p("i0"), &[0]),
        b.const_i64(&p("i2"), &[2]),
        b.const_i64(&p("i4"), &[4]),
        b.const_i64(&p("axes1"), &[1]),
    );
    let xy = b.node1("Slice", &p("xy"), &[&xywh, &s0, &s2, &ax1], &[]);
    let wh = b.node1("Slice", &p("wh"), &[&xywh, &s2, &s4, &ax1], &[]);
    let two = b.const_f32(&p("two"), &[1], &[2.0]);
    let half = b.node1("Div", &p("half_wh"), &[&wh, &two], &[]);
    let x1y1 = b.node1("Sub", &p("x1y1"), &[&xy, &half], &[]);
    let x2y2 = b.node1("Add", &p("x2y2"), &[&xy, &half], &[]);
    let xyxy_c = b.node1("Concat", &p("xyxy_c"), &[&x1y1, &x2y2], &[a_int("axis", 1)]);
    let xyxy = b.node1("Transpose", &p("xyxy"), &[&xyxy_c], &perm021);
    // Class-aware NMS: every class in its own region, label · max_wh away.
    let labelf = b.node1(
        "Cast",
        &p("label_f"),
        &[&label],
        &[a_int("to", DTYPE_FLOAT as i64)],
    );
    let max_wh = b.const_f32(&p("max_wh"), &[1], &[MAX_WH]);
    let off = b.node1("Mul", &p("offset"), &[&labelf, &max_wh], &[]);
    let off_t = b.node1("Transpose", &p("offset_t"), &[&off], &perm021);
    let nms_boxes = b.node1("Add", &p("nms_boxes"), &[&xyxy, &off_t], &[]);
    // Scalars, as the spec says (TensorRT wants them as initializers).
    let (mo, it, st) = (
        b.const_i64_dims(&p("max_det"), &[], &[max_det as i64]),
        b.const_f32(&p("iou"), &[], &[iou]),
        b.const_f32(&p("conf"), &[], &[conf]),
    );
    // Boxes as [x1, y1, x2, y2], not the spec's [y1, x1, y2, x2]: IoU is the same (NMS is
    // invariant to swapping the axes, products commute).
    let sel = b.node1(
        "NonMaxSuppression",
        &p("nms"),
        &[&nms_boxes, &score, &mo, &it, &st],
        &[a_int("center_point_box", 0)],
    );
    let col2 = b.const_i64_dims(&p("col2"), &[], &[2]);
    let idx0 = b.node1(
        "Gather",
        &p("nms_anchor"),
        &[&sel, &col2],
        &[a_int("axis", 1)],
    );
    // Per-anchor tables, read at the kept anchors.
    let boxes_a = b.node1("Squeeze", &p("boxes_a"), &[&xyxy, &axes0], &[]);
    let flat = b.const_i64(&p("flat"), &[-1]);
    let score_a = b.node1("Reshape", &p("score_a"), &[&score, &flat], &[]);
    let label_a = b.node1("Reshape", &p("label_a"), &[&label, &flat], &[]);
    // NonMaxSuppression lists a class's boxes best first (onnxruntime pops a max-heap,
    // TensorRT walks them in decreasing score), so no TopK (module doc).
    let idx = idx0;
    let gather0 = [a_int("axis", 0)];
    let input_info = typed_value_info(
        &input.name,
        DTYPE_FLOAT,
        &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(h), Dim::Fixed(w)],
    );
    let k_dim = Dim::Param(NUM_DETS);
    let mut infos = vec![
        typed_value_info(OUTPUTS[0], DTYPE_FLOAT, &[k_dim, Dim::Fixed(4)]),
        typed_value_info(OUTPUTS[1], DTYPE_FLOAT, &[k_dim]),
        typed_value_info(OUTPUTS[2], DTYPE_INT64, &[k_dim]),
    ];
    let Some(proto) = proto else {
        b.node(
            "Gather",
            &p("boxes"),
            &[&boxes_a, &idx],
            &[OUTPUTS[0]],
            &gather0,
        );
        b.node(
            "Gather",
            &p("scores"),
            &[&score_a, &idx],
            &[OUTPUTS[1]],
            &gather0,
        );
        b.node(
            "Gather",
            &p("class_ids"),
            &[&label_a, &idx],
            &[OUTPUTS[2]],
            &gather0,
        );
        return Ok((input_info, infos));
    };
    let boxes_k = b.node1("Gather", &p("boxes_k"), &[&boxes_a, &idx], &gather0);
    let score_k = b.node1("Gather", &p("score_k"), &[&score_a, &idx], &gather0);
    let label_k = b.node1("Gather", &p("label_k"), &[&label_a, &idx], &gather0);

    // Mask logits [K, mh·mw] = coefficients [K, nm] @ prototypes [nm, mh·mw].
    let coef_a = b.node1("Squeeze", &p("coef_a"), &[&coef, &axes0], &[]);
    let coef_k = b.node1(
        "Gather",
        &p("coef_k"),
        &[&coef_a, &idx],
        &[a_int("axis", 1)],
    );
    let coef_kt = b.node1(
        "Transpose",
        &p("coef_kt"),
        &[&coef_k],
        &[a_ints("perm", &[1, 0])],
    );
    let pshape = b.const_i64(&p("proto_shape"), &[nm as i64, (mh * mw) as i64]);
    let proto2 = b.node1("Reshape", &p("proto_2d"), &[&proto.name, &pshape], &[]);
    let logits = b.node1("MatMul", &p("logits"), &[&coef_kt, &proto2], &[]);
    let lshape = b.const_i64(&p("logits_shape"), &[0, mh as i64, mw as i64]);
    let logits3 = b.node1("Reshape", &p("logits_3d"), &[&logits, &lshape], &[]);
    let logits4 = b.node1("Unsqueeze", &p("logits_4d"), &[&logits3, &axes0], &[]);
    // Bilinear, align_corners False = half_pixel (the scales are integers: S / (S/4)).
    let scales = b.const_f32(
        &p("scales"),
        &[4],
        &[1.0, 1.0, (h / mh) as f32, (w / mw) as f32],
    );
    let up = b.node1(
        "Resize",
        &p("upsample"),
        &[&logits4, "", &scales],
        &[
            a_str("mode", "linear"),
            a_str("coordinate_transformation_mode", "half_pixel"),
        ],
    );
    // sigmoid(x) > t ⟺ x > ln(t / (1 − t)); computed in f64, 0 exactly for t = 0.5.
    let tl = (f64::from(t) / (1.0 - f64::from(t))).ln() as f32;
    let thr = b.const_f32(&p("logit_threshold"), &[1], &[tl]);
    let fg = b.node1("Greater", &p("foreground"), &[&up, &thr], &[]);
    // Crop: pixel x (row y) is inside when x1 ≤ x < x2 (y1 ≤ y < y2).
    let (bx1, by1, bx2, by2) = (
        b.tmp(&p("x1")),
        b.tmp(&p("y1")),
        b.tmp(&p("x2")),
        b.tmp(&p("y2")),
    );
    let ones = b.const_i64(&p("ones"), &[1, 1, 1, 1]);
    b.node(
        "Split",
        &p("box_split"),
        &[&boxes_k, &ones],
        &[&bx1, &by1, &bx2, &by2],
        &[a_int("axis", 1)],
    );
    let axes03 = b.const_i64(&p("axes03"), &[0, 3]);
    let [bx1, by1, bx2, by2] = [&bx1, &by1, &bx2, &by2]
        .map(|v| b.node1("Unsqueeze", &format!("{v}_4d"), &[v, &axes03], &[]));
    let cols: Vec<f32> = (0..w).map(|x| x as f32).collect();
    let rows: Vec<f32> = (0..h).map(|y| y as f32).collect();
    let cols = b.const_f32(&p("cols"), &[1, 1, 1, w], &cols);
    let rows = b.const_f32(&p("rows"), &[1, 1, h, 1], &rows);
    let mut inside = |name: &str, at: &str, lo: &str, hi: &str| {
        let ge = b.node1("GreaterOrEqual", &p(&format!("{name}_ge")), &[at, lo], &[]);
        let lt = b.node1("Less", &p(&format!("{name}_lt")), &[at, hi], &[]);
        b.node1("And", &p(&format!("{name}_in")), &[&ge, &lt], &[])
    };
    let in_x = inside("x", &cols, &bx1, &bx2);
    let in_y = inside("y", &rows, &by1, &by2);
    let in_box = b.node1("And", &p("in_box"), &[&in_y, &in_x], &[]);
    let m = b.node1("And", &p("mask_bool"), &[&fg, &in_box], &[]);
    let mf = b.node1(
        "Cast",
        &p("mask_f"),
        &[&m],
        &[a_int("to", DTYPE_FLOAT as i64)],
    );
    let mf3 = b.node1("Squeeze", &p("mask_k"), &[&mf, &axes0], &[]);
    // Drop detections whose mask is empty (the predictor's construct_result).
    let any = b.node1(
        "ReduceMax",
        &p("mask_any"),
        &[&mf3],
        &[a_ints("axes", &[1, 2]), a_int("keepdims", 0)],
    );
    // NonZero on the float (TensorRT 8.5 takes float, not bool).
    let nz = b.node1("NonZero", &p("nonempty"), &[&any], &[]);
    let keep = b.node1("Squeeze", &p("keep"), &[&nz, &axes0], &[]);
    b.node(
        "Gather",
        &p("boxes"),
        &[&boxes_k, &keep],
        &[OUTPUTS[0]],
        &gather0,
    );
    b.node(
        "Gather",
        &p("scores"),
        &[&score_k, &keep],
        &[OUTPUTS[1]],
        &gather0,
    );
    b.node(
        "Gather",
        &p("class_ids"),
        &[&label_k, &keep],
        &[OUTPUTS[2]],
        &gather0,
    );
    let mk = b.node1("Gather", &p("masks_f"), &[&mf3, &keep], &gather0);
    b.node(
        "Cast",
        &p("masks"),
        &[&mk],
        &[OUTPUTS[3]],
        &[a_int("to", DTYPE_BOOL as i64)],
    );
    infos.push(typed_value_info(
        OUTPUTS[3],
        DTYPE_BOOL,
        &[k_dim, Dim::Fixed(h), Dim::Fixed(w)],
    ));
    Ok((input_info, infos))
}
