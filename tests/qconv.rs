//! INT8 convolution (backend::cpu::qconv): the fast path (AVX2 on x86-64) and the portable
//! path against the scalar reference bit for bit, the quantizers' edge cases, and the
//! float semantics (an ONNX QDQ graph: conv of the dequantized tensors).
use edgedistill::backend::cpu::conv::{ConvGeom, conv2d_forward};
use edgedistill::backend::cpu::qconv::{
    Activation, QConvPath, QConvWeights, exp_silu, qconv2d_forward, qconv2d_forward_packed,
    qconv2d_forward_with, qconv2d_reference, quantize_s8, quantize_weights_per_channel,
};
use edgedistill::tensor::Rng;

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c: usize,
    (h, w): (usize, usize),
    o: usize,
    (kh, kw): (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    groups: usize,
) -> ConvGeom {
    let ho = (h + 2 * pad.0 - dil.0 * (kh - 1) - 1) / stride.0 + 1;
    let wo = (w + 2 * pad.1 - dil.1 * (kw - 1) - 1) / stride.1 + 1;
    ConvGeom {
        n,
        c,
        h,
        w,
        o,
        kh,
        kw,
        stride,
        pad,
        dil,
        groups,
        ho,
        wo,
    }
}

/// The ONNX weight shape of `g`.
fn wshape(g: &ConvGeom) -> [usize; 4] {
    [g.o, g.cg(), g.kh, g.kw]
}

/// Same-padded k×k, stride s, dilation 1, one group.
fn simple(n: usize, c: usize, hw: (usize, usize), o: usize, k: usize, s: usize) -> ConvGeom {
    geom(n, c, hw, o, (k, k), (s, s), (k / 2, k / 2), (1, 1), 1)
}

fn randn(n: usize, std: f64, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * std) as f32).collect()
}

fn rand_w(n: usize, rng: &mut Rng) -> Vec<i8> {
    (0..n)
        .map(|_| (rng.below(255) as i64 - 127) as i8)
        .collect()
}

struct Case {
    x: Vec<f32>,
    in_scale: f32,
    wq: Vec<i8>,
    w_scale: Vec<f32>,
    bias: Vec<f32>,
}

fn case(g: &ConvGeom, rng: &mut Rng) -> Case {
    let x = randn(g.n * g.c * g.h * g.w, 1.0, rng);
    // ±2.5 maps to ±127: a few inputs saturate.
    let in_scale = 2.5 / 127.0;
    let wq = rand_w(g.o * g.k(), rng);
    let w_scale = (0..g.o)
        .map(|_| (1e-3 + 1e-2 * rng.uniform()) as f32)
        .collect();
    let bias = randn(g.o, 1.0, rng);
    Case {
        x,
        in_scale,
        wq,
        w_scale,
        bias,
    }
}

