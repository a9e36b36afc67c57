//! CPU kernels on plain slices: the reference implementation of every op. Float kernels
//! are generic over `Float` (f32, f64); rayon splits large work across cores.
pub mod alloc;
pub mod binary;
pub mod bn_act;
pub mod conv;
#[cfg(target_arch = "x86_64")]
pub mod conv_avx512;
#[cfg(target_arch = "x86_64")]
pub mod conv_implicit;
pub mod conv_winograd;
pub mod gemm;
pub mod grid_sample;
pub mod index;
pub mod int8_gemm;
pub mod mask_iou;
pub mod math;
pub mod ms_deform_attn;
pub mod norm;
pub mod pool;
pub mod qconv;
#[cfg(target_arch = "x86_64")]
pub mod qconv_avx2;
#[cfg(target_arch = "x86_64")]
pub mod qconv_vnni;
pub mod reduce;
pub mod softmax;
pub mod sort;
pub mod unary;
pub mod upsample;

/// Work below this many elements stays on one thread (rayon's overhead dominates).
pub const PAR_MIN: usize = 1 << 15;

/// A raw pointer that may cross threads, for parallel loops whose tasks write disjoint
/// parts of one buffer (each user states why its writes are disjoint).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: only a pointer value is shared; users guarantee disjoint writes.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    // A method (not field access) so closures capture the whole Send wrapper.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
