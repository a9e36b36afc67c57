//! conv2d / conv_transpose2d against direct nested-loop definitions (f64), gradchecks of
//! every input, and error messages.
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::tensor::{Conv2dParams, ConvTranspose2dParams, Rng};
use edgedistill::{DType, Tensor};

type P2 = (usize, usize);

fn randn(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::randn_dtype(dims, 0.0, 1.0, DType::F64, &mut rng).unwrap()
}

/// A non-contiguous [n, c, h, w] tensor: stored as [n, h, w, c] and permuted.
fn randn_nhwc(d: [usize; 4], seed: u64) -> Tensor {
    let t = randn(&[d[0], d[2], d[3], d[1]], seed)
        .permute(&[0, 3, 1, 2])
        .unwrap();
    assert!(!t.is_contiguous());
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

/// y[n,o,oy,ox] = b[o] + Σ_{c in group, ky, kx} x[n,c,oy·s-p+ky·d, ox·s-p+kx·d] · w[o,c',ky,kx]
#[allow(clippy::too_many_arguments)]
fn naive_conv2d(
    x: &[f64],
    xd: &[usize],
    w: &[f64],
    wd: &[usize],
    b: Option<&[f64]>,
    s: P2,
    p: P2,
    d: P2,
    groups: usize,
) -> (Vec<f64>, Vec<usize>) {
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (o, cg, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
    let og = o / groups;
    let ho = (h + 2 * p.0 - d.0 * (kh - 1) - 1) / s.0 + 1;
    let wo = (wi + 2 * p.1 - d.1 * (kw - 1) - 1) / s.1 + 1;
    let mut y = vec![0.0; n * o * ho * wo];
    for b_ in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b.map_or(0.0, |b| b[oc]);
                    for ci in 0..cg {
                        let ch = g * cg + ci;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * s.0 + ky * d.0) as isize - p.0 as isize;
                                let ix = (ox * s.1 + kx * d.1) as isize - p.1 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                    continue;
                                }
                                let xv = x[((b_ * c + ch) * h + iy as usize) * wi + ix as usize];
                                acc += xv * w[((oc * cg + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y[((b_ * o + oc) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    (y, vec![n, o, ho, wo])
}

/// Scatter form of the transposed convolution: each input pixel adds x·w into the output
/// at oy = iy·s - p + ky·d.
#[allow(clippy::too_many_arguments)]
fn naive_conv_transpose2d(
    x: &[f64],
    xd: &[usize],
    w: &[f64],
    wd: &[usize],
    b: Option<&[f64]>,
    s: P2,
    p: P2,
    op: P2,
    d: P2,
    groups: usize,
) -> (Vec<f64>, Vec<usize>) {
    let (n, cin, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (cog, kh, kw) = (wd[1], wd[2], wd[3]);
    let cout = cog * groups;
    let cig = cin / groups;
    let ho = (h - 1) * s.0 + d.0 * (kh - 1) + op.0 + 1 - 2 * p.0;
    let wo = (wi - 1) * s.1 + d.1 * (kw - 1) + op.1 + 1 - 2 * p.1;
    let mut y = vec![0.0; n * cout * ho * wo];
    for b_ in 0..n {
        for co in 0..cout {
            for i in 0..ho * wo {
                y[(b_ * cout + co) * ho * wo + i] = b.map_or(0.0, |b| b[co]);
            }
        }
        for ci in 0..cin {
            let g = ci / cig;
            for iy in 0..h {
                for ix in 0..wi {
                    let xv = x[((b_ * cin + ci) * h + iy) * wi + ix];
                    for cj in 0..cog {
                        let co = g * cog + cj;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = (iy * s.0 + ky * d.0) as isize - p.0 as isize;
                                let ox = (ix * s.1 + kx * d.1) as isize - p.1 as isize;
                                if oy < 0 || ox < 0 || oy >= ho as isize || ox >= wo as isize {
                                    continue;
                                }
                                y[((b_ * cout + co) * ho + oy as usize) * wo + ox as usize] +=
                                    xv * w[((ci * cog + cj) * kh + ky) * kw + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    (y, vec![n, cout, ho, wo])
}

struct Case {
    x: [usize; 4],
    w: [usize; 4],
    s: P2,
    p: P2,
    d: P2,
    groups: usize,
    bias: bool,
}

fn conv_cases() -> Vec<Case> {
    let c = |x, w, s, p, d, groups, bias| Case {
        x,
        w,
        s,
        p,
        d,
        groups,
        bias,
    };
    vec![
        c([2, 3, 7, 9], [4, 3, 3, 3], (1, 1), (1, 1), (1, 1), 1, true),
        c([1, 4, 8, 6], [6, 2, 3, 2], (2, 1), (0, 1), (1, 1), 2, true),
        // depthwise, dilated, asymmetric stride/padding
        c(
            [1, 4, 9, 10],
            [4, 1, 3, 3],
            (1, 2),
            (2, 1),
            (2, 1),
            4,
            false,
        ),
        // depthwise with channel multiplier 2
        c([2, 3, 11, 8], [6, 1, 5, 5], (2, 2), (2, 2), (1, 1), 3, true),
        // 1×1 fast path (stride 1, no padding) and 1×1 with stride/padding
        c([2, 6, 5, 7], [3, 6, 1, 1], (1, 1), (0, 0), (1, 1), 1, true),
        c([1, 6, 5, 7], [4, 3, 1, 1], (2, 2), (1, 0), (1, 1), 2, false),
        // stride 2, one group (the implicit-GEMM phase-plane path on AVX-512): odd and
        // even sizes, 3×3, 5×5, 2×2 without padding, 3×3 without padding
        c([1, 3, 9, 8], [5, 3, 3, 3], (2, 2), (1, 1), (1, 1), 1, true),
        c(
            [2, 4, 10, 11],
            [3, 4, 5, 5],
            (2, 2),
            (2, 2),
            (1, 1),
            1,
            false,
        ),
        c([1, 5, 8, 8], [7, 5, 2, 2], (2, 2), (0, 0), (1, 1), 1, true),
        c([1, 2, 7, 6], [9, 2, 3, 3], (2, 2), (0, 0), (1, 1), 1, true),
        // large enough (34 560 values) for the parallel phase split
        c(
            [2, 8, 48, 45],
            [16, 8, 3, 3],
            (2, 2),
            (1, 1),
            (1, 1),
            1,
            true,
        ),
        // kernel as large as the input
        c([1, 2, 4, 5], [2, 2, 4, 5], (1, 1), (0, 0), (1, 1), 1, true),
        // many pixel tiles, a tile boundary inside an output row; large enough (47 360
        // values) for the parallel padding copy of the implicit-GEMM path
        c(
            [2, 16, 40, 37],
            [8, 16, 3, 3],
            (1, 1),
            (1, 1),
            (1, 1),
            1,
            true,
        ),
    ]
}

#[test]
fn conv2d_matches_naive_definition() {
    for (i, cs) in conv_cases().iter().enumerate() {
        for noncontig in [false, true] {
            let x = if noncontig {
                randn_nhwc(cs.x, 10 + i as u64)
            } else {
                randn(&cs.x, 10 + i as u64)
            };
            let w = randn(&cs.w, 100 + i as u64);
            let b = randn(&[cs.w[0]], 200 + i as u64);
            let bias = cs.bias.then_some(&b);
            let params = Conv2dParams {
                stride: cs.s,
                padding: cs.p,
                dilation: cs.d,
                groups: cs.groups,
            };
            let y = x.conv2d(&w, bias, params).unwrap();
            let bv = b.to_vec_f64().unwrap();
            let (want, wshape) = naive_conv2d(
                &x.to_vec_f64().unwrap(),
                &cs.x,
                &w.to_vec_f64().unwrap(),
                &cs.w,
                cs.bias.then_some(&bv[..]),
                cs.s,
                cs.p,
                cs.d,
                cs.groups,
            );
            assert_eq!(y.dims(), &wshape[..], "case {i}");
            assert_eq!(y.dtype(), DType::F64);
            assert_close(&y.to_vec_f64().unwrap(), &want, 1e-12, &format!("case {i}"));
            // The f32 path (what training runs) agrees to f32 precision.
            let y32 = x
                .to_dtype(DType::F32)
                .unwrap()
                .conv2d(
                    &w.to_dtype(DType::F32).unwrap(),
                    bias.map(|b| b.to_dtype(DType::F32).unwrap()).as_ref(),
                    params,
                )
                .unwrap();
            assert_eq!(y32.dtype(), DType::F32);
            assert_close(
                &y32.to_vec_f64().unwrap(),
                &want,
                2e-5,
                &format!("case {i} f32"),
            );
        }
    }
}

#[test]
fn conv2d_f16_computes_in_f32_and_returns_f16() {
    let x = randn(&[1, 2, 5, 5], 1);
    let w = randn(&[3, 2, 3, 3], 2);
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let want = x.conv2d(&w, None, p).unwrap().to_vec_f64().unwrap();
    let y = x
        .to_dtype(DType::F16)
        .unwrap()
        .conv2d(&w.to_dtype(DType::F16).unwrap(), None, p)
        .unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert_close(&y.to_vec_f64().unwrap(), &want, 2e-2, "f16");
}

#[test]
fn conv2d_hand_computed() {
    // 3×3 input 1..9, 2×2 kernel of ones, padding 0 → sums of each 2×2 window.
    let x = Tensor::from_vec((1..=9).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 3, 3]).unwrap();
    let w = Tensor::ones([1, 1, 2, 2], DType::F32);
    let b = Tensor::from_vec(vec![0.5f32], 1).unwrap();
    let y = x.conv2d(&w, Some(&b), Conv2dParams::default()).unwrap();
    assert_eq!(y.dims(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![12.5, 16.5, 24.5, 28.5]);
}

fn gc_opts() -> GradcheckOpts {
    GradcheckOpts {
        eps: 1e-6,
        atol: 1e-6,
        rtol: 1e-5,
    }
}

#[test]
fn conv2d_gradcheck_input_weight_bias() {
    let cases = [
        // grouped, strided, padded, dilated
        ([2, 4, 5, 6], [4, 2, 3, 2], (2, 1), (1, 1), (1, 2), 2),
        // 1×1 fast path
        ([2, 3, 3, 4], [2, 3, 1, 1], (1, 1), (0, 0), (1, 1), 1),
        // depthwise
        ([1, 3, 5, 4], [3, 1, 3, 3], (1, 1), (1, 1), (1, 1), 3),
    ];
    for (i, (xd, wd, s, p, d, groups)) in cases.into_iter().enumerate() {
        let x = randn(&xd, 30 + i as u64);
        let w = randn(&wd, 40 + i as u64);
        let b = randn(&[wd[0]], 50 + i as u64);
        let params = Conv2dParams {
            stride: s,
            padding: p,
            dilation: d,
            groups,
        };
        gradcheck(
            &format!("conv2d case {i}"),
            &[x, w, b],
            |t| t[0].conv2d(&t[1], Some(&t[2]), params),
            &gc_opts(),
        )
        .unwrap();
    }
}

#[test]
fn conv2d_backward_through_noncontiguous_input_and_no_bias() {
    // Only the weight trains: the input gradient is not needed and not computed.
    let x = randn_nhwc([1, 2, 4, 4], 7);
    let w = randn(&[2, 2, 3, 3], 8).requires_grad_().unwrap();
    let y = x.conv2d(&w, None, Conv2dParams::default()).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    // d(Σy)/dw[o,c,ky,kx] = Σ of the input window at (ky, kx).
    let xv = x.to_vec_f64().unwrap();
    let gw = w.grad().unwrap().to_vec_f64().unwrap();
    for o in 0..2 {
        for c in 0..2 {
            for ky in 0..3 {
                for kx in 0..3 {
                    let mut s = 0.0;
                    for oy in 0..2 {
                        for ox in 0..2 {
                            s += xv[(c * 4 + oy + ky) * 4 + ox + kx];
                        }
                    }
                    let got = gw[((o * 2 + c) * 3 + ky) * 3 + kx];
                    assert!((got - s).abs() < 1e-12, "{got} vs {s}");
                }
            }
        }
    }
}

#[test]
fn conv_transpose2d_matches_naive_definition() {
    // (x, w, stride, padding, output_padding, dilation, groups, bias)
    let cases = [
        (
            [2, 3, 4, 5],
            [3, 2, 3, 3],
            (2, 2),
            (1, 1),
            (1, 1),
            (1, 1),
            1,
            true,
        ),
        (
            [1, 4, 3, 4],
            [4, 3, 2, 3],
            (2, 1),
            (0, 1),
            (1, 0),
            (1, 2),
            2,
            true,
        ),
        (
            [1, 2, 5, 3],
            [2, 1, 3, 3],
            (1, 1),
            (1, 0),
            (0, 0),
            (2, 1),
            2,
            false,
        ),
        // output_padding allowed by dilation (stride 1, dilation 2)
        (
            [1, 2, 3, 3],
            [2, 2, 2, 2],
            (1, 1),
            (0, 0),
            (1, 1),
            (2, 2),
            1,
            true,
        ),
        (
            [2, 3, 4, 4],
            [3, 2, 1, 1],
            (1, 1),
            (0, 0),
            (0, 0),
            (1, 1),
            1,
            true,
        ),
    ];
    for (i, (xd, wd, s, p, op, d, groups, has_b)) in cases.into_iter().enumerate() {
        for noncontig in [false, true] {
            let x = if noncontig {
                randn_nhwc(xd, 60 + i as u64)
            } else {
                randn(&xd, 60 + i as u64)
            };
            let w = randn(&wd, 70 + i as u64);
            let b = randn(&[wd[1] * groups], 80 + i as u64);
            let params = ConvTranspose2dParams {
                stride: s,
                padding: p,
                output_padding: op,
                dilation: d,
                groups,
            };
            let y = x.conv_transpose2d(&w, has_b.then_some(&b), params).unwrap();
            let bv = b.to_vec_f64().unwrap();
            let (want, shape) = naive_conv_transpose2d(
                &x.to_vec_f64().unwrap(),
                &xd,
                &w.to_vec_f64().unwrap(),
                &wd,
                has_b.then_some(&bv[..]),
                s,
                p,
                op,
                d,
                groups,
            );
            assert_eq!(y.dims(), &shape[..], "case {i}");
            assert_close(&y.to_vec_f64().unwrap(), &want, 1e-12, &format!("case {i}"));
        }
    }
}

#[test]
fn conv_transpose2d_gradcheck_input_weight_bias() {
    let cases = [
        (
            [2, 4, 3, 3],
            [4, 1, 3, 2],
            (2, 1),
            (1, 0),
            (1, 0),
            (1, 1),
            2,
        ),
        (
            [1, 2, 3, 2],
            [2, 3, 2, 2],
            (1, 2),
            (0, 1),
            (0, 1),
            (2, 1),
            1,
        ),
    ];
    for (i, (xd, wd, s, p, op, d, groups)) in cases.into_iter().enumerate() {
        let x = randn(&xd, 90 + i as u64);
        let w = randn(&wd, 91 + i as u64);
        let b = randn(&[wd[1] * groups], 92 + i as u64);
        let params = ConvTranspose2dParams {
            stride: s,
            padding: p,
            output_padding: op,
            dilation: d,
            groups,
        };
        gradcheck(
            &format!("conv_transpose2d case {i}"),
            &[x, w, b],
            |t| t[0].conv_transpose2d(&t[1], Some(&t[2]), params),
            &gc_opts(),
        )
        .unwrap();
    }
}

fn err_text(r: edgedistill::Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got a tensor {:?}", t.shape()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn conv2d_errors_name_the_shapes() {
    let x = randn(&[1, 3, 8, 8], 1);
    // channel mismatch
    let e = err_text(x.conv2d(&randn(&[4, 2, 3, 3], 2), None, Conv2dParams::default()));
    assert!(
        e.contains("conv2d") && e.contains("[1, 3, 8, 8]") && e.contains("[4, 2, 3, 3]"),
        "{e}"
    );
    // groups that do not divide the channels
    let p = Conv2dParams {
        groups: 2,
        ..Default::default()
    };
    let e = err_text(x.conv2d(&randn(&[4, 1, 3, 3], 2), None, p));
    assert!(e.contains("[1, 3, 8, 8]") && e.contains("groups=2"), "{e}");
    // kernel larger than the padded input
    let small = randn(&[1, 3, 2, 2], 3);
    let e = err_text(small.conv2d(&randn(&[4, 3, 3, 3], 2), None, Conv2dParams::default()));
    assert!(
        e.contains("larger than the padded input") && e.contains("[1, 3, 2, 2]"),
        "{e}"
    );
    // dilation makes the kernel too large
    let p = Conv2dParams {
        dilation: (4, 1),
        ..Default::default()
    };
    let e = err_text(x.conv2d(&randn(&[4, 3, 3, 3], 2), None, p));
    assert!(e.contains("[4, 3, 3, 3]"), "{e}");
    // bias of the wrong length
    let e = err_text(x.conv2d(
        &randn(&[4, 3, 3, 3], 2),
        Some(&randn(&[3], 4)),
        Conv2dParams::default(),
    ));
    assert!(e.contains("bias") && e.contains("[3]"), "{e}");
    // rank
    let e = err_text(randn(&[3, 8, 8], 5).conv2d(
        &randn(&[4, 3, 3, 3], 2),
        None,
        Conv2dParams::default(),
    ));
    assert!(e.contains("[3, 8, 8]"), "{e}");
    // zero stride
    let p = Conv2dParams {
        stride: (0, 1),
        ..Default::default()
    };
    assert!(x.conv2d(&randn(&[4, 3, 3, 3], 2), None, p).is_err());
    // dtype mismatch
    let w32 = randn(&[4, 3, 3, 3], 2).to_dtype(DType::F32).unwrap();
    let e = err_text(x.conv2d(&w32, None, Conv2dParams::default()));
    assert!(e.contains("dtype") && e.contains("f32"), "{e}");
}

#[test]
fn conv_transpose2d_errors_name_the_shapes() {
    let x = randn(&[1, 3, 4, 4], 1);
    let e = err_text(x.conv_transpose2d(&randn(&[2, 2, 3, 3], 2), None, Default::default()));
    assert!(
        e.contains("conv_transpose2d") && e.contains("[1, 3, 4, 4]") && e.contains("[2, 2, 3, 3]"),
        "{e}"
    );
    // output_padding must be smaller than stride or dilation
    let p = ConvTranspose2dParams {
        stride: (2, 2),
        output_padding: (2, 0),
        ..Default::default()
    };
    let e = err_text(x.conv_transpose2d(&randn(&[3, 2, 3, 3], 2), None, p));
    assert!(e.contains("output_padding"), "{e}");
    // padding that leaves no output
    let p = ConvTranspose2dParams {
        padding: (3, 3),
        ..Default::default()
    };
    let e = err_text(randn(&[1, 3, 1, 1], 3).conv_transpose2d(&randn(&[3, 2, 2, 2], 2), None, p));
    assert!(e.contains("[1, 3, 1, 1]"), "{e}");
    // bias of the wrong length (C_out = 2·groups)
    let e = err_text(x.conv_transpose2d(
        &randn(&[3, 2, 3, 3], 2),
        Some(&randn(&[3], 4)),
        Default::default(),
    ));
    assert!(e.contains("bias") && e.contains("[3]"), "{e}");
}

/// Input, weight and bias gradients of `f` (seeded with a fixed non-uniform gradient) in
/// the dtype of the given tensors.
fn grads(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> edgedistill::Result<Tensor>) -> Vec<Vec<f64>> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.contiguous().unwrap().detach().requires_grad_().unwrap())
        .collect();
    let y = f(&leaves).unwrap();
    let n = y.elem_count();
    let seed: Vec<f64> = (0..n)
        .map(|i| ((i * 7919) % 23) as f64 / 11.0 - 1.0)
        .collect();
    let seed = Tensor::from_vec(seed, y.shape().clone())
        .unwrap()
        .to_dtype(y.dtype())
        .unwrap();
    y.backward_with(&seed).unwrap();
    leaves
        .iter()
        .map(|l| l.grad().unwrap().to_vec_f64().unwrap())
        .collect()
}

#[test]
fn conv_f32_gradients_match_f64() {
    // The f32 path has its own kernels (SIMD where available); the f64 ones are gradchecked.
    for (i, cs) in conv_cases().iter().enumerate() {
        let x = randn(&cs.x, 300 + i as u64);
        let w = randn(&cs.w, 400 + i as u64);
        let b = randn(&[cs.w[0]], 500 + i as u64);
        let params = Conv2dParams {
            stride: cs.s,
            padding: cs.p,
            dilation: cs.d,
            groups: cs.groups,
        };
        let f = |t: &[Tensor]| t[0].conv2d(&t[1], Some(&t[2]), params);
        let want = grads(&[x.clone(), w.clone(), b.clone()], f);
        let f32s: Vec<Tensor> = [x, w, b]
            .iter()
            .map(|t| t.to_dtype(DType::F32).unwrap())
            .collect();
        let got = grads(&f32s, f);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            assert_close(g, w, 1e-5 * scale, &format!("conv2d case {i} grad {k}"));
        }
    }
    let tcases = [
        ([2, 16, 9, 11], [16, 8, 3, 3], (2, 2), (1, 1), (1, 1), 1),
        ([1, 6, 5, 4], [6, 2, 3, 3], (1, 2), (1, 0), (0, 1), 3),
    ];
    for (i, (xd, wd, s, p, op, groups)) in tcases.into_iter().enumerate() {
        let x = randn(&xd, 600 + i as u64);
        let w = randn(&wd, 700 + i as u64);
        let b = randn(&[wd[1] * groups], 800 + i as u64);
        let params = ConvTranspose2dParams {
            stride: s,
            padding: p,
            output_padding: op,
            dilation: (1, 1),
            groups,
        };
        let f = |t: &[Tensor]| t[0].conv_transpose2d(&t[1], Some(&t[2]), params);
        let want = grads(&[x.clone(), w.clone(), b.clone()], f);
        let f32s: Vec<Tensor> = [x, w, b]
            .iter()
            .map(|t| t.to_dtype(DType::F32).unwrap())
            .collect();
        let got = grads(&f32s, f);
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            assert_close(
                g,
                w,
                1e-5 * scale,
                &format!("conv_transpose2d case {i} grad {k}"),
            );
        }
    }
}

/// A seeded training run must give the same bytes every time: the weight gradient sums
/// thousands of pixel tiles across threads, in a fixed grouping (not work-stealing order).
#[test]
fn conv2d_weight_gradient_is_bitwise_reproducible() {
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let x = randn(&[4, 32, 80, 80], 1);
    let dy = randn(&[4, 32, 80, 80], 2);
    let grad = || {
        let w = randn(&[32, 32, 3, 3], 3).requires_grad_().unwrap();
        x.conv2d(&w, None, p)
            .unwrap()
            .mul(&dy)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        w.grad().unwrap().to_vec_f32().unwrap()
    };
    let first = grad();
    for _ in 0..6 {
        let again = grad();
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "weight gradient differs between identical runs"
        );
    }
}
