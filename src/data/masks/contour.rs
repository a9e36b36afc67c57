//! Binary mask → COCO polygons: the outer boundary of each 8-connected component, like
//! `cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_SIMPLE)`, but on the pixel-corner
//! convention: vertices are pixel corners (pixel `(x, y)` is the square `x..x+1 × y..y+1`),
//! so the polygon traces the mask's cracks. pycocotools' rasteriser
//! ([`Rle::from_polygons`](super::Rle::from_polygons)) then gives back exactly the mask's
//! pixels for a mask without holes (tests/data_synth.rs checks it). Holes are not
//! represented (COCO polygons cannot express them): each component's hole is filled.
//!
//! Tracing keeps the foreground on the right of travel (clockwise on screen); at a vertex
//! where two pixels touch only diagonally it turns left, which keeps them in one contour
//! (8-connectivity; the polygon then touches itself at that corner). Only vertices where
//! the direction changes are emitted (CHAIN_APPROX_SIMPLE).

/// Directions of travel, clockwise from east; `(dx, dy)` with y down.
const STEP: [(i64, i64); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// The outer contours of `mask` (`w × h`, row-major, nonzero = set) as COCO polygons
/// `[x0, y0, x1, y1, ...]` in pixel-corner coordinates, one per 8-connected component, in
/// the raster order of each component's first pixel. A mask shorter than `w·h` is read
/// as unset beyond its end.
pub fn mask_to_polygons(mask: &[u8], w: usize, h: usize) -> Vec<Vec<f64>> {
    let at = |x: i64, y: i64| -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && mask
                .get(y as usize * w + x as usize)
                .is_some_and(|&v| v != 0)
    };
    // Top edges already walked (by any contour, outer or hole), per pixel.
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let (xi, yi) = (x as i64, y as i64);
            if seen[y * w + x] || !at(xi, yi) || at(xi, yi - 1) {
                continue;
            }
            let (poly, area2) = trace(&at, &mut seen, w, xi, yi);
            // Clockwise on screen (positive shoelace with y down) = an outer boundary.
            if area2 > 0 {
                out.push(poly);
            }
        }
    }
    out
}

/// Walk one closed crack contour starting at the top-left corner of pixel `(x, y)` heading
/// east (that pixel set, the one above it unset). Returns the simplified polygon and twice
/// its signed area.
fn trace(
    at: &impl Fn(i64, i64) -> bool,
    seen: &mut [bool],
    w: usize,
    x: i64,
    y: i64,
) -> (Vec<f64>, i64) {
    let (sx, sy) = (x, y);
    let (mut vx, mut vy, mut d) = (x, y, 0usize);
    let mut poly = Vec::new();
    let mut area2 = 0i64;
    loop {
        // Walk the edge leaving (vx, vy) in direction d.
        if d == 0 {
            seen[vy as usize * w + vx as usize] = true;
        }
        let (nx, ny) = (vx + STEP[d].0, vy + STEP[d].1);
        area2 += vx * ny - nx * vy;
        (vx, vy) = (nx, ny);
        // The two pixels ahead of the vertex: left and right of the direction of travel.
        let (ahead_left, ahead_right) = ahead(vx, vy, d);
        let nd = if at(ahead_left.0, ahead_left.1) {
            (d + 3) % 4
        } else if at(ahead_right.0, ahead_right.1) {
            d
        } else {
            (d + 1) % 4
        };
        if nd != d {
            poly.extend([vx as f64, vy as f64]);
        }
        d = nd;
        if (vx, vy, d) == (sx, sy, 0) {
            break;
        }
    }
    (poly, area2)
}

/// Pixels ahead-left and ahead-right of vertex `(vx, vy)` when heading `d`.
fn ahead(vx: i64, vy: i64, d: usize) -> ((i64, i64), (i64, i64)) {
    // Pixel (px, py) has corners (px, py)..(px+1, py+1); around vertex v the four pixels
    // are v − (1,1), v − (0,1), v − (1,0), v.
    match d {
        0 => ((vx, vy - 1), (vx, vy)),         // east: NE, SE
        1 => ((vx, vy), (vx - 1, vy)),         // south: SE, SW
        2 => ((vx - 1, vy), (vx - 1, vy - 1)), // west: SW, NW
        _ => ((vx - 1, vy - 1), (vx, vy - 1)), // north: NW, NE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_pixel_and_rectangle() {
        assert_eq!(
            mask_to_polygons(&[1], 1, 1),
            vec![vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]]
        );
        // 3×2 block at (1, 1) in a 5×4 mask.
        let mut m = vec![0u8; 20];
        for y in 1..3 {
            for x in 1..4 {
                m[y * 5 + x] = 1;
            }
        }
        assert_eq!(
            mask_to_polygons(&m, 5, 4),
            vec![vec![4.0, 1.0, 4.0, 3.0, 1.0, 3.0, 1.0, 1.0]]
        );
    }

    #[test]
    fn components_diagonals_and_holes() {
        // Two diagonal pixels: one 8-connected contour.
        let m = [1, 0, 0, 1];
        assert_eq!(mask_to_polygons(&m, 2, 2).len(), 1);
        // Two separate blobs.
        let m = [1, 0, 1];
        assert_eq!(mask_to_polygons(&m, 3, 1).len(), 2);
        // A ring: one outer contour (the hole's contour is dropped).
        let mut m = vec![1u8; 9];
        m[4] = 0;
        let p = mask_to_polygons(&m, 3, 3);
        assert_eq!(p, vec![vec![3.0, 0.0, 3.0, 3.0, 0.0, 3.0, 0.0, 0.0]]);
        assert!(mask_to_polygons(&[0; 4], 2, 2).is_empty());
    }
}
