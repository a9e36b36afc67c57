//! Minimum-cost linear assignment with scipy's `linear_sum_assignment` semantics: the
//! shortest-augmenting-path (Jonker–Volgenant style) algorithm of Crouse (2016) that scipy
//! implements in `rectangular_lsap.cpp`, O(n³). The loops follow scipy's order so ties are
//! broken the same way and the indices, not just the total cost, match the reference.
use crate::{Error, Result};

/// Assigns each row (or each column, whichever is fewer) of the row-major `rows × cols`
/// `cost` matrix to a distinct column (row) at minimum total cost. Returns
/// `min(rows, cols)` pairs `(row, col)` sorted by row. `+inf` marks a forbidden pair (an
/// error when no finite assignment exists); NaN and `-inf` are errors, as in scipy.
pub fn linear_sum_assignment(
    cost: &[f64],
    rows: usize,
    cols: usize,
) -> Result<Vec<(usize, usize)>> {
    if rows.checked_mul(cols) != Some(cost.len()) {
        return Err(Error::Shape {
            op: "linear_sum_assignment",
            msg: format!("cost has {} entries, expected {rows} x {cols}", cost.len()),
        });
    }
    if let Some(k) = cost
        .iter()
        .position(|c| c.is_nan() || *c == f64::NEG_INFINITY)
    {
        return Err(Error::msg(format!(
            "linear_sum_assignment: matrix contains invalid numeric entries ({} at row {}, col {})",
            cost[k],
            k / cols,
            k % cols
        )));
    }
    if rows == 0 || cols == 0 {
        return Ok(Vec::new());
    }
    // The solver wants nr <= nc; scipy transposes the tall case.
    let transpose = cols < rows;
    let (nr, nc) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let c: Vec<f64> = if transpose {
        (0..nr)
            .flat_map(|i| (0..nc).map(move |j| cost[j * cols + i]))
            .collect()
    } else {
        cost.to_vec()
    };
    let col4row = solve(&c, nr, nc).ok_or_else(|| {
        Error::msg("linear_sum_assignment: cost matrix is infeasible (no finite assignment)")
    })?;
    let mut pairs: Vec<(usize, usize)> = if transpose {
        col4row.iter().enumerate().map(|(j, &i)| (i, j)).collect()
    } else {
        col4row.iter().enumerate().map(|(i, &j)| (i, j)).collect()
    };
    pairs.sort_unstable();
    Ok(pairs)
}

/// Column of each row for an `nr × nc` matrix with `nr <= nc`, or None when infeasible.
fn solve(cost: &[f64], nr: usize, nc: usize) -> Option<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let mut u = vec![0.0f64; nr];
    let mut v = vec![0.0f64; nc];
    let mut spc = vec![f64::INFINITY; nc];
    let mut path = vec![NONE; nc];
    let mut col4row = vec![NONE; nr];
    let mut row4col = vec![NONE; nc];
    let mut sr = vec![false; nr];
    let mut sc = vec![false; nc];
    let mut remaining = vec![0usize; nc];
    for cur in 0..nr {
        // Dijkstra-like search for the shortest augmenting path from row `cur`.
        let mut min_val = 0.0f64;
        let mut i = cur;
        let mut n_rem = nc;
        for (it, r) in remaining.iter_mut().enumerate() {
            *r = nc - it - 1;
        }
        sr.fill(false);
        sc.fill(false);
        spc.fill(f64::INFINITY);
        let sink = loop {
            let mut index = NONE;
            let mut lowest = f64::INFINITY;
            sr[i] = true;
            for (it, &j) in remaining[..n_rem].iter().enumerate() {
                let r = min_val + cost[i * nc + j] - u[i] - v[j];
                if r < spc[j] {
                    path[j] = i;
                    spc[j] = r;
                }
                // Prefer a free column among equals: it ends the search (scipy's rule,
                // important for integer costs).
                if spc[j] < lowest || (spc[j] == lowest && row4col[j] == NONE) {
                    lowest = spc[j];
                    index = it;
                }
            }
            min_val = lowest;
            if min_val == f64::INFINITY || index == NONE {
                return None;
            }
            let j = remaining[index];
            sc[j] = true;
            n_rem -= 1;
            remaining[index] = remaining[n_rem];
            if row4col[j] == NONE {
                break j;
            }
            i = row4col[j];
        };
        // Dual update.
        u[cur] += min_val;
        for r in 0..nr {
            if sr[r] && r != cur {
                u[r] += min_val - spc[col4row[r]];
            }
        }
        for j in 0..nc {
            if sc[j] {
                v[j] -= min_val - spc[j];
            }
        }
        // Augment along the path back to `cur`.
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == cur {
                break;
            }
        }
    }
    Some(col4row)
}
