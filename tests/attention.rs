//! Attention reference: gradcheck through bias and padding mask, default scale, errors.
//! (PyTorch SDPA parity: the attention case of tests/fixtures/ops-torch.safetensors.)
mod common;
use common::*;
use edgedistill::Tensor;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};

#[test]
fn gradcheck_q_k_v_bias_with_padding() {
    let pad = Tensor::from_vec(vec![0u8, 0, 1, 0, 1, 0], [2, 3]).unwrap();
    let ins = [
        randn(&[2, 2, 4, 3], 1),
        randn(&[2, 2, 3, 3], 2),
        randn(&[2, 2, 3, 5], 3),
        randn(&[2, 4, 3], 4),
    ];
    gradcheck(
        "attention",
        &ins,
        |t| t[0].scaled_dot_product_attention(&t[1], &t[2], Some(&t[3]), Some(&pad), None),
        &GradcheckOpts::default(),
    )
    .unwrap();
}

#[test]
fn matches_direct_formula_and_masks_keys() {
    let (q, k, v) = (
        randn(&[1, 1, 2, 4], 5),
        randn(&[1, 1, 3, 4], 6),
        randn(&[1, 1, 3, 2], 7),
    );
    let pad = Tensor::from_vec(vec![0u8, 1, 0], [1, 3]).unwrap();
    let y = vals(
        &q.scaled_dot_product_attention(&k, &v, None, Some(&pad), None)
            .unwrap(),
    );
    let (qv, kv, vv) = (vals(&q), vals(&k), vals(&v));
    for i in 0..2 {
        let s: Vec<f64> = (0..3)
            .map(|j| (0..4).map(|d| qv[i * 4 + d] * kv[j * 4 + d]).sum::<f64>() / 2.0)
            .collect();
        let e: Vec<f64> = (0..3)
            .map(|j| {
                if j == 1 {
                    0.0
                } else {
                    (s[j] - s[0].max(s[2])).exp()
                }
            })
            .collect();
        let z: f64 = e.iter().sum();
        for c in 0..2 {
            let want: f64 = (0..3).map(|j| e[j] / z * vv[j * 2 + c]).sum();
            assert!(
                (y[i * 2 + c] - want).abs() < 1e-5,
                "q {i} col {c}: {} vs {want}",
                y[i * 2 + c]
            );
        }
    }
    // every key masked: NaN, as torch
    let all = Tensor::from_vec(vec![1u8, 1, 1], [1, 3]).unwrap();
    assert!(
        vals(
            &q.scaled_dot_product_attention(&k, &v, None, Some(&all), None)
                .unwrap()
        )
        .iter()
        .all(|x| x.is_nan())
    );
}

#[test]
fn shape_errors_name_the_shapes() {
    let q = randn(&[1, 2, 3, 4], 1);
    let e = q
        .scaled_dot_product_attention(
            &randn(&[1, 2, 5, 3], 2),
            &randn(&[1, 2, 5, 4], 3),
            None,
            None,
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[1, 2, 5, 3]") && e.contains("[1, 2, 3, 4]"),
        "{e}"
    );
    let k = randn(&[1, 2, 5, 4], 2);
    let e = q
        .scaled_dot_product_attention(&k, &k, Some(&randn(&[2, 3, 6], 4)), None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 3, 6]"), "{e}");
    let bad_mask = Tensor::zeros([1, 4], edgedistill::DType::U8);
    assert!(
        q.scaled_dot_product_attention(&k, &k, None, Some(&bad_mask), None)
            .is_err()
    );
}
