//! Task-aligned assigner (ultralytics `utils/tal.py` TaskAlignedAssigner, topk2 = topk),
//! one image at a time on plain f32 values: no tensors, no graph, no A×N buffers. Images
//! are independent in the reference too (padding boxes never win), so this matches its
//! batched form.
use super::iou::ciou_f32;
use super::targets::GtBox;

/// Assigner settings (ultralytics: topk 10, alpha 0.5, beta 6.0, eps 1e-9, stride_val =
/// the second stride).
#[derive(Clone, Copy, Debug)]
pub struct TalParams {
    pub topk: usize,
    pub nc: usize,
    pub alpha: f32,
    pub beta: f32,
    pub eps: f32,
    /// Boxes with a side below this (pixels) are enlarged to it for candidate selection.
    pub stride_val: f32,
}

/// What the assigner gives each anchor of one image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageAssignment {
    /// Foreground anchors.
    pub fg: Vec<bool>,
    /// Index (into the image's gt list) of the assigned gt; 0 for background anchors.
    pub target_gt_idx: Vec<usize>,
    /// The assigned gt box, pixels xyxy (gt 0's, or zeros when the image has none, for
    /// background anchors, as in the reference).
    pub target_bboxes: Vec<[f32; 4]>,
    /// The assigned class (0 for background anchors without gts).
    pub target_labels: Vec<usize>,
    /// The normalised alignment score at `target_labels` (0 for background): the one
    /// non-zero entry of the reference's `target_scores` row.
    pub target_score: Vec<f32>,
}

/// One candidate (anchor inside an enlarged gt) with its score^α·ciou^β and clamped CIoU.
#[derive(Clone, Copy)]
struct Cand {
    anchor: usize,
    metric: f32,
    overlap: f32,
}

/// Assign anchors to the gts of one image. `score(a, c)` is the predicted class
/// probability (after sigmoid), `pd_boxes` the predicted boxes and `anchors` the anchor
/// centres, both in pixels.
pub fn assign_image(
    p: &TalParams,
    score: impl Fn(usize, usize) -> f32,
    pd_boxes: &[[f32; 4]],
    anchors: &[[f32; 2]],
    gts: &[GtBox],
) -> ImageAssignment {
    let na = anchors.len();
    let mut out = ImageAssignment {
        fg: vec![false; na],
        target_gt_idx: vec![0; na],
        target_bboxes: vec![gts.first().map_or([0.0; 4], |g| g.xyxy); na],
        target_labels: vec![gts.first().map_or(0, |g| g.label); na],
        target_score: vec![0.0; na],
    };
    // Candidates of each gt (sorted by anchor) and the anchors its top-k selected.
    let cands: Vec<Vec<Cand>> = gts
        .iter()
        .map(|g| candidates(p, &score, pd_boxes, anchors, g))
        .collect();
    let mut count = vec![0u32; na];
    let mut first = vec![0usize; na];
    for (j, cs) in cands.iter().enumerate() {
        for a in select_topk(p.topk, na, cs) {
            if count[a] == 0 {
                first[a] = j;
            }
            count[a] += 1;
        }
    }
    let overlap_of = |j: usize, a: usize| -> (f32, f32) {
        match cands[j].binary_search_by_key(&a, |c| c.anchor) {
            Ok(i) => (cands[j][i].metric, cands[j][i].overlap),
            Err(_) => (0.0, 0.0),
        }
    };
    // Resolve anchors picked by several gts to the gt of highest overlap (first on ties).
    let mut owner = vec![usize::MAX; na];
    for a in 0..na {
        owner[a] = match count[a] {
            0 => continue,
            1 => first[a],
            _ => {
                let mut best = (0usize, f32::NEG_INFINITY);
                for j in 0..gts.len() {
                    let ov = overlap_of(j, a).1;
                    if ov > best.1 {
                        best = (j, ov);
                    }
                }
                best.0
            }
        };
    }
    // Per-gt maxima of metric and overlap over its positive anchors.
    let mut pam = vec![0f32; gts.len()];
    let mut pov = vec![0f32; gts.len()];
    for (a, &j) in owner.iter().enumerate() {
        if j != usize::MAX {
            let (m, o) = overlap_of(j, a);
            pam[j] = pam[j].max(m);
            pov[j] = pov[j].max(o);
        }
    }
    for (a, &j) in owner.iter().enumerate() {
        if j == usize::MAX {
            continue;
        }
        let (m, _) = overlap_of(j, a);
        out.fg[a] = true;
        out.target_gt_idx[a] = j;
        out.target_bboxes[a] = gts[j].xyxy;
        out.target_labels[a] = gts[j].label;
        out.target_score[a] = m * pov[j] / (pam[j] + p.eps);
    }
    out
}

/// `select_candidates_in_gts` + `get_box_metrics` for one gt (invalid gts: none).
fn candidates(
    p: &TalParams,
    score: &impl Fn(usize, usize) -> f32,
    pd_boxes: &[[f32; 4]],
    anchors: &[[f32; 2]],
    g: &GtBox,
) -> Vec<Cand> {
    let [x1, y1, x2, y2] = g.xyxy;
    // mask_gt: the reference treats boxes whose coordinates sum to <= 0 as padding.
    if x1 + y1 + x2 + y2 <= 0.0 {
        return Vec::new();
    }
    // xyxy -> xywh, floor each side at stride_val, back to xyxy (same f32 steps).
    let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    let (mut w, mut h) = (x2 - x1, y2 - y1);
    if w < p.stride_val {
        w = p.stride_val;
    }
    if h < p.stride_val {
        h = p.stride_val;
    }
    let (hw, hh) = (w / 2.0, h / 2.0);
    let (ex1, ey1, ex2, ey2) = (cx - hw, cy - hh, cx + hw, cy + hh);
    let eps = 1e-9f32;
    let mut out = Vec::new();
    for (a, &[ax, ay]) in anchors.iter().enumerate() {
        if ax - ex1 > eps && ay - ey1 > eps && ex2 - ax > eps && ey2 - ay > eps {
            let s = score(a, g.label);
            let overlap = ciou_f32(g.xyxy, pd_boxes[a]).max(0.0);
            let sa = if p.alpha == 0.5 {
                s.sqrt()
            } else {
                s.powf(p.alpha)
            };
            let metric = sa * overlap.powf(p.beta);
            out.push(Cand {
                anchor: a,
                metric,
                overlap,
            });
        }
    }
    out
}

