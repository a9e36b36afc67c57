//! The grouped optimizer against torch.optim with three parameter groups (ultralytics'
//! layout), group lrs and momenta changed between steps as the scheduler does. Reference:
//! tools/reference/make_train_fixture.py (torch 2.15, float64).
use edgedistill::io::StateDict;
use edgedistill::nn::{BatchNorm2d, Conv2d, Linear, Sequential};
use edgedistill::optim::{GroupKind, Optimizer, OptimizerKind, clip_grad_norm, grad_norm};
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{Result, Tensor};

const NAMES: [&str; 3] = ["w", "bn", "b"];

fn fixture() -> StateDict {
    StateDict::open("tests/fixtures/optim-groups-torch.safetensors").unwrap()
}

/// Sets `p.grad = g` through a real backward of sum(p * g).
fn set_grad(p: &Tensor, g: &Tensor) -> Result<()> {
    p.zero_grad();
    p.mul(g)?.sum_all()?.backward()
}

fn run(kind: OptimizerKind, prefix: &str) -> Result<()> {
    let sd = fixture();
    let params: Vec<Tensor> = NAMES
        .iter()
        .map(|n| {
            sd.get(&format!("init.{n}"))
                .unwrap()
                .requires_grad_()
                .unwrap()
        })
        .collect();
    let kinds = [GroupKind::Weight, GroupKind::Norm, GroupKind::Bias];
    let groups = (0..3)
        .map(|i| (kinds[i], vec![(NAMES[i].to_string(), params[i].clone())]))
        .collect();
    let mut opt = Optimizer::new(kind, groups, 0.01, 0.9, 5e-4)?;
    assert_eq!(opt.groups[0].weight_decay, 5e-4);
    assert_eq!(opt.groups[2].weight_decay, 0.0);
    let lrs = sd.get("lrs")?.to_vec_f64()?;
    let moms = sd.get("moms")?.to_vec_f64()?;
    for s in 0..4 {
        for (i, n) in NAMES.iter().enumerate() {
            let g = sd.get(&format!("grads.{n}"))?.narrow(0, s, 1)?.squeeze(0)?;
            set_grad(&params[i], &g)?;
            opt.groups[i].lr = lrs[s * 3 + i];
            opt.groups[i].momentum = moms[s];
        }
        opt.step()?;
    }
    for (i, n) in NAMES.iter().enumerate() {
        let got = params[i].to_vec_f64()?;
        let want = sd.get(&format!("{prefix}.{n}"))?.to_vec_f64()?;
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-12,
                "{prefix}.{n}: got {got:?} want {want:?}"
            );
        }
        // and the update did something
        let init = sd.get(&format!("init.{n}"))?.to_vec_f64()?;
        assert!(got.iter().zip(&init).any(|(a, b)| (a - b).abs() > 1e-4));
    }
    Ok(())
}

#[test]
fn sgd_nesterov_groups_match_torch() -> Result<()> {
    run(OptimizerKind::sgd(), "sgd")
}

#[test]
fn adamw_groups_match_torch() -> Result<()> {
    run(OptimizerKind::adamw(), "adamw")
}

#[test]
fn groups_from_module_follow_ultralytics() -> Result<()> {
    let mut rng = Rng::new(0);
    let p = Conv2dParams::default();
    let m = Sequential::new()
        .push(Conv2d::new(3, 4, (3, 3), p, false, &mut rng)?)
        .push(BatchNorm2d::new(4)?)
        .push(Linear::new(4, 2, true, &mut rng)?);
    let opt = Optimizer::from_module(&m, OptimizerKind::sgd(), 0.01, 0.937, 1e-3, None)?;
    let names = |i: usize| opt.groups[i].names.clone();
    assert_eq!(names(0), ["0.weight", "2.weight"]);
    assert_eq!(names(1), ["1.weight"]);
    assert_eq!(names(2), ["1.bias", "2.bias"]);
    assert_eq!(
        opt.groups
            .iter()
            .map(|g| g.weight_decay)
            .collect::<Vec<_>>(),
        [1e-3, 0.0, 0.0]
    );
    // a custom classifier: everything with decay
    let all = |_: &str, _: &Tensor| GroupKind::Weight;
    let opt = Optimizer::from_module(&m, OptimizerKind::sgd(), 0.01, 0.9, 1e-3, Some(&all))?;
    assert_eq!(opt.groups[0].names.len(), 5);
    // frozen parameters are left out
    edgedistill::nn::freeze(&m)?;
    let opt = Optimizer::from_module(&m, OptimizerKind::sgd(), 0.01, 0.9, 1e-3, None)?;
    assert_eq!(opt.params().count(), 0);
    Ok(())
}

#[test]
fn clip_grad_norm_torch_semantics() -> Result<()> {
    let a = Tensor::from_vec(vec![0.0f32; 2], [2])?.requires_grad_()?;
    let b = Tensor::from_vec(vec![0.0f32; 1], [1])?.requires_grad_()?;
    set_grad(&a, &Tensor::from_vec(vec![3.0f32, 4.0], [2])?)?;
    set_grad(&b, &Tensor::from_vec(vec![12.0f32], [1])?)?;
    let params = [a.clone(), b.clone()];
    let n = clip_grad_norm(&params, 1.0)?;
    assert!((n - 13.0).abs() < 1e-9, "norm {n}");
    let coef = (1.0 / (13.0 + 1e-6)) as f32;
    assert_eq!(a.grad().unwrap().to_vec::<f32>()?, [3.0 * coef, 4.0 * coef]);
    assert!((grad_norm(&params)? - 1.0).abs() < 1e-6);
    // below max_norm nothing changes
    let before = a.grad().unwrap().to_vec::<f32>()?;
    clip_grad_norm(&params, 10.0)?;
    assert_eq!(a.grad().unwrap().to_vec::<f32>()?, before);
    // a non-finite norm is an error and leaves the gradients alone
    set_grad(&b, &Tensor::from_vec(vec![f32::NAN], [1])?)?;
    let e = clip_grad_norm(&params, 1.0).unwrap_err().to_string();
    assert!(e.contains("non-finite gradient norm"), "{e}");
    assert_eq!(a.grad().unwrap().to_vec::<f32>()?, before);
    Ok(())
}
