//! `batch_norm_act` (batch norm fused with SiLU): gradcheck in f64, and the f32 fast path
//! (parallel, vectorised exp) against the unfused ops run in f64 on the same values.
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::tensor::{Act, Rng};
use edgedistill::{DType, Tensor};

fn randn(shape: &[usize], mean: f64, std: f64, dtype: DType, seed: u64) -> Tensor {
    Tensor::randn_dtype(shape.to_vec(), mean, std, dtype, &mut Rng::new(seed)).unwrap()
}

fn v(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

#[test]
fn batch_norm_silu_gradcheck_training_and_eval() {
    let opts = GradcheckOpts {
        eps: 1e-6,
        atol: 1e-6,
        rtol: 1e-4,
    };
    let ins = [
        randn(&[3, 2, 2, 3], 0.3, 1.2, DType::F64, 1),
        randn(&[2], 1.0, 0.5, DType::F64, 2),
        randn(&[2], 0.0, 0.5, DType::F64, 3),
    ];
    for training in [true, false] {
        let rm = Tensor::from_vec(vec![0.2f64, -0.4], 2).unwrap();
        let rv = Tensor::from_vec(vec![0.7f64, 1.9], 2).unwrap();
        gradcheck(
            &format!("batch_norm_act silu, training {training}"),
            &ins,
            |t| {
                // Fresh running buffers per call: training updates them in place.
                let (rm, rv) = (rm.deep_clone().unwrap(), rv.deep_clone().unwrap());
                t[0].batch_norm_act(
                    Some(&rm),
                    Some(&rv),
                    Some(&t[1]),
                    Some(&t[2]),
                    training,
                    0.1,
                    1e-3,
                    Act::Silu,
                )
            },
            &opts,
        )
        .unwrap();
    }
}

/// y = silu(bn(x)) and the gradients of Σ y·r for x, w, b: fused (in x's dtype) or as two
/// ops. Also returns the running statistics after the call.
fn run(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    r: &Tensor,
    fused: bool,
    training: bool,
) -> Vec<Vec<f64>> {
    let dt = x.dtype();
    let c = w.dims()[0];
    let rm = Tensor::zeros(c, dt).add_scalar(0.1).unwrap();
    let rv = Tensor::ones(c, dt).mul_scalar(1.5).unwrap();
    let (x, w, b) = (
        x.deep_clone().unwrap().requires_grad_().unwrap(),
        w.deep_clone().unwrap().requires_grad_().unwrap(),
        b.deep_clone().unwrap().requires_grad_().unwrap(),
    );
    let y = if fused {
        x.batch_norm_act(
            Some(&rm),
            Some(&rv),
            Some(&w),
            Some(&b),
            training,
            0.03,
            1e-3,
            Act::Silu,
        )
    } else {
        x.batch_norm(
            Some(&rm),
            Some(&rv),
            Some(&w),
            Some(&b),
            training,
            0.03,
            1e-3,
        )
        .and_then(|z| z.silu())
    }
    .unwrap();
    y.mul(&r.to_dtype(dt).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    vec![
        v(&y),
        v(&x.grad().unwrap()),
        v(&w.grad().unwrap()),
        v(&b.grad().unwrap()),
        v(&rm),
        v(&rv),
    ]
}

#[test]
fn fused_f32_matches_unfused_f64() {
    // 4·16·32·40 = 81920 values: above the parallel threshold, so the per-channel tasks
    // and (on AVX-512 CPUs) the vectorised twin run.
    let x = randn(&[4, 16, 32, 40], 0.5, 2.0, DType::F32, 4);
    let w = randn(&[16], 1.0, 0.3, DType::F32, 5);
    let b = randn(&[16], 0.0, 0.5, DType::F32, 6);
    let r = randn(&[4, 16, 32, 40], 0.0, 1.0, DType::F32, 7);
    let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let names = ["y", "dx", "dw", "db", "running_mean", "running_var"];
    for training in [true, false] {
        let got = run(&x, &w, &b, &r, true, training);
        let want = run(&f64_of(&x), &f64_of(&w), &f64_of(&b), &r, false, training);
        for (k, (g, e)) in got.iter().zip(&want).enumerate() {
            let scale = e.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
            let worst = g.iter().zip(e).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            // f32 values, f64 sums: a few ulp of the tensor's scale.
            assert!(
                worst <= 2e-6 * scale,
                "training {training}: {} differs by {worst:e} (scale {scale:e})",
                names[k]
            );
        }
    }
}

#[test]
fn weight_grad_without_input_grad() {
    // x a plain input (its conv's first layer): only the sums are formed, no dx.
    let x = randn(&[2, 3, 8, 8], 0.0, 1.0, DType::F64, 8);
    let w = randn(&[3], 1.0, 0.2, DType::F64, 9)
        .requires_grad_()
        .unwrap();
    let b = randn(&[3], 0.0, 0.2, DType::F64, 10)
        .requires_grad_()
        .unwrap();
    let y = x
        .batch_norm_act(None, None, Some(&w), Some(&b), true, 0.1, 1e-5, Act::Silu)
        .unwrap();
    y.sum_all().unwrap().backward().unwrap();
    let (wg, bg) = (v(&w.grad().unwrap()), v(&b.grad().unwrap()));
    let xg = x.requires_grad_().unwrap();
    let y2 = xg
        .batch_norm(
            None,
            None,
            Some(&w.detach()),
            Some(&b.detach()),
            true,
            0.1,
            1e-5,
        )
        .unwrap();
    // Reference: d/dw Σ silu(bn) = Σ silu'(z)·x̂, d/db = Σ silu'(z).
    let z = v(&y2);
    let bv = v(&b.detach());
    let wv = v(&w.detach());
    let (mut ew, mut eb) = (vec![0.0; 3], vec![0.0; 3]);
    for (i, &zz) in z.iter().enumerate() {
        let ch = (i / 64) % 3;
        let s = 1.0 / (1.0 + (-zz).exp());
        let d = s * (1.0 + zz * (1.0 - s));
        eb[ch] += d;
        ew[ch] += d * (zz - bv[ch]) / wv[ch];
    }
    for ch in 0..3 {
        assert!(
            (wg[ch] - ew[ch]).abs() < 1e-9 * (1.0 + ew[ch].abs()),
            "dw[{ch}] {} vs {}",
            wg[ch],
            ew[ch]
        );
        assert!(
            (bg[ch] - eb[ch]).abs() < 1e-9 * (1.0 + eb[ch].abs()),
            "db[{ch}] {} vs {}",
            bg[ch],
            eb[ch]
        );
    }
}
