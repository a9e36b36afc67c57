//! cat / stack / split / chunk, gather / index_select / scatter_add / index_add / one_hot,
//! topk / sort / cumsum against naive loops written here, plus gradchecks and errors.
mod common;
use common::*;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::{DType, Tensor};

fn idx(v: &[i64], dims: &[usize]) -> Tensor {
    Tensor::from_slice(v, dims.to_vec()).unwrap()
}
fn err(r: edgedistill::Result<impl std::fmt::Debug>) -> String {
    r.unwrap_err().to_string()
}
fn opts() -> GradcheckOpts {
    GradcheckOpts::default()
}

// ------------------------------------------------------------------ cat / stack / split

/// Concatenation by coordinates: output element at `mi` comes from the input whose range
/// along `d` holds `mi[d]`.
fn naive_cat(ts: &[&Tensor], d: usize) -> (Vec<f64>, Vec<usize>) {
    let mut dims = ts[0].dims().to_vec();
    dims[d] = ts.iter().map(|t| t.dims()[d]).sum();
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        let mut mi = unravel(flat, &dims);
        let mut k = 0;
        while mi[d] >= ts[k].dims()[d] {
            mi[d] -= ts[k].dims()[d];
            k += 1;
        }
        out.push(vals(ts[k])[ravel(&mi, ts[k].dims())]);
    }
    (out, dims)
}

#[test]
fn cat_matches_naive_for_any_dtype_and_layout() {
    let a = randn(&[2, 3, 4], 1);
    let b = randn(&[2, 1, 4], 2);
    let c = randn(&[4, 2, 2], 3).permute(&[1, 2, 0]).unwrap(); // [2, 2, 4], non-contiguous
    for (dim, d) in [(1isize, 1usize), (-2, 1)] {
        let got = Tensor::cat(&[&a, &b, &c], dim).unwrap();
        let (want, dims) = naive_cat(&[&a, &b, &c], d);
        assert_eq!(got.dims(), dims.as_slice());
        assert_eq!(vals(&got), want);
    }
    let (x, y) = (randn(&[2, 3], 4), randn(&[5, 3], 5));
    let got = Tensor::cat(&[&x, &y], 0).unwrap();
    assert_eq!(vals(&got), naive_cat(&[&x, &y], 0).0);
    let (x, y) = (randn(&[2, 3], 6), randn(&[2, 0], 7));
    assert_eq!(
        vals(&Tensor::cat(&[&x, &y, &x], 1).unwrap()),
        naive_cat(&[&x, &y, &x], 1).0
    );
    for dt in [DType::I64, DType::F16, DType::U8] {
        let (p, q) = (a.to_dtype(dt).unwrap(), b.to_dtype(dt).unwrap());
        let got = Tensor::cat(&[&p, &q], 1).unwrap();
        assert_eq!(got.dtype(), dt);
        assert_eq!(vals(&got), naive_cat(&[&p, &q], 1).0);
    }
}

#[test]
fn stack_matches_naive() {
    let (a, b) = (randn(&[2, 3], 1), randn(&[3, 2], 2).t().unwrap());
    for (dim, d) in [(0isize, 0usize), (1, 1), (2, 2), (-1, 2), (-3, 0)] {
        let got = Tensor::stack(&[&a, &b], dim).unwrap();
        let mut dims = vec![2, 3];
        dims.insert(d, 2);
        assert_eq!(got.dims(), dims.as_slice());
        let (av, bv) = (vals(&a), vals(&b));
        let want: Vec<f64> = (0..12)
            .map(|f| {
                let mut mi = unravel(f, &dims);
                let k = mi.remove(d);
                [&av, &bv][k][ravel(&mi, &[2, 3])]
            })
            .collect();
        assert_eq!(vals(&got), want);
    }
    let i = Tensor::stack(&[&idx(&[1, 2], &[2]), &idx(&[3, 4], &[2])], 0).unwrap();
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![1, 2, 3, 4]);
}

