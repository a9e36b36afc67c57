//! Polygon → RLE exactly as pycocotools: maskApi's `rleFrPoly` for one polygon, and
//! `frPyObjects` + `merge` (what `COCO.annToRLE` does) for a segmentation of several.
//!
//! `rleFrPoly` scales the vertices by 5, rounds them with C's `(int)(5·v + .5)` (truncation
//! toward zero), walks every edge point by point on that 5× grid, keeps the points where the
//! walk crosses a pixel-column centre, and turns each into the row where the column's
//! foreground starts or stops. Sorting those positions gives the runs.
//!
//! The port computes every walk point with the same floating-point expressions in the same
//! order (the downsampling uses exact integer forms of its doubles, see `Walk::step`), so it
//! agrees bit for bit. It does not visit every point, though: along one edge the column coordinate
//! `u` is monotone and moves by at most one per point, and only points with `u` in
//! `0..=5w` can produce a boundary, so the walk jumps (by binary search) into that window,
//! leaves the edge when `u` leaves it, and on steep edges jumps straight to the next change
//! of `u`. Work is then bounded by the part of the outline over the image, not by how far
//! outside the image a vertex lies.
use super::{MAX_COORD, MaskError, Rle, rle::pixels};

/// maskApi's upsampling factor.
const SCALE: f64 = 5.0;

/// A walk point `(u, v)`: column and row on the 5× grid.
type Point = (i64, i64);

impl Rle {
    /// One polygon `[x0, y0, x1, y1, ...]` (pixel coordinates, the COCO convention where
    /// pixel `(x, y)` spans `x..x+1`) rasterised as pycocotools' `frPyObjects([xy], h, w)`
    /// (maskApi `rleFrPoly`). Errors on an odd number of coordinates, fewer than 3 points,
    /// NaN or infinite coordinates, and coordinates beyond ±[`MAX_COORD`].
    pub fn from_polygon(xy: &[f64], h: u32, w: u32) -> Result<Rle, MaskError> {
        Rle::from_polygons(&[xy], h, w)
    }

    /// A COCO polygon segmentation (one or more parts) as pycocotools' `annToRLE`: each
    /// part rasterised with `rleFrPoly`, then their union with `rleMerge`. Every part is
    /// checked as in [`Rle::from_polygon`] (errors name the part); no parts is an error.
    pub fn from_polygons<P: AsRef<[f64]>>(parts: &[P], h: u32, w: u32) -> Result<Rle, MaskError> {
        if parts.is_empty() {
            return Err(MaskError::NoParts);
        }
        pixels(h, w)?;
        for (i, p) in parts.iter().enumerate() {
            check_part(i, p.as_ref())?;
        }
        let rles: Vec<Rle> = parts.iter().map(|p| fr_poly(p.as_ref(), h, w)).collect();
        Rle::merge(&rles, false)
    }
}

/// `[x, y, w, h]` spanned by the vertices of all parts (min and max of the coordinates, the
/// box COCO files carry for polygon annotations); `None` when there are no coordinates.
/// Takes the parts as they are (no checks), so check them first.
pub fn polygon_extent<P: AsRef<[f64]>>(parts: &[P]) -> Option<[f64; 4]> {
    let mut b: Option<[f64; 4]> = None; // x0, y0, x1, y1
    for xy in parts.iter().flat_map(|p| p.as_ref().chunks_exact(2)) {
        let (x, y) = (xy[0], xy[1]);
        b = Some(match b {
            None => [x, y, x, y],
            Some(b) => [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)],
        });
    }
    b.map(|b| [b[0], b[1], b[2] - b[0], b[3] - b[1]])
}

fn check_part(part: usize, xy: &[f64]) -> Result<(), MaskError> {
    if !xy.len().is_multiple_of(2) {
        return Err(MaskError::OddCoordinates {
            part,
            len: xy.len(),
        });
    }
    if xy.len() < 6 {
        return Err(MaskError::TooFewPoints {
            part,
            points: xy.len() / 2,
        });
    }
    for (index, &value) in xy.iter().enumerate() {
        if !value.is_finite() {
            return Err(MaskError::NonFinite { part, index, value });
        }
        if value.abs() > MAX_COORD {
            return Err(MaskError::CoordinateOutOfRange { part, index, value });
        }
    }
    Ok(())
}

