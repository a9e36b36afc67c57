//! Layer, group and batch norm: forward against naive f64 code written here, running-stat
//! updates against hand computation, gradcheck of x/weight/bias, and shape errors.
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::tensor::Rng;
use edgedistill::{DType, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn_dtype(shape.to_vec(), 0.3, 1.2, DType::F64, &mut Rng::new(seed)).unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

/// Naive normalisation of `x` viewed as [n, groups, len]; `affine(group, i)` gives the
/// index into weight/bias for element `i` of a block.
fn naive_blocks(
    x: &[f64],
    groups: usize,
    len: usize,
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    eps: f64,
    affine: impl Fn(usize, usize) -> usize,
) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (k, blk) in x.chunks(len).enumerate() {
        let mean = blk.iter().sum::<f64>() / len as f64;
        let var = blk.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len as f64;
        for i in 0..len {
            let c = affine(k % groups, i);
            let mut v = (blk[i] - mean) / (var + eps).sqrt();
            if let Some(w) = w {
                v *= w[c];
            }
            if let Some(b) = b {
                v += b[c];
            }
            out[k * len + i] = v;
        }
    }
    out
}

fn v(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

#[test]
fn layer_norm_forward_matches_naive() {
    let x = randn(&[2, 3, 4, 5], 1);
    let w = randn(&[4, 5], 2);
    let b = randn(&[4, 5], 3);
    let y = x.layer_norm(2, Some(&w), Some(&b), 1e-5).unwrap();
    let want = naive_blocks(&v(&x), 1, 20, Some(&v(&w)), Some(&v(&b)), 1e-5, |_, i| i);
    close(&v(&y), &want, 1e-12);
    // No affine, one dim, in f32.
    let xf = x.to_dtype(DType::F32).unwrap();
    let y = xf.layer_norm(1, None, None, 1e-5).unwrap();
    assert_eq!(y.dtype(), DType::F32);
    close(
        &v(&y),
        &naive_blocks(&v(&x), 1, 5, None, None, 1e-5, |_, i| i),
        1e-5,
    );
}

#[test]
fn group_norm_forward_matches_naive() {
    let x = randn(&[2, 6, 3, 2], 4);
    let w = randn(&[6], 5);
    let b = randn(&[6], 6);
    let y = x.group_norm(3, Some(&w), Some(&b), 1e-5).unwrap();
    // Group g of 2 channels × 6 positions: channel = 2g + i/6.
    let want = naive_blocks(&v(&x), 3, 12, Some(&v(&w)), Some(&v(&b)), 1e-5, |g, i| {
        2 * g + i / 6
    });
    close(&v(&y), &want, 1e-12);
}

/// Naive batch norm over [n, c, s] with given per-channel mean/var.
fn naive_bn(
    x: &[f64],
    n: usize,
    c: usize,
    s: usize,
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for j in 0..s {
                let k = (i * c + ch) * s + j;
                out[k] = (x[k] - mean[ch]) / (var[ch] + eps).sqrt();
            }
        }
    }
    out
}

fn channel_mean_var(x: &[f64], n: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|i| (0..s).map(move |j| (i * c + ch) * s + j))
            .map(|k| x[k])
            .collect();
        mean[ch] = vals.iter().sum::<f64>() / vals.len() as f64;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / vals.len() as f64;
    }
    (mean, var)
}

#[test]
fn batch_norm_training_forward_and_running_update() {
    let (n, c, s) = (3, 2, 4);
    let x = randn(&[n, c, 2, 2], 7);
    let rm = Tensor::from_vec(vec![0.5f32, -1.0], 2).unwrap();
    let rv = Tensor::from_vec(vec![2.0f32, 0.25], 2).unwrap();
    let y = x
        .batch_norm(Some(&rm), Some(&rv), None, None, true, 0.1, 1e-5)
        .unwrap();
    let (mean, var) = channel_mean_var(&v(&x), n, c, s);
    close(&v(&y), &naive_bn(&v(&x), n, c, s, &mean, &var, 1e-5), 1e-12);
    // running = 0.9 * running + 0.1 * stat, with the unbiased variance (12 values → ×12/11).
    let want_m = [0.9 * 0.5 + 0.1 * mean[0], -0.9 + 0.1 * mean[1]];
    let want_v = [
        0.9 * 2.0 + 0.1 * var[0] * 12.0 / 11.0,
        0.9 * 0.25 + 0.1 * var[1] * 12.0 / 11.0,
    ];
    close(&v(&rm), &want_m, 1e-6);
    close(&v(&rv), &want_v, 1e-6);
}

