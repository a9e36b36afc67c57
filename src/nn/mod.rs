//! Layers with named parameters.