/// C's `(int)v` as x86-64 does it (`cvttsd2si`): truncation toward zero, and `INT_MIN` for
/// NaN or out-of-range values. maskApi hits the NaN case on a zero-length edge (0/0 slope).
fn c_int(v: f64) -> i64 {
    if v.is_nan() || v >= 2147483648.0 || v <= -2147483649.0 {
        i64::from(i32::MIN)
    } else {
        v as i64
    }
}

/// maskApi `rleFrPoly` for a checked polygon.
fn fr_poly(xy: &[f64], h: u32, w: u32) -> Rle {
    let area = u64::from(h) * u64::from(w);
    if area == 0 {
        // pycocotools gives [0] for h = 0 (and counts not summing to 0 for w = 0).
        return Rle::from_valid(h, w, vec![0]);
    }
    let k = xy.len() / 2;
    let x: Vec<i64> = (0..k).map(|j| c_int(SCALE * xy[2 * j] + 0.5)).collect();
    let y: Vec<i64> = (0..k).map(|j| c_int(SCALE * xy[2 * j + 1] + 0.5)).collect();
    let mut walk = Walk {
        h,
        w,
        hi: 5 * i64::from(w),
        prev: None,
        bounds: Vec::new(),
    };
    for j in 0..k {
        let n = (j + 1) % k;
        walk.edge(x[j], y[j], x[n], y[n]);
    }
    Rle::from_valid(h, w, runs(walk.bounds, area as u32))
}

/// The boundary walk over all edges, carrying the previous point across edges as the C
/// code's single point array does.
struct Walk {
    h: u32,
    w: u32,
    /// Points with `u` outside `0..=hi` cannot give a boundary (module docs).
    hi: i64,
    /// The point before the next one, `None` when it was skipped (outside the window).
    prev: Option<Point>,
    /// Column-major positions `x·h + y` where a column's foreground starts or stops.
    bounds: Vec<u32>,
}

/// One edge as maskApi walks it: from `(xs, ys)` to `(xe, ye)` on the 5× grid, one point per
/// step along the longer axis, the other coordinate rounded from the slope.
struct Edge {
    xs: i64,
    ys: i64,
    dx: i64,
    dy: i64,
    flip: bool,
    s: f64,
}

impl Edge {
    fn new(mut xs: i64, mut ys: i64, mut xe: i64, mut ye: i64) -> Edge {
        let (dx, dy) = ((xe - xs).abs(), (ys - ye).abs());
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            (xs, xe) = (xe, xs);
            (ys, ye) = (ye, ys);
        }
        let s = if dx >= dy {
            (ye - ys) as f64 / dx as f64
        } else {
            (xe - xs) as f64 / dy as f64
        };
        Edge {
            xs,
            ys,
            dx,
            dy,
            flip,
            s,
        }
    }

    fn len(&self) -> i64 {
        self.dx.max(self.dy) + 1
    }

    fn flat(&self) -> bool {
        self.dx >= self.dy
    }

    /// Point `d` of the walk, `(u, v)` on the 5× grid, exactly as the C loop computes it.
    fn point(&self, d: i64) -> Point {
        if self.flat() {
            let t = if self.flip { self.dx - d } else { d };
            (t + self.xs, c_int(self.ys as f64 + self.s * t as f64 + 0.5))
        } else {
            let t = if self.flip { self.dy - d } else { d };
            (c_int(self.xs as f64 + self.s * t as f64 + 0.5), t + self.ys)
        }
    }

    fn u(&self, d: i64) -> i64 {
        self.point(d).0
    }
}

/// The first `d` in `lo..hi` where `pred` holds, given that it is false then true along
/// `lo..hi`; `hi` when it never holds.
fn first_true(mut lo: i64, mut hi: i64, pred: impl Fn(i64) -> bool) -> i64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

impl Walk {
    fn edge(&mut self, xs: i64, ys: i64, xe: i64, ye: i64) {
        let e = Edge::new(xs, ys, xe, ye);
        let n = e.len();
        let inc = e.u(n - 1) >= e.u(0);
        let hi = self.hi;
        let inside = |u: i64| (0..=hi).contains(&u);
        // `u` is monotone along the edge: jump to the first point in the window.
        let mut d = if inside(e.u(0)) {
            0
        } else if inc {
            first_true(0, n, |d| e.u(d) >= 0)
        } else {
            first_true(0, n, |d| e.u(d) <= hi)
        };
        if d > 0 {
            self.prev = None;
        }
        if d == n || !inside(e.u(d)) {
            self.prev = None;
            return;
        }
        let mut cur = e.point(d);
        self.step(cur);
        loop {
            let Some((next, p, before)) = next_change(&e, d, cur) else {
                if d < n - 1 {
                    self.prev = Some(e.point(n - 1));
                }
                return;
            };
            if !inside(p.0) {
                self.prev = None;
                return;
            }
            self.prev = Some(before);
            self.step(p);
            (d, cur) = (next, p);
        }
    }

