//! `tensor.argsort(descending=True)` as torch computes it on the CPU, ties included.
//!
//! torch's default (unstable) CPU sort is libstdc++'s `std::sort` (introsort: median-of-three
//! quicksort, heapsort past a depth limit, insertion sort for runs of ≤ 16) over
//! `(value, index)` pairs that start in index order, with "greater, NaN first" as the
//! order. Scores that tie (saturated sigmoids of a confident model tie often) come out in
//! the order this exact algorithm leaves them, which is not index order once n > 16; NMS
//! keeps boxes in this order, so replaying it is what makes our output rows match.
//! Checked against torch 2.15 on random arrays with many ties
//! (tools/reference/make_yolov8_postprocess_fixture.py writes fixtures with ties).

/// One sorted element: the value and its original position.
type Item = (f32, usize);

/// `a` goes before `b`: torch's descending comparator (NaN first, then larger first).
#[inline]
fn before(a: &Item, b: &Item) -> bool {
    (a.0.is_nan() && !b.0.is_nan()) || a.0 > b.0
}

/// Indices that sort `v` descending, exactly as torch's CPU `argsort(descending=True)`.
pub fn torch_argsort_desc(v: &[f32]) -> Vec<usize> {
    let mut a: Vec<Item> = v.iter().copied().zip(0..).collect();
    let n = a.len();
    if n > 1 {
        // __lg(n) * 2, as std::sort's depth limit.
        let depth = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
        introsort(&mut a, 0, n, depth);
        final_insertion_sort(&mut a);
    }
    a.into_iter().map(|(_, i)| i).collect()
}

const THRESHOLD: usize = 16;

fn introsort(a: &mut [Item], first: usize, mut last: usize, mut depth: usize) {
    while last - first > THRESHOLD {
        if depth == 0 {
            heapsort(&mut a[first..last]);
            return;
        }
        depth -= 1;
        let mid = first + (last - first) / 2;
        move_median_to_first(a, first, first + 1, mid, last - 1);
        let cut = unguarded_partition(a, first + 1, last, first);
        introsort(a, cut, last, depth);
        last = cut;
    }
}

fn move_median_to_first(a: &mut [Item], result: usize, x: usize, y: usize, z: usize) {
    let pick = if before(&a[x], &a[y]) {
        if before(&a[y], &a[z]) {
            y
        } else if before(&a[x], &a[z]) {
            z
        } else {
            x
        }
    } else if before(&a[x], &a[z]) {
        x
    } else if before(&a[y], &a[z]) {
        z
    } else {
        y
    };
    a.swap(result, pick);
}

/// Hoare partition around `a[pivot]` without bounds checks in libstdc++ (the median of
/// three guarantees sentinels); ours are ordinary indices, which stay in range.
fn unguarded_partition(a: &mut [Item], mut first: usize, mut last: usize, pivot: usize) -> usize {
    loop {
        while before(&a[first], &a[pivot]) {
            first += 1;
        }
        last -= 1;
        while before(&a[pivot], &a[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        a.swap(first, last);
        first += 1;
    }
}

fn final_insertion_sort(a: &mut [Item]) {
    if a.len() > THRESHOLD {
        insertion_sort(&mut a[..THRESHOLD]);
        for i in THRESHOLD..a.len() {
            linear_insert(a, i);
        }
    } else {
        insertion_sort(a);
    }
}

fn insertion_sort(a: &mut [Item]) {
    for i in 1..a.len() {
        if before(&a[i], &a[0]) {
            a[..=i].rotate_right(1);
        } else {
            linear_insert(a, i);
        }
    }
}

/// Move `a[i]` left past every element it goes before (an element it goes before exists
/// to the left of `i` only above a smaller-or-equal one, so the walk stops inside `a`).
fn linear_insert(a: &mut [Item], mut i: usize) {
    let val = a[i];
    while i > 0 && before(&val, &a[i - 1]) {
        a[i] = a[i - 1];
        i -= 1;
    }
    a[i] = val;
}

/// libstdc++ `make_heap` + `sort_heap` (`__adjust_heap` then `__push_heap`).
fn heapsort(a: &mut [Item]) {
    let len = a.len();
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let v = a[parent];
        adjust_heap(a, parent, len, v);
        if parent == 0 {
            break;
        }
        parent -= 1;
    }
    let mut last = len;
    while last > 1 {
        last -= 1;
        let v = a[last];
        a[last] = a[0];
        adjust_heap(a, 0, last, v);
    }
}

fn adjust_heap(a: &mut [Item], mut hole: usize, len: usize, value: Item) {
    let top = hole;
    let mut child = hole;
    while child < (len - 1) / 2 {
        child = 2 * (child + 1);
        if before(&a[child], &a[child - 1]) {
            child -= 1;
        }
        a[hole] = a[child];
        hole = child;
    }
    if len.is_multiple_of(2) && child == (len - 2) / 2 {
        child = 2 * (child + 1);
        a[hole] = a[child - 1];
        hole = child - 1;
    }
    while hole > top {
        let parent = (hole - 1) / 2;
        if !before(&a[parent], &value) {
            break;
        }
        a[hole] = a[parent];
        hole = parent;
    }
    a[hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_descending_and_small_ties_stay_in_index_order() {
        let v = [0.5, 0.7, 0.5, 0.7, 0.5];
        assert_eq!(torch_argsort_desc(&v), vec![1, 3, 0, 2, 4]);
        let v: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32).collect();
        let o = torch_argsort_desc(&v);
        assert!(o.windows(2).all(|w| v[w[0]] > v[w[1]]));
        assert_eq!(torch_argsort_desc(&[]), Vec::<usize>::new());
        assert_eq!(
            torch_argsort_desc(&[f32::NAN, 1.0, f32::NAN]),
            vec![0, 2, 1]
        );
        // torch: tensor([1, nan, 2] + [0.5] * 20).argsort(descending=True)[:4]
        let mut v = vec![1.0, f32::NAN, 2.0];
        v.extend([0.5; 20]);
        assert_eq!(torch_argsort_desc(&v)[..4], [1, 2, 0, 22]);
    }

    #[test]
    fn tie_order_matches_torch() {
        // torch 2.15: torch.tensor([0.5, 0.7, 0.5, 0.7, 0.5] * n)[:n].argsort(descending=True)
        let tiles = |n: usize| -> Vec<f32> { (0..n).map(|i| [0.5, 0.7][i % 5 % 2]).collect() };
        assert_eq!(
            torch_argsort_desc(&tiles(17))[..12],
            [8, 16, 13, 11, 6, 3, 1, 5, 4, 7, 0, 9]
        );
        assert_eq!(
            torch_argsort_desc(&tiles(100))[..12],
            [73, 26, 28, 83, 81, 33, 36, 78, 38, 76, 41, 43]
        );
    }

    #[test]
    fn heap_fallback_sorts() {
        let mut a: Vec<Item> = (0..37).map(|i| (((i * 13) % 37) as f32, i)).collect();
        heapsort(&mut a);
        // Sorted in the comparator's order: descending values.
        assert!(a.windows(2).all(|w| !before(&w[1], &w[0])));
        assert_eq!(a[0].0, 36.0);
    }
}
