//! BERT as transformers' BertModel (Grounding DINO's text encoder) and its WordPiece
//! tokenizer (transformers 5's BertTokenizer).
pub mod config;
pub mod model;
pub mod tokenizer;
mod unicode_tables;

pub use config::BertConfig;
pub use model::BertModel;
pub use tokenizer::{BertTokenizer, Encoding};