#[test]
fn split_and_chunk_give_the_right_pieces() {
    let x = randn(&[3, 6], 1);
    let xv = vals(&x);
    let parts = x.split(&[1, 3, 0, 2], 1).unwrap();
    let starts = [0, 1, 4, 4];
    for (p, (&s, &n)) in parts.iter().zip(starts.iter().zip(&[1, 3, 0, 2])) {
        assert_eq!(p.dims(), &[3, n]);
        let want: Vec<f64> = (0..3)
            .flat_map(|r| (s..s + n).map(move |c| (r, c)))
            .map(|(r, c)| xv[r * 6 + c])
            .collect();
        assert_eq!(vals(p), want);
    }
    let sizes = |n: usize, len: usize| -> Vec<usize> {
        randn(&[len, 2], 0)
            .chunk(n, 0)
            .unwrap()
            .iter()
            .map(|t| t.dims()[0])
            .collect()
    };
    assert_eq!(sizes(3, 5), vec![2, 2, 1]);
    assert_eq!(sizes(4, 6), vec![2, 2, 2]); // fewer than n, like torch.chunk
    assert_eq!(sizes(4, 4), vec![1, 1, 1, 1]);
    assert_eq!(sizes(1, 3), vec![3]);
    assert_eq!(sizes(5, 2), vec![1, 1]);
    let c = x.chunk(2, -1).unwrap();
    assert_eq!(
        vals(&c[1]),
        vec![
            xv[3], xv[4], xv[5], xv[9], xv[10], xv[11], xv[15], xv[16], xv[17]
        ]
    );
    let i = idx(&[1, 2, 3, 4, 5], &[5]).chunk(2, 0).unwrap();
    assert_eq!(i[1].to_vec::<i64>().unwrap(), vec![4, 5]);
}

#[test]
fn concat_family_gradcheck() {
    let (a, b) = (randn64(&[2, 3], 1), randn64(&[2, 2], 2));
    gradcheck(
        "cat",
        &[a.clone(), b],
        |t| Tensor::cat(&[&t[0], &t[1], &t[0]], 1),
        &opts(),
    )
    .unwrap();
    let c = randn64(&[3, 2], 3);
    gradcheck(
        "stack",
        &[a.clone(), c],
        |t| Tensor::stack(&[&t[0], &t[1].t()?], 1),
        &opts(),
    )
    .unwrap();
    gradcheck(
        "split",
        std::slice::from_ref(&a),
        |t| {
            let p = t[0].split(&[2, 1], 1)?;
            Tensor::cat(&[&p[1], &p[0].mul(&p[0])?], 1)
        },
        &opts(),
    )
    .unwrap();
    gradcheck(
        "chunk",
        &[a],
        |t| t[0].chunk(2, 1)?[0].mul_scalar(3.0),
        &opts(),
    )
    .unwrap();
}

#[test]
fn concat_family_errors() {
    let e = err(Tensor::cat(&[&randn(&[2, 3], 0), &randn(&[3, 3], 0)], 1));
    assert!(
        e.contains("cat") && e.contains("[2, 3]") && e.contains("[3, 3]"),
        "{e}"
    );
    let e = err(Tensor::cat(&[&randn(&[2, 3], 0), &randn(&[2, 3, 1], 0)], 0));
    assert!(e.contains("[2, 3, 1]"), "{e}");
    let e = err(Tensor::cat(&[&randn(&[2], 0), &idx(&[1, 2], &[2])], 0));
    assert!(e.contains("f32") && e.contains("i64"), "{e}");
    assert!(Tensor::cat(&[], 0).is_err());
    let e = err(Tensor::cat(&[&randn(&[2], 0)], 1));
    assert!(e.contains("dim 1") && e.contains("[2]"), "{e}");
    let e = err(Tensor::stack(&[&randn(&[2, 3], 0), &randn(&[3, 2], 0)], 0));
    assert!(
        e.contains("stack") && e.contains("[2, 3]") && e.contains("[3, 2]"),
        "{e}"
    );
    let e = err(Tensor::stack(&[&randn(&[2, 3], 0)], 3));
    assert!(e.contains("dim 3") && e.contains("[2, 3]"), "{e}");
    let e = err(randn(&[2, 5], 0).split(&[2, 2], 1));
    assert!(
        e.contains("[2, 2]") && e.contains("[2, 5]") && e.contains("5"),
        "{e}"
    );
    let e = err(randn(&[2, 5], 0).chunk(0, 1));
    assert!(e.contains("chunk") && e.contains("[2, 5]"), "{e}");
}

// ------------------------------------------------------------------ gather / scatter

