//! The text prompt for a set of classes, as GroundingDinoProcessor builds it from candidate
//! labels ("ear of bag. surface defect. printed label."), tokenized, with each class's token
//! positions (its phrase between delimiters), so logits per class are the max over them.
use super::text::SPECIAL_TOKENS;
use crate::models::bert::{BertTokenizer, Encoding};
use crate::{Error, Result, Tensor};

#[derive(Clone, Debug)]
pub struct ClassPrompt {
    pub text: String,
    pub encoding: Encoding,
    /// Token positions of class c's phrase.
    pub class_tokens: Vec<Vec<usize>>,
}

impl ClassPrompt {
    /// Labels lower-cased and trimmed, joined with ". " and ended with "." (transformers'
    /// `_merge_candidate_labels_text`). Errors: no class, a class that tokenizes to nothing
    /// or only to [UNK], one holding a delimiter ("." or "?"), or a prompt longer than
    /// `max_text_len` tokens.
    pub fn new(tok: &BertTokenizer, names: &[String], max_text_len: usize) -> Result<ClassPrompt> {
        if names.is_empty() {
            return Err(Error::msg("Grounding DINO prompt: no class names"));
        }
        let labels: Vec<String> = names.iter().map(|n| n.trim().to_lowercase()).collect();
        let text = labels.join(". ") + ".";
        let encoding = tok.encode(&text);
        if encoding.len() > max_text_len {
            return Err(Error::msg(format!(
                "Grounding DINO prompt: {:?} is {} tokens, more than max_text_len {max_text_len}; \
                 use shorter class names or fewer classes per prompt",
                text,
                encoding.len()
            )));
        }
        let mut class_tokens = Vec::with_capacity(labels.len());
        let mut start = 0usize;
        for (c, label) in labels.iter().enumerate() {
            let end = start + label.len();
            let toks = encoding.tokens_in(start, end);
            let ids: Vec<i64> = toks.iter().map(|&t| encoding.ids[t] as i64).collect();
            if ids.is_empty() {
                return Err(Error::msg(format!(
                    "Grounding DINO prompt: class {c} {:?} has no token",
                    names[c]
                )));
            }
            if ids.iter().any(|t| SPECIAL_TOKENS.contains(t)) {
                return Err(Error::msg(format!(
                    "Grounding DINO prompt: class {c} {:?} contains a phrase delimiter (\".\" or \"?\"), \
                     which would split it into two phrases",
                    names[c]
                )));
            }
            if ids.iter().all(|&t| t == tok.unk_id() as i64) {
                return Err(Error::msg(format!(
                    "Grounding DINO prompt: class {c} {:?} has no known token (all [UNK]) in the vocabulary",
                    names[c]
                )));
            }
            class_tokens.push(toks);
            start = end + 2; // ". "
        }
        Ok(ClassPrompt {
            text,
            encoding,
            class_tokens,
        })
    }

    fn row(&self, v: impl Fn(usize) -> i64) -> Result<Tensor> {
        let n = self.encoding.len();
        Tensor::from_vec((0..n).map(v).collect::<Vec<i64>>(), [1, n])
    }
    /// [1, L] i64 input ids, attention mask and token type ids.
    pub fn input_ids(&self) -> Result<Tensor> {
        self.row(|i| self.encoding.ids[i] as i64)
    }
    pub fn attention_mask(&self) -> Result<Tensor> {
        self.row(|i| self.encoding.attention_mask[i] as i64)
    }
    pub fn token_type_ids(&self) -> Result<Tensor> {
        self.row(|i| self.encoding.token_type_ids[i] as i64)
    }
}
