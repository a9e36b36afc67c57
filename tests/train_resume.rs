//! The key acceptance test: a run of E epochs and the same run interrupted (through the
//! flag SIGINT/SIGTERM set) mid-epoch with gradients still accumulating, and again at an
//! epoch's last batch, then resumed, end bit-identical: weights, BatchNorm buffers, EMA,
//! optimizer state, RNG, step counters and the metrics log.
use edgedistill::io::Safetensors;
use edgedistill::loss::cross_entropy;
use edgedistill::nn::{
    Activation, BatchNorm2d, Conv2d, Flatten, Forward, Linear, Module, Sequential,
};
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::train::{
    EpochCtx, FitStatus, StepCtx, StepLoss, TrainConfig, TrainTask, fit, request_interrupt,
    step_seed,
};
use edgedistill::{Result, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

const S: usize = 8;

struct Gap;
impl Forward for Gap {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d((1, 1))
    }
}
impl Module for Gap {}

/// Bars (horizontal / vertical / diagonal) in noisy 8×8 images.
fn bars(n: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let (mut xs, mut ys) = (vec![0f32; n * S * S], Vec::new());
    for k in 0..n {
        let c = (k % 3) as i64;
        let img = &mut xs[k * S * S..(k + 1) * S * S];
        let p = 1 + rng.below(6) as usize;
        for i in 0..6 {
            let (r, col) = match c {
                0 => (p, 1 + i),
                1 => (1 + i, p),
                _ => (1 + i, (1 + i + p) % S),
            };
            img[r * S + col] = 1.0;
        }
        img.iter_mut().for_each(|v| *v += 0.2 * rng.normal() as f32);
        ys.push(c);
    }
    (xs, ys)
}

struct Toy {
    model: Sequential,
    x: Vec<f32>,
    y: Vec<i64>,
    val: (Tensor, Tensor),
    order: Vec<usize>,
    batch: usize,
    interrupt_at: Option<usize>,
    closed: Vec<bool>,
}

impl Toy {
    fn new(init_seed: u64, interrupt_at: Option<usize>) -> Result<Toy> {
        let mut rng = Rng::new(init_seed);
        let p = Conv2dParams {
            padding: (1, 1),
            ..Default::default()
        };
        let model = Sequential::new()
            .push(Conv2d::new(1, 6, (3, 3), p, false, &mut rng)?)
            .push(BatchNorm2d::new(6)?)
            .push(Activation::Relu)
            .push(Gap)
            .push(Flatten)
            .push(Linear::new(6, 3, true, &mut rng)?);
        let (x, y) = bars(48, 7);
        let (vx, vy) = bars(30, 8);
        let val = (
            Tensor::from_vec(vx, [30, 1, S, S])?,
            Tensor::from_vec(vy, [30])?,
        );
        Ok(Toy {
            model,
            x,
            y,
            val,
            order: (0..48).collect(),
            batch: 8,
            interrupt_at,
            closed: Vec::new(),
        })
    }
}

impl TrainTask for Toy {
    fn module(&self) -> &dyn Module {
        &self.model
    }
    fn batches_per_epoch(&self) -> usize {
        self.y.len() / self.batch
    }
    fn on_epoch_start(&mut self, ctx: &EpochCtx) -> Result<()> {
        // The epoch's shuffle comes from (seed, epoch) alone, so a resume rebuilds it.
        self.order = (0..self.y.len()).collect();
        Rng::new(step_seed(5, ctx.epoch, 0)).shuffle(&mut self.order);
        self.closed.push(ctx.close_mosaic);
        Ok(())
    }
    fn train_step(&mut self, ctx: &mut StepCtx) -> Result<StepLoss> {
        let idx = &self.order[ctx.batch * self.batch..(ctx.batch + 1) * self.batch];
        let mut xs = Vec::with_capacity(idx.len() * S * S);
        for &i in idx {
            // augmentation noise from the run's RNG: its state must survive a resume
            xs.extend(
                self.x[i * S * S..(i + 1) * S * S]
                    .iter()
                    .map(|v| v + 0.05 * ctx.rng.normal() as f32),
            );
        }
        let x = Tensor::from_vec(xs, [idx.len(), 1, S, S])?;
        let y = Tensor::from_vec(
            idx.iter().map(|&i| self.y[i]).collect::<Vec<_>>(),
            [idx.len()],
        )?;
        let ce = cross_entropy(&self.model.forward(&x)?, &y)?;
        let v = ce.to_scalar_f64()?;
        if self.interrupt_at == Some(ctx.ni) {
            request_interrupt();
        }
        // ultralytics scales the loss by the batch size
        Ok(StepLoss {
            loss: ce.mul_scalar(idx.len() as f64)?,
            items: vec![("ce".into(), v)],
        })
    }
    fn validate(&mut self, _epoch: usize) -> Result<BTreeMap<String, f64>> {
        let _g = edgedistill::no_grad();
        let logits = self.model.forward(&self.val.0)?;
        let loss = cross_entropy(&logits, &self.val.1)?.to_scalar_f64()?;
        let pred = logits.argmax(1, false)?.to_vec::<i64>()?;
        let y = self.val.1.to_vec::<i64>()?;
        let acc = pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64;
        Ok(BTreeMap::from([
            ("val/ce".into(), loss),
            ("fitness".into(), acc),
        ]))
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 8,
        batch: 8,
        nbs: 16, // accumulate 2 batches per optimizer step
        lr0: 0.1,
        warmup_epochs: 1.0,
        close_mosaic: 1,
        save_period: 1,
        keep_last: 2,
        patience: 0,
        ema_tau: 5.0, // a short ramp so the EMA moves visibly in a few steps
        progress: false,
        seed: 3,
        ..Default::default()
    }
}

