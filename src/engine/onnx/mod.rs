//! ONNX export of the captured [`Graph`](crate::engine::Graph): a hand-rolled protobuf
//! encoder ([`proto`]), the op mapping ([`writer`]) and the optional postprocess in ONNX
//! ops ([`postprocess`]).
pub mod postprocess;
pub mod proto;
pub mod writer;

pub use writer::{IR_VERSION, OPSET, OnnxOptions, OnnxOutputs, to_onnx, write_onnx};