fn geometries() -> Vec<(&'static str, ConvGeom)> {
    vec![
        ("1x1 pointwise", simple(1, 8, (10, 10), 16, 1, 1)),
        ("1x1 odd channels", simple(2, 13, (7, 9), 7, 1, 1)),
        ("1x1 stride 2", simple(1, 37, (11, 7), 19, 1, 2)),
        (
            "1x1 pad 1",
            geom(1, 9, (8, 8), 5, (1, 1), (1, 1), (1, 1), (1, 1), 1),
        ),
        ("3x3 s1 odd 7x9 batch 2", simple(2, 5, (7, 9), 7, 3, 1)),
        ("3x3 s2 first layer", simple(1, 3, (17, 13), 16, 3, 2)),
        (
            "3x3 s2 pad 0",
            geom(1, 16, (12, 12), 33, (3, 3), (2, 2), (0, 0), (1, 1), 1),
        ),
        (
            "3x3 pad 2 dil 2",
            geom(1, 6, (9, 11), 10, (3, 3), (1, 1), (2, 2), (2, 2), 1),
        ),
        (
            "3x3 pad 0",
            geom(2, 4, (9, 8), 9, (3, 3), (1, 1), (0, 0), (1, 1), 1),
        ),
        (
            "groups 2",
            geom(2, 8, (10, 10), 12, (3, 3), (1, 1), (1, 1), (1, 1), 2),
        ),
        (
            "depthwise",
            geom(1, 12, (9, 9), 12, (3, 3), (1, 1), (1, 1), (1, 1), 12),
        ),
        (
            "depthwise s2 multiplier 2",
            geom(1, 6, (6, 5), 12, (3, 3), (2, 2), (1, 1), (1, 1), 6),
        ),
        // 3×3 stride 1 runs Winograd (Auto) and the im2col kernel (Direct); k = 576: two
        // k chunks in the latter (partial sums between them).
        ("3x3 64->40 two k chunks", simple(1, 64, (9, 9), 40, 3, 1)),
        // k = 1161 (odd): four k chunks, the last pair half padding; odd c in Winograd.
        ("3x3 129->9 odd k", simple(1, 129, (5, 6), 9, 3, 1)),
        (
            "3x3 s2 64->20 two k chunks",
            simple(1, 64, (9, 11), 20, 3, 2),
        ),
        // Winograd: tiles crossing tile rows, odd output sizes, output channels not a
        // multiple of 4.
        ("3x3 s1 odd sizes", simple(2, 17, (13, 21), 11, 3, 1)),
        ("3x3 s1 wide", simple(1, 8, (6, 70), 5, 3, 1)),
        ("3x3 s1 tall narrow", simple(1, 3, (40, 3), 6, 3, 1)),
        (
            "5x3 asymmetric stride (2,1) pad (2,1) dil (1,2)",
            geom(1, 32, (30, 30), 8, (5, 3), (2, 1), (2, 1), (1, 2), 1),
        ),
        // Many pixel tiles, tile tail not a multiple of 8.
        ("1x1 many tiles", simple(1, 16, (101, 103), 17, 1, 1)),
        ("3x3 many tiles", simple(3, 3, (64, 50), 6, 3, 1)),
        // Small image, many channels: output channel chunks.
        (
            "3x3 small image many channels",
            simple(1, 64, (6, 6), 128, 3, 1),
        ),
        // More pixels than the largest tile (4080) times 16 jobs.
        (
            "3x3 s2 640x640 first layer",
            simple(1, 3, (640, 640), 16, 3, 2),
        ),
        ("kernel larger than input", simple(1, 2, (2, 2), 3, 3, 1)),
        (
            "single output pixel",
            geom(1, 7, (3, 3), 5, (3, 3), (1, 1), (0, 0), (1, 1), 1),
        ),
        ("one channel", simple(1, 1, (5, 5), 1, 3, 1)),
    ]
}

fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{what}: element {i}: got {a:e} want {b:e}"
        );
    }
}

#[test]
fn fast_and_portable_paths_equal_reference_bit_for_bit() {
    let mut rng = Rng::new(7);
    let acts = [Activation::None, Activation::Silu, Activation::Relu];
    for (name, g) in geometries() {
        let cs = case(&g, &mut rng);
        for act in acts {
            for with_bias in [true, false] {
                let bias = with_bias.then_some(cs.bias.as_slice());
                let what = format!("{name} {g:?} {act:?} bias {with_bias}");
                let want =
                    qconv2d_reference(&cs.x, cs.in_scale, &cs.wq, &cs.w_scale, bias, act, &g);
                assert_eq!(want.len(), g.n * g.o * g.ho * g.wo);
                let fast = qconv2d_forward(&cs.x, cs.in_scale, &cs.wq, &cs.w_scale, bias, act, &g);
                assert_bits(&format!("forward {what}"), &fast, &want);
                let packed = QConvWeights::pack(&cs.wq, &cs.w_scale, bias, wshape(&g), g.groups);
                let fast2 = qconv2d_forward_packed(&cs.x, cs.in_scale, &packed, act, &g);
                assert_bits(&format!("packed {what}"), &fast2, &want);
                for path in [QConvPath::Direct, QConvPath::Vnni, QConvPath::Portable] {
                    let y = qconv2d_forward_with(&cs.x, cs.in_scale, &packed, act, &g, path);
                    assert_bits(&format!("{path:?} {what}"), &y, &want);
                }
            }
        }
    }
}

