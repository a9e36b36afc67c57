//! The CUDA multi-scale deformable attention (forward and backward) against the CPU op (f32;
//! the kernels' summation order and atomics differ, so 1e-4). Skips with a notice where no
//! GPU exists.
mod common;
use common::*;
use edgedistill::backend::cuda::CudaDevice;
use edgedistill::tensor::Rng;
use edgedistill::tensor::ops::ms_deform_attn::{ms_deform_attn_backward_cuda, ms_deform_attn_cuda};
use edgedistill::{DType, Tensor};

/// (B, H, D, Q, P, levels)
type Case = (usize, usize, usize, usize, usize, Vec<(usize, usize)>);

#[test]
fn cuda_ms_deform_attn_matches_cpu_reference() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED cuda_ms_deform_attn_matches_cpu_reference: {e}");
            return;
        }
    };
    // (B, H, D, Q, P, levels): odd sizes, D below / above / at a warp, GD-tiny-like.
    let cases: [Case; 4] = [
        (2, 2, 4, 6, 3, vec![(5, 7), (3, 4), (1, 2)]),
        (1, 3, 33, 17, 2, vec![(9, 11), (4, 5)]),
        (2, 8, 32, 50, 4, vec![(20, 34), (10, 17), (5, 9), (3, 5)]),
        (1, 1, 64, 1, 1, vec![(1, 1)]),
    ];
    for (i, (b, h, d, q, p, levels)) in cases.into_iter().enumerate() {
        let (nl, s) = (levels.len(), levels.iter().map(|&(a, b)| a * b).sum());
        let mut rng = Rng::new(200 + i as u64);
        let value = randn(&[b, s, h, d], 300 + i as u64);
        let loc = Tensor::rand([b, q, h, nl, p, 2], -0.2, 1.2, &mut rng);
        let attn = randn(&[b, q, h, nl * p], 400 + i as u64)
            .softmax(-1)
            .unwrap()
            .reshape([b, q, h, nl, p])
            .unwrap();
        let gout = randn(&[b, q, h * d], 500 + i as u64);
        assert_eq!(value.dtype(), DType::F32);
        let what = format!("B{b} H{h} D{d} Q{q} P{p} levels {levels:?}");

        let [v, l, a] = [&value, &loc, &attn].map(|t| t.detach().requires_grad_().unwrap());
        let want = v.ms_deform_attn(&levels, &l, &a).unwrap();
        want.mul(&gout)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let got = ms_deform_attn_cuda(dev, &value, &levels, &loc, &attn).unwrap();
        assert_eq!(got.dims(), want.dims());
        assert_close(
            &vals(&got),
            &vals(&want),
            1e-4,
            1e-4,
            &format!("{what}: out"),
        );

        let grads = ms_deform_attn_backward_cuda(dev, &value, &levels, &loc, &attn, &gout).unwrap();
        for (name, (g, t)) in ["value", "loc", "attn"]
            .iter()
            .zip(grads.iter().zip([&v, &l, &a]))
        {
            assert_eq!(g.dims(), t.dims());
            assert_close(
                &vals(g),
                &vals(&t.grad().unwrap()),
                1e-4,
                1e-4,
                &format!("{what}: grad {name}"),
            );
        }
        eprintln!("{what}: forward and backward match");
    }
    // A NaN location gives NaN in its query head, as on the CPU.
    let levels = [(3, 4)];
    let v = randn(&[1, 12, 2, 8], 5);
    let mut lv = Tensor::rand([1, 3, 2, 1, 2, 2], 0.0, 1.0, &mut Rng::new(6))
        .to_vec::<f32>()
        .unwrap();
    lv[5] = f32::NAN;
    let l = Tensor::from_vec(lv, [1, 3, 2, 1, 2, 2]).unwrap();
    let a = randn(&[1, 3, 2, 1, 2], 7);
    let want = vals(&v.ms_deform_attn(&levels, &l, &a).unwrap());
    assert!(want.iter().any(|x| x.is_nan()));
    let got = vals(&ms_deform_attn_cuda(dev, &v, &levels, &l, &a).unwrap());
    assert_close(&got, &want, 1e-4, 1e-4, "NaN location");
    // The CPU op's shape checks apply.
    let v = randn(&[1, 5, 1, 4], 1);
    let l = randn(&[1, 2, 1, 1, 1, 2], 2);
    let a = randn(&[1, 2, 1, 1, 1], 3);
    assert!(ms_deform_attn_cuda(dev, &v, &[(2, 3)], &l, &a).is_err());
    assert!(
        ms_deform_attn_backward_cuda(dev, &v, &[(1, 5)], &l, &a, &randn(&[1, 2, 3], 4)).is_err()
    );
}