#[test]
fn batch_norm_eval_uses_running_stats() {
    let x = randn(&[2, 3, 5], 8);
    let rm = randn(&[3], 9);
    let rv = Tensor::from_vec(vec![0.5f64, 1.5, 3.0], 3).unwrap();
    let w = randn(&[3], 10);
    let b = randn(&[3], 11);
    let before = (v(&rm), v(&rv));
    let y = x
        .batch_norm(Some(&rm), Some(&rv), Some(&w), Some(&b), false, 0.1, 1e-3)
        .unwrap();
    let norm = naive_bn(&v(&x), 2, 3, 5, &before.0, &before.1, 1e-3);
    let (wv, bv) = (v(&w), v(&b));
    let want: Vec<f64> = norm
        .iter()
        .enumerate()
        .map(|(k, &z)| z * wv[(k / 5) % 3] + bv[(k / 5) % 3])
        .collect();
    close(&v(&y), &want, 1e-12);
    assert_eq!(
        (v(&rm), v(&rv)),
        before,
        "eval must not touch running stats"
    );
    let err = x
        .batch_norm(None, None, None, None, false, 0.1, 1e-5)
        .unwrap_err();
    assert!(err.to_string().contains("eval mode"), "{err}");
}

fn opts() -> GradcheckOpts {
    GradcheckOpts {
        eps: 1e-6,
        atol: 1e-6,
        rtol: 1e-4,
    }
}

#[test]
fn layer_norm_gradcheck() {
    let ins = [
        randn(&[3, 2, 4], 12),
        randn(&[2, 4], 13),
        randn(&[2, 4], 14),
    ];
    gradcheck(
        "layer_norm affine",
        &ins,
        |t| t[0].layer_norm(2, Some(&t[1]), Some(&t[2]), 1e-5),
        &opts(),
    )
    .unwrap();
    gradcheck(
        "layer_norm plain",
        &ins[..1],
        |t| t[0].layer_norm(1, None, None, 1e-5),
        &opts(),
    )
    .unwrap();
}

#[test]
fn group_norm_gradcheck() {
    let ins = [randn(&[2, 4, 3], 15), randn(&[4], 16), randn(&[4], 17)];
    gradcheck(
        "group_norm",
        &ins,
        |t| t[0].group_norm(2, Some(&t[1]), Some(&t[2]), 1e-5),
        &opts(),
    )
    .unwrap();
    gradcheck(
        "group_norm weight only",
        &ins[..2],
        |t| t[0].group_norm(4, Some(&t[1]), None, 1e-5),
        &opts(),
    )
    .unwrap();
}

#[test]
fn batch_norm_gradcheck_training_and_eval() {
    let ins = [randn(&[3, 2, 2, 2], 18), randn(&[2], 19), randn(&[2], 20)];
    let rm = Tensor::zeros(2, DType::F32);
    let rv = Tensor::ones(2, DType::F32);
    gradcheck(
        "batch_norm training",
        &ins,
        |t| {
            t[0].batch_norm(
                Some(&rm),
                Some(&rv),
                Some(&t[1]),
                Some(&t[2]),
                true,
                0.1,
                1e-5,
            )
        },
        &opts(),
    )
    .unwrap();
    gradcheck(
        "batch_norm training, no running stats, no affine",
        &ins[..1],
        |t| t[0].batch_norm(None, None, None, None, true, 0.1, 1e-5),
        &opts(),
    )
    .unwrap();
    let rm = randn(&[2], 21);
    let rv = Tensor::from_vec(vec![0.7f64, 1.9], 2).unwrap();
    gradcheck(
        "batch_norm eval",
        &ins,
        |t| {
            t[0].batch_norm(
                Some(&rm),
                Some(&rv),
                Some(&t[1]),
                Some(&t[2]),
                false,
                0.1,
                1e-5,
            )
        },
        &opts(),
    )
    .unwrap();
}

