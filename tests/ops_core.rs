//! Core ops: creation, views, dtype conversion, broadcasting arithmetic, activations,
//! reductions. Each forward is checked against a direct f64 computation; each
//! differentiable op is gradchecked.
mod common;
use common::*;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::tensor::Rng;
use edgedistill::{DType, Tensor};
use half::{bf16, f16};

fn gc(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> edgedistill::Result<Tensor>) {
    gradcheck(name, inputs, f, &GradcheckOpts::default()).unwrap();
}

// ------------------------------------------------------------------ creation
#[test]
fn creation_ops() {
    assert_eq!(
        Tensor::zeros([2, 3], DType::F32).to_vec::<f32>().unwrap(),
        vec![0.0; 6]
    );
    assert_eq!(
        Tensor::ones([2], DType::I64).to_vec::<i64>().unwrap(),
        vec![1, 1]
    );
    assert_eq!(
        Tensor::full(2.5, [3], DType::F64).to_vec::<f64>().unwrap(),
        vec![2.5; 3]
    );
    assert_eq!(
        Tensor::arange(0.0, 5.0, 2.0, DType::I64)
            .unwrap()
            .to_vec::<i64>()
            .unwrap(),
        vec![0, 2, 4]
    );
    assert_eq!(
        Tensor::arange(3.0, 0.0, -1.0, DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![3.0, 2.0, 1.0]
    );
    assert!(Tensor::arange(0.0, 1.0, 0.0, DType::F32).is_err());
    let e = Tensor::from_vec(vec![1.0f32; 5], [2, 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 3]") && e.contains('5'), "{e}");
    assert_eq!(Tensor::scalar(3i32).dims(), &[] as &[usize]);
}

#[test]
fn rng_is_reproducible_and_distributed() {
    let a = Tensor::randn([1000], 0.0, 1.0, &mut Rng::new(7))
        .to_vec::<f32>()
        .unwrap();
    let b = Tensor::randn([1000], 0.0, 1.0, &mut Rng::new(7))
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, b);
    let c = Tensor::randn([1000], 0.0, 1.0, &mut Rng::new(8))
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(a, c);
    let mut r = Rng::new(123);
    let n = 200_000;
    let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
        "mean {mean} var {var}"
    );
    let us: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
    assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
    assert!((us.iter().sum::<f64>() / n as f64 - 0.5).abs() < 0.005);
    // Pinned values: the same seed must give the same bits on every platform.
    let mut r = Rng::new(42);
    let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
    let mut r2 = Rng::new(42);
    assert_eq!(first, (0..3).map(|_| r2.next_u64()).collect::<Vec<_>>());
}

#[test]
fn portable_ln_matches_std() {
    use edgedistill::tensor::rng::portable_ln;
    for &x in &[
        1e-300, 1e-10, 0.1, 0.5, 0.999, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300,
    ] {
        let (a, b) = (portable_ln(x), x.ln());
        assert!(
            (a - b).abs() <= 1e-15 * b.abs().max(1.0),
            "ln({x}) {a} vs {b}"
        );
    }
}

// ------------------------------------------------------------------ dtype conversion
#[test]
fn dtype_conversion_rounds_to_nearest_even() {
    // 1 + 2^-11 is exactly halfway between two f16 values: ties go to even (1.0).
    let x = Tensor::from_vec(
        vec![
            1.0f32 + 2f32.powi(-11),
            1.0 + 3.0 * 2f32.powi(-11),
            65520.0,
            -0.0,
        ],
        [4],
    )
    .unwrap();
    let h = x.to_dtype(DType::F16).unwrap().to_vec::<f16>().unwrap();
    assert_eq!(h[0], f16::from_f32(1.0));
    assert_eq!(h[1], f16::from_f32(1.0 + 2.0 * 2f32.powi(-10)));
    assert!(h[2].is_infinite(), "65520 rounds up to inf in f16");
    let b = Tensor::from_vec(vec![1.0f32 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)], [2]).unwrap();
    let bv = b.to_dtype(DType::BF16).unwrap().to_vec::<bf16>().unwrap();
    assert_eq!(bv[0].to_f32(), 1.0);
    assert_eq!(bv[1].to_f32(), 1.0 + 2.0 * 2f32.powi(-7));
    // f32 -> i8: half to even, saturating.
    let q = Tensor::from_vec(vec![0.5f32, 1.5, 2.5, -0.5, -1.5, 127.6, -300.0, 3.49], [8]).unwrap();
    assert_eq!(
        q.to_dtype(DType::I8).unwrap().to_vec::<i8>().unwrap(),
        vec![0, 2, 2, 0, -2, 127, -128, 3]
    );
    // back to f32 exactly
    let back = q
        .to_dtype(DType::I8)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(back, vec![0.0, 2.0, 2.0, 0.0, -2.0, 127.0, -128.0, 3.0]);
    // f16/bf16 ops compute in f32 and come back in their own dtype
    let hf = Tensor::from_vec(vec![f16::from_f32(1.5), f16::from_f32(-2.0)], [2]).unwrap();
    let y = hf.mul(&hf).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert_eq!(y.to_vec_f64().unwrap(), vec![2.25, 4.0]);
}