fn naive_gather(x: &[f64], xd: &[usize], d: usize, ix: &[i64], id: &[usize]) -> Vec<f64> {
    (0..ix.len())
        .map(|f| {
            let mut mi = unravel(f, id);
            mi[d] = ix[f] as usize;
            x[ravel(&mi, xd)]
        })
        .collect()
}

#[test]
fn gather_matches_naive() {
    let x = randn(&[3, 4, 2], 1);
    // Index smaller than x in non-gathered dims, with repeats.
    let i1 = idx(&[3, 0, 0, 1, 2, 2, 1, 3], &[2, 2, 2]);
    let got = x.gather(1, &i1).unwrap();
    assert_eq!(got.dims(), &[2, 2, 2]);
    assert_eq!(
        vals(&got),
        naive_gather(
            &vals(&x),
            x.dims(),
            1,
            &[3, 0, 0, 1, 2, 2, 1, 3],
            &[2, 2, 2]
        )
    );
    let i0 = idx(&[2, 1, 0, 0, 1, 2], &[1, 3, 2]);
    let got = x.gather(-3, &i0).unwrap();
    assert_eq!(
        vals(&got),
        naive_gather(&vals(&x), x.dims(), 0, &[2, 1, 0, 0, 1, 2], &[1, 3, 2])
    );
    // Non-contiguous source and other dtypes.
    let xt = randn(&[4, 3], 2).t().unwrap();
    let i = idx(&[3, 2, 1, 0, 0, 0], &[3, 2]);
    assert_eq!(
        vals(&xt.gather(1, &i).unwrap()),
        naive_gather(&vals(&xt), &[3, 4], 1, &[3, 2, 1, 0, 0, 0], &[3, 2])
    );
    let xi = xt.mul_scalar(10.0).unwrap().to_dtype(DType::I64).unwrap();
    let got = xi.gather(1, &i).unwrap();
    assert_eq!(got.dtype(), DType::I64);
    assert_eq!(
        vals(&got),
        naive_gather(&vals(&xi), &[3, 4], 1, &[3, 2, 1, 0, 0, 0], &[3, 2])
    );
}

#[test]
fn index_select_matches_naive() {
    let x = randn(&[3, 4, 2], 1);
    let xv = vals(&x);
    let ix = [3i64, 0, 3, 1, 1];
    let got = x.index_select(1, &idx(&ix, &[5])).unwrap();
    assert_eq!(got.dims(), &[3, 5, 2]);
    let want: Vec<f64> = (0..30)
        .map(|f| {
            let mut mi = unravel(f, &[3, 5, 2]);
            mi[1] = ix[mi[1]] as usize;
            xv[ravel(&mi, &[3, 4, 2])]
        })
        .collect();
    assert_eq!(vals(&got), want);
    let xt = x.permute(&[2, 0, 1]).unwrap(); // [2, 3, 4]
    let got = xt.index_select(-1, &idx(&[2, 0], &[2])).unwrap();
    let tv = vals(&xt);
    let want: Vec<f64> = (0..12)
        .map(|f| {
            let mut mi = unravel(f, &[2, 3, 2]);
            mi[2] = [2, 0][mi[2]];
            tv[ravel(&mi, &[2, 3, 4])]
        })
        .collect();
    assert_eq!(vals(&got), want);
    let u = Tensor::from_vec(vec![5u8, 6, 7], vec![3]).unwrap();
    let got = u.index_select(0, &idx(&[2, 2, 0], &[3])).unwrap();
    assert_eq!(got.to_vec::<u8>().unwrap(), vec![7, 7, 5]);
    assert_eq!(u.index_select(0, &idx(&[], &[0])).unwrap().dims(), &[0]);
}

