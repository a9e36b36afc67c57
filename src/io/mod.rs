//! Reading and writing weights: safetensors, state dicts with the reference's names.
pub mod atomic;
pub mod checksum;
pub mod glob;
pub mod safetensors;
pub mod state_dict;

pub use safetensors::{
    Safetensors, TensorInfo, bytes_materialized, parse_header, save_safetensors,
    to_safetensors_bytes,
};
pub use state_dict::StateDict;
