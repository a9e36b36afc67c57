//! The CUDA LoRA forward against the CPU reference (f32, summation order differs: 1e-4).
//! Skips with a notice where no GPU exists.
mod common;
use common::*;
use edgedistill::backend::cuda::CudaDevice;
use edgedistill::tensor::ops::lora::lora_linear_cuda;

#[test]
fn cuda_lora_forward_matches_cpu_reference() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED cuda_lora_forward_matches_cpu_reference: {e}");
            return;
        }
    };
    // (leading dims of x, in, out, r, bias): ragged tiles, r 1..64, no bias
    for (lead, k, m, r, bias) in [
        (vec![5usize], 7usize, 3usize, 1usize, true),
        (vec![2, 70], 100, 130, 16, true),
        (vec![64], 64, 64, 64, false),
        (vec![3, 1, 33], 257, 65, 8, true),
    ] {
        let mut xs = lead.clone();
        xs.push(k);
        let (x, w, a, bm) = (
            randn(&xs, 1),
            randn(&[m, k], 2),
            randn(&[r, k], 3),
            randn(&[m, r], 4),
        );
        let b = bias.then(|| randn(&[m], 5));
        let want = x.lora_linear(&w, b.as_ref(), &a, &bm, 0.5).unwrap();
        let got = lora_linear_cuda(dev, &x, &w, b.as_ref(), &a, &bm, 0.5).unwrap();
        assert_eq!(got.dims(), want.dims());
        assert_close(
            &vals(&got),
            &vals(&want),
            1e-4,
            1e-4,
            &format!("x {xs:?} out {m} r {r}"),
        );
        eprintln!("x {xs:?} W [{m}, {k}] r {r} bias {bias}: matches");
    }
    assert!(
        lora_linear_cuda(
            dev,
            &randn(&[2, 4], 1),
            &randn(&[3, 4], 2),
            None,
            &randn(&[65, 4], 3),
            &randn(&[3, 65], 4),
            1.0
        )
        .is_err(),
        "r > 64 refused"
    );
}