#[test]
fn grads_reach_only_tracking_inputs() {
    let x = randn(&[2, 3], 22).requires_grad_().unwrap();
    let w = randn(&[3], 23); // frozen
    let y = x.layer_norm(1, Some(&w), None, 1e-5).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    assert!(x.grad().is_some());
    assert!(w.grad().is_none());
}

fn err_text(r: edgedistill::Result<Tensor>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn shape_errors_name_op_and_shapes() {
    let x = randn(&[2, 3, 4], 24);
    let w5 = randn(&[5], 25);
    let e = err_text(x.layer_norm(1, Some(&w5), None, 1e-5));
    assert!(
        e.contains("layer_norm")
            && e.contains("[5]")
            && e.contains("[2, 3, 4]")
            && e.contains("[4]"),
        "{e}"
    );
    let e = err_text(x.layer_norm(4, None, None, 1e-5));
    assert!(e.contains("layer_norm") && e.contains("[2, 3, 4]"), "{e}");
    let e = err_text(x.group_norm(2, None, None, 1e-5));
    assert!(
        e.contains("group_norm") && e.contains("[2, 3, 4]") && e.contains("2 groups"),
        "{e}"
    );
    let e = err_text(x.group_norm(3, Some(&w5), None, 1e-5));
    assert!(
        e.contains("group_norm") && e.contains("[5]") && e.contains("[3]"),
        "{e}"
    );
    let e = err_text(x.batch_norm(None, None, Some(&w5), None, true, 0.1, 1e-5));
    assert!(
        e.contains("batch_norm") && e.contains("[5]") && e.contains("[2, 3, 4]"),
        "{e}"
    );
    let rm = Tensor::zeros(4, DType::F32);
    let e = err_text(x.batch_norm(Some(&rm), None, None, None, true, 0.1, 1e-5));
    assert!(
        e.contains("running_mean") && e.contains("[4]") && e.contains("[3]"),
        "{e}"
    );
    let one = randn(&[1, 3], 26);
    let e = err_text(one.batch_norm(None, None, None, None, true, 0.1, 1e-5));
    assert!(
        e.contains("more than 1 value") && e.contains("[1, 3]"),
        "{e}"
    );
    let e = err_text(randn(&[3], 27).batch_norm(None, None, None, None, true, 0.1, 1e-5));
    assert!(e.contains("batch_norm") && e.contains("[3]"), "{e}");
    let wf = Tensor::ones(4, DType::F32);
    let e = err_text(x.layer_norm(1, Some(&wf), None, 1e-5));
    assert!(
        e.contains("dtype") && e.contains("f32") && e.contains("f64"),
        "{e}"
    );
}

#[test]
fn large_inputs_take_the_parallel_path() {
    // 4*8*32*32 = 32768 elements reaches the kernels' rayon threshold.
    let (n, c, s) = (4, 8, 1024);
    let x = randn(&[n, c, 32, 32], 28);
    let xf = x.to_dtype(DType::F32).unwrap();
    let y = xf
        .batch_norm(None, None, None, None, true, 0.1, 1e-5)
        .unwrap();
    let (mean, var) = channel_mean_var(&v(&x), n, c, s);
    close(&v(&y), &naive_bn(&v(&x), n, c, s, &mean, &var, 1e-5), 1e-4);
    let y = xf.layer_norm(2, None, None, 1e-5).unwrap();
    close(
        &v(&y),
        &naive_blocks(&v(&x), 1, s, None, None, 1e-5, |_, i| i),
        1e-4,
    );
}
