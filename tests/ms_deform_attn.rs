//! Fused multi-scale deformable attention: against transformers' pure-PyTorch path
//! (tests/fixtures/ms-deform-attn.safetensors, made by
//! tools/reference/make_ms_deform_attn_fixture.py), against our grid_sample composition,
//! gradcheck, and the shape errors.
mod common;
use common::*;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::io::Safetensors;
use edgedistill::tensor::Rng;
use edgedistill::tensor::ops::ms_deform_attn::ms_deform_attn_composed;
use edgedistill::{DType, Tensor};

fn fixture() -> Safetensors {
    Safetensors::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ms-deform-attn.safetensors"),
    )
    .unwrap()
}

/// Forward and the three gradients of sum(out · gout) of `f` at (value, loc, attn).
fn run(
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    ins: [&Tensor; 3],
    gout: &Tensor,
) -> [Vec<f64>; 4] {
    let [v, l, a] = ins.map(|t| t.detach().requires_grad_().unwrap());
    let out = f(&v, &l, &a);
    out.mul(gout)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    [
        vals(&out),
        vals(&v.grad().unwrap()),
        vals(&l.grad().unwrap()),
        vals(&a.grad().unwrap()),
    ]
}

const NAMES: [&str; 4] = ["out", "grad_value", "grad_loc", "grad_attn"];

/// (B, H, D, Q, P, levels)
type Case = (usize, usize, usize, usize, usize, Vec<(usize, usize)>);

#[test]
fn fused_matches_transformers_fixture_f32_and_f64() {
    let fx = fixture();
    let levels: Vec<(usize, usize)> = fx
        .tensor("spatial_shapes")
        .unwrap()
        .to_vec::<i64>()
        .unwrap()
        .chunks(2)
        .map(|c| (c[0] as usize, c[1] as usize))
        .collect();
    assert_eq!(levels, [(5, 7), (3, 4), (1, 2)]);
    let t = |n: &str| fx.tensor(n).unwrap();
    for (dt, tag, atol, rtol) in [
        (DType::F32, "f32", 2e-6, 1e-5),
        (DType::F64, "f64", 1e-13, 1e-12),
    ] {
        let [v, l, a, g] = ["value", "sampling_locations", "attention_weights", "gout"]
            .map(|n| t(n).to_dtype(dt).unwrap());
        assert_eq!(v.dtype(), dt);
        let got = run(
            |v, l, a| v.ms_deform_attn(&levels, l, a).unwrap(),
            [&v, &l, &a],
            &g,
        );
        for (name, got) in NAMES.iter().zip(&got) {
            let want = vals(&t(&format!("{name}.{tag}")));
            assert_close(got, &want, atol, rtol, &format!("{name} {tag}"));
        }
    }
}

/// Random inputs; locations in [-0.2, 1.2] with every `kink_every`-th one moved onto an
/// exact pixel boundary of its level.
fn inputs(
    b: usize,
    h: usize,
    d: usize,
    q: usize,
    p: usize,
    levels: &[(usize, usize)],
    seed: u64,
) -> [Tensor; 4] {
    let (nl, s) = (
        levels.len(),
        levels.iter().map(|&(a, b)| a * b).sum::<usize>(),
    );
    let mut rng = Rng::new(seed);
    let value = randn64(&[b, s, h, d], seed);
    let mut loc = Tensor::rand([b, q, h, nl, p, 2], -0.2, 1.2, &mut rng)
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    for (i, c) in loc.chunks_mut(2).enumerate().step_by(7) {
        let (hh, ww) = levels[(i / p) % nl];
        // x·W − 0.5 = k exactly for x = (k + 0.5)/W when W is a power of two; else nearby.
        c[0] = ((i % (ww + 2)) as f64 - 0.5) / ww as f64;
        c[1] = ((i % (hh + 1)) as f64 + 0.5) / hh as f64;
    }
    let loc = Tensor::from_vec(loc, [b, q, h, nl, p, 2]).unwrap();
    let attn = randn64(&[b, q, h, nl * p], seed + 1)
        .softmax(-1)
        .unwrap()
        .reshape([b, q, h, nl, p])
        .unwrap();
    let gout = randn64(&[b, q, h * d], seed + 2);
    [value, loc, attn, gout]
}

#[test]
fn fused_equals_the_grid_sample_composition() {
    let cases: [Case; 3] = [
        (2, 3, 5, 7, 4, vec![(6, 8), (3, 4), (2, 2), (1, 1)]),
        (1, 2, 8, 11, 2, vec![(5, 7), (3, 3)]),
        (1, 1, 1, 3, 1, vec![(1, 2)]),
    ];
    for (i, (b, h, d, q, p, levels)) in cases.into_iter().enumerate() {
        let [v, l, a, g] = inputs(b, h, d, q, p, &levels, 10 + i as u64);
        let fused = run(
            |v, l, a| v.ms_deform_attn(&levels, l, a).unwrap(),
            [&v, &l, &a],
            &g,
        );
        let composed = run(
            |v, l, a| ms_deform_attn_composed(v, &levels, l, a).unwrap(),
            [&v, &l, &a],
            &g,
        );
        for ((name, f), c) in NAMES.iter().zip(&fused).zip(&composed) {
            assert_close(f, c, 1e-12, 1e-12, &format!("case {i} {name} f64"));
        }
        // f32: the same within rounding.
        let f32s = [&v, &l, &a, &g].map(|t| t.to_dtype(DType::F32).unwrap());
        let [v, l, a, g] = &f32s;
        let fused = run(
            |v, l, a| v.ms_deform_attn(&levels, l, a).unwrap(),
            [v, l, a],
            g,
        );
        let composed = run(
            |v, l, a| ms_deform_attn_composed(v, &levels, l, a).unwrap(),
            [v, l, a],
            g,
        );
        for ((name, f), c) in NAMES.iter().zip(&fused).zip(&composed) {
            assert_close(f, c, 1e-5, 1e-5, &format!("case {i} {name} f32"));
        }
    }
}

