//! Our own seeded RNG: xoshiro256** seeded through splitmix64, normals by the Marsaglia
//! polar method with a log written in plain IEEE arithmetic, so the same seed gives the
//! same bits on every platform (no libm differences).
// fdlibm constants are kept digit for digit as published.
#![allow(clippy::excessive_precision)]
use super::{DType, Shape, Tensor};
use crate::Result;

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s, spare: None }
    }
    /// The full state, for checkpoints (`from_state` restores it exactly).
    pub fn state(&self) -> ([u64; 4], Option<f64>) {
        (self.s, self.spare)
    }
    pub fn from_state(s: [u64; 4], spare: Option<f64>) -> Self {
        Rng { s, spare }
    }
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform integer in [0, n) without modulo bias (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * portable_ln(s) / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }
    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Natural log from basic IEEE operations only (fdlibm's e_log.c algorithm), so results do
/// not depend on the platform's libm. Valid for finite x > 0.
pub fn portable_ln(x: f64) -> f64 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const LG: [f64; 7] = [
        6.666666666666735130e-01,
        3.999999999940941908e-01,
        2.857142874366239149e-01,
        2.222219843214978396e-01,
        1.818357216161805012e-01,
        1.531383769920937332e-01,
        1.479819860511658591e-01,
    ];
    let mut bits = x.to_bits();
    let mut k: i64 = 0;
    if bits < 0x0010_0000_0000_0000 {
        // subnormal: scale up
        bits = (x * 18014398509481984.0).to_bits();
        k -= 54;
    }
    k += ((bits >> 52) as i64) - 1023;
    let mut m = bits & 0x000f_ffff_ffff_ffff;
    // Normalise m into [sqrt(2)/2, sqrt(2)).
    let i = (m + 0x0009_5f64_0000_0000) & 0x0010_0000_0000_0000;
    m |= i ^ 0x3ff0_0000_0000_0000;
    k += (i >> 52) as i64;
    let f = f64::from_bits(m) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG[1] + w * (LG[3] + w * LG[5]));
    let t2 = z * (LG[0] + w * (LG[2] + w * (LG[4] + w * LG[6])));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f64;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

impl Tensor {
    /// Normal(mean, std) samples, f32.
    pub fn randn(shape: impl Into<Shape>, mean: f64, std: f64, rng: &mut Rng) -> Tensor {
        let shape = shape.into();
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| (mean + std * rng.normal()) as f32)
            .collect();
        Tensor::from_vec(v, shape).expect("length matches shape by construction")
    }
    /// Uniform [lo, hi) samples, f32.
    pub fn rand(shape: impl Into<Shape>, lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
        let shape = shape.into();
        let v: Vec<f32> = (0..shape.elem_count())
            .map(|_| (lo + (hi - lo) * rng.uniform()) as f32)
            .collect();
        Tensor::from_vec(v, shape).expect("length matches shape by construction")
    }
    /// Same as `randn` in another dtype.
    pub fn randn_dtype(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count())
            .map(|_| mean + std * rng.normal())
            .collect();
        Tensor::from_vec(v, shape)?.to_dtype(dtype)
    }
}
