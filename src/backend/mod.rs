//! Compute backends. `cpu` is complete and is the reference for every op; the CUDA
//! backend (issue 3) adds `cuda` beside it.
pub mod cpu;
