//! Pooling, upsampling and grid_sample against direct nested-loop definitions (f64),
//! hand-computed values, gradchecks and error messages.
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::tensor::Rng;
use edgedistill::{DType, Tensor};

type P2 = (usize, usize);

fn randn(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::randn_dtype(dims, 0.0, 1.0, DType::F64, &mut rng).unwrap()
}

/// A non-contiguous [n, c, h, w] tensor: stored as [n, h, w+1, c], narrowed and permuted.
fn randn_nhwc(d: [usize; 4], seed: u64) -> Tensor {
    let t = randn(&[d[0], d[2], d[3] + 1, d[1]], seed)
        .narrow(2, 0, d[3])
        .unwrap()
        .permute(&[0, 3, 1, 2])
        .unwrap();
    assert!(!t.is_contiguous() || t.elem_count() == 1);
    t
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}: element {i}: got {a}, want {b}"
        );
    }
}

/// Runs `check` on a contiguous and a non-contiguous f64 input, and on f32.
fn each_input(d: [usize; 4], seed: u64, mut check: impl FnMut(&Tensor, f64, &str)) {
    check(&randn(&d, seed), 1e-12, "contiguous");
    check(&randn_nhwc(d, seed), 1e-12, "non-contiguous");
    check(&randn(&d, seed).to_dtype(DType::F32).unwrap(), 1e-5, "f32");
}

fn opts() -> GradcheckOpts {
    GradcheckOpts {
        eps: 1e-6,
        atol: 1e-6,
        rtol: 1e-5,
    }
}

fn err_text(r: edgedistill::Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got a tensor {:?}", t.shape()),
        Err(e) => e.to_string(),
    }
}

fn at(x: &[f64], d: &[usize], n: usize, c: usize, y: isize, xx: isize) -> Option<f64> {
    if y < 0 || xx < 0 || y >= d[2] as isize || xx >= d[3] as isize {
        return None;
    }
    Some(x[((n * d[1] + c) * d[2] + y as usize) * d[3] + xx as usize])
}

// ------------------------------------------------------------------------------ pooling

/// Window (oy, ox) covers padded positions oy·s-p .. +k; padding is -inf (max) or 0 (avg,
/// divided by the window clipped to the padded input).
fn naive_pool(x: &[f64], d: &[usize], k: P2, s: P2, p: P2, max: bool) -> (Vec<f64>, Vec<usize>) {
    let ho = (d[2] + 2 * p.0 - k.0) / s.0 + 1;
    let wo = (d[3] + 2 * p.1 - k.1) / s.1 + 1;
    let mut out = Vec::new();
    for n in 0..d[0] {
        for c in 0..d[1] {
            for oy in 0..ho {
                for ox in 0..wo {
                    let (y0, x0) = (
                        (oy * s.0) as isize - p.0 as isize,
                        (ox * s.1) as isize - p.1 as isize,
                    );
                    let mut best = f64::NEG_INFINITY;
                    let mut sum = 0.0;
                    for y in y0..y0 + k.0 as isize {
                        for xx in x0..x0 + k.1 as isize {
                            if let Some(v) = at(x, d, n, c, y, xx) {
                                best = best.max(v);
                                sum += v;
                            }
                        }
                    }
                    let hy = (y0 + k.0 as isize).min((d[2] + p.0) as isize) - y0;
                    let hx = (x0 + k.1 as isize).min((d[3] + p.1) as isize) - x0;
                    out.push(if max { best } else { sum / (hy * hx) as f64 });
                }
            }
        }
    }
    (out, vec![d[0], d[1], ho, wo])
}

const POOL_CASES: [([usize; 4], P2, P2, P2); 5] = [
    ([2, 3, 7, 8], (2, 2), (2, 2), (0, 0)),
    ([1, 2, 9, 7], (3, 3), (2, 2), (1, 1)),
    ([1, 2, 6, 9], (3, 2), (1, 3), (1, 1)),
    ([2, 1, 5, 5], (5, 5), (1, 1), (2, 2)),
    ([1, 3, 4, 6], (1, 3), (2, 1), (0, 1)),
];

