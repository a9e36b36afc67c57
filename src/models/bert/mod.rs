//! BERT as transformers' BertModel (Grounding DINO's text encoder).
pub mod config;
pub mod model;

pub use config::BertConfig;
pub use model::BertModel;
