//! Checkpoint safety: a process killed while writing a checkpoint never corrupts the last
//! good one; truncated, corrupted or foreign files are clear errors naming the file.
use edgedistill::io::atomic::write_atomic;
use edgedistill::loss::mse;
use edgedistill::nn::{Forward, Linear, Module};
use edgedistill::tensor::Rng;
use edgedistill::train::{Checkpoint, FitStatus, StepCtx, StepLoss, TrainConfig, TrainTask, fit};
use edgedistill::{Result, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Lin {
    m: Linear,
    x: Tensor,
    y: Tensor,
}

impl TrainTask for Lin {
    fn module(&self) -> &dyn Module {
        &self.m
    }
    fn batches_per_epoch(&self) -> usize {
        4
    }
    fn train_step(&mut self, _ctx: &mut StepCtx) -> Result<StepLoss> {
        let l = mse(&self.m.forward(&self.x)?, &self.y)?;
        let v = l.to_scalar_f64()?;
        Ok(StepLoss {
            loss: l,
            items: vec![("mse".into(), v)],
        })
    }
    fn validate(&mut self, _epoch: usize) -> Result<BTreeMap<String, f64>> {
        let _g = edgedistill::no_grad();
        let l = mse(&self.m.forward(&self.x)?, &self.y)?.to_scalar_f64()?;
        Ok(BTreeMap::from([("fitness".into(), -l)]))
    }
}

/// A finished 2-epoch run in `dir`; returns the path of last.safetensors.
fn trained(dir: &Path) -> PathBuf {
    let mut rng = Rng::new(0);
    let mut t = Lin {
        m: Linear::new(3, 2, true, &mut rng).unwrap(),
        x: Tensor::randn([5, 3], 0.0, 1.0, &mut rng),
        y: Tensor::randn([5, 2], 0.0, 1.0, &mut rng),
    };
    let cfg = TrainConfig {
        epochs: 2,
        batch: 64,
        progress: false,
        ..Default::default()
    };
    let s = fit(&mut t, &cfg, dir, false).unwrap();
    assert_eq!(s.status, FitStatus::Completed);
    s.last_checkpoint
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ed-ckpt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn killed_mid_write_keeps_last_good_checkpoint() {
    // Child mode: start overwriting the checkpoint through the real atomic writer, write
    // half of it, flush, and die before the rename.
    if let Ok(target) = std::env::var("ED_CKPT_CRASH_TARGET") {
        let _ = write_atomic(Path::new(&target), |w| {
            w.write_all(&vec![0xAB; 1 << 16]).unwrap();
            w.flush().unwrap();
            std::process::abort();
        });
        unreachable!("the child aborts inside the write");
    }
    let dir = tmpdir("kill");
    let last = trained(&dir);
    let good = std::fs::read(&last).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_mid_write_keeps_last_good_checkpoint",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ED_CKPT_CRASH_TARGET", &last)
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die mid-write");
    // The partial temp file is there (the crash really happened mid-write) ...
    let partial: Vec<_> = std::fs::read_dir(last.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".last.safetensors.tmp."))
        .collect();
    assert_eq!(partial.len(), 1, "{partial:?}");
    // ... and the last good checkpoint is untouched and loads.
    assert_eq!(std::fs::read(&last).unwrap(), good);
    let ck = Checkpoint::open(&last).unwrap();
    assert_eq!(ck.state.epochs_completed, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn damaged_checkpoints_are_clear_errors() {
    let dir = tmpdir("damage");
    let last = trained(&dir);
    let good = std::fs::read(&last).unwrap();
    let p = dir.join("damaged.safetensors");
    let open_err = |bytes: &[u8]| {
        std::fs::write(&p, bytes).unwrap();
        Checkpoint::open(&p).err().expect("must fail").to_string()
    };
    // truncated
    let e = open_err(&good[..good.len() - 7]);
    assert!(
        e.contains("damaged.safetensors") && e.contains("truncated or corrupt"),
        "{e}"
    );
    let e = open_err(&good[..5]);
    assert!(e.contains("damaged.safetensors"), "{e}");
    // one flipped bit in the tensor data
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x10;
    let e = open_err(&bad);
    assert!(e.contains("checksum mismatch"), "{e}");
    // a plain safetensors file that is not a checkpoint
    let plain = edgedistill::io::to_safetensors_bytes(
        &[("w".into(), Tensor::zeros([2], edgedistill::DType::F32))],
        None,
    )
    .unwrap();
    let e = open_err(&plain);
    assert!(e.contains("not a training checkpoint"), "{e}");
    // resuming with no checkpoint names the missing file
    let mut rng = Rng::new(0);
    let mut t = Lin {
        m: Linear::new(3, 2, true, &mut rng).unwrap(),
        x: Tensor::zeros([1, 3], edgedistill::DType::F32),
        y: Tensor::zeros([1, 2], edgedistill::DType::F32),
    };
    let cfg = TrainConfig {
        epochs: 2,
        batch: 64,
        progress: false,
        ..Default::default()
    };
    let e = fit(&mut t, &cfg, &dir.join("nothing"), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot resume") && e.contains("last.safetensors"),
        "{e}"
    );
    // the good file still opens
    assert!(Checkpoint::open(&last).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
