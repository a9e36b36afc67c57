//! matmul, linear, softmax and log_softmax against naive f64 loops written here, plus
//! gradchecks and error messages.
mod common;
use common::*;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::{DType, Tensor};

/// Row-major flat offset of the batch coordinates `mi` (aligned to the right) in `dims`,
/// reading broadcast (size-1) dims at 0.
fn batch_flat(mi: &[usize], dims: &[usize]) -> usize {
    let lead = mi.len() - dims.len();
    let mut f = 0;
    for (i, &d) in dims.iter().enumerate() {
        let c = if d == 1 { 0 } else { mi[lead + i] };
        f = f * d + c;
    }
    f
}

/// torch.matmul by the book: promote 1-D operands, broadcast batch dims, triple loop.
fn naive_matmul(a: &[f64], ad: &[usize], b: &[f64], bd: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let a_dims = if ad.len() == 1 {
        vec![1, ad[0]]
    } else {
        ad.to_vec()
    };
    let b_dims = if bd.len() == 1 {
        vec![bd[0], 1]
    } else {
        bd.to_vec()
    };
    let (ra, rb) = (a_dims.len(), b_dims.len());
    let (m, k, n) = (a_dims[ra - 2], a_dims[ra - 1], b_dims[rb - 1]);
    let (abatch, bbatch) = (&a_dims[..ra - 2], &b_dims[..rb - 2]);
    let r = abatch.len().max(bbatch.len());
    let get = |v: &[usize], i: usize| {
        if i + v.len() >= r {
            v[i + v.len() - r]
        } else {
            1
        }
    };
    let batch: Vec<usize> = (0..r).map(|i| get(abatch, i).max(get(bbatch, i))).collect();
    let nb: usize = batch.iter().product();
    let mut out = Vec::new();
    for bi in 0..nb {
        let mi = unravel(bi, &batch);
        let (ao, bo) = (
            batch_flat(&mi, abatch) * m * k,
            batch_flat(&mi, bbatch) * k * n,
        );
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += a[ao + i * k + p] * b[bo + p * n + j];
                }
                out.push(s);
            }
        }
    }
    let mut dims = batch;
    if ad.len() > 1 {
        dims.push(m);
    }
    if bd.len() > 1 {
        dims.push(n);
    }
    (out, dims)
}

fn check_matmul(a: &Tensor, b: &Tensor, tol: f64) {
    let got = a.matmul(b).unwrap();
    let (want, dims) = naive_matmul(&vals(a), a.dims(), &vals(b), b.dims());
    assert_eq!(
        got.dims(),
        dims.as_slice(),
        "{:?} x {:?}",
        a.dims(),
        b.dims()
    );
    assert_eq!(got.dtype(), a.dtype());
    assert_close_rel(&vals(&got), &want, tol);
}

const SHAPES: &[(&[usize], &[usize])] = &[
    (&[3], &[3]),
    (&[4, 3], &[3]),
    (&[3], &[3, 5]),
    (&[4, 3], &[3, 5]),
    (&[2, 4, 3], &[3, 5]),
    (&[4, 3], &[2, 3, 5]),
    (&[3], &[2, 3, 5]),
    (&[2, 4, 3], &[3]),
    (&[2, 1, 4, 3], &[3, 3, 5]),
    (&[1, 4, 3], &[2, 3, 2]),
    (&[2, 0, 3], &[3, 2]),
    (&[2, 3, 0], &[0, 4]),
];

#[test]
fn matmul_matches_naive_for_all_rank_combinations() {
    for (s, &(ad, bd)) in SHAPES.iter().enumerate() {
        let s = s as u64;
        check_matmul(&randn64(ad, 10 + s), &randn64(bd, 100 + s), 1e-12);
        check_matmul(&randn(ad, 10 + s), &randn(bd, 100 + s), 1e-5);
    }
}