    /// Consecutive points `prev → p`: maskApi's downsampling of one y-boundary point.
    ///
    /// maskApi does it in doubles: `xd = (u + .5)/5 − .5` must be an integer in
    /// `0..=w−1`, and the row is `ceil(clamp((v + .5)/5 − .5, 0, h))`. Both are
    /// `(n − 2)/5` for an integer `n`, which the doubles hold exactly when it is an integer
    /// and otherwise keep at least 0.2 from any integer (far above their rounding error for
    /// |n| < 2³¹), so the integer forms below give the same answers without the libm
    /// `floor`/`ceil` calls. (The unit tests check them against the double version.)
    fn step(&mut self, p: Point) {
        if let Some(q) = self.prev.replace(p)
            && p.0 != q.0
        {
            let u = if p.0 < q.0 { p.0 } else { p.0 - 1 };
            if (u - 2).rem_euclid(5) != 0 {
                return;
            }
            let x = (u - 2) / 5;
            if x < 0 || x >= i64::from(self.w) {
                return;
            }
            // ceil((v − 2)/5) = −floor((2 − v)/5), then the clamp to 0..=h.
            let v = p.1.min(q.1);
            let y = (-(2 - v).div_euclid(5)).clamp(0, i64::from(self.h));
            // C: (uint)(x·(int)h + y); x < w and y ≤ h, so this is at most h·w.
            self.bounds.push(x as u32 * self.h + y as u32);
        }
    }
}

/// From point `d` (which is `cur`) to the next point whose `u` differs: `(index, point, the
/// point before it)`, or `None` when `u` stays to the end of the edge. Points in between
/// share `u` and make no boundary; only the last of them pairs with the next point. Steep
/// edges first step a few points (near 45° `u` changes every point or two), then gallop.
fn next_change(e: &Edge, d: i64, cur: Point) -> Option<(i64, Point, Point)> {
    let n = e.len();
    let (mut k, mut before) = (d + 1, cur);
    while k < n && k <= d + 8 {
        let p = e.point(k);
        if p.0 != cur.0 {
            return Some((k, p, before));
        }
        (k, before) = (k + 1, p);
    }
    if k >= n {
        return None;
    }
    let k = gallop(k - 1, n, |j| e.u(j) != cur.0);
    (k < n).then(|| (k, e.point(k), e.point(k - 1)))
}

/// The first `d` in `(from, n)` where `pred` holds (false before, true after), or `n`:
/// exponential then binary search, so a gap of `g` points costs O(log g).
fn gallop(from: i64, n: i64, pred: impl Fn(i64) -> bool) -> i64 {
    let (mut lo, mut step) = (from, 1i64);
    let hi = loop {
        let probe = lo + step;
        if probe >= n - 1 {
            break n - 1;
        }
        if pred(probe) {
            break probe;
        }
        lo = probe;
        step *= 2;
    };
    if !pred(hi) {
        return n;
    }
    first_true(lo + 1, hi, &pred)
}

