//! BERT, the text encoder of Grounding DINO: for now its WordPiece tokenizer.
pub mod tokenizer;
mod unicode_tables;

pub use tokenizer::{BertTokenizer, Encoding};
