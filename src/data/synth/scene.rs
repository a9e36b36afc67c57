//! One synthetic image: a background, then objects drawn one over another, and the
//! visible region of each as a mask.
//!
//! Placement rules: every object lies inside the image; a new object is accepted only if
//! each earlier object keeps at least [`MIN_VISIBLE`] of its pixels and its visible region
//! gets no hole (COCO polygons cannot express holes); a placement that breaks a rule is
//! retried ([`TRIES`] times), then the image simply has fewer objects.
use super::background::{Fill, background, mean_color, random_color};
use super::shapes::{Raster, Shape, ShapeKind};
use crate::tensor::Rng;
use image::RgbImage;

/// Fraction of an object's pixels that must stay visible.
pub const MIN_VISIBLE: f64 = 0.4;
/// Placement attempts per object.
pub const TRIES: usize = 30;
/// Object size (circumscribed diameter) as a fraction of the image side.
pub const SIZE_RANGE: (f64, f64) = (0.08, 0.40);

/// A drawn object: class index (into the config's classes) and visible pixels
/// (`h × w` row-major 0/1 over the whole image, with its tight box `[x0, y0, x1, y1)`).
pub struct Visible {
    pub class: usize,
    pub rect: [usize; 4],
    /// Row-major 0/1 inside `rect`.
    pub bits: Vec<u8>,
    /// Pixels visible, and pixels of the whole shape.
    pub visible: usize,
    pub full: usize,
}

/// The rendered image and its objects' visible regions (objects with none are left out).
pub struct Scene {
    pub image: RgbImage,
    pub objects: Vec<Visible>,
}

/// Draw one scene of `size × size` with 1..=`max_objects` objects of `kinds`.
pub fn render(rng: &mut Rng, size: u32, kinds: &[ShapeKind], max_objects: usize) -> Scene {
    let s = size as usize;
    let mut img = background(rng, size, size);
    // owner[p] = 1 + index of the object on top at p; 0 = background.
    let mut owner = vec![0u16; s * s];
    let mut shapes: Vec<(usize, Raster)> = Vec::new();
    let want = 1 + rng.below(max_objects.max(1) as u64) as usize;
    for _ in 0..want {
        let Some((class, shape, raster)) = place(rng, s, kinds, &owner, &shapes) else {
            break;
        };
        let k = shapes.len() as u16 + 1;
        let fill = pick_fill(rng, &img, raster.rect);
        let centre = (shape.cx, shape.cy, shape.r);
        let [x0, y0, x1, y1] = raster.rect;
        for y in y0..y1 {
            for x in x0..x1 {
                if raster.get(x, y) {
                    owner[y * s + x] = k;
                    fill.paint(&mut img, rng, x as u32, y as u32, centre);
                }
            }
        }
        shapes.push((class, raster));
    }
    let objects = shapes
        .iter()
        .enumerate()
        .filter_map(|(i, (class, r))| visible(&owner, s, i as u16 + 1, r, *class))
        .collect();
    Scene {
        image: img,
        objects,
    }
}

/// Try to place a new shape that keeps every rule; `None` after [`TRIES`] failures.
fn place(
    rng: &mut Rng,
    s: usize,
    kinds: &[ShapeKind],
    owner: &[u16],
    shapes: &[(usize, Raster)],
) -> Option<(usize, Shape, Raster)> {
    for _ in 0..TRIES {
        let class = rng.below(kinds.len() as u64) as usize;
        let d = (SIZE_RANGE.0 + (SIZE_RANGE.1 - SIZE_RANGE.0) * rng.uniform()) * s as f64;
        let r = d / 2.0;
        let span = (s as f64 - 2.0 * r - 2.0).max(0.0);
        let shape = Shape {
            kind: kinds[class],
            cx: 1.0 + r + span * rng.uniform(),
            cy: 1.0 + r + span * rng.uniform(),
            r,
            angle: rng.uniform() * std::f64::consts::TAU,
        };
        let raster = shape.rasterize(s, s);
        let [rx0, ry0, rx1, ry1] = raster.rect;
        if raster.area() == 0 || has_hole(rx0, ry0, rx1, ry1, |x, y| raster.get(x, y)) {
            continue;
        }
        let ok = shapes
            .iter()
            .enumerate()
            .all(|(i, (_, old))| still_fine(owner, s, i as u16 + 1, old, &raster));
        if ok {
            return Some((class, shape, raster));
        }
    }
    None
}

