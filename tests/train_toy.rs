//! Real optimisation on toy problems, end to end through nn, autograd, loss and optim:
//! the loss must fall below a stated threshold and held-out accuracy must be high.
use edgedistill::loss::cross_entropy;
use edgedistill::nn::{
    Activation, BatchNorm2d, Conv2d, Flatten, Forward, Linear, Module, Sequential,
};
use edgedistill::optim::{AdamW, AdamWConfig};
use edgedistill::tensor::{Conv2dParams, Rng};
use edgedistill::{DType, Result, Tensor};

fn params(m: &dyn Module) -> Vec<Tensor> {
    m.named_parameters().into_iter().map(|(_, t)| t).collect()
}

fn accuracy(logits: &Tensor, y: &Tensor) -> f64 {
    let pred = logits.argmax(1, false).unwrap().to_vec::<i64>().unwrap();
    let y = y.to_vec::<i64>().unwrap();
    pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

/// Three interleaved spirals in 2-D (a classic non-linearly-separable problem).
fn spiral(n_per_class: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for c in 0..3 {
        for i in 0..n_per_class {
            let r = i as f64 / n_per_class as f64;
            let t = c as f64 * 4.0 + 4.0 * r + rng.normal() * 0.2;
            xs.extend([(r * t.sin()) as f32, (r * t.cos()) as f32]);
            ys.push(c as i64);
        }
    }
    let n = ys.len();
    (
        Tensor::from_vec(xs, [n, 2]).unwrap(),
        Tensor::from_vec(ys, [n]).unwrap(),
    )
}

#[test]
fn mlp_learns_spirals() -> Result<()> {
    let mut rng = Rng::new(1);
    let (x, y) = spiral(100, &mut rng);
    let (xv, yv) = spiral(50, &mut Rng::new(2));
    let model = Sequential::new()
        .push(Linear::new(2, 64, true, &mut rng)?)
        .push(Activation::Tanh)
        .push(Linear::new(64, 64, true, &mut rng)?)
        .push(Activation::Tanh)
        .push(Linear::new(64, 3, true, &mut rng)?);
    let mut opt = AdamW::new(
        params(&model),
        AdamWConfig {
            lr: 0.01,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let first = cross_entropy(&model.forward(&x)?, &y)?.to_scalar_f64()?;
    let mut last = first;
    for _ in 0..400 {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        loss.backward()?;
        opt.step()?;
        last = loss.to_scalar_f64()?;
    }
    let acc = {
        let _g = edgedistill::no_grad();
        accuracy(&model.forward(&xv)?, &yv)
    };
    eprintln!("mlp: loss {first:.4} -> {last:.4}, held-out accuracy {acc:.3}");
    assert!(first > 0.9, "starts near ln 3, got {first}");
    assert!(
        last < 0.15,
        "training loss must fall below 0.15, got {last}"
    );
    assert!(acc > 0.9, "held-out accuracy {acc}");
    Ok(())
}

/// 12×12 single-channel images of a horizontal, vertical or diagonal bar at a random place,
/// with Gaussian noise.
fn bars(n: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let s = 12;
    let (mut xs, mut ys) = (vec![0f32; n * s * s], Vec::new());
    for k in 0..n {
        let c = (k % 3) as i64;
        let img = &mut xs[k * s * s..(k + 1) * s * s];
        let p = 2 + rng.below(8) as usize;
        let len = 6 + rng.below(3) as usize;
        let st = rng.below((s - len) as u64) as usize;
        for i in 0..len {
            let (r, col) = match c {
                0 => (p, st + i),
                1 => (st + i, p),
                _ => (st + i, (st + i + p) % s),
            };
            img[r * s + col] = 1.0;
        }
        for v in img.iter_mut() {
            *v += 0.3 * rng.normal() as f32;
        }
        ys.push(c);
    }
    (
        Tensor::from_vec(xs, [n, 1, s, s]).unwrap(),
        Tensor::from_vec(ys, [n]).unwrap(),
    )
}

struct MaxPool2;
impl Forward for MaxPool2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d((2, 2), (2, 2), (0, 0))
    }
}
impl Module for MaxPool2 {}
struct GlobalAvgPool;
impl Forward for GlobalAvgPool {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d((1, 1))
    }
}
impl Module for GlobalAvgPool {}

#[test]
fn cnn_learns_bar_orientation() -> Result<()> {
    let mut rng = Rng::new(3);
    let (x, y) = bars(96, &mut rng);
    let (xv, yv) = bars(60, &mut Rng::new(4));
    let p = Conv2dParams {
        padding: (1, 1),
        ..Default::default()
    };
    let model = Sequential::new()
        .push(Conv2d::new(1, 8, (3, 3), p, false, &mut rng)?)
        .push(BatchNorm2d::new(8)?)
        .push(Activation::Relu)
        .push(MaxPool2)
        .push(Conv2d::new(8, 16, (3, 3), p, true, &mut rng)?)
        .push(Activation::Relu)
        .push(GlobalAvgPool)
        .push(Flatten)
        .push(Linear::new(16, 3, true, &mut rng)?);
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "0.weight", "1.weight", "1.bias", "4.weight", "4.bias", "8.weight", "8.bias"
        ]
    );
    let mut opt = AdamW::new(
        params(&model),
        AdamWConfig {
            lr: 0.02,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let mut losses = Vec::new();
    for _ in 0..120 {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        loss.backward()?;
        opt.step()?;
        losses.push(loss.to_scalar_f64()?);
    }
    model.eval();
    let acc = {
        let _g = edgedistill::no_grad();
        accuracy(&model.forward(&xv)?, &yv)
    };
    let last = losses.iter().rev().take(5).sum::<f64>() / 5.0;
    eprintln!(
        "cnn: loss {:.4} -> {last:.4} (mean of last 5), held-out accuracy {acc:.3}",
        losses[0]
    );
    assert!(losses[0] > 0.9, "starts near ln 3, got {}", losses[0]);
    assert!(last < 0.1, "training loss must fall below 0.1, got {last}");
    assert!(acc > 0.9, "held-out accuracy {acc}");
    // the running statistics were updated during training
    let bn_mean = model
        .named_buffers()
        .into_iter()
        .find(|(n, _)| n == "1.running_mean")
        .unwrap()
        .1;
    assert!(bn_mean.to_vec_f64()?.iter().any(|v| v.abs() > 1e-4));
    let _ = DType::F32;
    Ok(())
}
