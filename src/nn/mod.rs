//! Layers with named parameters (PyTorch's names, so reference state dicts load as they
//! are), the module tree, state-dict loading and default initialisations.
mod batch_norm;
mod dropout;
pub mod init;
mod layer_norm;
mod load;
mod module;

pub use batch_norm::BatchNorm2d;
pub use dropout::Dropout;
pub use layer_norm::LayerNorm;
pub use load::{LoadReport, load_state_dict};
pub use module::{Module, freeze, join, parameter, state_dict_of, unfreeze};