/// Whether object `k` (full shape `old`) keeps enough pixels and no hole once `new` covers it.
fn still_fine(owner: &[u16], s: usize, k: u16, old: &Raster, new: &Raster) -> bool {
    let [x0, y0, x1, y1] = old.rect;
    let vis = |x: usize, y: usize| owner[y * s + x] == k && !new.get(x, y);
    let mut kept = 0usize;
    let mut lost = false;
    for y in y0..y1 {
        for x in x0..x1 {
            if owner[y * s + x] == k {
                if new.get(x, y) {
                    lost = true;
                } else {
                    kept += 1;
                }
            }
        }
    }
    if !lost {
        return true;
    }
    if (kept as f64) < MIN_VISIBLE * old.area() as f64 {
        return false;
    }
    !has_hole(x0, y0, x1, y1, vis)
}

/// Whether the set `vis` inside `[x0, y0, x1, y1)` encloses background: a pixel not in the
/// set that a 4-connected walk through non-set pixels cannot reach from outside the box.
fn has_hole(
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    vis: impl Fn(usize, usize) -> bool,
) -> bool {
    // Work in the box grown by one pixel on each side, all of whose border is outside.
    let (w, h) = (x1 - x0 + 2, y1 - y0 + 2);
    let set = |gx: usize, gy: usize| {
        gx >= 1 && gy >= 1 && gx <= x1 - x0 && gy <= y1 - y0 && vis(x0 + gx - 1, y0 + gy - 1)
    };
    let mut reached = vec![false; w * h];
    let mut stack = vec![(0usize, 0usize)];
    reached[0] = true;
    while let Some((x, y)) = stack.pop() {
        let nbrs = [
            (x.wrapping_sub(1), y),
            (x + 1, y),
            (x, y.wrapping_sub(1)),
            (x, y + 1),
        ];
        for (nx, ny) in nbrs {
            if nx < w && ny < h && !reached[ny * w + nx] && !set(nx, ny) {
                reached[ny * w + nx] = true;
                stack.push((nx, ny));
            }
        }
    }
    (0..h).any(|y| (0..w).any(|x| !reached[y * w + x] && !set(x, y)))
}

/// A fill whose colour stands out from the background under the object.
fn pick_fill(rng: &mut Rng, img: &RgbImage, rect: [usize; 4]) -> Fill {
    let under = mean_color(img, rect);
    let mut color = random_color(rng);
    for _ in 0..20 {
        let dist: f64 = (0..3).map(|c| (color[c] - under[c]).abs()).sum();
        if dist >= 120.0 {
            break;
        }
        color = random_color(rng);
    }
    let a = rng.uniform() * std::f64::consts::TAU;
    Fill {
        color,
        dir: (a.cos(), a.sin()),
        shade: 25.0 * rng.uniform(),
        sigma: 1.0 + 3.0 * rng.uniform(),
    }
}

/// Object `k`'s visible pixels within its shape box, cut to their tight box.
fn visible(owner: &[u16], s: usize, k: u16, shape: &Raster, class: usize) -> Option<Visible> {
    let [x0, y0, x1, y1] = shape.rect;
    let (mut tx0, mut ty0, mut tx1, mut ty1) = (x1, y1, x0, y0);
    for y in y0..y1 {
        for x in x0..x1 {
            if owner[y * s + x] == k {
                (tx0, ty0, tx1, ty1) = (tx0.min(x), ty0.min(y), tx1.max(x + 1), ty1.max(y + 1));
            }
        }
    }
    if tx0 >= tx1 {
        return None;
    }
    let mut bits = Vec::with_capacity((tx1 - tx0) * (ty1 - ty0));
    for y in ty0..ty1 {
        for x in tx0..tx1 {
            bits.push(u8::from(owner[y * s + x] == k));
        }
    }
    Some(Visible {
        class,
        rect: [tx0, ty0, tx1, ty1],
        visible: bits.iter().filter(|&&b| b != 0).count(),
        full: shape.area(),
        bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hole_detection() {
        // A 5×5 ring encloses its 3×3 inside; a gap in its side opens it.
        let ring = |x: usize, y: usize| x == 0 || y == 0 || x == 4 || y == 4;
        assert!(has_hole(0, 0, 5, 5, ring));
        assert!(!has_hole(0, 0, 5, 5, |x, y| ring(x, y) && !(x == 2 && y == 0)));
        // Only a diagonal opening (corner pixel gone): background is 4-connected, so the
        // inside is still enclosed, as the 8-connected contour tracer sees it.
        assert!(has_hole(0, 0, 5, 5, |x, y| ring(x, y) && !(x == 0 && y == 0)));
        assert!(!has_hole(0, 0, 3, 3, |_, _| true));
    }
}