/// The reference itself, on a case small enough to work out by hand.
#[test]
fn reference_matches_hand_computation() {
    // x 1×1×2×2 = [[1, 2], [3, 4]] with scale 1; w 1×1×2×2 = [[1, -1], [2, 0]]; padding 1,
    // stride 1 gives a 3×3 output; centre = 1·1 − 1·2 + 2·3 + 0·4 = 5.
    let g = geom(1, 1, (2, 2), 1, (2, 2), (1, 1), (1, 1), (1, 1), 1);
    let x = [1.0, 2.0, 3.0, 4.0];
    let wq = [1i8, -1, 2, 0];
    let y = qconv2d_reference(&x, 1.0, &wq, &[0.5], Some(&[1.0]), Activation::None, &g);
    // acc for output (oy, ox) = Σ w[ky][kx]·x[oy+ky−1][ox+kx−1].
    let acc = [0, 2, 4, -1, 5, 10, -3, -1, 4];
    let want: Vec<f32> = acc.iter().map(|&a| a as f32 * 0.5 + 1.0).collect();
    assert_eq!(y, want);
    let y = qconv2d_reference(&x, 1.0, &wq, &[0.5], Some(&[1.0]), Activation::Silu, &g);
    for (a, &w) in y.iter().zip(&want) {
        assert_eq!(*a, w / (1.0 + exp_silu(-w)));
    }
    let y = qconv2d_reference(&x, 1.0, &wq, &[0.5], Some(&[-2.0]), Activation::Relu, &g);
    let relu: Vec<f32> = acc
        .iter()
        .map(|&a| (a as f32 * 0.5 - 2.0).max(0.0))
        .collect();
    assert_eq!(y, relu);
}

/// Extreme values: every input saturates to −128 and every weight is ±127 over a long k,
/// so the pair sums and the i32 accumulators are at their largest magnitudes.
#[test]
fn accumulators_are_exact_at_the_extremes() {
    for (c, sign) in [(256usize, 1i8), (256, -1), (131, 1)] {
        let g = simple(1, c, (5, 5), 9, 3, 1);
        let x = vec![-1e9f32; g.n * g.c * g.h * g.w];
        let wq = vec![127 * sign; g.o * g.k()];
        let w_scale = vec![1.0; g.o];
        let want = qconv2d_reference(&x, 1.0, &wq, &w_scale, None, Activation::None, &g);
        let got = qconv2d_forward(&x, 1.0, &wq, &w_scale, None, Activation::None, &g);
        assert_bits("extremes", &got, &want);
        // Centre pixel: all c·9 taps inside the image.
        let centre = (-128i64 * 127 * i64::from(sign) * (c as i64) * 9) as f32;
        assert_eq!(got[2 * 5 + 2], centre, "c {c} sign {sign}");
        // Corner pixel: 4 taps inside.
        let corner = (-128i64 * 127 * i64::from(sign) * (c as i64) * 4) as f32;
        assert_eq!(got[0], corner);
    }
}

/// SiLU's exp is within 2 ulp of e^x over its range, and saturates as documented.
#[test]
fn exp_silu_is_accurate() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x <= 88.0 {
        let want = (x as f64).exp();
        worst = worst.max(((exp_silu(x) as f64 - want) / want).abs());
        x += 0.0071;
    }
    assert!(worst < 2.5e-7, "worst relative error {worst:e}");
    assert_eq!(exp_silu(0.0), 1.0);
    assert_eq!(exp_silu(-1000.0), exp_silu(-87.0));
    assert_eq!(exp_silu(1000.0), exp_silu(88.0));
    assert!(exp_silu(f32::NAN).is_nan());
}

#[test]
fn quantize_s8_edge_cases() {
    let s = 0.5f32;
    let cases: &[(f32, i8)] = &[
        (0.0, 0),
        (-0.0, 0),
        // Ties go to even: 0.25/0.5 = 0.5 → 0, 0.75/0.5 = 1.5 → 2, 1.25/0.5 = 2.5 → 2.
        (0.25, 0),
        (-0.25, 0),
        (0.75, 2),
        (-0.75, -2),
        (1.25, 2),
        (-1.25, -2),
        (1.75, 4),
        (0.2, 0),
        (0.3, 1),
        (-0.3, -1),
        // Saturation.
        (63.5, 127),
        (63.75, 127),
        (64.0, 127),
        (-64.0, -128),
        (-64.25, -128),
        (-64.5, -128),
        (1e30, 127),
        (-1e30, -128),
        (f32::INFINITY, 127),
        (f32::NEG_INFINITY, -128),
        (f32::NAN, 0),
        (-f32::NAN, 0),
        (f32::MIN_POSITIVE, 0),
        (126.5 * 0.5, 126),
        (-127.5 * 0.5, -128),
        (-126.5 * 0.5, -126),
    ];
    // Long enough for the vector path (32 at a time) and its scalar tail: each case sits
    // at several positions.
    for shift in [0usize, 5, 31, 32, 33] {
        let mut x = vec![0f32; shift];
        x.extend(cases.iter().map(|c| c.0));
        x.extend(cases.iter().map(|c| c.0));
        let mut q = vec![99i8; x.len()];
        quantize_s8(&x, s, &mut q);
        for (i, (&xi, &qi)) in x.iter().zip(&q).enumerate() {
            let want = if i < shift {
                0
            } else {
                cases[(i - shift) % cases.len()].1
            };
            assert_eq!(qi, want, "x = {xi:e} (position {i})");
        }
    }
    // x / scale is a division, not a product with 1/scale: these differ in the last bit
    // for some x, which decides ties. Check a sweep against the obvious formula.
    let mut rng = Rng::new(3);
    let scale = 0.1f32; // 1/0.1 is not exact
    let x: Vec<f32> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                // Near ties: (k + 0.5)·scale.
                ((rng.below(300) as f32 - 150.0) + 0.5) * scale
            } else {
                (rng.normal() * 20.0) as f32
            }
        })
        .collect();
    let mut q = vec![0i8; x.len()];
    quantize_s8(&x, scale, &mut q);
    for (&xi, &qi) in x.iter().zip(&q) {
        let want = (xi / scale).round_ties_even().clamp(-128.0, 127.0) as i8;
        assert_eq!(qi, want, "x = {xi:e}");
    }
}

