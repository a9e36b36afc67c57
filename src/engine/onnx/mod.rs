//! ONNX export of the captured [`Graph`](crate::engine::Graph): a hand-rolled protobuf
//! encoder ([`proto`]) and the op mapping ([`writer`]).
pub mod proto;
pub mod writer;

pub use writer::{IR_VERSION, OPSET, OnnxOptions, to_onnx, write_onnx};
