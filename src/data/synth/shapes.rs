//! The shape classes of the synthetic dataset and their rasterisation: a pixel belongs to a
//! shape when its centre `(x + 0.5, y + 0.5)` is inside.
use crate::{Error, Result};

/// A drawable shape class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeKind {
    Circle,
    Square,
    Triangle,
    Star,
    Hexagon,
}

impl ShapeKind {
    /// Every kind, by its class name.
    pub const ALL: [(&'static str, ShapeKind); 5] = [
        ("circle", ShapeKind::Circle),
        ("square", ShapeKind::Square),
        ("triangle", ShapeKind::Triangle),
        ("star", ShapeKind::Star),
        ("hexagon", ShapeKind::Hexagon),
    ];

    /// The kind named `name` (one of [`ShapeKind::ALL`]).
    pub fn from_name(name: &str) -> Result<ShapeKind> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                Error::msg(format!(
                    "synthetic dataset: unknown shape class {name:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// One placed shape: centre, circumradius (every vertex lies on this circle) and rotation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub kind: ShapeKind,
    pub cx: f64,
    pub cy: f64,
    pub r: f64,
    pub angle: f64,
}

/// A rasterised shape: its pixel box `[x0, y0, x1, y1)` and row-major 0/1 values inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raster {
    pub rect: [usize; 4],
    pub bits: Vec<u8>,
}

impl Raster {
    pub fn width(&self) -> usize {
        self.rect[2] - self.rect[0]
    }
    /// Whether image pixel `(x, y)` is set.
    pub fn get(&self, x: usize, y: usize) -> bool {
        let [x0, y0, x1, y1] = self.rect;
        x >= x0 && x < x1 && y >= y0 && y < y1 && self.bits[(y - y0) * (x1 - x0) + (x - x0)] != 0
    }
    pub fn area(&self) -> usize {
        self.bits.iter().filter(|&&b| b != 0).count()
    }
}

impl Shape {
    /// Polygon vertices (for every kind but the circle).
    fn vertices(&self) -> Vec<(f64, f64)> {
        let (n, inner) = match self.kind {
            ShapeKind::Circle => return Vec::new(),
            ShapeKind::Square => (4, None),
            ShapeKind::Triangle => (3, None),
            ShapeKind::Hexagon => (6, None),
            ShapeKind::Star => (5, Some(0.45)),
        };
        let steps = if inner.is_some() { 2 * n } else { n };
        (0..steps)
            .map(|i| {
                let a = self.angle + std::f64::consts::TAU * i as f64 / steps as f64;
                let rr = if i % 2 == 1 {
                    inner.map_or(self.r, |f| f * self.r)
                } else {
                    self.r
                };
                (self.cx + rr * a.cos(), self.cy + rr * a.sin())
            })
            .collect()
    }

    /// Whether point `(x, y)` is inside (even-odd rule for polygons).
    fn contains(&self, poly: &[(f64, f64)], x: f64, y: f64) -> bool {
        if self.kind == ShapeKind::Circle {
            let (dx, dy) = (x - self.cx, y - self.cy);
            return dx * dx + dy * dy <= self.r * self.r;
        }
        let mut inside = false;
        let mut j = poly.len() - 1;
        for i in 0..poly.len() {
            let ((xi, yi), (xj, yj)) = (poly[i], poly[j]);
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// The shape's pixels in a `w × h` image.
    pub fn rasterize(&self, w: usize, h: usize) -> Raster {
        let clampi = |v: f64, hi: usize| (v.max(0.0) as usize).min(hi);
        let rect = [
            clampi((self.cx - self.r).floor(), w),
            clampi((self.cy - self.r).floor(), h),
            clampi((self.cx + self.r).ceil() + 1.0, w),
            clampi((self.cy + self.r).ceil() + 1.0, h),
        ];
        let poly = self.vertices();
        let mut bits = Vec::with_capacity((rect[2] - rect[0]) * (rect[3] - rect[1]));
        for y in rect[1]..rect[3] {
            for x in rect[0]..rect[2] {
                bits.push(u8::from(self.contains(
                    &poly,
                    x as f64 + 0.5,
                    y as f64 + 0.5,
                )));
            }
        }
        Raster { rect, bits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_match_geometry() {
        let at = |kind| Shape {
            kind,
            cx: 50.0,
            cy: 50.0,
            r: 20.0,
            angle: 0.3,
        };
        let pi = std::f64::consts::PI;
        let cases = [
            (ShapeKind::Circle, pi * 400.0),
            (ShapeKind::Square, 800.0),
            (ShapeKind::Triangle, 3.0 * 3f64.sqrt() / 4.0 * 400.0),
            (ShapeKind::Hexagon, 3.0 * 3f64.sqrt() / 2.0 * 400.0),
        ];
        for (k, want) in cases {
            let a = at(k).rasterize(100, 100).area() as f64;
            assert!((a - want).abs() < 0.03 * want, "{k:?}: {a} vs {want}");
        }
        let star = at(ShapeKind::Star).rasterize(100, 100).area() as f64;
        assert!(star > 300.0 && star < 700.0, "{star}");
        assert!(ShapeKind::from_name("blob").is_err());
        // Clipped at the image edge.
        let s = Shape {
            cx: 2.0,
            ..at(ShapeKind::Circle)
        }
        .rasterize(100, 100);
        assert_eq!(s.rect[0], 0);
    }
}
