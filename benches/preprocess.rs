//! Criterion benches for per-model preprocessing of a 1920×1080 frame (single thread; the
//! resamplers do not use rayon). For comparison, the references on the same machine with one
//! thread (cv2.setNumThreads(1), torch.set_num_threads(1)): ultralytics LetterBox 1.16 ms,
//! plus the predictor's float /255 2.27 ms; SamImageProcessor 44 ms; GroundingDino 43 ms.
use criterion::{Criterion, criterion_group, criterion_main};
use edgedistill::data::preprocess::{
    Letterbox, grounding_dino_preprocess, letterbox, sam_preprocess,
};
use image::{Rgb, RgbImage};
use std::hint::black_box;

fn frame() -> RgbImage {
    RgbImage::from_fn(1920, 1080, |x, y| {
        let v = (x * 73 + y * 151).wrapping_mul(2654435761);
        Rgb([(v >> 24) as u8, (v >> 16) as u8, (v >> 8) as u8])
    })
}

fn preprocess(c: &mut Criterion) {
    let img = frame();
    let mut g = c.benchmark_group("preprocess_1920x1080");
    g.sample_size(20);
    g.bench_function("letterbox_640_u8", |b| {
        b.iter(|| black_box(Letterbox::default().apply_u8(&img).unwrap()))
    });
    g.bench_function("letterbox_640_f32", |b| {
        b.iter(|| black_box(letterbox(&img, 640).unwrap()))
    });
    g.bench_function("sam_1024", |b| {
        b.iter(|| black_box(sam_preprocess(&img).unwrap()))
    });
    g.bench_function("grounding_dino_800_1333", |b| {
        b.iter(|| black_box(grounding_dino_preprocess(&img).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, preprocess);
criterion_main!(benches);
