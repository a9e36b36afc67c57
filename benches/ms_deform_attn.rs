//! Fused multi-scale deformable attention against the per-level grid_sample composition
//! (transformers' pure-PyTorch path), f32 CPU, on Grounding DINO tiny's shapes: d_model 256
//! (8 heads × 32), 4 levels of an 800×1333 image, 4 points. The encoder (Q = S = 22223)
//! forward; the decoder (Q = 900) forward + backward. RAYON_NUM_THREADS sets the threads.
use criterion::{Criterion, criterion_group, criterion_main};
use edgedistill::Tensor;
use edgedistill::tensor::Rng;
use edgedistill::tensor::ops::ms_deform_attn::ms_deform_attn_composed;
use std::hint::black_box;

const LEVELS: [(usize, usize); 4] = [(100, 167), (50, 84), (25, 42), (13, 21)];
const HEADS: usize = 8;
const D: usize = 32;
const P: usize = 4;

fn inputs(q: usize) -> [Tensor; 3] {
    let s: usize = LEVELS.iter().map(|&(h, w)| h * w).sum();
    let mut rng = Rng::new(0);
    let value = Tensor::randn([1, s, HEADS, D], 0.0, 1.0, &mut rng);
    let loc = Tensor::rand([1, q, HEADS, LEVELS.len(), P, 2], -0.05, 1.05, &mut rng);
    let attn = Tensor::randn([1, q, HEADS, LEVELS.len() * P], 0.0, 1.0, &mut rng)
        .softmax(-1)
        .unwrap()
        .reshape([1, q, HEADS, LEVELS.len(), P])
        .unwrap();
    [value, loc, attn]
}

fn encoder_forward(c: &mut Criterion) {
    let q = LEVELS.iter().map(|&(h, w)| h * w).sum();
    let [v, l, a] = inputs(q);
    let mut g = c.benchmark_group("ms_deform_attn_encoder_fwd_q22223");
    g.sample_size(10);
    g.bench_function("fused", |b| {
        b.iter(|| black_box(v.ms_deform_attn(&LEVELS, &l, &a).unwrap()))
    });
    g.bench_function("composed_grid_sample", |b| {
        b.iter(|| black_box(ms_deform_attn_composed(&v, &LEVELS, &l, &a).unwrap()))
    });
    g.finish();
}

fn decoder_forward_backward(c: &mut Criterion) {
    let [v, l, a] = inputs(900);
    let gout = Tensor::ones([1, 900, HEADS * D], edgedistill::DType::F32);
    let step = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor| {
        let [v, l, a] = [&v, &l, &a].map(|t| t.detach().requires_grad_().unwrap());
        f(&v, &l, &a)
            .mul(&gout)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        black_box((v.grad(), l.grad(), a.grad()))
    };
    let mut g = c.benchmark_group("ms_deform_attn_decoder_fwd_bwd_q900");
    g.sample_size(10);
    g.bench_function("fused", |b| {
        b.iter(|| step(&|v, l, a| v.ms_deform_attn(&LEVELS, l, a).unwrap()))
    });
    g.bench_function("composed_grid_sample", |b| {
        b.iter(|| step(&|v, l, a| ms_deform_attn_composed(v, &LEVELS, l, a).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, encoder_forward, decoder_forward_backward);
criterion_main!(benches);
