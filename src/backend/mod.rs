//! Compute backends. `cpu` is complete and is the reference for every op; the CUDA
//! backend (issue 3) adds `cuda` beside it.
pub mod cpu;
pub mod cuda;

/// CUDA C sources embedded at build time (see build.rs and kernels/README.md).
pub mod kernels {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

    /// The embedded source of `kernels/<stem>.cu`.
    pub fn source(stem: &str) -> Option<&'static str> {
        KERNEL_SOURCES
            .iter()
            .find(|(s, _)| *s == stem)
            .map(|(_, src)| *src)
    }
}