#[test]
fn to_dtype_gradient_flows_between_floats() {
    let x = randn(&[3], 1);
    // The f32 round trip is only piecewise smooth at 1e-7 scale: difference at a coarser step.
    let opts = GradcheckOpts {
        eps: 1e-3,
        atol: 1e-3,
        rtol: 1e-3,
    };
    gradcheck(
        "to_dtype",
        &[x],
        |t| t[0].to_dtype(DType::F32)?.to_dtype(DType::F64)?.mul(&t[0]),
        &opts,
    )
    .unwrap();
}

// ------------------------------------------------------------------ views
#[test]
fn views_share_storage_and_index_correctly() {
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32)
        .unwrap()
        .reshape([2, 3, 4])
        .unwrap();
    let p = x.permute(&[2, 0, 1]).unwrap();
    assert!(p.same_storage(&x) && !p.is_contiguous());
    assert_eq!(p.dims(), &[4, 2, 3]);
    let pv = p.to_vec::<f32>().unwrap();
    for i in 0..24 {
        let ix = unravel(i, &[4, 2, 3]);
        assert_eq!(pv[i], ravel(&[ix[1], ix[2], ix[0]], &[2, 3, 4]) as f32);
    }
    let n = x.narrow(1, 1, 2).unwrap();
    assert!(n.same_storage(&x));
    assert_eq!(
        n.to_vec::<f32>().unwrap(),
        vec![
            4., 5., 6., 7., 8., 9., 10., 11., 16., 17., 18., 19., 20., 21., 22., 23.
        ]
    );
    let e = Tensor::from_vec(vec![1f32, 2., 3.], [3, 1])
        .unwrap()
        .expand([2, 3, 4])
        .unwrap();
    assert!(e.same_storage(&e.clone()));
    let ev = e.to_vec::<f32>().unwrap();
    for i in 0..24 {
        assert_eq!(ev[i], (unravel(i, &[2, 3, 4])[1] + 1) as f32);
    }
    assert_eq!(x.unsqueeze(0).unwrap().dims(), &[1, 2, 3, 4]);
    assert_eq!(x.unsqueeze(-1).unwrap().dims(), &[2, 3, 4, 1]);
    assert_eq!(
        x.unsqueeze(1).unwrap().squeeze(1).unwrap().dims(),
        &[2, 3, 4]
    );
    assert_eq!(x.flatten(1, 2).unwrap().dims(), &[2, 12]);
    assert_eq!(x.reshape_infer(&[-1, 4]).unwrap().dims(), &[6, 4]);
    assert_eq!(
        x.transpose(0, 2).unwrap().contiguous().unwrap().dims(),
        &[4, 3, 2]
    );
    // reshape of a non-contiguous view copies and still has the right order
    let t = x
        .transpose(1, 2)
        .unwrap()
        .reshape([2, 12])
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(&t[..6], &[0., 4., 8., 1., 5., 9.]);
}

#[test]
fn view_errors_name_shapes() {
    let x = Tensor::zeros([2, 3], DType::F32);
    let e = x.reshape([4, 2]).unwrap_err().to_string();
    assert!(e.contains("[2, 3]") && e.contains("[4, 2]"), "{e}");
    let e = x.narrow(1, 2, 2).unwrap_err().to_string();
    assert!(e.contains("[2, 3]"), "{e}");
    let e = x.expand([4, 3, 3]).unwrap_err().to_string();
    assert!(e.contains("[2, 3]") && e.contains("[4, 3, 3]"), "{e}");
    assert!(x.permute(&[0, 0]).is_err());
    assert!(x.squeeze(0).is_err());
    assert!(x.transpose(0, 5).is_err());
}

