//! lr / momentum / accumulate / optimizer-step cadence against ultralytics 8.4.190: the
//! table in tests/fixtures/train-schedule-ultralytics.json was produced by the real
//! `_get_warmup_iterations`, `one_cycle`, torch LambdaLR and the warmup block of
//! `_do_train` (tools/reference/make_train_fixture.py).
use edgedistill::optim::schedule::{accumulation, warmup_accumulate};
use edgedistill::optim::{GroupKind, ScheduleConfig};

#[test]
fn schedule_matches_ultralytics_table() {
    let text = std::fs::read_to_string("tests/fixtures/train-schedule-ultralytics.json").unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 4);
    let mut checked = 0;
    for c in &cases {
        let u = |k: &str| c[k].as_u64().unwrap() as usize;
        let (epochs, nb, batch) = (u("epochs"), u("nb"), u("batch"));
        let s = ScheduleConfig {
            epochs,
            warmup_epochs: c["warmup_epochs"].as_f64().unwrap(),
            cos_lr: c["cos_lr"].as_bool().unwrap(),
            ..Default::default()
        };
        let nw = s.warmup_iters(nb);
        assert_eq!(
            nw,
            u("nw"),
            "warmup iterations (Python rounds half to even)"
        );
        let (acc0, wd) = accumulation(64, batch, 5e-4, Some(nb * epochs));
        assert_eq!(acc0, u("acc0"));
        assert!((wd - c["weight_decay"].as_f64().unwrap()).abs() < 1e-18);
        let (mut acc, mut last, mut mom) = (acc0, -1i64, s.momentum);
        for row in c["rows"].as_array().unwrap() {
            let r: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let ni = r[0] as usize;
            let epoch = ni / nb;
            if nw > 0 && ni <= nw {
                acc = warmup_accumulate(ni, nw, acc0);
            }
            if let Some(m) = s.momentum(ni, nw) {
                mom = m;
            }
            let kinds = [GroupKind::Weight, GroupKind::Norm, GroupKind::Bias];
            for (g, k) in kinds.iter().enumerate() {
                let lr = s.lr(*k, s.lr0, epoch, ni, nw);
                // torch LambdaLR and np.interp in float64: identical formulas, 1 ulp slack
                assert!(
                    (lr - r[1 + g]).abs() <= 1e-15,
                    "ni {ni} group {g}: {lr} vs {}",
                    r[1 + g]
                );
            }
            assert!(
                (mom - r[4]).abs() <= 1e-15,
                "ni {ni} momentum {mom} vs {}",
                r[4]
            );
            assert_eq!(acc, r[5] as usize, "ni {ni} accumulate");
            let stepped = ni as i64 - last >= acc as i64;
            if stepped {
                last = ni as i64;
            }
            assert_eq!(stepped, r[6] == 1.0, "ni {ni} optimizer step");
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 7 + 4 * 9 + 3 * 5 + 6 * 3);
}

#[test]
fn lf_closed_forms() {
    let s = ScheduleConfig {
        epochs: 10,
        lrf: 0.1,
        ..Default::default()
    };
    assert_eq!(s.lf(0.0), 1.0);
    assert!((s.lf(5.0) - 0.55).abs() < 1e-15);
    assert!((s.lf(20.0) - 0.1).abs() < 1e-15, "clipped at lrf");
    let c = ScheduleConfig { cos_lr: true, ..s };
    assert!((c.lf(0.0) - 1.0).abs() < 1e-15);
    assert!((c.lf(5.0) - 0.55).abs() < 1e-15);
    assert!((c.lf(10.0) - 0.1).abs() < 1e-15);
    // ultralytics 8.0-8.3 style floor of 100 warmup iterations
    let old = ScheduleConfig {
        min_warmup_iters: 100,
        ..Default::default()
    };
    assert_eq!(old.warmup_iters(10), 100);
    assert_eq!(ScheduleConfig::default().warmup_iters(10), 30);
}
