//! Layers with named parameters (PyTorch's names, so reference state dicts load as they
//! are), the module tree, state-dict loading and default initialisations.
mod batch_norm;
pub mod builder;
mod conv;
mod dropout;
mod embedding;
pub mod init;
mod layer_norm;
mod linear;
mod load;
mod lora;
mod lora_config;
mod lora_report;
mod module;
pub mod param_source;
mod proj;
mod sequential;

pub use batch_norm::BatchNorm2d;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use load::{LoadReport, load_state_dict};
pub use lora::LoraLinear;
pub use lora_config::{LoraConfig, TargetModules};
pub use lora_report::ParamCount;
pub use module::{Module, freeze, join, parameter, state_dict_of, unfreeze};
pub use proj::{LoraPlan, Proj, mark_only_lora_trainable, proj};
pub use sequential::{Activation, Flatten, Layer, Sequential};

use crate::{Result, Tensor};

/// A layer's computation: one input tensor to one output tensor.
pub trait Forward {
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

// The norm and dropout layers keep their inherent `forward`; these make them composable.
impl Forward for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        BatchNorm2d::forward(self, x)
    }
}
impl Forward for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        LayerNorm::forward(self, x)
    }
}
impl Forward for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Dropout::forward(self, x)
    }
}