#[test]
fn view_gradients() {
    let x = randn(&[2, 3, 4], 2);
    gc("permute", &[x.clone()], |t| t[0].permute(&[1, 2, 0]));
    gc("narrow", &[x.clone()], |t| {
        t[0].narrow(2, 1, 2)?.mul_scalar(3.0)
    });
    gc("reshape", &[x.clone()], |t| {
        t[0].transpose(0, 1)?.reshape([3, 8])
    });
    gc("expand", &[randn(&[3, 1], 3)], |t| t[0].expand([2, 3, 4]));
    gc("squeeze", &[randn(&[3, 1], 4)], |t| {
        t[0].squeeze(1)?.unsqueeze(0)
    });
    gc("contiguous", &[x.clone()], |t| {
        t[0].transpose(0, 2)?.contiguous()
    });
    // Overlapping narrows of one tensor, used again whole and twice through one add: the
    // backward pads each narrow's gradient and accumulates four contributions (some in
    // place, some shared between inputs of one add).
    gc("narrows accumulated", &[x], |t| {
        let a = t[0].narrow(1, 0, 2)?;
        let b = t[0].narrow(1, 1, 2)?.mul_scalar(2.0)?;
        let s = a.add(&b)?;
        let u = t[0].mul_scalar(0.5)?;
        Tensor::cat(&[&s.add(&s)?, &u.add(&u)?], 1)?.sqr()
    });
}

#[test]
fn assign_writes_through_views() {
    let x = Tensor::zeros([3, 4], DType::F32);
    x.narrow(1, 1, 2)
        .unwrap()
        .assign(&Tensor::ones([3, 2], DType::F64))
        .unwrap();
    assert_eq!(
        x.to_vec::<f32>().unwrap(),
        vec![0., 1., 1., 0., 0., 1., 1., 0., 0., 1., 1., 0.]
    );
    assert!(x.assign(&Tensor::ones([4, 3], DType::F32)).is_err());
}

// ------------------------------------------------------------------ binary
fn check_binary(
    name: &str,
    sa: &[usize],
    sb: &[usize],
    f: impl Fn(&Tensor, &Tensor) -> edgedistill::Result<Tensor>,
    r: impl Fn(f64, f64) -> f64,
) {
    let a = randn(sa, 10);
    let b = randn(sb, 11).abs().unwrap().add_scalar(0.5).unwrap();
    let out = f(&a, &b).unwrap();
    let so = out.dims().to_vec();
    let (av, bv) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let want: Vec<f64> = (0..out.elem_count())
        .map(|i| {
            let ix = unravel(i, &so);
            let pick = |s: &[usize], v: &[f64]| {
                let lead = so.len() - s.len();
                let j: Vec<usize> = (0..s.len())
                    .map(|d| if s[d] == 1 { 0 } else { ix[lead + d] })
                    .collect();
                v[ravel(&j, s)]
            };
            r(pick(sa, &av), pick(sb, &bv))
        })
        .collect();
    assert_close(&out.to_vec_f64().unwrap(), &want, 1e-6, 1e-5, name);
}

#[test]
fn binary_forward_with_broadcasting() {
    for (sa, sb) in [
        (&[2, 3][..], &[2, 3][..]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[5], &[]),
        (&[], &[2, 2]),
        (&[2, 1], &[1, 40000]),
    ] {
        check_binary("add", sa, sb, |a, b| a.add(b), |x, y| x + y);
        check_binary("sub", sa, sb, |a, b| a.sub(b), |x, y| x - y);
        check_binary("mul", sa, sb, |a, b| a.mul(b), |x, y| x * y);
        check_binary("div", sa, sb, |a, b| a.div(b), |x, y| x / y);
        check_binary(
            "pow",
            sa,
            sb,
            |a, b| b.pow(&a.abs()?),
            |x, y| y.powf(x.abs()),
        );
        check_binary("maximum", sa, sb, |a, b| a.maximum(b), f64::max);
        check_binary("minimum", sa, sb, |a, b| a.minimum(b), f64::min);
    }
    // big same-shape path (parallel)
    check_binary("add_big", &[70000], &[70000], |a, b| a.add(b), |x, y| x + y);
    // non-contiguous operands
    let a = randn(&[3, 4], 5);
    let s = a
        .t()
        .unwrap()
        .add(&a.t().unwrap())
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let at = a.t().unwrap().contiguous().unwrap().to_vec_f64().unwrap();
    assert_close(
        &s,
        &at.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
        1e-6,
        0.0,
        "add transposed",
    );
}