#[test]
fn max_and_avg_pool_match_naive_definition() {
    for (i, (d, k, s, p)) in POOL_CASES.into_iter().enumerate() {
        each_input(d, 10 + i as u64, |x, tol, what| {
            let xv = x.to_vec_f64().unwrap();
            for max in [true, false] {
                let y = if max {
                    x.max_pool2d(k, s, p).unwrap()
                } else {
                    x.avg_pool2d(k, s, p).unwrap()
                };
                let (want, shape) = naive_pool(&xv, &d, k, s, p, max);
                assert_eq!(y.dims(), &shape[..], "case {i}");
                assert_eq!(y.dtype(), x.dtype());
                let name = format!("{} case {i} {what}", if max { "max" } else { "avg" });
                assert_close(&y.to_vec_f64().unwrap(), &want, tol, &name);
            }
        });
    }
}

#[test]
fn avg_pool_counts_padding_in_divisor() {
    // 2×2 of ones, kernel 3, padding 1, stride 1: every window holds 4 ones of 9 cells.
    let x = Tensor::ones([1, 1, 2, 2], DType::F32);
    let y = x.avg_pool2d((3, 3), (1, 1), (1, 1)).unwrap();
    for v in y.to_vec::<f32>().unwrap() {
        assert!((v - 4.0 / 9.0).abs() < 1e-7, "{v}");
    }
}