#[test]
fn quantize_weights_per_channel_cases() {
    // Channel 0: max |w| = 2 → s = 2/127, ±2 → ±127. Channel 1: all zero → s = 1, q = 0.
    // Channel 2: max is negative.
    let w = [
        2.0, -1.0, 0.5, -2.0, //
        0.0, 0.0, -0.0, 0.0, //
        0.1, -0.4, 0.2, 0.3,
    ];
    let (q, s) = quantize_weights_per_channel(&w, 3);
    assert_eq!(s, vec![2.0 / 127.0, 1.0, 0.4 / 127.0]);
    assert_eq!(&q[0..4], &[127, -64, 32, -127]); // -63.5 → -64, 31.75 → 32
    assert_eq!(&q[4..8], &[0, 0, 0, 0]);
    assert_eq!(q[9], -127);
    assert_eq!(q[8], (0.1f32 / s[2]).round_ties_even() as i8);
    // Every channel's extreme maps to ±127 and nothing exceeds it, over random rows.
    let mut rng = Rng::new(5);
    let (o, k) = (33, 75);
    let w = randn(o * k, 0.3, &mut rng);
    let (q, s) = quantize_weights_per_channel(&w, o);
    for ch in 0..o {
        let row = &w[ch * k..(ch + 1) * k];
        let qrow = &q[ch * k..(ch + 1) * k];
        let (imax, _) = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        assert_eq!(qrow[imax].unsigned_abs(), 127, "channel {ch}");
        assert!(qrow.iter().all(|&v| v != -128));
        for (&v, &qv) in row.iter().zip(qrow) {
            assert!((v - qv as f32 * s[ch]).abs() <= s[ch] * 0.5 + 1e-7);
        }
    }
}

/// What an ONNX QDQ graph computes: the f32 convolution of the dequantized tensors
/// (xq·sx, wq·sw[oc]) plus bias, then the activation.
#[test]
fn equals_float_conv_of_dequantized_tensors() {
    let mut rng = Rng::new(11);
    for (name, g) in geometries() {
        let cs = case(&g, &mut rng);
        let mut xq = vec![0i8; cs.x.len()];
        quantize_s8(&cs.x, cs.in_scale, &mut xq);
        let xd: Vec<f32> = xq.iter().map(|&q| q as f32 * cs.in_scale).collect();
        let k = g.k();
        let wd: Vec<f32> = cs
            .wq
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * cs.w_scale[i / k])
            .collect();
        let lin = conv2d_forward(&xd, &wd, Some(&cs.bias), &g);
        for act in [Activation::None, Activation::Silu] {
            let y = qconv2d_forward(
                &cs.x,
                cs.in_scale,
                &cs.wq,
                &cs.w_scale,
                Some(&cs.bias),
                act,
                &g,
            );
            for (i, (&a, &l)) in y.iter().zip(&lin).enumerate() {
                let b = match act {
                    Activation::Silu => l / (1.0 + (-l).exp()),
                    _ => l,
                };
                let tol = 1e-5 * (1.0 + b.abs()) * (k as f32).sqrt();
                assert!(
                    (a - b).abs() <= tol,
                    "{name} {act:?} element {i}: int8 {a} float {b}"
                );
            }
        }
    }
}