#[test]
fn binary_errors_name_shapes() {
    let e = Tensor::zeros([2, 3], DType::F32)
        .add(&Tensor::zeros([4, 3], DType::F32))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[4, 3]"),
        "{e}"
    );
    let e = Tensor::zeros([2], DType::F32)
        .mul(&Tensor::zeros([2], DType::F64))
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32") && e.contains("f64"), "{e}");
    assert!(Tensor::zeros([2], DType::I64).exp().is_err());
}

#[test]
fn binary_gradients() {
    let (a, b) = (randn(&[2, 3], 20), randn(&[3], 21));
    let bp = b.abs().unwrap().add_scalar(0.5).unwrap();
    let ap = a.abs().unwrap().add_scalar(0.5).unwrap();
    gc("add", &[a.clone(), b.clone()], |t| t[0].add(&t[1]));
    gc("sub", &[a.clone(), b.clone()], |t| t[0].sub(&t[1]));
    gc("mul", &[a.clone(), b.clone()], |t| t[0].mul(&t[1]));
    gc("div", &[a.clone(), bp.clone()], |t| t[0].div(&t[1]));
    gc("pow", &[ap.clone(), b.clone()], |t| t[0].pow(&t[1]));
    gc("powf", &[ap.clone()], |t| t[0].powf(2.7));
    gc("maximum", &[a.clone(), b.clone()], |t| t[0].maximum(&t[1]));
    gc("minimum", &[a.clone(), b.clone()], |t| t[0].minimum(&t[1]));
    gc("affine", &[a.clone()], |t| t[0].affine(-1.5, 0.25));
    gc("where", &[a.clone(), b.clone()], |t| {
        Tensor::where_cond(&t[0].gt_scalar(0.0)?, &t[0], &t[1])
    });
    // same tensor used twice: gradients accumulate
    gc("x*x", &[a], |t| t[0].mul(&t[0]));
}

#[test]
fn comparisons_and_where() {
    let a = Tensor::from_vec(vec![1i64, 2, 3, 4], [4]).unwrap();
    let b = Tensor::from_vec(vec![2i64], [1]).unwrap();
    assert_eq!(a.eq(&b).unwrap().to_vec::<u8>().unwrap(), vec![0, 1, 0, 0]);
    assert_eq!(a.ne(&b).unwrap().to_vec::<u8>().unwrap(), vec![1, 0, 1, 1]);
    assert_eq!(a.lt(&b).unwrap().to_vec::<u8>().unwrap(), vec![1, 0, 0, 0]);
    assert_eq!(a.le(&b).unwrap().to_vec::<u8>().unwrap(), vec![1, 1, 0, 0]);
    assert_eq!(a.gt(&b).unwrap().to_vec::<u8>().unwrap(), vec![0, 0, 1, 1]);
    assert_eq!(a.ge(&b).unwrap().to_vec::<u8>().unwrap(), vec![0, 1, 1, 1]);
    let x = Tensor::from_vec(vec![-1.0f32, 2.0, -3.0], [3]).unwrap();
    let w = Tensor::where_cond(&x.gt_scalar(0.0).unwrap(), &x, &x.zeros_like()).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![0.0, 2.0, 0.0]);
    assert!(
        Tensor::where_cond(&x, &x, &x).is_err(),
        "float condition rejected"
    );
}

