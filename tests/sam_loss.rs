//! SAM's mask loss terms against torchvision's sigmoid_focal_loss and the dice formula
//! (values and gradients, f64), gradchecks, and the IoU/MSE part.
mod common;
use edgedistill::autograd::gradcheck::{GradcheckOpts, gradcheck};
use edgedistill::io::Safetensors;
use edgedistill::loss::sam::{SamLossConfig, dice_loss, hard_iou, sam_loss, sigmoid_focal_loss};
use edgedistill::{DType, Tensor};

fn fixture() -> Safetensors {
    Safetensors::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sam-loss.safetensors"),
    )
    .unwrap()
}

#[test]
fn focal_and_dice_match_torch() {
    let fx = fixture();
    let x = fx.tensor("logits").unwrap().requires_grad_().unwrap();
    let t = fx.tensor("targets").unwrap();
    let focal = sigmoid_focal_loss(&x, &t, 0.25, 2.0).unwrap();
    common::assert_close(
        &common::vals(&focal),
        &common::vals(&fx.tensor("focal").unwrap()),
        1e-12,
        1e-10,
        "focal",
    );
    focal.sum_all().unwrap().backward().unwrap();
    let g = x.grad().unwrap();
    common::assert_close(
        &common::vals(&g),
        &common::vals(&fx.tensor("focal_grad").unwrap()),
        1e-12,
        1e-9,
        "focal grad",
    );

    let x = fx.tensor("logits").unwrap().requires_grad_().unwrap();
    let dice = dice_loss(&x, &t).unwrap();
    common::assert_close(
        &common::vals(&dice),
        &common::vals(&fx.tensor("dice").unwrap()),
        1e-12,
        1e-10,
        "dice",
    );
    dice.sum_all().unwrap().backward().unwrap();
    common::assert_close(
        &common::vals(&x.grad().unwrap()),
        &common::vals(&fx.tensor("dice_grad").unwrap()),
        1e-12,
        1e-9,
        "dice grad",
    );
}

#[test]
fn gradchecks() {
    let x = common::randn64(&[2, 3, 4], 1);
    let t = common::randn64(&[2, 3, 4], 2)
        .gt_scalar(0.3)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let o = GradcheckOpts::default();
    gradcheck(
        "focal",
        std::slice::from_ref(&x),
        |v| sigmoid_focal_loss(&v[0], &t, 0.25, 2.0),
        &o,
    )
    .unwrap();
    gradcheck("dice", &[x], |v| dice_loss(&v[0], &t), &o).unwrap();
}

#[test]
fn iou_term_and_total() {
    // Mask 0: logits > 0 on 2 pixels, target on 3 (overlap 2) → IoU 2/3; mask 1 all empty → 1.
    let logits = Tensor::from_vec(
        vec![1.0f32, 2.0, -1.0, -1.0, -3.0, -3.0, -3.0, -3.0],
        [2, 2, 2],
    )
    .unwrap();
    let targets =
        Tensor::from_vec(vec![1.0f32, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [2, 2, 2]).unwrap();
    let ious = hard_iou(&logits, &targets).unwrap();
    assert!(
        (ious[0] - 2.0 / 3.0).abs() < 1e-12 && ious[1] == 1.0,
        "{ious:?}"
    );
    let pred = Tensor::from_vec(vec![0.5f32, 1.0], [2]).unwrap();
    let cfg = SamLossConfig::default();
    let (total, items) = sam_loss(&logits, &pred, &targets, &cfg).unwrap();
    let get = |k: &str| items.iter().find(|(n, _)| n == k).unwrap().1;
    let want_iou = ((0.5f64 - 2.0 / 3.0).powi(2) + 0.0) / 2.0;
    assert!((get("iou") - want_iou).abs() < 1e-6, "{items:?}");
    let want = 20.0 * get("focal") + get("dice") + get("iou");
    assert!((total.to_scalar_f64().unwrap() - want).abs() < 1e-5);
    assert!(sam_loss(&logits, &Tensor::zeros([3], DType::F32), &targets, &cfg).is_err());
}