/// Timing table of YOLOv8n-seg's 640² layer shapes: f32 conv2d_forward against
/// qconv2d_forward (weights packed inside) and qconv2d_forward_packed (SiLU and none).
/// The four are run in turn, QCONV_REPS rounds (default 21); medians and minima in ms.
/// `cargo test --release --test qconv -- --ignored --nocapture time_yolov8n_shapes`
/// (QCONV_SHAPES=substring picks shapes).
#[test]
#[ignore]
fn time_yolov8n_shapes() {
    use std::time::Instant;
    let reps: usize = std::env::var("QCONV_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let only = std::env::var("QCONV_SHAPES").unwrap_or_default();
    let shapes = [
        ("3->16 k3 s2 640", simple(1, 3, (640, 640), 16, 3, 2)),
        ("16->32 k3 s2 320", simple(1, 16, (320, 320), 32, 3, 2)),
        ("32->32 1x1 160", simple(1, 32, (160, 160), 32, 1, 1)),
        ("16->16 k3 s1 160", simple(1, 16, (160, 160), 16, 3, 1)),
        ("64->64 k3 s1 80", simple(1, 64, (80, 80), 64, 3, 1)),
        ("128->128 k3 s1 40", simple(1, 128, (40, 40), 128, 3, 1)),
        ("256->256 k3 s1 20", simple(1, 256, (20, 20), 256, 3, 1)),
        ("192->64 1x1 80", simple(1, 192, (80, 80), 64, 1, 1)),
        ("64->32 k3 s1 160", simple(1, 64, (160, 160), 32, 3, 1)),
        ("64->64 k3 s2 80", simple(1, 64, (80, 80), 64, 3, 2)),
    ];
    let mut rng = Rng::new(1);
    println!(
        "threads {}, {reps} rounds, median (min) ms",
        rayon::current_num_threads()
    );
    println!(
        "| shape | f32 conv2d_forward | int8 forward, silu | ratio | int8 packed, silu | ratio | int8 packed, none | ratio | Direct (AVX2 im2col), silu | Vnni, silu |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, g) in shapes {
        if !name.contains(only.as_str()) {
            continue;
        }
        let cs = case(&g, &mut rng);
        let wf: Vec<f32> = randn(g.o * g.k(), 0.05, &mut rng);
        let packed = QConvWeights::pack(&cs.wq, &cs.w_scale, Some(&cs.bias), wshape(&g), g.groups);
        let on = |path: QConvPath| {
            let (cs, packed, g) = (&cs, &packed, &g);
            move || {
                std::hint::black_box(qconv2d_forward_with(
                    &cs.x,
                    cs.in_scale,
                    packed,
                    Activation::Silu,
                    g,
                    path,
                ));
            }
        };
        let mut runs: [Box<dyn FnMut()>; 6] = [
            Box::new(|| {
                std::hint::black_box(conv2d_forward(&cs.x, &wf, Some(&cs.bias), &g));
            }),
            Box::new(|| {
                std::hint::black_box(qconv2d_forward(
                    &cs.x,
                    cs.in_scale,
                    &cs.wq,
                    &cs.w_scale,
                    Some(&cs.bias),
                    Activation::Silu,
                    &g,
                ));
            }),
            Box::new(|| {
                std::hint::black_box(qconv2d_forward_packed(
                    &cs.x,
                    cs.in_scale,
                    &packed,
                    Activation::Silu,
                    &g,
                ));
            }),
            Box::new(|| {
                std::hint::black_box(qconv2d_forward_packed(
                    &cs.x,
                    cs.in_scale,
                    &packed,
                    Activation::None,
                    &g,
                ));
            }),
            Box::new(on(QConvPath::Direct)),
            Box::new(on(QConvPath::Vnni)),
        ];
        let mut times = vec![Vec::new(); runs.len()];
        for round in 0..=reps {
            for (f, t) in runs.iter_mut().zip(&mut times) {
                let s = Instant::now();
                f();
                if round > 0 {
                    t.push(s.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let stats: Vec<(f64, f64)> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                (t[t.len() / 2], t[0])
            })
            .collect();
        let cell = |(m, lo): (f64, f64)| format!("{m:.3} ({lo:.3})");
        let ratio = |i: usize| format!("{:.2}", stats[0].0 / stats[i].0);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(stats[0]),
            cell(stats[1]),
            ratio(1),
            cell(stats[2]),
            ratio(2),
            cell(stats[3]),
            ratio(3),
            cell(stats[4]),
            cell(stats[5])
        );
    }
}
