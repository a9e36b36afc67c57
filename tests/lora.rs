//! LoRA linear: forward against the explicitly merged weight, gradcheck of every input,
//! frozen base behaviour and PEFT names of LoraLinear. (PyTorch parity of forward and all
//! five gradients: the lora_linear case of tests/fixtures/ops-torch.safetensors.)
mod common;
use common::*;
use edgedistill::Tensor;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::nn::{Forward, Linear, LoraLinear, Module};
use edgedistill::optim::{AdamW, AdamWConfig};
use edgedistill::tensor::Rng;

#[test]
fn forward_equals_merged_weight() {
    let (x, w, b, a, bm) = (
        randn(&[2, 3, 8], 1),
        randn(&[6, 8], 2),
        randn(&[6], 3),
        randn(&[4, 8], 4),
        randn(&[6, 4], 5),
    );
    let y = x.lora_linear(&w, Some(&b), &a, &bm, 0.75).unwrap();
    let merged = w
        .add(&bm.matmul(&a).unwrap().mul_scalar(0.75).unwrap())
        .unwrap();
    let want = x.linear(&merged, Some(&b)).unwrap();
    assert_eq!(y.dims(), &[2, 3, 6]);
    assert_close(&vals(&y), &vals(&want), 1e-5, 1e-5, "lora forward");
}

#[test]
fn gradcheck_every_input() {
    let ins = [
        randn(&[3, 5], 10),
        randn(&[4, 5], 11),
        randn(&[4], 12),
        randn(&[2, 5], 13),
        randn(&[4, 2], 14),
    ];
    gradcheck(
        "lora_linear",
        &ins,
        |t| t[0].lora_linear(&t[1], Some(&t[2]), &t[3], &t[4], 1.5),
        &GradcheckOpts::default(),
    )
    .unwrap();
    gradcheck(
        "lora_linear_nobias",
        &ins[..2]
            .iter()
            .chain(&ins[3..])
            .cloned()
            .collect::<Vec<_>>(),
        |t| t[0].lora_linear(&t[1], None, &t[2], &t[3], 0.5),
        &GradcheckOpts::default(),
    )
    .unwrap();
}

#[test]
fn lora_linear_layer_freezes_base_and_uses_peft_names() {
    let mut rng = Rng::new(7);
    let base = Linear::new(8, 6, true, &mut rng).unwrap();
    let x = Tensor::randn([5, 8], 0.0, 1.0, &mut rng);
    let base_y = base.forward(&x).unwrap().to_vec::<f32>().unwrap();
    let l = LoraLinear::wrap(base, 4, 8.0, &mut rng).unwrap();
    assert_eq!(l.scale, 2.0);
    let names: Vec<String> = l.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "bias", "lora_A.weight", "lora_B.weight"]);
    // B = 0: the wrapped layer starts equal to the base
    assert_eq!(l.forward(&x).unwrap().to_vec::<f32>().unwrap(), base_y);
    // training touches only the adapter; the frozen base records nothing and gets no grad
    let trainable: Vec<Tensor> = l
        .named_parameters()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(_, t)| t)
        .collect();
    assert_eq!(trainable.len(), 2);
    let w0 = l.base.weight.to_vec::<f32>().unwrap();
    let target = Tensor::randn([5, 6], 0.0, 1.0, &mut rng);
    let mut opt = AdamW::new(
        trainable,
        AdamWConfig {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..30 {
        opt.zero_grad();
        let loss = l
            .forward(&x)
            .unwrap()
            .sub(&target)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
        losses.push(loss.to_scalar_f64().unwrap());
    }
    assert!(l.base.weight.grad().is_none() && l.base.bias.as_ref().unwrap().grad().is_none());
    assert_eq!(l.base.weight.to_vec::<f32>().unwrap(), w0);
    assert!(
        losses[29] < 0.5 * losses[0],
        "adapter training lowers the loss: {} -> {}",
        losses[0],
        losses[29]
    );
}

#[test]
fn shape_errors_name_the_shapes() {
    let x = randn(&[3, 5], 1);
    let e = x
        .lora_linear(
            &randn(&[4, 5], 2),
            None,
            &randn(&[2, 6], 3),
            &randn(&[4, 2], 4),
            1.0,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 6]") && e.contains("[3, 5]"), "{e}");
    let e = x
        .lora_linear(
            &randn(&[4, 5], 2),
            None,
            &randn(&[2, 5], 3),
            &randn(&[4, 3], 4),
            1.0,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("[4, 3]"), "{e}");
}

/// The fused LoRA-with-dropout op equals the composed form and passes gradcheck.
#[test]
fn lora_dropout_fused_matches_composed_and_gradchecks() {
    use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
    let x = common::randn64(&[2, 3, 5], 1);
    let w = common::randn64(&[4, 5], 2);
    let b = common::randn64(&[4], 3);
    let a = common::randn64(&[2, 5], 4);
    let bm = common::randn64(&[4, 2], 5);
    let keep_v: Vec<u8> = (0..30).map(|i| u8::from(i % 3 != 0)).collect();
    let keep = edgedistill::Tensor::from_vec(keep_v.clone(), [2, 3, 5]).unwrap();
    let p = 0.25;
    let fused = x
        .lora_linear_dropout(&w, Some(&b), &a, &bm, 1.5, &keep, p)
        .unwrap();
    let m = edgedistill::Tensor::from_vec(
        keep_v
            .iter()
            .map(|&k| k as f64 / (1.0 - p))
            .collect::<Vec<_>>(),
        [2, 3, 5],
    )
    .unwrap();
    let composed = x
        .linear(&w, Some(&b))
        .unwrap()
        .add(
            &x.mul(&m)
                .unwrap()
                .linear(&a, None)
                .unwrap()
                .linear(&bm, None)
                .unwrap()
                .mul_scalar(1.5)
                .unwrap(),
        )
        .unwrap();
    common::assert_close(
        &common::vals(&fused),
        &common::vals(&composed),
        1e-12,
        1e-12,
        "fused",
    );
    gradcheck(
        "lora_linear_dropout",
        &[x, w, a, bm, b],
        |t| t[0].lora_linear_dropout(&t[1], Some(&t[4]), &t[2], &t[3], 1.5, &keep, p),
        &GradcheckOpts::default(),
    )
    .unwrap();
}
