//! The CPU INT8 GEMM (reference for kernels/int8_gemm.cu) against a naive i64 sum and the
//! documented epilogue; packing for the dp4a kernel.
use edgedistill::backend::cpu::int8_gemm::{
    Activation, Epilogue, Int8Out, int8_gemm, int8_gemm_s32, requant,
};
use edgedistill::backend::cuda::int8_gemm::pack_k4;
use edgedistill::tensor::Rng;
use half::f16;

fn rand_i8(n: usize, rng: &mut Rng) -> Vec<i8> {
    (0..n)
        .map(|_| (rng.below(256) as i64 - 128) as i8)
        .collect()
}

fn naive(a: &[i8], b: &[i8], m: usize, n: usize, k: usize) -> Vec<i64> {
    let mut out = vec![0i64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|t| i64::from(a[i * k + t]) * i64::from(b[j * k + t]))
                .sum();
        }
    }
    out
}

#[test]
fn accumulators_are_exact() {
    let mut rng = Rng::new(1);
    for (m, n, k) in [
        (1, 1, 1),
        (3, 5, 7),
        (17, 9, 31),
        (8, 33, 32),
        (5, 4, 100),
        (2, 3, 0),
        (64, 64, 257),
    ] {
        let (a, b) = (rand_i8(m * k, &mut rng), rand_i8(n * k, &mut rng));
        let got = int8_gemm_s32(&a, &b, (m, n, k)).unwrap();
        let want = naive(&a, &b, m, n, k);
        assert!(
            got.iter().zip(&want).all(|(&g, &w)| i64::from(g) == w),
            "{m}x{n}x{k}"
        );
    }
    // The extreme product −128·−128 summed over a long K stays exact in i32.
    let k = 65_536;
    let a = vec![-128i8; k];
    let got = int8_gemm_s32(&a, &a, (1, 1, k)).unwrap();
    assert_eq!(i64::from(got[0]), 128 * 128 * k as i64);
}

#[test]
fn epilogue_follows_the_contract() {
    let mut rng = Rng::new(2);
    let (m, n, k) = (13, 11, 45);
    let (a, b) = (rand_i8(m * k, &mut rng), rand_i8(n * k, &mut rng));
    let scale: Vec<f32> = (0..n).map(|j| 1e-3 * (j as f32 + 1.0)).collect();
    let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
    let acc = naive(&a, &b, m, n, k);
    for act in [Activation::None, Activation::Relu, Activation::Silu] {
        for with_bias in [false, true] {
            let epi = Epilogue {
                scale: &scale,
                bias: with_bias.then_some(&bias[..]),
                act,
            };
            let want: Vec<f32> = (0..m * n)
                .map(|e| {
                    let j = e % n;
                    let y =
                        (acc[e] as f32).mul_add(scale[j], if with_bias { bias[j] } else { 0.0 });
                    match act {
                        Activation::None => y,
                        Activation::Relu => y.max(0.0),
                        Activation::Silu => y / (1.0 + (-y).exp()),
                    }
                })
                .collect();
            let mut f = vec![0f32; m * n];
            int8_gemm(&a, &b, (m, n, k), &epi, Int8Out::F32(&mut f)).unwrap();
            assert_eq!(f, want, "{act:?} bias={with_bias}");
            let mut h = vec![f16::ZERO; m * n];
            int8_gemm(&a, &b, (m, n, k), &epi, Int8Out::F16(&mut h)).unwrap();
            assert!(h.iter().zip(&want).all(|(h, w)| *h == f16::from_f32(*w)));
            let mut q = vec![0i8; m * n];
            int8_gemm(
                &a,
                &b,
                (m, n, k),
                &epi,
                Int8Out::S8 {
                    out: &mut q,
                    inv_scale: 20.0,
                },
            )
            .unwrap();
            assert!(q.iter().zip(&want).all(|(q, w)| *q == requant(*w, 20.0)));
            if act == Activation::Relu {
                assert!(f.iter().all(|&v| v >= 0.0));
            }
        }
    }
}

#[test]
fn requant_rounds_ties_to_even_and_saturates() {
    assert_eq!(requant(0.5, 1.0), 0);
    assert_eq!(requant(1.5, 1.0), 2);
    assert_eq!(requant(2.5, 1.0), 2);
    assert_eq!(requant(-2.5, 1.0), -2);
    assert_eq!(requant(1000.0, 1.0), 127);
    assert_eq!(requant(-1000.0, 1.0), -128);
    assert_eq!(requant(f32::NAN, 1.0), 0);
    assert_eq!(requant(3.0, 0.5), 2); // 1.5 → 2
}

#[test]
fn shape_errors_name_the_sizes() {
    let scale = [1.0f32; 3];
    let epi = Epilogue {
        scale: &scale,
        bias: None,
        act: Activation::None,
    };
    let mut out = vec![0f32; 6];
    let e = int8_gemm(
        &[0; 8],
        &[0; 12],
        (2, 3, 4),
        &Epilogue {
            scale: &scale[..2],
            ..epi
        },
        Int8Out::F32(&mut out),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("int8_gemm") && e.contains("scale 2") && e.contains("m=2 n=3 k=4"),
        "{e}"
    );
    let e = int8_gemm(&[0; 7], &[0; 12], (2, 3, 4), &epi, Int8Out::F32(&mut out))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a 7"), "{e}");
}

#[test]
fn packing_for_dp4a_is_little_endian_and_zero_padded() {
    let v: Vec<i8> = vec![1, -1, 2, -128, 5, 6, /* row 2 */ 7, 8, 9, 10, 11, 12];
    let p = pack_k4(&v, 2, 6);
    assert_eq!(p.len(), 4);
    assert_eq!(p[0], i32::from_le_bytes([1, 0xFF, 2, 0x80]));
    assert_eq!(p[1], i32::from_le_bytes([5, 6, 0, 0]));
    assert_eq!(p[2], i32::from_le_bytes([7, 8, 9, 10]));
    assert_eq!(p[3], i32::from_le_bytes([11, 12, 0, 0]));
    // dp4a semantics on the packed words equal the byte dot product.
    let dp4a = |x: i32, y: i32| -> i32 {
        x.to_le_bytes()
            .iter()
            .zip(y.to_le_bytes())
            .map(|(&a, b)| i32::from(a as i8) * i32::from(b as i8))
            .sum()
    };
    let want = int8_gemm_s32(&v[..6], &v[6..], (1, 1, 6)).unwrap()[0];
    assert_eq!(dp4a(p[0], p[2]) + dp4a(p[1], p[3]), want);
}