/// Every tensor of a checkpoint as raw bytes, plus its metadata.
fn contents(path: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
    let f = Safetensors::open(path).unwrap();
    let t = f
        .names()
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                f.tensor(n)
                    .unwrap()
                    .to_vec_f64()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            )
        })
        .collect();
    (t, f.metadata().clone())
}

#[test]
fn interrupted_and_resumed_run_is_bit_identical() -> Result<()> {
    let root = std::env::temp_dir().join(format!("ed-train-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (da, db) = (root.join("a"), root.join("b"));
    let cfg = config();

    let mut a = Toy::new(11, None)?;
    let sa = fit(&mut a, &cfg, &da, false)?;
    assert_eq!(sa.status, FitStatus::Completed);
    assert_eq!(sa.epochs_completed, 8);
    assert_eq!(
        a.closed.iter().filter(|c| **c).count(),
        1,
        "close_mosaic in the last epoch only"
    );
    assert_eq!(a.closed.last(), Some(&true));
    // 6 batches/epoch, warmup 6 batches ramps accumulate 1 -> 2: 5 steps in warmup
    // (ni 0,1,2,4,6), then one per 2 batches (ni 8,10,..,46)
    assert_eq!(sa.global_step, 5 + 20, "optimizer steps");

    // Interrupted at global batch 7 (epoch 2, batch 2): a gradient is still accumulating.
    let mut b = Toy::new(11, Some(7))?;
    let s1 = fit(&mut b, &cfg, &db, false)?;
    assert_eq!(s1.status, FitStatus::Interrupted);
    assert_eq!(s1.epochs_completed, 1);
    let (t1, m1) = contents(&db.join("weights/last.safetensors"));
    assert!(
        t1.keys().any(|k| k.starts_with("grad.")),
        "pending gradients saved"
    );
    assert!(
        m1["train_state"].contains("\"next_batch\":2"),
        "{}",
        m1["train_state"]
    );

    // Resume into a differently initialised model (everything must come from the file),
    // and interrupt again on the last batch of epoch 2.
    let mut c = Toy::new(99, Some(11))?;
    let s2 = fit(&mut c, &cfg, &db, true)?;
    assert_eq!(s2.status, FitStatus::Interrupted);
    let mut d = Toy::new(98, None)?;
    let s3 = fit(&mut d, &cfg, &db, true)?;
    assert_eq!(s3.status, FitStatus::Completed);
    assert_eq!(
        (s3.epochs_completed, s3.global_step),
        (sa.epochs_completed, sa.global_step)
    );
    assert_eq!(s3.best_fitness, sa.best_fitness);

    let (ta, ma) = contents(&da.join("weights/last.safetensors"));
    let (tb, mb) = contents(&db.join("weights/last.safetensors"));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        assert!(tb[k] == *v, "{k} differs after resume");
    }
    for prefix in [
        "model.1.running_mean",
        "ema.1.running_var",
        "ema.0.weight",
        "optim.0.weight.momentum_buffer",
    ] {
        assert!(ta.contains_key(prefix), "{prefix} saved");
    }
    // the EMA is not the model (it averages), and it was updated
    assert!(ta["model.0.weight"] != ta["ema.0.weight"]);
    assert_eq!(
        ma["train_state"], mb["train_state"],
        "loop state incl. RNG identical"
    );
    assert_eq!(ma["checksum"], mb["checksum"]);

    // Metrics logs identical, one row per epoch, stable columns.
    let csv_a = std::fs::read_to_string(da.join("results.csv")).unwrap();
    assert_eq!(
        csv_a,
        std::fs::read_to_string(db.join("results.csv")).unwrap()
    );
    let lines: Vec<&str> = csv_a.lines().collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(
        lines[0],
        "epoch,train/ce,fitness,val/ce,lr/pg0,lr/pg1,lr/pg2"
    );
    let jsonl = std::fs::read_to_string(db.join("metrics.jsonl")).unwrap();
    assert_eq!(
        jsonl,
        std::fs::read_to_string(da.join("metrics.jsonl")).unwrap()
    );
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["epoch"], 1.0);
    eprintln!(
        "best fitness {:?}, steps {}",
        sa.best_fitness, sa.global_step
    );
    // it learned something: validation accuracy well above chance (1/3)
    assert!(
        sa.best_fitness.unwrap() > 0.5,
        "fitness {:?}",
        sa.best_fitness
    );
    // periodic checkpoints: keep_last 2 of epochs 1..8
    let w = std::fs::read_dir(db.join("weights"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap());
    let mut names: Vec<String> = w.collect();
    names.sort();
    assert_eq!(
        names,
        [
            "best.safetensors",
            "epoch0007.safetensors",
            "epoch0008.safetensors",
            "last.safetensors"
        ]
    );

    // resuming with a changed config is refused
    let other = TrainConfig { lr0: 0.05, ..cfg };
    let e = fit(&mut Toy::new(1, None)?, &other, &db, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr0"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
