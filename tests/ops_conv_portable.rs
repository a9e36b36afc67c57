//! The portable conv path (gemm crate, no hand-written AVX-512 kernel) is what Arm boards
//! such as Jetson run; CI machines have AVX-512, so this binary switches the kernel off
//! (process-wide, hence its own test binary) and checks f32 forward and backward against
//! the f64 computation.
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{DType, Tensor};

fn close(a: &Tensor, b: &Tensor, what: &str) {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 + 1e-4 * y.abs(),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn f32_conv_without_avx512_matches_f64() {
    #[cfg(target_arch = "x86_64")]
    edgedistill::backend::cpu::conv_avx512::set_disabled(true);
    let mut rng = Rng::new(5);
    for (cin, cout, groups, stride, pad, dil, hw) in [
        (8, 16, 1, 1, 1, 1, 23),
        (6, 9, 3, 2, 0, 2, 17),
        (64, 64, 1, 1, 1, 1, 40),
        (4, 4, 4, 1, 1, 1, 9),
    ] {
        let x = Tensor::randn([2, cin, hw, hw + 3], 0.0, 1.0, &mut rng);
        let w = Tensor::randn([cout, cin / groups, 3, 3], 0.0, 0.2, &mut rng);
        let b = Tensor::randn([cout], 0.0, 1.0, &mut rng);
        let p = Conv2dParams {
            stride: (stride, stride),
            padding: (pad, pad),
            dilation: (dil, dil),
            groups,
        };
        let run = |dt: DType| {
            let leaf = |t: &Tensor| t.to_dtype(dt).unwrap().detach().requires_grad_().unwrap();
            let (x, w, b) = (leaf(&x), leaf(&w), leaf(&b));
            let y = x.conv2d(&w, Some(&b), p).unwrap();
            y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            (y, x.grad().unwrap(), w.grad().unwrap(), b.grad().unwrap())
        };
        let (y32, dx32, dw32, db32) = run(DType::F32);
        let (y64, dx64, dw64, db64) = run(DType::F64);
        let tag = format!("cin {cin} cout {cout} groups {groups}");
        close(&y32, &y64, &format!("y {tag}"));
        close(&dx32, &dx64, &format!("dx {tag}"));
        // dw sums over many pixels: compare relative to its scale
        let scale = dw64
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar_f64()
            .unwrap();
        close(
            &dw32.div_scalar(scale).unwrap(),
            &dw64.div_scalar(scale).unwrap(),
            &format!("dw {tag}"),
        );
        close(
            &db32.div_scalar(scale).unwrap(),
            &db64.div_scalar(scale).unwrap(),
            &format!("db {tag}"),
        );
    }
    #[cfg(target_arch = "x86_64")]
    assert!(!edgedistill::backend::cpu::conv_avx512::available());
}
