//! The CUDA attention forward against the CPU reference (f32; the kernel's __expf and
//! summation order differ, so 1e-4 relative). Skips with a notice where no GPU exists.
mod common;
use common::*;
use edgedistill::Tensor;
use edgedistill::backend::cuda::CudaDevice;
use edgedistill::tensor::ops::attention::attention_cuda as attention_fwd;

#[test]
fn cuda_attention_matches_cpu_reference() {
    let dev = match CudaDevice::get(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED cuda_attention_matches_cpu_reference: {e}");
            return;
        }
    };
    let mut seed = 100;
    let mut next = || {
        seed += 1;
        seed
    };
    // (B, H, Lq, Lk, D, Dv, bias dims, padding)
    let cases: [(
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        Option<Vec<usize>>,
        bool,
    ); 6] = [
        (1, 2, 5, 7, 32, 32, None, false),
        (2, 3, 17, 45, 64, 64, Some(vec![1, 3, 17, 45]), true),
        (1, 1, 9, 33, 128, 128, Some(vec![9, 33]), false),
        (2, 2, 8, 64, 64, 40, Some(vec![2, 1, 1, 64]), true),
        (1, 4, 130, 257, 64, 64, Some(vec![1, 4, 130, 257]), true),
        (1, 1, 1, 1, 32, 96, None, false),
    ];
    for (b, h, lq, lk, d, dv, bias_dims, padding) in cases {
        let (q, k, v) = (
            randn(&[b, h, lq, d], next()),
            randn(&[b, h, lk, d], next()),
            randn(&[b, h, lk, dv], next()),
        );
        let bias = bias_dims.map(|s| randn(&s, next()));
        let pad = padding.then(|| {
            let m: Vec<u8> = (0..b * lk).map(|i| (i % 5 == 3) as u8).collect();
            Tensor::from_vec(m, [b, lk]).unwrap()
        });
        let want = q
            .scaled_dot_product_attention(&k, &v, bias.as_ref(), pad.as_ref(), None)
            .unwrap();
        let got = attention_fwd(dev, &q, &k, &v, bias.as_ref(), pad.as_ref(), None).unwrap();
        assert_eq!(got.dims(), want.dims());
        assert_close(
            &vals(&got),
            &vals(&want),
            1e-4,
            1e-4,
            &format!("B{b} H{h} Lq{lq} Lk{lk} D{d} Dv{dv}"),
        );
        eprintln!("B{b} H{h} Lq{lq} Lk{lk} D{d} Dv{dv}: matches");
    }
    // every key masked → NaN, as the CPU op and torch
    let (q, k, v) = (
        randn(&[1, 1, 3, 32], 1),
        randn(&[1, 1, 4, 32], 2),
        randn(&[1, 1, 4, 32], 3),
    );
    let all = Tensor::from_vec(vec![1u8; 4], [1, 4]).unwrap();
    assert!(
        vals(&attention_fwd(dev, &q, &k, &v, None, Some(&all), None).unwrap())
            .iter()
            .all(|x| x.is_nan())
    );
    // shape checks
    assert!(
        attention_fwd(
            dev,
            &randn(&[1, 1, 2, 256], 4),
            &randn(&[1, 1, 2, 256], 5),
            &randn(&[1, 1, 2, 8], 6),
            None,
            None,
            None
        )
        .is_err()
    );
}