#[test]
fn scatter_add_and_index_add_match_naive() {
    let base = randn(&[3, 4], 1);
    let src = randn(&[3, 3], 2);
    let ix = [1i64, 1, 3, 0, 2, 0];
    let id = [2usize, 3]; // smaller than src in dim 0
    let got = base.scatter_add(1, &idx(&ix, &id), &src).unwrap();
    let mut want = vals(&base);
    let sv = vals(&src);
    for f in 0..6 {
        let mi = unravel(f, &id);
        want[mi[0] * 4 + ix[f] as usize] += sv[ravel(&mi, &[3, 3])];
    }
    assert_close_rel(&vals(&got), &want, 1e-6);
    // Along dim 0, on a transposed base, in f64.
    let b2 = randn64(&[4, 3], 3).t().unwrap(); // [3, 4]
    let s2 = randn64(&[2, 4], 4);
    let ix2 = [2i64, 0, 2, 1, 2, 2, 0, 1];
    let got = b2.scatter_add(0, &idx(&ix2, &[2, 4]), &s2).unwrap();
    let mut want = vals(&b2);
    let sv = vals(&s2);
    for f in 0..8 {
        want[ix2[f] as usize * 4 + f % 4] += sv[f];
    }
    assert_close_rel(&vals(&got), &want, 1e-12);
    // index_add: slice k of src lands on slice ix[k].
    let src3 = randn(&[3, 3], 5);
    let ixa = [3i64, 0, 3];
    let got = base.index_add(1, &idx(&ixa, &[3]), &src3).unwrap();
    let mut want = vals(&base);
    let s3 = vals(&src3);
    for r in 0..3 {
        for k in 0..3 {
            want[r * 4 + ixa[k] as usize] += s3[r * 3 + k];
        }
    }
    assert_close_rel(&vals(&got), &want, 1e-6);
    let h = base.to_dtype(DType::F16).unwrap();
    let got = h
        .scatter_add(1, &idx(&ix, &id), &src.to_dtype(DType::F16).unwrap())
        .unwrap();
    assert_eq!(got.dtype(), DType::F16);
}

#[test]
fn one_hot_matches_naive() {
    let ix = [2i64, 0, 1, 2, 3, 0];
    let got = idx(&ix, &[2, 3]).one_hot(4, DType::F32).unwrap();
    assert_eq!(got.dims(), &[2, 3, 4]);
    assert_eq!(got.dtype(), DType::F32);
    let want: Vec<f64> = (0..24)
        .map(|f| (ix[f / 4] as usize == f % 4) as u8 as f64)
        .collect();
    assert_eq!(vals(&got), want);
    let got = idx(&[1], &[1]).one_hot(3, DType::I64).unwrap();
    assert_eq!(got.to_vec::<i64>().unwrap(), vec![0, 1, 0]);
}

#[test]
fn indexing_gradcheck() {
    let x = randn64(&[3, 4], 1);
    let i = idx(&[0, 3, 3, 1, 2, 2], &[3, 2]);
    gradcheck(
        "gather",
        std::slice::from_ref(&x),
        |t| t[0].gather(1, &i),
        &opts(),
    )
    .unwrap();
    let i0 = idx(&[2, 2, 0, 1], &[1, 4]);
    gradcheck(
        "gather_t",
        std::slice::from_ref(&x),
        |t| {
            t[0].t()?
                .gather(1, &i0.t()?.contiguous()?.reshape(vec![4, 1])?)
        },
        &opts(),
    )
    .unwrap();
    let sel = idx(&[2, 0, 2], &[3]);
    gradcheck(
        "index_select",
        std::slice::from_ref(&x),
        |t| t[0].index_select(0, &sel),
        &opts(),
    )
    .unwrap();
    let src = randn64(&[3, 3], 2);
    let si = idx(&[1, 1, 3, 0, 2, 0], &[2, 3]);
    gradcheck(
        "scatter_add",
        &[x.clone(), src.clone()],
        |t| t[0].scatter_add(1, &si, &t[1]),
        &opts(),
    )
    .unwrap();
    let ai = idx(&[3, 0, 3], &[3]);
    gradcheck(
        "index_add",
        &[x, src],
        |t| t[0].index_add(1, &ai, &t[1]),
        &opts(),
    )
    .unwrap();
}

