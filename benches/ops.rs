//! Criterion benches for the foundation's hot ops (f32, CPU). Thread count comes from
//! RAYON_NUM_THREADS (set it to 2 to match BENCHMARKS.md). The same-run reference
//! comparison lives in `ed-bench`, which also times numpy/PyTorch.
use criterion::{Criterion, criterion_group, criterion_main};
use edgedistill::Tensor;
use edgedistill::tensor::{Conv2dParams, Rng};
use std::hint::black_box;

fn matmul(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let x = Tensor::randn([1024, 1024], 0.0, 1.0, &mut rng);
    let y = Tensor::randn([1024, 1024], 0.0, 1.0, &mut rng);
    c.bench_function("matmul_f32_1024x1024x1024", |b| {
        b.iter(|| black_box(x.matmul(&y).unwrap()))
    });
}

fn conv(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let x = Tensor::randn([1, 64, 160, 160], 0.0, 1.0, &mut rng);
    let w = Tensor::randn([64, 64, 3, 3], 0.0, 0.05, &mut rng);
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let mut g = c.benchmark_group("conv");
    g.sample_size(20);
    g.bench_function("conv3x3_f32_1x64x160x160_to_64", |b| {
        b.iter(|| black_box(x.conv2d(&w, None, p).unwrap()))
    });
    g.finish();
}

/// The INT8 engine's GEMM on the CPU: a 1×1 conv of a 80×80×256 feature map to 256
/// channels (M = 6400 pixels, N = 256, K = 256) with SiLU and f16 output.
fn int8_gemm(c: &mut Criterion) {
    use edgedistill::backend::cpu::int8_gemm::{Activation, Epilogue, Int8Out, int8_gemm};
    let (m, n, k) = (6400, 256, 256);
    let a: Vec<i8> = (0..m * k).map(|i| (i * 7 % 255) as i8).collect();
    let w: Vec<i8> = (0..n * k).map(|i| (i * 13 % 251) as i8).collect();
    let scale = vec![1e-3f32; n];
    let epi = Epilogue {
        scale: &scale,
        bias: None,
        act: Activation::Silu,
    };
    let mut out = vec![half::f16::ZERO; m * n];
    c.bench_function("int8_gemm_6400x256x256_silu_f16", |b| {
        b.iter(|| int8_gemm(&a, &w, (m, n, k), &epi, Int8Out::F16(&mut out)).unwrap())
    });
}

criterion_group!(benches, matmul, conv, int8_gemm);
criterion_main!(benches);
