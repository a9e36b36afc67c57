//! Reading and writing weights: safetensors, state dicts with the reference's names.
