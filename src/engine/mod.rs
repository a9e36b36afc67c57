//! The deployable student: the trained YOLOv8 captured as a flat op graph ([`graph`]),
//! run by our own executor ([`exec`]), stored as one memory-mapped engine file
//! ([`format`], spec in `docs/ENGINE.md`), used through [`Engine`] ([`runtime`]), and
//! written as ONNX ([`onnx`]) for onnxruntime / TensorRT users.
pub mod calibrate;
pub mod capture;
pub mod cuda_exec;
pub mod exec;
pub mod export;
pub mod format;
pub mod graph;
pub mod onnx;
pub mod quantize;
pub mod runtime;
pub mod shapes;

pub use capture::capture_yolo;
pub use graph::{Act, Graph, Level, Node, Op, ValueInfo, Weight, WeightData};
pub use runtime::Engine;