/// maskApi's last step: sort the boundary positions (plus the end `h·w`), take differences,
/// and fold each zero-length run into its neighbours.
fn runs(mut a: Vec<u32>, total: u32) -> Vec<u32> {
    a.push(total);
    a.sort_unstable();
    let mut p = 0;
    for v in a.iter_mut() {
        let t = *v;
        *v -= p;
        p = t;
    }
    let mut b = Vec::with_capacity(a.len());
    b.push(a[0]);
    let mut j = 1;
    while j < a.len() {
        if a[j] > 0 {
            b.push(a[j]);
            j += 1;
        } else {
            j += 1;
            if let (Some(&v), Some(last)) = (a.get(j), b.last_mut()) {
                *last += v;
                j += 1;
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// maskApi.c's rleFrPoly transcribed line by line (every point stored), to check the
    /// windowed walk against on inputs pycocotools is too slow or too fragile for.
    fn naive(xy: &[f64], h: u32, w: u32) -> Vec<u32> {
        let k = xy.len() / 2;
        let mut x: Vec<i64> = (0..k).map(|j| c_int(SCALE * xy[2 * j] + 0.5)).collect();
        let mut y: Vec<i64> = (0..k).map(|j| c_int(SCALE * xy[2 * j + 1] + 0.5)).collect();
        x.push(x[0]);
        y.push(y[0]);
        let (mut u, mut v) = (Vec::new(), Vec::new());
        for j in 0..k {
            let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
            let (dx, dy) = ((xe - xs).abs(), (ys - ye).abs());
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if flip {
                std::mem::swap(&mut xs, &mut xe);
                std::mem::swap(&mut ys, &mut ye);
            }
            let s = if dx >= dy {
                (ye - ys) as f64 / dx as f64
            } else {
                (xe - xs) as f64 / dy as f64
            };
            if dx >= dy {
                for d in 0..=dx {
                    let t = if flip { dx - d } else { d };
                    u.push(t + xs);
                    v.push(c_int(ys as f64 + s * t as f64 + 0.5));
                }
            } else {
                for d in 0..=dy {
                    let t = if flip { dy - d } else { d };
                    v.push(t + ys);
                    u.push(c_int(xs as f64 + s * t as f64 + 0.5));
                }
            }
        }
        let mut a = Vec::new();
        for j in 1..u.len() {
            if u[j] != u[j - 1] {
                let xd = (if u[j] < u[j - 1] { u[j] } else { u[j] - 1 }) as f64;
                let xd = (xd + 0.5) / SCALE - 0.5;
                if xd.floor() != xd || xd < 0.0 || xd > f64::from(w) - 1.0 {
                    continue;
                }
                let yd = (if v[j] < v[j - 1] { v[j] } else { v[j - 1] }) as f64;
                let mut yd = (yd + 0.5) / SCALE - 0.5;
                if yd < 0.0 {
                    yd = 0.0;
                } else if yd > f64::from(h) {
                    yd = f64::from(h);
                }
                a.push((xd as u32) * h + yd.ceil() as u32);
            }
        }
        runs(a, h * w)
    }

    struct Rng(u64);
    impl Rng {
        fn f(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn windowed_walk_equals_the_line_by_line_port() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut nonempty = 0;
        for case in 0..3000 {
            let big = if case % 10 == 0 { 300.0 } else { 40.0 };
            let h = 1 + (rng.f() * big) as u32;
            let w = 1 + (rng.f() * big) as u32;
            // Spread from sub-pixel to far outside (negative coordinates hit C's truncation
            // toward zero), and some on the 0.1 / 0.5 grids where rounding ties happen.
            let spread = match case % 250 {
                0 => 1e5,
                _ => [0.5, 5.0, 30.0, 300.0, 3000.0][case % 5],
            };
            let k = 3 + (rng.f() * 8.0) as usize;
            let (cx, cy) = (rng.f() * w as f64, rng.f() * h as f64);
            let mut xy: Vec<f64> = (0..2 * k)
                .map(|i| {
                    let c = if i % 2 == 0 { cx } else { cy };
                    c + (rng.f() - 0.5) * spread
                })
                .collect();
            if case % 7 == 0 {
                xy.iter_mut().for_each(|v| *v = (*v * 10.0).round() / 10.0);
            }
            if case % 11 == 0 {
                xy.iter_mut().for_each(|v| *v = (*v * 2.0).round() / 2.0);
            }
            if case % 13 == 0 {
                // a repeated vertex: a zero-length edge (0/0 slope in the C code)
                xy[2] = xy[0];
                xy[3] = xy[1];
            }
            let want = naive(&xy, h, w);
            let got = Rle::from_polygon(&xy, h, w).unwrap();
            assert_eq!(got.counts(), &want[..], "case {case}: {h}×{w} {xy:?}");
            nonempty += usize::from(got.area() > 0);
        }
        assert!(nonempty > 1000, "only {nonempty} non-empty masks");
    }

    #[test]
    fn far_vertices_cost_no_more_than_the_image() {
        // Vertices 1e8 px away: the C walk would visit ~1.5e9 points, the windowed one only
        // those over the image. Inside the image the edges are the same lines as those of
        // the triangle with vertices 1e4 px away (which the line-by-line port can walk), so
        // the masks agree: everything below y = 5.25.
        let t = std::time::Instant::now();
        let far = Rle::from_polygon(&[-1e8, 5.25, 1e8, 5.25, 1e8, 1e8], 20, 30).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let near = naive(&[-1e4, 5.25, 1e4, 5.25, 1e4, 1e4], 20, 30);
        assert_eq!(far.counts(), &near[..]);
        assert_eq!(far.area(), 30 * 15);
        assert!(secs < 0.5, "{secs} s");
    }
}
