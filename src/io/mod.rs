//! Reading and writing weights: safetensors, state dicts with the reference's names, PEFT
//! LoRA adapters.
pub mod atomic;
pub mod checksum;
pub mod glob;
pub mod peft;
pub mod regex;
pub mod safetensors;
pub mod state_dict;

pub use peft::{Adapter, apply_adapter, load_adapter, save_adapter};
pub use safetensors::{
    Safetensors, TensorInfo, bytes_materialized, parse_header, save_safetensors,
    to_safetensors_bytes,
};
pub use state_dict::StateDict;