#[test]
fn indexing_errors_name_value_and_position() {
    let x = randn(&[3, 4], 0);
    let e = err(x.gather(1, &idx(&[0, 1, 7, 2], &[2, 2])));
    assert!(
        e.contains("gather") && e.contains("7") && e.contains("[1, 0]") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = err(x.gather(0, &idx(&[0, -1], &[1, 2])));
    assert!(e.contains("-1") && e.contains("[0, 1]"), "{e}");
    let e = err(x.gather(0, &idx(&[0, 1, 2, 0, 1, 2], &[1, 6])));
    assert!(e.contains("[1, 6]") && e.contains("[3, 4]"), "{e}");
    let e = err(x.gather(0, &randn(&[1, 2], 0)));
    assert!(e.contains("i64") && e.contains("f32"), "{e}");
    let e = err(x.index_select(1, &idx(&[0, 4], &[2])));
    assert!(
        e.contains("index_select") && e.contains("4") && e.contains("[1]"),
        "{e}"
    );
    let e = err(x.index_select(1, &idx(&[0, 1], &[1, 2])));
    assert!(e.contains("[1, 2]"), "{e}");
    let e = err(x.scatter_add(0, &idx(&[5, 0], &[1, 2]), &randn(&[1, 2], 0)));
    assert!(
        e.contains("scatter_add") && e.contains("5") && e.contains("[0, 0]"),
        "{e}"
    );
    let e = err(x.scatter_add(0, &idx(&[0, 0, 0], &[1, 3]), &randn(&[1, 2], 0)));
    assert!(e.contains("[1, 3]") && e.contains("[1, 2]"), "{e}");
    let e = err(x.index_add(0, &idx(&[0, 1], &[2]), &randn(&[3, 4], 0)));
    assert!(
        e.contains("index_add") && e.contains("[2]") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = err(idx(&[0, 2, -3], &[3]).one_hot(3, DType::F32));
    assert!(
        e.contains("one_hot") && e.contains("-3") && e.contains("[2]"),
        "{e}"
    );
    let e = err(idx(&[0, 3], &[2]).one_hot(3, DType::F32));
    assert!(e.contains("3") && e.contains("[1]"), "{e}");
    assert!(randn(&[2], 0).one_hot(3, DType::F32).is_err());
}

// ------------------------------------------------------------------ topk / sort / cumsum

/// Each lane along `d` as (value, index) pairs sorted by value, ties by index.
fn naive_sorted(x: &[f64], dims: &[usize], d: usize, desc: bool, k: usize) -> (Vec<f64>, Vec<i64>) {
    let mut out_dims = dims.to_vec();
    out_dims[d] = k;
    let n: usize = out_dims.iter().product();
    let (mut v, mut ix) = (vec![0.0; n], vec![0i64; n]);
    let lanes: usize = dims.iter().product::<usize>() / dims[d];
    let mut lane_dims = dims.to_vec();
    lane_dims[d] = 1;
    for l in 0..lanes {
        let mut mi = unravel(l, &lane_dims);
        let mut lane: Vec<(f64, usize)> = (0..dims[d])
            .map(|r| {
                mi[d] = r;
                (x[ravel(&mi, dims)], r)
            })
            .collect();
        // Insertion sort: stable by construction, independent of std's sort.
        for i in 1..lane.len() {
            let mut j = i;
            while j > 0
                && if desc {
                    lane[j].0 > lane[j - 1].0
                } else {
                    lane[j].0 < lane[j - 1].0
                }
            {
                lane.swap(j, j - 1);
                j -= 1;
            }
        }
        for (r, &(val, at)) in lane.iter().take(k).enumerate() {
            mi[d] = r;
            let f = ravel(&mi, &out_dims);
            v[f] = val;
            ix[f] = at as i64;
        }
    }
    (v, ix)
}

#[test]
fn sort_and_topk_match_naive_with_ties() {
    // Rounded values so there are many ties.
    let x = randn(&[3, 5, 4], 1)
        .mul_scalar(2.0)
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let xv = vals(&x);
    for d in 0..3 {
        for desc in [false, true] {
            let (v, i) = x.sort(d as isize, desc).unwrap();
            let (wv, wi) = naive_sorted(&xv, x.dims(), d, desc, x.dims()[d]);
            assert_eq!(vals(&v), wv);
            assert_eq!(i.to_vec::<i64>().unwrap(), wi, "sort dim {d} desc {desc}");
            for k in [0, 1, 3] {
                let (v, i) = x.topk(k, d as isize, desc).unwrap();
                let (wv, wi) = naive_sorted(&xv, x.dims(), d, desc, k);
                assert_eq!(vals(&v), wv);
                assert_eq!(
                    i.to_vec::<i64>().unwrap(),
                    wi,
                    "topk {k} dim {d} largest {desc}"
                );
            }
        }
    }
    // Non-contiguous input, integer dtype, negative dim.
    let xt = x.permute(&[2, 0, 1]).unwrap();
    let (v, i) = xt.to_dtype(DType::I64).unwrap().topk(2, -1, true).unwrap();
    let (wv, wi) = naive_sorted(&vals(&xt), xt.dims(), 2, true, 2);
    assert_eq!(v.dtype(), DType::I64);
    assert_eq!(vals(&v), wv);
    assert_eq!(i.to_vec::<i64>().unwrap(), wi);
    // NaN sorts above every number.
    let n = Tensor::from_vec(vec![1.0f32, f32::NAN, -1.0], vec![3]).unwrap();
    let (v, i) = n.sort(0, false).unwrap();
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![2, 0, 1]);
    assert!(vals(&v)[2].is_nan());
    assert_eq!(
        n.topk(1, 0, true).unwrap().1.to_vec::<i64>().unwrap(),
        vec![1]
    );
    // A large batch of lanes (parallel path).
    let big = randn(&[200, 300], 2);
    let (v, i) = big.topk(5, 1, true).unwrap();
    let (wv, wi) = naive_sorted(&vals(&big), big.dims(), 1, true, 5);
    assert_eq!(vals(&v), wv);
    assert_eq!(i.to_vec::<i64>().unwrap(), wi);
}

fn naive_cumsum(x: &[f64], dims: &[usize], d: usize) -> Vec<f64> {
    (0..x.len())
        .map(|f| {
            let mut mi = unravel(f, dims);
            let upto = mi[d];
            (0..=upto)
                .map(|r| {
                    mi[d] = r;
                    x[ravel(&mi, dims)]
                })
                .sum()
        })
        .collect()
}

#[test]
fn cumsum_matches_naive() {
    let x = randn(&[3, 4, 5], 1);
    for (dim, d) in [(0isize, 0usize), (1, 1), (-1, 2)] {
        let got = x.cumsum(dim).unwrap();
        assert_close_rel(&vals(&got), &naive_cumsum(&vals(&x), x.dims(), d), 1e-5);
    }
    let xt = x.permute(&[2, 1, 0]).unwrap();
    assert_close_rel(
        &vals(&xt.cumsum(1).unwrap()),
        &naive_cumsum(&vals(&xt), xt.dims(), 1),
        1e-5,
    );
    let i = Tensor::from_vec(vec![1i32, 2, 3, 4], vec![2, 2])
        .unwrap()
        .cumsum(0)
        .unwrap();
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(i.to_vec::<i64>().unwrap(), vec![1, 2, 4, 6]);
    let h = x.to_dtype(DType::BF16).unwrap().cumsum(2).unwrap();
    assert_eq!(h.dtype(), DType::BF16);
}

#[test]
fn ordering_gradcheck() {
    let x = randn64(&[3, 5], 1);
    gradcheck(
        "sort",
        std::slice::from_ref(&x),
        |t| Ok(t[0].sort(1, false)?.0),
        &opts(),
    )
    .unwrap();
    gradcheck(
        "sort_desc0",
        std::slice::from_ref(&x),
        |t| Ok(t[0].sort(0, true)?.0),
        &opts(),
    )
    .unwrap();
    gradcheck(
        "topk",
        std::slice::from_ref(&x),
        |t| Ok(t[0].topk(2, 1, true)?.0),
        &opts(),
    )
    .unwrap();
    gradcheck(
        "topk_small_t",
        std::slice::from_ref(&x),
        |t| Ok(t[0].t()?.topk(2, 1, false)?.0),
        &opts(),
    )
    .unwrap();
    for d in [0isize, 1] {
        gradcheck(
            "cumsum",
            std::slice::from_ref(&x),
            |t| t[0].cumsum(d),
            &opts(),
        )
        .unwrap();
    }
}

#[test]
fn ordering_errors() {
    let x = randn(&[3, 4], 0);
    let e = err(x.topk(5, 1, true));
    assert!(
        e.contains("topk") && e.contains("5") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = err(x.sort(2, false));
    assert!(
        e.contains("sort") && e.contains("dim 2") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = err(x.cumsum(-3));
    assert!(e.contains("cumsum") && e.contains("[3, 4]"), "{e}");
}