/// The anchors among `cands` that torch.topk(k) of the dense metric row (zeros outside the
/// candidates) picks. On CPU torch takes the top k with libstdc++ `partial_sort` when
/// 64·k ≤ A; ties among zeros then resolve by its heap order, which is emulated here so
/// that zero-metric candidates are picked exactly when torch picks them. For 64·k > A
/// (nth_element in torch) zero ties go to the lowest indices instead: may differ.
fn select_topk(k: usize, na: usize, cands: &[Cand]) -> Vec<usize> {
    if cands.is_empty() || k == 0 {
        return Vec::new();
    }
    let k = k.min(na);
    let value = |a: usize| -> f32 {
        cands
            .binary_search_by_key(&a, |c| c.anchor)
            .map_or(0.0, |i| cands[i].metric)
    };
    let chosen: Vec<usize> = if 64 * k <= na {
        let mut heap: Vec<(f32, usize)> = (0..k).map(|a| (value(a), a)).collect();
        make_heap(&mut heap);
        for c in cands.iter().filter(|c| c.anchor >= k) {
            if better(&(c.metric, c.anchor), &heap[0]) {
                adjust_heap(&mut heap, 0, (c.metric, c.anchor));
            }
        }
        heap.into_iter().map(|(_, a)| a).collect()
    } else {
        let mut order: Vec<&Cand> = cands.iter().filter(|c| c.metric > 0.0).collect();
        order.sort_by(|x, y| y.metric.total_cmp(&x.metric).then(x.anchor.cmp(&y.anchor)));
        let mut v: Vec<usize> = order.iter().take(k).map(|c| c.anchor).collect();
        let mut a = 0;
        while v.len() < k && a < na {
            if value(a) <= 0.0 && !v.contains(&a) {
                v.push(a);
            }
            a += 1;
        }
        v
    };
    // Only candidates count (mask_topk * mask_in_gts).
    chosen
        .into_iter()
        .filter(|&a| cands.binary_search_by_key(&a, |c| c.anchor).is_ok())
        .collect()
}

/// torch's topk comparator for largest=true: NaN first, then greater values.
fn better(x: &(f32, usize), y: &(f32, usize)) -> bool {
    (x.0.is_nan() && !y.0.is_nan()) || x.0 > y.0
}

/// libstdc++ `std::make_heap` with comparator `better`.
fn make_heap(h: &mut [(f32, usize)]) {
    let len = h.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let v = h[parent];
        adjust_heap(h, parent, v);
        if parent == 0 {
            return;
        }
        parent -= 1;
    }
}

/// libstdc++ `std::__adjust_heap` (sift the hole down, then push `value` up).
fn adjust_heap(h: &mut [(f32, usize)], mut hole: usize, value: (f32, usize)) {
    let len = h.len();
    let top = hole;
    let mut second = hole;
    while second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if better(&h[second], &h[second - 1]) {
            second -= 1;
        }
        h[hole] = h[second];
        hole = second;
    }
    if len.is_multiple_of(2) && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        h[hole] = h[second - 1];
        hole = second - 1;
    }
    let mut parent = hole.wrapping_sub(1) / 2;
    while hole > top && better(&h[parent], &value) {
        h[hole] = h[parent];
        hole = parent;
        parent = hole.wrapping_sub(1) / 2;
    }
    h[hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch.topk's pick among candidates, zero ties included, on rows from the fixture.
    #[test]
    fn topk_picks_what_torch_picks() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/yolo_loss_cases.safetensors");
        let f = crate::io::Safetensors::open(p).unwrap();
        let rows = f.tensor("topk.rows").unwrap();
        let (nr, na) = (rows.dims()[0], rows.dims()[1]);
        let rows = rows.to_vec_f32().unwrap();
        let cand = f.tensor("topk.candidates").unwrap().to_vec_f64().unwrap();
        let idx = f.tensor("topk.indices").unwrap().to_vec_f64().unwrap();
        let mut zero_picks = 0;
        for r in 0..nr {
            let cs: Vec<Cand> = (0..na)
                .filter(|&a| cand[r * na + a] != 0.0)
                .map(|a| Cand {
                    anchor: a,
                    metric: rows[r * na + a],
                    overlap: 0.0,
                })
                .collect();
            let mut got = select_topk(10, na, &cs);
            got.sort_unstable();
            let mut want: Vec<usize> = idx[r * 10..(r + 1) * 10]
                .iter()
                .map(|&v| v as usize)
                .filter(|&a| cand[r * na + a] != 0.0)
                .collect();
            want.sort_unstable();
            zero_picks += want.iter().filter(|&&a| rows[r * na + a] == 0.0).count();
            assert_eq!(got, want, "row {r}");
        }
        assert!(zero_picks > 0, "the rows should exercise zero-metric ties");
    }
}