#[test]
fn max_pool_gradient_goes_to_first_maximum() {
    let x = Tensor::ones([1, 1, 3, 3], DType::F64)
        .requires_grad_()
        .unwrap();
    x.max_pool2d((2, 2), (1, 1), (0, 0))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    // Windows start at (0,0), (0,1), (1,0), (1,1); each routes to its top-left cell.
    let g = x.grad().unwrap().to_vec::<f64>().unwrap();
    assert_eq!(g, vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    // A distinct maximum: 9 at the centre wins all four windows.
    let x = Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 4.0, 9.0, 5.0, 6.0, 7.0, 8.0],
        [1, 1, 3, 3],
    )
    .unwrap()
    .requires_grad_()
    .unwrap();
    let y = x.max_pool2d((2, 2), (1, 1), (0, 0)).unwrap();
    assert_eq!(y.to_vec::<f64>().unwrap(), vec![9.0; 4]);
    y.sum_all().unwrap().backward().unwrap();
    let g = x.grad().unwrap().to_vec::<f64>().unwrap();
    assert_eq!(g, vec![0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn pool_gradchecks() {
    for (i, (d, k, s, p)) in POOL_CASES.into_iter().enumerate().take(3) {
        let x = randn(&[1, d[1], d[2], d[3]], 20 + i as u64);
        gradcheck(
            &format!("max_pool2d {i}"),
            std::slice::from_ref(&x),
            |t| t[0].max_pool2d(k, s, p),
            &opts(),
        )
        .unwrap();
        gradcheck(
            &format!("avg_pool2d {i}"),
            &[x],
            |t| t[0].avg_pool2d(k, s, p),
            &opts(),
        )
        .unwrap();
    }
}

fn naive_adaptive(x: &[f64], d: &[usize], out: P2) -> Vec<f64> {
    let mut v = Vec::new();
    for n in 0..d[0] {
        for c in 0..d[1] {
            for oy in 0..out.0 {
                let (y0, y1) = (oy * d[2] / out.0, ((oy + 1) * d[2]).div_ceil(out.0));
                for ox in 0..out.1 {
                    let (x0, x1) = (ox * d[3] / out.1, ((ox + 1) * d[3]).div_ceil(out.1));
                    let mut s = 0.0;
                    for y in y0..y1 {
                        for xx in x0..x1 {
                            s += at(x, d, n, c, y as isize, xx as isize).unwrap();
                        }
                    }
                    v.push(s / ((y1 - y0) * (x1 - x0)) as f64);
                }
            }
        }
    }
    v
}

#[test]
fn adaptive_avg_pool_matches_naive_definition() {
    let cases = [
        ([2, 3, 7, 10], (3, 4)),
        ([1, 2, 5, 5], (5, 5)),
        ([1, 2, 3, 4], (5, 7)),
        ([1, 1, 9, 6], (1, 1)),
    ];
    for (i, (d, out)) in cases.into_iter().enumerate() {
        each_input(d, 30 + i as u64, |x, tol, what| {
            let y = x.adaptive_avg_pool2d(out).unwrap();
            assert_eq!(y.dims(), &[d[0], d[1], out.0, out.1]);
            let want = naive_adaptive(&x.to_vec_f64().unwrap(), &d, out);
            assert_close(
                &y.to_vec_f64().unwrap(),
                &want,
                tol,
                &format!("case {i} {what}"),
            );
        });
    }
    // 7 → 3 windows are [0,3), [2,5), [4,7): hand check on a ramp.
    let x = Tensor::from_vec((0..7).map(|v| v as f64).collect::<Vec<_>>(), [1, 1, 1, 7]).unwrap();
    let y = x.adaptive_avg_pool2d((1, 3)).unwrap();
    assert_eq!(y.to_vec::<f64>().unwrap(), vec![1.0, 3.0, 5.0]);
    gradcheck(
        "adaptive_avg_pool2d",
        &[randn(&[1, 2, 7, 5], 39)],
        |t| t[0].adaptive_avg_pool2d((3, 4)),
        &opts(),
    )
    .unwrap();
}

#[test]
fn pool_errors_name_the_shapes() {
    let x = randn(&[1, 1, 2, 2], 1);
    let e = err_text(x.max_pool2d((3, 3), (1, 1), (0, 0)));
    assert!(
        e.contains("max_pool2d") && e.contains("[1, 1, 2, 2]") && e.contains("larger"),
        "{e}"
    );
    let e = err_text(x.avg_pool2d((3, 3), (1, 1), (0, 0)));
    assert!(
        e.contains("avg_pool2d") && e.contains("[1, 1, 2, 2]"),
        "{e}"
    );
    let e = err_text(x.max_pool2d((2, 2), (1, 1), (2, 0)));
    assert!(e.contains("padding") && e.contains("[1, 1, 2, 2]"), "{e}");
    let e = err_text(x.max_pool2d((2, 2), (0, 1), (0, 0)));
    assert!(e.contains("stride"), "{e}");
    let e = err_text(randn(&[2, 2, 2], 1).avg_pool2d((1, 1), (1, 1), (0, 0)));
    assert!(e.contains("[2, 2, 2]"), "{e}");
    let e = err_text(x.adaptive_avg_pool2d((0, 2)));
    assert!(
        e.contains("adaptive_avg_pool2d") && e.contains("[1, 1, 2, 2]"),
        "{e}"
    );
}

// ----------------------------------------------------------------------------- upsample

/// torch's legacy nearest rule, computed in f32 as its CPU kernel does.
fn nearest_src(dst: usize, inp: usize, out: usize) -> usize {
    let scale = inp as f32 / out as f32;
    ((dst as f32 * scale).floor() as usize).min(inp - 1)
}

fn naive_nearest(x: &[f64], d: &[usize], out: P2) -> Vec<f64> {
    let mut v = Vec::new();
    for n in 0..d[0] {
        for c in 0..d[1] {
            for oy in 0..out.0 {
                for ox in 0..out.1 {
                    let (sy, sx) = (nearest_src(oy, d[2], out.0), nearest_src(ox, d[3], out.1));
                    v.push(at(x, d, n, c, sy as isize, sx as isize).unwrap());
                }
            }
        }
    }
    v
}

/// Source coordinate of a linear resize (torch's area_pixel_compute_source_index).
fn linear_src(dst: usize, inp: usize, out: usize, align: bool) -> f64 {
    if align {
        if out > 1 {
            dst as f64 * (inp - 1) as f64 / (out - 1) as f64
        } else {
            0.0
        }
    } else {
        ((dst as f64 + 0.5) * inp as f64 / out as f64 - 0.5).max(0.0)
    }
}

fn naive_bilinear(x: &[f64], d: &[usize], out: P2, align: bool) -> Vec<f64> {
    let mut v = Vec::new();
    for n in 0..d[0] {
        for c in 0..d[1] {
            for oy in 0..out.0 {
                let sy = linear_src(oy, d[2], out.0, align);
                let y0 = (sy.floor() as usize).min(d[2] - 1);
                let y1 = (y0 + 1).min(d[2] - 1);
                let ly = sy - y0 as f64;
                for ox in 0..out.1 {
                    let sx = linear_src(ox, d[3], out.1, align);
                    let x0 = (sx.floor() as usize).min(d[3] - 1);
                    let x1 = (x0 + 1).min(d[3] - 1);
                    let lx = sx - x0 as f64;
                    let g = |y: usize, xx: usize| at(x, d, n, c, y as isize, xx as isize).unwrap();
                    v.push(
                        (1.0 - ly) * ((1.0 - lx) * g(y0, x0) + lx * g(y0, x1))
                            + ly * ((1.0 - lx) * g(y1, x0) + lx * g(y1, x1)),
                    );
                }
            }
        }
    }
    v
}

const UP_CASES: [([usize; 4], P2); 5] = [
    ([2, 2, 3, 4], (6, 8)),
    ([1, 3, 3, 5], (5, 7)),
    ([1, 2, 7, 6], (3, 4)),
    ([1, 1, 4, 4], (1, 9)),
    ([1, 2, 5, 3], (5, 3)),
];

#[test]
fn upsample_nearest_matches_definition() {
    for (i, (d, out)) in UP_CASES.into_iter().enumerate() {
        each_input(d, 40 + i as u64, |x, _tol, what| {
            let y = x.upsample_nearest2d(out).unwrap();
            assert_eq!(y.dims(), &[d[0], d[1], out.0, out.1]);
            let want = naive_nearest(&x.to_vec_f64().unwrap(), &d, out);
            // A copy: exact in every dtype.
            assert_close(
                &y.to_vec_f64().unwrap(),
                &want,
                0.0,
                &format!("case {i} {what}"),
            );
        });
    }
    // 3 → 5: sources [0, 0, 1, 1, 2]; 5 → 2: sources [0, 2].
    let x = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [1, 1, 1, 3]).unwrap();
    let y = x.upsample_nearest2d((1, 5)).unwrap();
    assert_eq!(
        y.to_vec::<f32>().unwrap(),
        vec![10.0, 10.0, 20.0, 20.0, 30.0]
    );
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0], [1, 1, 5, 1]).unwrap();
    let y = x.upsample_nearest2d((2, 1)).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 3.0]);
    // Integer factor 2 repeats each pixel in a 2×2 block.
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
    let y = x.upsample_nearest2d((4, 4)).unwrap();
    let want = [
        1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.,
    ];
    assert_eq!(y.to_vec::<f32>().unwrap(), want);
}