// ------------------------------------------------------------------ unary
#[test]
fn unary_forward_matches_formulas() {
    let x = Tensor::from_vec(
        vec![
            -25.0f64, -3.0, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 25.0,
        ],
        [11],
    )
    .unwrap();
    let xv = x.to_vec::<f64>().unwrap();
    let erf = |v: f64| edgedistill::backend::cpu::math::erf(v);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    type F = fn(&Tensor) -> edgedistill::Result<Tensor>;
    let cases: Vec<(&str, F, Box<dyn Fn(f64) -> f64>)> = vec![
        ("neg", Tensor::neg, Box::new(|v: f64| -v)),
        ("exp", Tensor::exp, Box::new(f64::exp)),
        ("abs", Tensor::abs, Box::new(f64::abs)),
        ("sqr", Tensor::sqr, Box::new(|v: f64| v * v)),
        ("relu", Tensor::relu, Box::new(|v: f64| v.max(0.0))),
        ("sigmoid", Tensor::sigmoid, Box::new(sig)),
        ("tanh", Tensor::tanh, Box::new(f64::tanh)),
        ("silu", Tensor::silu, Box::new(move |v: f64| v * sig(v))),
        (
            "gelu",
            Tensor::gelu,
            Box::new(move |v: f64| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
        ),
        (
            "gelu_tanh",
            Tensor::gelu_tanh,
            Box::new(|v: f64| {
                0.5 * v
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
            }),
        ),
        (
            "softplus",
            Tensor::softplus,
            Box::new(|v: f64| if v > 20.0 { v } else { (1.0 + v.exp()).ln() }),
        ),
    ];
    for (name, f, r) in cases {
        let want: Vec<f64> = xv.iter().map(|&v| r(v)).collect();
        assert_close(
            &f(&x).unwrap().to_vec::<f64>().unwrap(),
            &want,
            1e-12,
            1e-12,
            name,
        );
    }
    let p = Tensor::from_vec(vec![0.25f64, 1.0, 4.0, 9.0], [4]).unwrap();
    assert_close(
        &p.sqrt().unwrap().to_vec::<f64>().unwrap(),
        &[0.5, 1.0, 2.0, 3.0],
        1e-15,
        0.0,
        "sqrt",
    );
    assert_close(
        &p.rsqrt().unwrap().to_vec::<f64>().unwrap(),
        &[2.0, 1.0, 0.5, 1.0 / 3.0],
        1e-15,
        0.0,
        "rsqrt",
    );
    assert_close(
        &p.log().unwrap().to_vec::<f64>().unwrap(),
        &[0.25f64.ln(), 0.0, 4f64.ln(), 9f64.ln()],
        1e-15,
        0.0,
        "log",
    );
    assert_close(
        &p.recip().unwrap().to_vec::<f64>().unwrap(),
        &[4.0, 1.0, 0.25, 1.0 / 9.0],
        1e-15,
        0.0,
        "recip",
    );
    assert_close(
        &x.clamp(-1.0, 2.0).unwrap().to_vec::<f64>().unwrap(),
        &xv.iter().map(|v| v.clamp(-1.0, 2.0)).collect::<Vec<_>>(),
        0.0,
        0.0,
        "clamp",
    );
    // gelu of f32 near torch values: gelu(1) = 0.8413447460685429
    let g = Tensor::from_vec(vec![1.0f32], [1])
        .unwrap()
        .gelu()
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert!((g[0] - 0.841_344_8).abs() < 1e-6);
}

#[test]
fn unary_gradients() {
    // keep away from kinks (0 for relu/abs, clamp bounds)
    let x = Tensor::from_vec(
        vec![-2.1f64, -0.7, -0.2, 0.3, 0.9, 1.7, 21.0, -21.0],
        [2, 4],
    )
    .unwrap();
    let pos = x.abs().unwrap().add_scalar(0.1).unwrap();
    for (name, f) in [
        (
            "neg",
            Tensor::neg as fn(&Tensor) -> edgedistill::Result<Tensor>,
        ),
        ("exp", Tensor::exp),
        ("abs", Tensor::abs),
        ("sqr", Tensor::sqr),
        ("relu", Tensor::relu),
        ("sigmoid", Tensor::sigmoid),
        ("tanh", Tensor::tanh),
        ("silu", Tensor::silu),
        ("gelu", Tensor::gelu),
        ("gelu_tanh", Tensor::gelu_tanh),
        ("softplus", Tensor::softplus),
    ] {
        gc(name, &[x.clone()], |t| f(&t[0]));
    }
    for (name, f) in [
        (
            "log",
            Tensor::log as fn(&Tensor) -> edgedistill::Result<Tensor>,
        ),
        ("sqrt", Tensor::sqrt),
        ("rsqrt", Tensor::rsqrt),
        ("recip", Tensor::recip),
    ] {
        gc(name, &[pos.clone()], |t| f(&t[0]));
    }
    gc("clamp", &[x], |t| t[0].clamp(-1.0, 1.0));
}

// ------------------------------------------------------------------ reductions
#[test]
fn reductions_forward() {
    let x = randn(&[3, 4, 5], 30);
    let xv = x.to_vec_f64().unwrap();
    let dims = [3, 4, 5];
    // sum over dims {0, 2}
    let s = x.sum(&[0, -1], false).unwrap();
    assert_eq!(s.dims(), &[4]);
    let want: Vec<f64> = (0..4)
        .map(|j| {
            (0..3)
                .flat_map(|i| (0..5).map(move |k| (i, k)))
                .map(|(i, k)| xv[ravel(&[i, j, k], &dims)])
                .sum()
        })
        .collect();
    assert_close(&s.to_vec_f64().unwrap(), &want, 1e-5, 1e-6, "sum");
    assert_eq!(x.sum(&[1], true).unwrap().dims(), &[3, 1, 5]);
    let m = x.mean(&[1], false).unwrap().to_vec_f64().unwrap();
    for i in 0..3 {
        for k in 0..5 {
            let w: f64 = (0..4).map(|j| xv[ravel(&[i, j, k], &dims)]).sum::<f64>() / 4.0;
            assert!((m[i * 5 + k] - w).abs() < 1e-6);
        }
    }
    let (mx, ix) = x.max_with_index(2, false).unwrap();
    let (mn, jx) = x.min_with_index(0, true).unwrap();
    assert_eq!(mn.dims(), &[1, 4, 5]);
    let (mxv, ixv, mnv, jxv) = (
        mx.to_vec_f64().unwrap(),
        ix.to_vec::<i64>().unwrap(),
        mn.to_vec_f64().unwrap(),
        jx.to_vec::<i64>().unwrap(),
    );
    for i in 0..3 {
        for j in 0..4 {
            let row: Vec<f64> = (0..5).map(|k| xv[ravel(&[i, j, k], &dims)]).collect();
            let (bi, bv) =
                row.iter().enumerate().fold(
                    (0, f64::MIN),
                    |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
                );
            assert_eq!(ixv[i * 4 + j], bi as i64);
            assert!((mxv[i * 4 + j] - bv).abs() < 1e-7);
        }
    }
    for j in 0..4 {
        for k in 0..5 {
            let col: Vec<f64> = (0..3).map(|i| xv[ravel(&[i, j, k], &dims)]).collect();
            let (bi, bv) =
                col.iter().enumerate().fold(
                    (0, f64::MAX),
                    |acc, (i, &v)| if v < acc.1 { (i, v) } else { acc },
                );
            assert_eq!(jxv[j * 5 + k], bi as i64);
            assert!((mnv[j * 5 + k] - bv).abs() < 1e-7);
        }
    }
    assert_eq!(x.argmax(1, false).unwrap().dims(), &[3, 5]);
    // ties: first index wins, like torch
    let t = Tensor::from_vec(vec![1.0f32, 3.0, 3.0, 0.0], [4]).unwrap();
    assert_eq!(
        t.argmax(0, false).unwrap().to_vec::<i64>().unwrap(),
        vec![1]
    );
    let v = x.var(&[2], true, false).unwrap().to_vec_f64().unwrap();
    let vb = x.var(&[2], false, false).unwrap().to_vec_f64().unwrap();
    for r in 0..12 {
        let row = &xv[r * 5..r * 5 + 5];
        let mu = row.iter().sum::<f64>() / 5.0;
        let ss: f64 = row.iter().map(|a| (a - mu).powi(2)).sum();
        assert!((v[r] - ss / 4.0).abs() < 1e-6 && (vb[r] - ss / 5.0).abs() < 1e-6);
    }
    assert!((x.sum_all().unwrap().to_scalar_f64().unwrap() - xv.iter().sum::<f64>()).abs() < 1e-4);
    assert!(
        (x.max_all().unwrap().to_scalar_f64().unwrap()
            - xv.iter().cloned().fold(f64::MIN, f64::max))
        .abs()
            < 1e-7
    );
    // long f32 sums stay accurate (f64 accumulation)
    let ones = Tensor::full(0.1, [1_000_000], DType::F32);
    assert!((ones.sum_all().unwrap().to_scalar_f64().unwrap() - 100_000.0).abs() < 0.01);
    assert!(x.sum(&[3], false).is_err());
    assert!(x.sum(&[1, 1], false).is_err());
}

#[test]
fn reduction_gradients() {
    let x = randn(&[3, 4, 2], 40);
    gc("sum", &[x.clone()], |t| t[0].sum(&[0, 2], false));
    gc("sum_keep", &[x.clone()], |t| t[0].sum(&[1], true));
    gc("sum_all", &[x.clone()], |t| t[0].sum_all());
    gc("mean", &[x.clone()], |t| t[0].mean(&[-1], false));
    gc("var", &[x.clone()], |t| t[0].var(&[0, 1], true, false));
    gc("max", &[x.clone()], |t| t[0].max(1, false));
    gc("min", &[x.clone()], |t| t[0].min(0, true));
    gc("max_all", &[x], |t| t[0].max_all());
}

// ------------------------------------------------------------------ autograd behaviour
#[test]
fn frozen_tensors_record_nothing_and_no_grad_scope_works() {
    let w = randn(&[3], 50).requires_grad_().unwrap();
    let frozen = randn(&[3], 51);
    let y = w.mul(&frozen).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    assert_eq!(
        w.grad().unwrap().to_vec::<f32>().unwrap(),
        frozen.to_vec::<f32>().unwrap()
    );
    assert!(frozen.grad().is_none());
    // frozen-only computation records no graph
    let z = frozen.mul(&frozen).unwrap();
    assert!(!z.tracks_grad());
    {
        let _g = edgedistill::no_grad();
        let z = w.mul(&w).unwrap();
        assert!(!z.tracks_grad());
    }
    assert!(w.mul(&w).unwrap().tracks_grad());
    // gradients accumulate across backward calls until zeroed
    w.mul(&frozen)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g2 = w.grad().unwrap().to_vec::<f32>().unwrap();
    let f = frozen.to_vec::<f32>().unwrap();
    assert!(g2.iter().zip(&f).all(|(a, b)| (a - 2.0 * b).abs() < 1e-6));
    w.zero_grad();
    assert!(w.grad().is_none());
    // freezing in place
    w.set_requires_grad(false).unwrap();
    assert!(!w.mul(&frozen).unwrap().tracks_grad());
    // backward of a non-scalar needs a seed
    let v = randn(&[2], 52).requires_grad_().unwrap();
    assert!(v.mul_scalar(2.0).unwrap().backward().is_err());
    assert!(Tensor::zeros([2], DType::I64).requires_grad_().is_err());
}

#[test]
fn deep_graph_backward_does_not_overflow() {
    let w = Tensor::ones([1], DType::F32).requires_grad_().unwrap();
    let mut y = w.clone();
    for _ in 0..20_000 {
        y = y.mul_scalar(1.0).unwrap();
    }
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![1.0]);
}

#[test]
fn gradcheck_catches_a_wrong_backward_rule() {
    let x = randn(&[3], 60);
    let wrong = |t: &[Tensor]| {
        let out = t[0].mul_scalar(2.0)?.detach();
        Ok(edgedistill::autograd::record(
            out,
            "wrong",
            &[&t[0]],
            |_, g| Ok(vec![Some(g.mul_scalar(3.0)?)]),
        ))
    };
    let err = gradcheck("wrong", &[x.clone()], wrong, &GradcheckOpts::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("analytic") && err.contains("numeric"), "{err}");
    let right = |t: &[Tensor]| {
        let out = t[0].mul_scalar(2.0)?.detach();
        Ok(edgedistill::autograd::record(
            out,
            "right",
            &[&t[0]],
            |_, g| Ok(vec![Some(g.mul_scalar(2.0)?)]),
        ))
    };
    gradcheck("right", &[x], right, &GradcheckOpts::default()).unwrap();
}
