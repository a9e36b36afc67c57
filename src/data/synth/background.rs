//! Textured backgrounds and object fills: a linear gradient between two colours, stripes
//! (hard or soft) at any angle, or smooth blotches (bilinear value noise), each with mild
//! per-pixel noise, so that neither flat colour nor edges alone separate objects.
use crate::tensor::Rng;
use image::RgbImage;

/// A random RGB colour.
pub fn random_color(rng: &mut Rng) -> [f64; 3] {
    [0, 1, 2].map(|_| rng.uniform() * 255.0)
}

/// Gaussian-ish per-pixel noise of standard deviation `sigma` (sum of uniforms: cheap and
/// deterministic).
pub fn noise(rng: &mut Rng, sigma: f64) -> f64 {
    let s: f64 = (0..3).map(|_| rng.uniform()).sum::<f64>() - 1.5;
    s * 2.0 * sigma
}

fn put(img: &mut RgbImage, x: u32, y: u32, c: [f64; 3]) {
    img.put_pixel(
        x,
        y,
        image::Rgb(c.map(|v| v.round().clamp(0.0, 255.0) as u8)),
    );
}

fn mix(a: [f64; 3], b: [f64; 3], t: f64) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
}

/// A `w × h` background of a random style.
pub fn background(rng: &mut Rng, w: u32, h: u32) -> RgbImage {
    let (a, b) = (random_color(rng), random_color(rng));
    let angle = rng.uniform() * std::f64::consts::TAU;
    let (ux, uy) = (angle.cos(), angle.sin());
    let sigma = 1.5 + 3.0 * rng.uniform();
    let diag = (w as f64).hypot(h as f64).max(1.0);
    let style = rng.below(3);
    let period = (8.0 + 40.0 * rng.uniform()) / 256.0 * w.max(h) as f64;
    let soft = rng.uniform() < 0.5;
    // Value noise on a coarse grid (cell ≈ 1/6 of the image).
    let (gw, gh) = (8usize, 8usize);
    let grid: Vec<f64> = (0..gw * gh).map(|_| rng.uniform()).collect();
    let mut img = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let t = match style {
                0 => ((fx * ux + fy * uy) / diag + 1.0) / 2.0,
                1 => {
                    let phase = (fx * ux + fy * uy) / period * std::f64::consts::TAU;
                    if soft {
                        0.5 + 0.5 * phase.sin()
                    } else {
                        f64::from(u8::from(phase.sin() > 0.0))
                    }
                }
                _ => {
                    let gx = fx / w as f64 * (gw - 1) as f64;
                    let gy = fy / h as f64 * (gh - 1) as f64;
                    let (ix, iy) = ((gx as usize).min(gw - 2), (gy as usize).min(gh - 2));
                    let (tx, ty) = (gx - ix as f64, gy - iy as f64);
                    let g = |i: usize, j: usize| grid[j * gw + i];
                    let top = g(ix, iy) * (1.0 - tx) + g(ix + 1, iy) * tx;
                    let bot = g(ix, iy + 1) * (1.0 - tx) + g(ix + 1, iy + 1) * tx;
                    top * (1.0 - ty) + bot * ty
                }
            };
            let c = mix(a, b, t).map(|v| v + noise(rng, sigma));
            put(&mut img, x, y, c);
        }
    }
    img
}

/// Fill of an object: its colour shaded linearly across it (±`shade`) plus noise.
pub struct Fill {
    pub color: [f64; 3],
    pub dir: (f64, f64),
    pub shade: f64,
    pub sigma: f64,
}

impl Fill {
    /// The colour of pixel `(x, y)` of an object centred at `(cx, cy)` with radius `r`.
    pub fn at(&self, rng: &mut Rng, x: f64, y: f64, cx: f64, cy: f64, r: f64) -> [f64; 3] {
        let t = ((x - cx) * self.dir.0 + (y - cy) * self.dir.1) / r.max(1.0);
        let n = noise(rng, self.sigma);
        self.color.map(|v| v + self.shade * t + n)
    }

    /// Paint pixel `(x, y)`.
    pub fn paint(
        &self,
        img: &mut RgbImage,
        rng: &mut Rng,
        x: u32,
        y: u32,
        centre: (f64, f64, f64),
    ) {
        let c = self.at(
            rng,
            x as f64 + 0.5,
            y as f64 + 0.5,
            centre.0,
            centre.1,
            centre.2,
        );
        put(img, x, y, c);
    }
}

/// Mean colour of `img` over the rectangle `[x0, y0, x1, y1)` (non-empty).
pub fn mean_color(img: &RgbImage, rect: [usize; 4]) -> [f64; 3] {
    let mut s = [0f64; 3];
    let mut n = 0f64;
    for y in rect[1]..rect[3] {
        for x in rect[0]..rect[2] {
            let p = img.get_pixel(x as u32, y as u32).0;
            for c in 0..3 {
                s[c] += p[c] as f64;
            }
            n += 1.0;
        }
    }
    s.map(|v| v / n.max(1.0))
}