#[test]
fn fused_gradcheck_f64() {
    let levels = [(4, 5), (2, 3), (1, 1)];
    let [v, _, a, _] = inputs(2, 2, 3, 3, 2, &levels, 40);
    // Locations a safe distance from every bilinear kink (integer pixel coordinate, where
    // the derivative jumps): pixel coordinate k + f with f in [0.2, 0.8], k from −1 (half
    // outside) to the last pixel.
    let mut rng = Rng::new(41);
    let u = Tensor::rand([2, 3, 2, 3, 2, 2], 0.0, 1.0, &mut rng)
        .to_vec_f64()
        .unwrap();
    let loc: Vec<f64> = u
        .chunks(2)
        .enumerate()
        .flat_map(|(i, c)| {
            let (hh, ww) = levels[(i / 2) % 3];
            let at = |r: f64, n: usize, j: usize| {
                let k = (j % (n + 1)) as f64 - 1.0;
                (k + 0.2 + 0.6 * r + 0.5) / n as f64
            };
            [at(c[0], ww, i), at(c[1], hh, i / 3)]
        })
        .collect();
    let loc = Tensor::from_vec(loc, [2, 3, 2, 3, 2, 2]).unwrap();
    gradcheck(
        "ms_deform_attn",
        &[v, loc, a],
        |t| t[0].ms_deform_attn(&levels, &t[1], &t[2]),
        &GradcheckOpts::default(),
    )
    .unwrap();
}

#[test]
fn only_the_asked_gradients_and_strided_inputs() {
    let levels = [(3, 4), (2, 2)];
    let [v, l, a, g] = inputs(1, 2, 3, 4, 2, &levels, 50);
    let want = run(
        |v, l, a| v.ms_deform_attn(&levels, l, a).unwrap(),
        [&v, &l, &a],
        &g,
    );
    // Only locations tracked: the others get no gradient, locations the same one.
    let lg = l.detach().requires_grad_().unwrap();
    let out = v.ms_deform_attn(&levels, &lg, &a).unwrap();
    out.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(v.grad().is_none() && a.grad().is_none());
    assert_close(&vals(&lg.grad().unwrap()), &want[2], 0.0, 0.0, "loc only");
    // A value that is a permuted view gives the same result.
    let vt = v
        .permute(&[0, 2, 1, 3])
        .unwrap()
        .contiguous()
        .unwrap()
        .permute(&[0, 2, 1, 3])
        .unwrap();
    assert!(!vt.is_contiguous());
    let out = vt.ms_deform_attn(&levels, &l, &a).unwrap();
    assert_close(&vals(&out), &want[0], 0.0, 0.0, "strided value");
}

fn err_text(r: edgedistill::Result<Tensor>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_op_and_shapes() {
    let levels = [(3, 4), (2, 2)];
    let [v, l, a, _] = inputs(1, 2, 3, 4, 2, &levels, 60);
    // Levels that do not sum to S.
    let e = err_text(v.ms_deform_attn(&[(3, 4), (2, 3)], &l, &a));
    assert!(
        e.contains("ms_deform_attn") && e.contains("18") && e.contains("16"),
        "{e}"
    );
    // Wrong number of levels.
    let e = err_text(v.ms_deform_attn(&[(4, 4)], &l, &a));
    assert!(e.contains("per level"), "{e}");
    // An empty level.
    let e = err_text(v.ms_deform_attn(&[(4, 4), (0, 2)], &l, &a));
    assert!(e.contains("empty"), "{e}");
    // Locations with a different head count; weights with a different point count.
    let l3 = randn64(&[1, 4, 3, 2, 2, 2], 1);
    let e = err_text(v.ms_deform_attn(&levels, &l3, &a));
    assert!(
        e.contains("[1, 4, 3, 2, 2, 2]") && e.contains("[1, 16, 2, 3]"),
        "{e}"
    );
    let a3 = randn64(&[1, 4, 2, 2, 3], 1);
    let e = err_text(v.ms_deform_attn(&levels, &l, &a3));
    assert!(e.contains("[1, 4, 2, 2, 3]"), "{e}");
    // Wrong ranks, and mixed dtypes.
    let e = err_text(
        v.reshape([16, 2, 3])
            .unwrap()
            .ms_deform_attn(&levels, &l, &a),
    );
    assert!(
        e.contains("[16, 2, 3]") && e.contains("[B, S, H, D]"),
        "{e}"
    );
    let e = err_text(v.ms_deform_attn(&levels, &l.to_dtype(DType::F32).unwrap(), &a));
    assert!(e.contains("dtype") && e.contains("f32"), "{e}");
    // The composed reference checks the same way.
    let e = err_text(ms_deform_attn_composed(&v, &[(3, 4), (2, 3)], &l, &a));
    assert!(e.contains("ms_deform_attn"), "{e}");
}
