//! CPU kernels on plain slices: the reference implementation of every op. Float kernels
//! are generic over `Float` (f32, f64); rayon splits large work across cores.
pub mod binary;
pub mod gemm;
pub mod index;
pub mod math;
pub mod norm;
pub mod reduce;
pub mod softmax;
pub mod sort;
pub mod unary;

/// Work below this many elements stays on one thread (rayon's overhead dominates).
pub const PAR_MIN: usize = 1 << 15;
