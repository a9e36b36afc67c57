//! ModelEma and the dynamic loss scaler against their closed forms.
use edgedistill::nn::{BatchNorm2d, Module};
use edgedistill::optim::{LossScaler, ModelEma};
use edgedistill::{Result, Tensor};

#[test]
fn ema_follows_ultralytics_decay_and_covers_buffers() -> Result<()> {
    let bn = BatchNorm2d::new(2)?;
    let mut ema = ModelEma::with_decay(&bn, 0.9999, 2000.0)?;
    let set = |name: &str, v: f32| {
        for (n, t) in bn.named_parameters().into_iter().chain(bn.named_buffers()) {
            if n == name {
                t.assign(&Tensor::from_vec(vec![v; 2], [2]).unwrap())
                    .unwrap();
            }
        }
    };
    set("weight", 3.0); // started at 1
    set("running_mean", 2.0); // started at 0
    ema.update(&bn)?;
    let d = 0.9999 * (1.0 - (-1.0f64 / 2000.0).exp());
    let get = |name: &str| {
        ema.state()
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .to_vec_f64()
            .unwrap()[0]
    };
    let want_w = 1.0 * d + 3.0 * (1.0 - d);
    assert!(
        (get("weight") - want_w).abs() < 1e-6,
        "{} vs {want_w}",
        get("weight")
    );
    assert!((get("running_mean") - 2.0 * (1.0 - d)).abs() < 1e-6);
    assert_eq!(ema.updates, 1);
    // swap in for validation and back
    let backup = ema.swap_into(&bn)?;
    assert!((bn.named_parameters()[0].1.to_vec_f64()?[0] - want_w).abs() < 1e-6);
    ModelEma::restore(&bn, &backup)?;
    assert_eq!(bn.named_parameters()[0].1.to_vec_f64()?[0], 3.0);
    Ok(())
}

#[test]
fn loss_scaler_backs_off_and_grows() -> Result<()> {
    let mut s = LossScaler::new(true);
    assert_eq!(s.scale, 65536.0);
    let p = Tensor::from_vec(vec![1.0f32, 2.0], [2])?.requires_grad_()?;
    let loss = p.sum_all()?;
    s.scale_loss(&loss)?.backward()?;
    assert_eq!(p.grad().unwrap().to_vec::<f32>()?, [65536.0, 65536.0]);
    assert!(!s.unscale(std::slice::from_ref(&p))?);
    assert_eq!(p.grad().unwrap().to_vec::<f32>()?, [1.0, 1.0]);
    s.update(false);
    // an inf gradient: step skipped, scale halves
    p.zero_grad();
    p.mul(&Tensor::from_vec(vec![f32::INFINITY, 1.0], [2])?)?
        .sum_all()?
        .backward()?;
    assert!(s.unscale(std::slice::from_ref(&p))?);
    s.update(true);
    assert_eq!((s.scale, s.growth_tracker), (32768.0, 0));
    for _ in 0..1999 {
        s.update(false);
    }
    assert_eq!(s.scale, 32768.0);
    s.update(false);
    assert_eq!((s.scale, s.growth_tracker), (65536.0, 0));
    // disabled: identity
    let off = LossScaler::new(false);
    assert_eq!(off.scale_loss(&loss)?.to_scalar_f64()?, 3.0);
    Ok(())
}