#[test]
fn matmul_reads_non_contiguous_operands() {
    // Transposed 2-D operands on either side (gemm reads them through strides).
    let at = randn(&[3, 4], 1).t().unwrap();
    let bt = randn(&[5, 3], 2).t().unwrap();
    assert!(!at.is_contiguous() && !bt.is_contiguous());
    check_matmul(&at, &bt, 1e-5);
    check_matmul(&at, &randn(&[3, 5], 3), 1e-5);
    // Narrowed columns (row stride ≠ width) and a narrowed 1-D vector.
    let an = randn(&[4, 7], 4).narrow(1, 2, 3).unwrap();
    let vn = randn(&[6], 5).narrow(0, 1, 3).unwrap();
    check_matmul(&an, &randn(&[3, 2], 6), 1e-5);
    check_matmul(&an, &vn, 1e-5);
    // Batched, permuted so neither matrix dim is unit-stride (needs a copy), and a batch
    // of transposes against a broadcast 2-D operand.
    let ap = randn(&[3, 2, 4], 7).permute(&[2, 0, 1]).unwrap(); // [4, 3, 2]
    check_matmul(&ap, &randn(&[4, 2, 5], 8), 1e-5);
    let abt = randn(&[2, 3, 4], 9).transpose(-1, -2).unwrap(); // [2, 4, 3]
    check_matmul(&abt, &randn(&[3, 6], 10).t().unwrap().t().unwrap(), 1e-5);
    // An expanded (stride-0) batch operand.
    let ae = randn(&[1, 4, 3], 11).expand(vec![3, 4, 3]).unwrap();
    check_matmul(&ae, &randn(&[3, 3, 2], 12), 1e-5);
}

#[test]
fn matmul_large_enough_to_run_in_parallel() {
    // One big 2-D product (gemm threads) and a batch of small ones (split over batches).
    check_matmul(&randn(&[70, 90], 20), &randn(&[90, 80], 21), 1e-4);
    check_matmul(&randn(&[16, 20, 24], 22), &randn(&[16, 24, 20], 23), 1e-4);
}

#[test]
fn matmul_half_precision_computes_in_f32() {
    for dt in [DType::F16, DType::BF16] {
        let (a, b) = (randn(&[2, 5, 6], 30), randn(&[6, 3], 31));
        let got = a
            .to_dtype(dt)
            .unwrap()
            .matmul(&b.to_dtype(dt).unwrap())
            .unwrap();
        assert_eq!(got.dtype(), dt);
        let (want, _) = naive_matmul(
            &vals(&a.to_dtype(dt).unwrap()),
            a.dims(),
            &vals(&b.to_dtype(dt).unwrap()),
            b.dims(),
        );
        assert_close_rel(&vals(&got), &want, 2e-2);
    }
}

#[test]
fn matmul_gradcheck() {
    let opts = GradcheckOpts::default();
    for (s, &(ad, bd)) in SHAPES.iter().enumerate().take(10) {
        let s = s as u64;
        let (a, b) = (randn64(ad, 40 + s), randn64(bd, 60 + s));
        gradcheck("matmul", &[a, b], |x| x[0].matmul(&x[1]), &opts).unwrap();
    }
    // Through transposed views, so the backward sees strided operands.
    let (a, b) = (randn64(&[3, 2], 80), randn64(&[4, 3], 81));
    gradcheck("matmul_t", &[a, b], |x| x[0].t()?.matmul(&x[1].t()?), &opts).unwrap();
}

#[test]
fn matmul_backward_through_sum_reduces_broadcast_batch() {
    // d Σ(A·B) / dA[b,i,p] = Σ_j B[p,j]; dB[p,j] = Σ_{b,i} A[b,i,p]. The incoming gradient
    // is a stride-0 expand view here, and B is shared by the whole batch.
    let a = randn64(&[2, 2, 3], 1).requires_grad_().unwrap();
    let b = randn64(&[3, 4], 2).requires_grad_().unwrap();
    a.matmul(&b).unwrap().sum_all().unwrap().backward().unwrap();
    let (av, bv) = (vals(&a), vals(&b));
    let want_a: Vec<f64> = (0..12)
        .map(|f| (0..4).map(|j| bv[(f % 3) * 4 + j]).sum())
        .collect();
    let want_b: Vec<f64> = (0..12)
        .map(|f| (0..4).map(|bi| av[bi * 3 + f / 4]).sum())
        .collect();
    assert_eq!(b.grad().unwrap().dims(), &[3, 4]);
    assert_close_rel(&vals(&a.grad().unwrap()), &want_a, 1e-12);
    assert_close_rel(&vals(&b.grad().unwrap()), &want_b, 1e-12);
}

