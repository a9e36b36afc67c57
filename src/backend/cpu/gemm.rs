//! Matrix multiply on CPU through the `gemm` crate (packed, SIMD micro-kernels, rayon).
//! Every matmul-shaped op (matmul, conv via im2col, linear) goes through here.
use crate::tensor::Float;

/// Below this many multiply-adds a single thread is faster than splitting.
const PAR_FLOPS: usize = 1 << 18;

/// `c[m×n] = a[m×k] · b[k×n]` (`+= ` when `accumulate`). Each matrix is given as a slice and
/// its row and column strides in elements, so transposed operands need no copy.
///
/// The caller guarantees the strides address only inside the slices (checked below).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [T],
    c_rs: usize,
    c_cs: usize,
    a: &[T],
    a_rs: usize,
    a_cs: usize,
    b: &[T],
    b_rs: usize,
    b_cs: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
    };
    assert!(last(m, n, c_rs, c_cs) < c.len(), "gemm: c too small");
    if k == 0 {
        if !accumulate {
            c.iter_mut().for_each(|v| *v = T::ZERO);
        }
        return;
    }
    assert!(last(m, k, a_rs, a_cs) < a.len(), "gemm: a too small");
    assert!(last(k, n, b_rs, b_cs) < b.len(), "gemm: b too small");
    let threads = rayon::current_num_threads();
    let par = if m * n * k >= PAR_FLOPS && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: bounds checked above; T is f32 or f64, both supported by the gemm crate.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs as isize,
            c_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::gemm;
    #[test]
    fn gemm_matches_naive_with_transposed_operands() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        // b stored transposed (n×k row-major) and read with swapped strides.
        let mut bt = vec![0.0; n * k];
        for i in 0..k {
            for j in 0..n {
                bt[j * k + i] = b[i * n + j];
            }
        }
        let mut c = vec![1.0; m * n];
        gemm(m, n, k, &mut c, n, 1, &a, k, 1, &bt, 1, k, true);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0 + (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f64>();
                assert!((c[i * n + j] - want).abs() < 1e-12);
            }
        }
    }
}
