//! kernels/int8_gemm.cu (dp4a) against the CPU reference: bit-identical for act none/relu
//! (same f32 operations), a few ulp for SiLU (expf vs Rust's exp). Skips with a notice
//! where no GPU exists.
use edgedistill::backend::cpu::int8_gemm::{Activation, Epilogue, Int8Out, int8_gemm};
use edgedistill::backend::cuda::CudaDevice;
use edgedistill::backend::cuda::int8_gemm::int8_gemm_cuda;
use edgedistill::tensor::Rng;
use half::f16;

#[test]
fn cuda_int8_gemm_matches_cpu_reference() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED cuda_int8_gemm_matches_cpu_reference: {e}");
            return;
        }
    };
    let mut rng = Rng::new(5);
    let mut r8 = |n: usize| -> Vec<i8> {
        (0..n)
            .map(|_| (rng.below(256) as i64 - 128) as i8)
            .collect()
    };
    for (m, n, k) in [
        (1, 1, 1),
        (5, 7, 3),
        (64, 64, 64),
        (65, 130, 257),
        (300, 17, 1024),
    ] {
        let (a, b) = (r8(m * k), r8(n * k));
        let scale: Vec<f32> = (0..n).map(|j| 1e-3 * (1.0 + j as f32 % 7.0)).collect();
        let bias: Vec<f32> = (0..n).map(|j| (j as f32 - 3.0) * 0.1).collect();
        for act in [Activation::None, Activation::Relu, Activation::Silu] {
            let epi = Epilogue {
                scale: &scale,
                bias: Some(&bias),
                act,
            };
            let (mut want, mut got) = (vec![0f32; m * n], vec![0f32; m * n]);
            int8_gemm(&a, &b, (m, n, k), &epi, Int8Out::F32(&mut want)).unwrap();
            int8_gemm_cuda(dev, &a, &b, (m, n, k), &epi, Int8Out::F32(&mut got)).unwrap();
            for (g, w) in got.iter().zip(&want) {
                let tol = if act == Activation::Silu {
                    4.0 * f32::EPSILON * w.abs().max(1e-3)
                } else {
                    0.0
                };
                assert!((g - w).abs() <= tol, "{m}x{n}x{k} {act:?}: {g} vs {w}");
            }
            if act != Activation::Silu {
                let (mut wh, mut gh) = (vec![f16::ZERO; m * n], vec![f16::ZERO; m * n]);
                int8_gemm(&a, &b, (m, n, k), &epi, Int8Out::F16(&mut wh)).unwrap();
                int8_gemm_cuda(dev, &a, &b, (m, n, k), &epi, Int8Out::F16(&mut gh)).unwrap();
                assert_eq!(gh, wh);
                let (mut wq, mut gq) = (vec![0i8; m * n], vec![0i8; m * n]);
                int8_gemm(
                    &a,
                    &b,
                    (m, n, k),
                    &epi,
                    Int8Out::S8 {
                        out: &mut wq,
                        inv_scale: 8.0,
                    },
                )
                .unwrap();
                int8_gemm_cuda(
                    dev,
                    &a,
                    &b,
                    (m, n, k),
                    &epi,
                    Int8Out::S8 {
                        out: &mut gq,
                        inv_scale: 8.0,
                    },
                )
                .unwrap();
                assert_eq!(gq, wq);
            }
        }
    }
}
