//! The CUDA backend: found at run time through cudarc's dynamic loading (the same binary
//! runs on a machine with no CUDA), kernels from kernels/*.cu compiled by NVRTC per device
//! and cached per process. Each kernel has a CPU twin in `backend::cpu` that is its
//! reference. Tensors on CUDA arrive in a later step of issue 3; today the named kernels
//! run on host buffers they copy in and out.
pub mod attention;
pub mod device;
pub mod engine_ops;
pub mod int8_gemm;
pub mod lora;
pub mod mask_iou;
pub mod ms_deform_attn;
pub mod nvrtc;

pub use device::{CudaDevice, default_device, driver_present};
