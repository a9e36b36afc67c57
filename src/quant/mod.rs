//! Post-training quantization (being written).