#[test]
fn upsample_bilinear_matches_definition() {
    for (i, (d, out)) in UP_CASES.into_iter().enumerate() {
        for align in [false, true] {
            each_input(d, 50 + i as u64, |x, tol, what| {
                let y = x.upsample_bilinear2d(out, align).unwrap();
                assert_eq!(y.dims(), &[d[0], d[1], out.0, out.1]);
                let want = naive_bilinear(&x.to_vec_f64().unwrap(), &d, out, align);
                let name = format!("case {i} align={align} {what}");
                assert_close(&y.to_vec_f64().unwrap(), &want, tol, &name);
            });
        }
    }
}

#[test]
fn upsample_bilinear_hand_computed() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
    // align_corners=false, 2 → 4: source rows/cols 0, 0.25, 0.75, 1 (clamped ends).
    let y = x.upsample_bilinear2d((4, 4), false).unwrap();
    let want = [
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    assert_eq!(y.to_vec::<f32>().unwrap(), want);
    // align_corners=true, 2 → 3: corners kept, midpoints averaged.
    let y = x.upsample_bilinear2d((3, 3), true).unwrap();
    let want = [1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0];
    assert_eq!(y.to_vec::<f32>().unwrap(), want);
    // Gradient of the sum: each input collects the weights it contributed.
    let xg = x.to_dtype(DType::F64).unwrap().requires_grad_().unwrap();
    xg.upsample_bilinear2d((3, 3), true)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    // Each axis splits 3 outputs as weights (1 + .5) and (.5 + 1): 1.5·1.5 per corner.
    assert_eq!(xg.grad().unwrap().to_vec::<f64>().unwrap(), vec![2.25; 4]);
}

#[test]
fn upsample_gradchecks() {
    for (i, (d, out)) in UP_CASES.into_iter().enumerate().take(4) {
        let x = randn(&[1, d[1], d[2], d[3]], 60 + i as u64);
        gradcheck(
            &format!("nearest {i}"),
            std::slice::from_ref(&x),
            |t| t[0].upsample_nearest2d(out),
            &opts(),
        )
        .unwrap();
        for align in [false, true] {
            gradcheck(
                &format!("bilinear {i} align={align}"),
                std::slice::from_ref(&x),
                |t| t[0].upsample_bilinear2d(out, align),
                &opts(),
            )
            .unwrap();
        }
    }
}

