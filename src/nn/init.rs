//! PyTorch's default initialisations, drawn from our seeded `Rng` (same seed, same weights).
//! Linear and Conv2d weights: kaiming_uniform_(a = sqrt(5)) on fan-in, which is
//! U(±1/sqrt(fan_in)); biases: U(±1/sqrt(fan_in)).
use crate::tensor::Rng;
use crate::{Error, Result, Shape, Tensor};

/// (fan_in, fan_out) of a weight shape, as torch's `_calculate_fan_in_and_fan_out`:
/// dim 1 and dim 0 times the receptive field (product of dims 2..).
pub fn fan_in_fan_out(shape: &Shape) -> Result<(usize, usize)> {
    let d = shape.dims();
    if d.len() < 2 {
        return Err(Error::Shape {
            op: "init",
            msg: format!("fan in/out need at least 2 dims, got {shape}"),
        });
    }
    let rf: usize = d[2..].iter().product();
    Ok((d[1] * rf, d[0] * rf))
}

/// U(-bound, bound), f32.
pub fn uniform(shape: impl Into<Shape>, bound: f64, rng: &mut Rng) -> Tensor {
    Tensor::rand(shape, -bound, bound, rng)
}

/// torch.nn.init.kaiming_uniform_(a, mode='fan_in', nonlinearity='leaky_relu'):
/// bound = gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a²)).
pub fn kaiming_uniform(shape: impl Into<Shape>, a: f64, rng: &mut Rng) -> Result<Tensor> {
    let shape = shape.into();
    let (fan_in, _) = fan_in_fan_out(&shape)?;
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let bound = if fan_in == 0 {
        0.0
    } else {
        gain * (3.0 / fan_in as f64).sqrt()
    };
    Ok(uniform(shape, bound, rng))
}

/// The default weight of torch's Linear and Conv2d (`reset_parameters`).
pub fn default_weight(shape: impl Into<Shape>, rng: &mut Rng) -> Result<Tensor> {
    kaiming_uniform(shape, 5f64.sqrt(), rng)
}

/// The default bias of torch's Linear and Conv2d: U(±1/sqrt(fan_in)), zero bound when
/// fan_in is 0.
pub fn default_bias(n: usize, fan_in: usize, rng: &mut Rng) -> Tensor {
    let bound = if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    };
    uniform(n, bound, rng)
}
