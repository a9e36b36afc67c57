//! Criterion benches for augmentation on 640×640 samples with 8 masked objects: the
//! affine warp (image + masks), the HSV jitter, the box blur, and the default registry
//! pipeline (mosaic, affine, HSV, flip) as the loader runs it per sample.
use criterion::{Criterion, criterion_group, criterion_main};
use edgedistill::data::augment::{
    AffineParams, Augmenter, Environment, HsvParams, affine, blur_noise, color, plan,
};
use edgedistill::data::{Instance, Sample};
use edgedistill::tensor::Rng;
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::hint::black_box;

const S: u32 = 640;

fn sample(seed: u64) -> Sample {
    let mut rng = Rng::new(seed);
    let raw: Vec<u8> = (0..S * S * 3).map(|_| rng.below(256) as u8).collect();
    let mut image = RgbImage::from_raw(S, S, raw).unwrap();
    let mut instances = Vec::new();
    for k in 0..8u32 {
        let (x0, y0) = (40 + 70 * k, 30 + 60 * k);
        let mut mask = GrayImage::new(S, S);
        for y in y0..y0 + 60 {
            for x in x0..x0 + 50 {
                mask.put_pixel(x, y, Luma([1]));
                image.put_pixel(x, y, Rgb([200, 30, 30]));
            }
        }
        let bbox = [x0 as f32, y0 as f32, (x0 + 50) as f32, (y0 + 60) as f32];
        instances.push(Instance {
            class: k as usize,
            bbox,
            mask: Some(mask),
            crowd: false,
        });
    }
    Sample {
        id: seed,
        image,
        instances,
    }
}

fn augment(c: &mut Criterion) {
    let s = sample(0);
    let mut g = c.benchmark_group("augment_640");
    g.sample_size(20);
    let p = AffineParams {
        degrees: 10.0,
        shear: 2.0,
        ..Default::default()
    };
    g.bench_function("affine_image_and_8_masks", |b| {
        let mut rng = Rng::new(1);
        b.iter(|| black_box(affine::random_affine(s.clone(), &p, S, S, &mut rng)))
    });
    g.bench_function("hsv", |b| {
        let mut rng = Rng::new(2);
        b.iter(|| {
            let mut img = s.image.clone();
            color::random_hsv(&mut img, &HsvParams::default(), &mut rng);
            black_box(img)
        })
    });
    g.bench_function("blur_k7", |b| {
        b.iter(|| black_box(blur_noise::box_blur(&s.image, 7)))
    });
    let aug = Augmenter::new(plan(&[], &Environment::default(), "medium").unwrap(), S).unwrap();
    let pool: Vec<Sample> = (1..4).map(sample).collect();
    g.bench_function("default_pipeline_mosaic_affine_hsv_flip", |b| {
        let mut rng = Rng::new(3);
        let mut partners = |r: &mut Rng| Ok(pool[r.below(3) as usize].clone());
        b.iter(|| black_box(aug.apply(s.clone(), &mut partners, &mut rng).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, augment);
criterion_main!(benches);