#[test]
fn matmul_errors_name_the_shapes() {
    let e = randn(&[2, 3], 0)
        .matmul(&randn(&[4, 5], 0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 5]"),
        "{e}"
    );
    let e = randn(&[2, 3, 4], 0)
        .matmul(&randn(&[5, 4, 2], 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 3, 4]") && e.contains("[5, 4, 2]"), "{e}");
    let e = randn(&[3], 0)
        .matmul(&randn(&[4], 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3]") && e.contains("[4]"), "{e}");
    let e = Tensor::scalar(1f32)
        .matmul(&randn(&[4], 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[]") && e.contains("[4]"), "{e}");
    let e = randn(&[2, 3], 0)
        .matmul(&randn64(&[3, 2], 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32") && e.contains("f64"), "{e}");
    let i = Tensor::zeros(vec![2, 2], DType::I64);
    assert!(i.matmul(&i).is_err());
}

/// x [.., in] · wᵀ + b by loops.
fn naive_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Vec<f64> {
    let (xv, wv) = (vals(x), vals(w));
    let (nout, nin) = (w.dims()[0], w.dims()[1]);
    let bv = b.map(vals).unwrap_or(vec![0.0; nout]);
    let rows = xv.len() / nin;
    let mut out = Vec::new();
    for r in 0..rows {
        for o in 0..nout {
            let mut s = bv[o];
            for i in 0..nin {
                s += xv[r * nin + i] * wv[o * nin + i];
            }
            out.push(s);
        }
    }
    out
}

#[test]
fn linear_matches_naive() {
    let w = randn(&[5, 4], 1);
    let b = randn(&[5], 2);
    let cases = [
        randn(&[2, 3, 4], 3),
        randn(&[6, 4], 4),
        randn(&[4], 5),
        randn(&[4, 6], 6).t().unwrap(), // transposed 2-D input
        randn(&[3, 4, 2], 7).permute(&[0, 2, 1]).unwrap(), // non-contiguous 3-D input
        randn(&[0, 4], 8),
    ];
    for x in &cases {
        for bias in [Some(&b), None] {
            let got = x.linear(&w, bias).unwrap();
            let mut dims = x.dims()[..x.rank() - 1].to_vec();
            dims.push(5);
            assert_eq!(got.dims(), dims.as_slice());
            assert_close_rel(&vals(&got), &naive_linear(x, &w, bias), 1e-5);
        }
    }
    // A weight that is itself a transpose view, and f64.
    let wt = randn64(&[4, 5], 9).t().unwrap();
    let x = randn64(&[3, 4], 10);
    let got = x.linear(&wt, None).unwrap();
    assert_close_rel(&vals(&got), &naive_linear(&x, &wt, None), 1e-12);
}

#[test]
fn linear_gradcheck() {
    let opts = GradcheckOpts::default();
    let (x, w, b) = (
        randn64(&[2, 3, 4], 1),
        randn64(&[5, 4], 2),
        randn64(&[5], 3),
    );
    gradcheck(
        "linear",
        &[x.clone(), w.clone(), b],
        |t| t[0].linear(&t[1], Some(&t[2])),
        &opts,
    )
    .unwrap();
    gradcheck(
        "linear_nobias",
        &[x, w],
        |t| t[0].linear(&t[1], None),
        &opts,
    )
    .unwrap();
    let (x1, w1) = (randn64(&[4], 4), randn64(&[4, 3], 5));
    gradcheck(
        "linear_1d_wt",
        &[x1, w1],
        |t| t[0].linear(&t[1].t()?, None),
        &opts,
    )
    .unwrap();
}

#[test]
fn linear_errors_name_the_shapes() {
    let e = randn(&[2, 3, 4], 0)
        .linear(&randn(&[5, 3], 0), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linear") && e.contains("[2, 3, 4]") && e.contains("[5, 3]"),
        "{e}"
    );
    let e = randn(&[2, 4], 0)
        .linear(&randn(&[5, 4], 0), Some(&randn(&[4], 0)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[4]") && e.contains("[5, 4]"), "{e}");
    let e = randn(&[2, 4], 0)
        .linear(&randn(&[2, 5, 4], 0), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 5, 4]"), "{e}");
    assert!(
        randn(&[2, 4], 0)
            .linear(&randn64(&[5, 4], 0), None)
            .is_err()
    );
}

/// softmax / log_softmax along `d` by loops over a row-major buffer.
fn naive_softmax(x: &[f64], dims: &[usize], d: usize, log: bool) -> Vec<f64> {
    let outer: usize = dims[..d].iter().product();
    let inner: usize = dims[d + 1..].iter().product();
    let n = dims[d];
    let mut out = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |r: usize| (o * n + r) * inner + i;
            let m = (0..n).map(|r| x[at(r)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|r| (x[at(r)] - m).exp()).sum();
            for r in 0..n {
                out[at(r)] = if log {
                    x[at(r)] - m - s.ln()
                } else {
                    (x[at(r)] - m).exp() / s
                };
            }
        }
    }
    out
}

#[test]
fn softmax_and_log_softmax_match_naive() {
    let x = randn(&[3, 4, 5], 1).mul_scalar(3.0).unwrap();
    for log in [false, true] {
        for (dim, d) in [(0isize, 0usize), (1, 1), (2, 2), (-1, 2), (-3, 0)] {
            let got = if log {
                x.log_softmax(dim)
            } else {
                x.softmax(dim)
            }
            .unwrap();
            assert_eq!(got.dims(), x.dims());
            assert_close_rel(
                &vals(&got),
                &naive_softmax(&vals(&x), x.dims(), d, log),
                1e-5,
            );
        }
        // Non-contiguous input: a permuted view.
        let p = x.permute(&[2, 0, 1]).unwrap();
        let got = if log { p.log_softmax(1) } else { p.softmax(1) }.unwrap();
        assert_close_rel(
            &vals(&got),
            &naive_softmax(&vals(&p), p.dims(), 1, log),
            1e-5,
        );
        // Half precision in, half precision out.
        let h = x.to_dtype(DType::BF16).unwrap();
        let got = if log {
            h.log_softmax(-1)
        } else {
            h.softmax(-1)
        }
        .unwrap();
        assert_eq!(got.dtype(), DType::BF16);
        assert_close_rel(
            &vals(&got),
            &naive_softmax(&vals(&h), h.dims(), 2, log),
            2e-2,
        );
    }
    // Rows of softmax sum to one.
    let s = x.softmax(1).unwrap().sum(&[1], false).unwrap();
    assert_close_rel(&vals(&s), &[1.0; 15], 1e-6);
}

#[test]
fn softmax_is_stable_for_huge_logits() {
    let x = Tensor::from_vec(vec![1000f32, 1001.0, 999.0, -1e4, 0.0, 1e4], vec![2, 3]).unwrap();
    let want = naive_softmax(&vals(&x), &[2, 3], 1, false);
    let got = vals(&x.softmax(-1).unwrap());
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    assert_close_rel(&got, &want, 1e-6);
    let got = vals(&x.log_softmax(-1).unwrap());
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    assert_close_rel(&got, &naive_softmax(&vals(&x), &[2, 3], 1, true), 1e-6);
    // The larger row runs the parallel path.
    let big = randn(&[300, 200], 3).mul_scalar(50.0).unwrap();
    let got = big.log_softmax(0).unwrap();
    assert_close_rel(
        &vals(&got),
        &naive_softmax(&vals(&big), big.dims(), 0, true),
        1e-4,
    );
}

#[test]
fn softmax_gradcheck() {
    let opts = GradcheckOpts::default();
    let x = randn64(&[2, 3, 4], 5);
    for dim in [0isize, 1, -1] {
        gradcheck(
            "softmax",
            std::slice::from_ref(&x),
            |t| t[0].softmax(dim),
            &opts,
        )
        .unwrap();
        gradcheck(
            "log_softmax",
            std::slice::from_ref(&x),
            |t| t[0].log_softmax(dim),
            &opts,
        )
        .unwrap();
    }
    gradcheck(
        "softmax_t",
        &[randn64(&[3, 4], 6)],
        |t| t[0].t()?.softmax(-1),
        &opts,
    )
    .unwrap();
}

#[test]
fn softmax_errors() {
    let e = randn(&[3, 4, 5], 0).softmax(3).unwrap_err().to_string();
    assert!(
        e.contains("softmax") && e.contains("3") && e.contains("[3, 4, 5]"),
        "{e}"
    );
    let e = randn(&[3, 4], 0).log_softmax(-3).unwrap_err().to_string();
    assert!(e.contains("log_softmax") && e.contains("[3, 4]"), "{e}");
    let e = Tensor::zeros(vec![2, 2], DType::I64)
        .softmax(0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("i64"), "{e}");
}
