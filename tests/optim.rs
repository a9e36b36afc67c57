//! Optimizers against torch.optim: three steps from the same start with the same grads
//! (reference values printed by torch 2.15 in float64).
use edgedistill::Tensor;
use edgedistill::optim::{AdamW, AdamWConfig, Sgd, SgdConfig};

const GRADS: [[f64; 3]; 3] = [[0.5, -1.0, 0.25], [0.1, 0.2, -0.3], [-0.7, 0.4, 0.9]];

fn run(mut step: impl FnMut(&Tensor)) -> Vec<f64> {
    let p = Tensor::from_vec(vec![1.0f64, -2.0, 3.0], [3])
        .unwrap()
        .requires_grad_()
        .unwrap();
    for g in GRADS {
        // A real backward gives the gradient: d(sum(p * g))/dp = g.
        p.zero_grad();
        p.mul(&Tensor::from_vec(g.to_vec(), [3]).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        step(&p);
    }
    p.to_vec::<f64>().unwrap()
}

fn close(got: &[f64], want: &[f64]) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "got {got:?} want {want:?}");
    }
}

#[test]
fn sgd_nesterov_matches_torch() {
    let mut opt: Option<Sgd> = None;
    let got = run(|p| {
        let o = opt.get_or_insert_with(|| {
            Sgd::new(
                vec![p.clone()],
                SgdConfig {
                    lr: 0.1,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 1e-3,
                    ..Default::default()
                },
            )
            .unwrap()
        });
        o.step().unwrap();
    });
    close(
        &got,
        &[0.9332003356436409, -1.784786231287282, 2.8219256305046727],
    );
}

#[test]
fn sgd_dampening_matches_torch() {
    let mut opt: Option<Sgd> = None;
    let got = run(|p| {
        let o = opt.get_or_insert_with(|| {
            Sgd::new(
                vec![p.clone()],
                SgdConfig {
                    lr: 0.05,
                    momentum: 0.8,
                    dampening: 0.3,
                    weight_decay: 0.01,
                    nesterov: false,
                },
            )
            .unwrap()
        });
        o.step().unwrap();
    });
    close(
        &got,
        &[0.95503347437625, -1.9002620487525, 2.9503143307850004],
    );
}

#[test]
fn adamw_matches_torch() {
    let mut opt: Option<AdamW> = None;
    let got = run(|p| {
        let o = opt.get_or_insert_with(|| {
            AdamW::new(
                vec![p.clone()],
                AdamWConfig {
                    lr: 0.1,
                    weight_decay: 0.01,
                    ..Default::default()
                },
            )
            .unwrap()
        });
        o.step().unwrap();
    });
    close(
        &got,
        &[0.8321058379607779, -1.8297304348131664, 2.8512756952399276],
    );
}

#[test]
fn optimizer_rejects_frozen_parameters() {
    let p = Tensor::zeros([2], edgedistill::DType::F32);
    let e = Sgd::new(vec![p], SgdConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not require grad"), "{e}");
}