#[test]
fn upsample_errors_name_the_shapes() {
    let x = randn(&[1, 2, 3, 3], 1);
    let e = err_text(x.upsample_nearest2d((0, 4)));
    assert!(
        e.contains("upsample_nearest2d") && e.contains("[1, 2, 3, 3]"),
        "{e}"
    );
    let e = err_text(randn(&[2, 3, 3], 1).upsample_bilinear2d((4, 4), false));
    assert!(
        e.contains("upsample_bilinear2d") && e.contains("[2, 3, 3]"),
        "{e}"
    );
    let e = err_text(Tensor::zeros([1, 1, 0, 3], DType::F32).upsample_bilinear2d((2, 2), true));
    assert!(e.contains("[1, 1, 0, 3]"), "{e}");
}

// -------------------------------------------------------------------------- grid_sample

/// torch grid_sample, bilinear, zeros padding, from its definition.
fn naive_grid_sample(x: &[f64], d: &[usize], grid: &[f64], gd: &[usize], align: bool) -> Vec<f64> {
    let unnorm = |v: f64, size: usize| {
        if align {
            (v + 1.0) / 2.0 * (size - 1) as f64
        } else {
            ((v + 1.0) * size as f64 - 1.0) / 2.0
        }
    };
    let mut out = Vec::new();
    for n in 0..d[0] {
        for c in 0..d[1] {
            for q in 0..gd[1] * gd[2] {
                let gx = grid[(n * gd[1] * gd[2] + q) * 2];
                let gy = grid[(n * gd[1] * gd[2] + q) * 2 + 1];
                let (ix, iy) = (unnorm(gx, d[3]), unnorm(gy, d[2]));
                let (x0, y0) = (ix.floor(), iy.floor());
                let mut acc = 0.0;
                for (dy, dx) in [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)] {
                    let (cx, cy) = (x0 + dx, y0 + dy);
                    let w = (1.0 - (ix - cx).abs()) * (1.0 - (iy - cy).abs());
                    if let Some(v) = at(x, d, n, c, cy as isize, cx as isize) {
                        acc += w * v;
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

fn rand_grid(n: usize, ho: usize, wo: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    // Some points outside [-1, 1] exercise the zero padding.
    Tensor::rand([n, ho, wo, 2], -1.3, 1.3, &mut rng)
        .to_dtype(DType::F64)
        .unwrap()
}

#[test]
fn grid_sample_matches_definition() {
    let cases = [
        ([2, 3, 5, 7], (4, 6)),
        ([1, 2, 4, 3], (7, 2)),
        ([1, 1, 1, 1], (3, 3)),
    ];
    for (i, (d, (ho, wo))) in cases.into_iter().enumerate() {
        let grid = rand_grid(d[0], ho, wo, 70 + i as u64);
        let gv = grid.to_vec_f64().unwrap();
        let gd = [d[0], ho, wo, 2];
        for align in [false, true] {
            each_input(d, 80 + i as u64, |x, tol, what| {
                let g = grid.to_dtype(x.dtype()).unwrap();
                let y = x.grid_sample(&g, align).unwrap();
                assert_eq!(y.dims(), &[d[0], d[1], ho, wo]);
                let gv = g.to_vec_f64().unwrap();
                let want = naive_grid_sample(&x.to_vec_f64().unwrap(), &d, &gv, &gd, align);
                let name = format!("case {i} align={align} {what}");
                assert_close(&y.to_vec_f64().unwrap(), &want, tol * 10.0, &name);
            });
        }
        // A non-contiguous grid: built as [n, 2, ho, wo] and permuted.
        let gnc = grid.permute(&[0, 3, 1, 2]).unwrap().contiguous().unwrap();
        let gnc = gnc.permute(&[0, 2, 3, 1]).unwrap();
        assert!(!gnc.is_contiguous());
        let x = randn(&d, 90);
        let want = naive_grid_sample(&x.to_vec_f64().unwrap(), &d, &gv, &gd, false);
        let y = x.grid_sample(&gnc, false).unwrap();
        assert_close(
            &y.to_vec_f64().unwrap(),
            &want,
            1e-12,
            "non-contiguous grid",
        );
    }
}

#[test]
fn grid_sample_hand_computed() {
    let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
    let pts = |v: &[f64]| Tensor::from_vec(v.to_vec(), [1, 1, v.len() / 2, 2]).unwrap();
    // align_corners=false: pixel centres at ±0.5; -1/1 are the outer edges.
    let g = pts(&[
        0.0, 0.0, -1.0, -1.0, 1.0, 1.0, -0.5, 0.0, 0.5, -0.5, 3.0, 0.0,
    ]);
    let y = x.grid_sample(&g, false).unwrap().to_vec::<f64>().unwrap();
    // centre: mean 2.5; (-1,-1): a quarter of pixel (0,0); (1,1): a quarter of 4;
    // (-0.5, 0): halfway down column 0; (0.5, -0.5): pixel (0,1) = 2; far outside: 0.
    let want = [2.5, 0.25, 1.0, 2.0, 2.0, 0.0];
    assert_close(&y, &want, 1e-15, "align=false");
    // align_corners=true: -1/1 are the corner pixel centres.
    let g = pts(&[0.0, 0.0, -1.0, -1.0, 1.0, 1.0, 0.5, -1.0, 1.0, 0.0]);
    let y = x.grid_sample(&g, true).unwrap().to_vec::<f64>().unwrap();
    let want = [2.5, 1.0, 4.0, 1.75, 3.0];
    assert_close(&y, &want, 1e-15, "align=true");
    // Grid gradient at the centre (align=false): d out/d gx = (x-slope 1)·W/2 = 1,
    // d out/d gy = (y-slope 2)·H/2 = 2.
    let xg = x.requires_grad_().unwrap();
    let g = pts(&[0.0, 0.0]).requires_grad_().unwrap();
    xg.grid_sample(&g, false)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close(
        &g.grad().unwrap().to_vec::<f64>().unwrap(),
        &[1.0, 2.0],
        1e-15,
        "dgrid",
    );
    assert_close(
        &xg.grad().unwrap().to_vec::<f64>().unwrap(),
        &[0.25; 4],
        1e-15,
        "dx",
    );
}

#[test]
fn grid_sample_gradcheck_input_and_grid() {
    for align in [false, true] {
        let x = randn(&[2, 2, 4, 5], 100);
        let grid = rand_grid(2, 3, 2, 101);
        gradcheck(
            &format!("grid_sample align={align}"),
            &[x, grid],
            |t| t[0].grid_sample(&t[1], align),
            &opts(),
        )
        .unwrap();
    }
}

#[test]
fn grid_sample_errors_name_the_shapes() {
    let x = randn(&[1, 2, 4, 4], 1);
    let e = err_text(x.grid_sample(&randn(&[1, 3, 3, 3], 2), false));
    assert!(
        e.contains("grid_sample") && e.contains("[1, 3, 3, 3]") && e.contains("[1, 2, 4, 4]"),
        "{e}"
    );
    let e = err_text(x.grid_sample(&randn(&[2, 3, 3, 2], 2), false));
    assert!(e.contains("[2, 3, 3, 2]"), "{e}");
    let e = err_text(x.grid_sample(&randn(&[1, 9, 2], 2), false));
    assert!(e.contains("[1, 9, 2]"), "{e}");
    let g32 = randn(&[1, 3, 3, 2], 2).to_dtype(DType::F32).unwrap();
    let e = err_text(x.grid_sample(&g32, false));
    assert!(e.contains("dtype") && e.contains("f32"), "{e}");
}

#[test]
fn max_pool_inference_path_equals_the_recorded_one_bit_for_bit() {
    // Without a graph max_pool2d takes the separable values-only path; with one it keeps
    // argmax indices. Same bits, with NaNs and signed zeros in the windows.
    let mut rng = Rng::new(7);
    for (i, (d, k, s, p)) in POOL_CASES.into_iter().enumerate() {
        let mut v = Tensor::randn(d, 0.0, 1.0, &mut rng)
            .to_vec::<f32>()
            .unwrap();
        for (j, x) in v.iter_mut().enumerate() {
            match j % 11 {
                3 => *x = 0.0,
                5 => *x = -0.0,
                7 if j % 3 == 0 => *x = f32::NAN,
                _ => {}
            }
        }
        let plain = Tensor::from_vec(v.clone(), d).unwrap();
        let tracked = Tensor::from_vec(v, d).unwrap().requires_grad_().unwrap();
        let a = plain.max_pool2d(k, s, p).unwrap().to_vec::<f32>().unwrap();
        let b = tracked.max_pool2d(k, s, p).unwrap();
        assert!(b.tracks_grad(), "case {i}: the recorded path was not taken");
        let b = b.to_vec::<f32>().unwrap();
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "case {i}");
        assert!(
            a.iter().any(|x| x.is_nan()),
            "case {i}: no NaN reached an output"
        );
    }
}
