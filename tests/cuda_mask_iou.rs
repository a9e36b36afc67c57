//! The CUDA mask_iou kernel against its CPU reference: identical matrices (both divide the
//! same integer counts in f64). Runs where a GPU exists; elsewhere prints SKIPPED (CI has
//! no GPU; the kernel still compiles there through tests/kernels_compile.rs).
use edgedistill::backend::cpu::mask_iou::{PackedMasks, mask_iou as cpu_iou};
use edgedistill::backend::cuda::{CudaDevice, mask_iou::mask_iou as gpu_iou};
use edgedistill::tensor::Rng;

/// n masks of h×w: rectangles and ellipses of random size and place, some empty.
fn masks(n: usize, h: usize, w: usize, rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![0u8; n * h * w];
    for i in 0..n {
        if rng.below(10) == 0 {
            continue; // empty mask
        }
        let (cx, cy) = (rng.uniform() * w as f64, rng.uniform() * h as f64);
        let (rx, ry) = (
            1.0 + rng.uniform() * w as f64 / 3.0,
            1.0 + rng.uniform() * h as f64 / 3.0,
        );
        let ellipse = rng.below(2) == 0;
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = ((x as f64 + 0.5 - cx) / rx, (y as f64 + 0.5 - cy) / ry);
                let inside = if ellipse {
                    dx * dx + dy * dy <= 1.0
                } else {
                    dx.abs() <= 1.0 && dy.abs() <= 1.0
                };
                v[(i * h + y) * w + x] = inside as u8;
            }
        }
    }
    v
}

#[test]
fn cuda_mask_iou_equals_cpu_reference() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED cuda_mask_iou_equals_cpu_reference: {e}");
            return;
        }
    };
    eprintln!("device: {} (sm_{}{})", dev.name, dev.cc.0, dev.cc.1);
    let mut rng = Rng::new(11);
    for (np, ng, h, w) in [
        (7, 5, 70, 130),
        (40, 33, 64, 64),
        (100, 100, 160, 200),
        (1, 1, 1, 1),
        (0, 3, 8, 8),
    ] {
        let pred = PackedMasks::from_u8(&masks(np, h, w, &mut rng), np, h, w).unwrap();
        let gt = PackedMasks::from_u8(&masks(ng, h, w, &mut rng), ng, h, w).unwrap();
        let crowd: Vec<bool> = (0..ng).map(|_| rng.below(4) == 0).collect();
        let a = cpu_iou(&pred, &gt, &crowd).unwrap();
        let b = gpu_iou(dev, &pred, &gt, &crowd).unwrap();
        assert_eq!(a.len(), np * ng);
        let nonzero = a.iter().filter(|&&v| v > 0.0).count();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "{np}x{ng} {h}x{w}: pair {i}: cpu {x} gpu {y}"
            );
        }
        eprintln!("{np}×{ng} masks of {h}×{w}: identical, {nonzero} non-zero pairs");
    }
    // the same shape checks as the CPU path
    let p = PackedMasks::from_u8(&[1, 0, 0, 1], 1, 2, 2).unwrap();
    let g = PackedMasks::from_u8(&[1, 0, 0, 1, 1, 1], 1, 2, 3).unwrap();
    assert!(gpu_iou(dev, &p, &g, &[false]).is_err());
}
