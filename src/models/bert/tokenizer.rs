//! BERT WordPiece tokenizer, lower-case (uncased), matching transformers 5's
//! `BertTokenizer`. That class is the Rust `tokenizers` pipeline, so this follows it:
//!
//! 1. the special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]` are cut out of the raw text
//!    first (exact, case-sensitive match) and map straight to their ids;
//! 2. BertNormalizer on each remaining piece: drop NUL, U+FFFD and control/format/private-use
//!    chars, map whitespace to ' ', pad CJK ideographs with spaces, strip accents
//!    (NFD, drop Mn), *then* lower-case per char;
//! 3. BertPreTokenizer: split on whitespace, each punctuation char a word of its own;
//! 4. WordPiece: greedy longest match, "##" continuations; a word over 100 chars, or one that
//!    cannot be split, is a single `[UNK]`.
//!
//! transformers' slow `BertTokenizerLegacy` differs in rare cases: it lower-cases before
//! stripping accents, keeps private-use chars and uses Python's newer Unicode tables (see
//! unicode_tables.rs).
//!
//! Spans are UTF-8 byte ranges into the text given to `encode`.
use super::unicode_tables as ut;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Tokens cut out of the raw text before normalization.
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const MAX_WORD_CHARS: usize = 100;

#[derive(Debug, Clone)]
pub struct BertTokenizer {
    vocab: HashMap<String, u32>,
    /// Line `i` of vocab.txt; `id_to_token` hides lines a later duplicate overrode.
    lines: Vec<String>,
    /// Ids of SPECIALS.
    special_ids: [u32; 5],
}

/// One encoded text: `[CLS] pieces [SEP]`, as transformers returns it for one sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// Byte range of each token in the text; `(0, 0)` for the added `[CLS]`/`[SEP]`
    /// (as transformers' offset_mapping).
    pub spans: Vec<(usize, usize)>,
    /// Pieces dropped by truncation (0 when nothing was cut).
    pub num_truncated: usize,
}

impl Encoding {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn truncated(&self) -> bool {
        self.num_truncated > 0
    }
    /// Positions of the tokens whose span overlaps the byte range `start..end` of the text
    /// (e.g. where a class name sits in the prompt); the added `[CLS]`/`[SEP]` never do.
    pub fn tokens_in(&self, start: usize, end: usize) -> Vec<usize> {
        let last = self.ids.len().saturating_sub(1);
        (1..last)
            .filter(|&i| {
                let (s, e) = self.spans[i];
                s < end && start < e
            })
            .collect()
    }
}

impl BertTokenizer {
    /// Read vocab.txt (UTF-8, one token a line, id = line number).
    pub fn from_vocab_file(path: impl AsRef<Path>) -> Result<BertTokenizer> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path.display().to_string();
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            fmt_err(&name, format!("line {line}"), "not valid UTF-8".into())
        })?;
        Self::from_vocab_str(&text, &name)
    }

    /// A vocab given as text; `source` names it in errors. Lines split as Python's
    /// `load_vocab` does (universal newlines: `\n`, `\r\n` or `\r`); the token is the line
    /// exactly, and a later duplicate takes the id. (`BertTokenizer.from_pretrained` on a
    /// folder reads it through `tokenizers`, which also trims trailing whitespace and splits
    /// on `\n` only; no token of a real BERT vocab is affected.)
    pub fn from_vocab_str(text: &str, source: &str) -> Result<BertTokenizer> {
        let lines: Vec<String> = split_lines(text).map(str::to_string).collect();
        if lines.is_empty() {
            return Err(fmt_err(source, "vocab".into(), "empty vocabulary".into()));
        }
        let Ok(n) = u32::try_from(lines.len()) else {
            return Err(fmt_err(source, "vocab".into(), "over 2^32 lines".into()));
        };
        let mut vocab = HashMap::with_capacity(lines.len());
        for (id, tok) in (0..n).zip(&lines) {
            vocab.insert(tok.clone(), id);
        }
        let mut special_ids = [0u32; 5];
        for (slot, tok) in special_ids.iter_mut().zip(&SPECIALS[..4]) {
            *slot = *vocab.get(*tok).ok_or_else(|| {
                fmt_err(
                    source,
                    "vocab".into(),
                    format!("no {tok} token (BERT needs [CLS], [SEP], [UNK] and [PAD])"),
                )
            })?;
        }
        // transformers adds a missing [MASK] after the vocabulary, with id = the number of
        // distinct tokens (with duplicate lines that id is taken: kept for parity).
        special_ids[4] = vocab.get("[MASK]").copied().unwrap_or(vocab.len() as u32);
        Ok(BertTokenizer {
            vocab,
            lines,
            special_ids,
        })
    }

    /// Number of vocab lines (the embedding table size).
    pub fn vocab_size(&self) -> usize {
        self.lines.len()
    }
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        let tok = self.lines.get(id as usize)?;
        (self.vocab.get(tok) == Some(&id)).then_some(tok.as_str())
    }
    pub fn pad_id(&self) -> u32 {
        self.special_ids[0]
    }
    pub fn unk_id(&self) -> u32 {
        self.special_ids[1]
    }
    pub fn cls_id(&self) -> u32 {
        self.special_ids[2]
    }
    pub fn sep_id(&self) -> u32 {
        self.special_ids[3]
    }
    pub fn mask_id(&self) -> u32 {
        self.special_ids[4]
    }

    /// `[CLS] pieces [SEP]` with masks and spans, no truncation.
    pub fn encode(&self, text: &str) -> Encoding {
        let pieces = self.tokenize(text);
        self.wrap(pieces, 0)
    }

    /// As `encode`, keeping at most `max_length` tokens (transformers' `truncation=True,
    /// max_length=N`: pieces are cut from the end, `[SEP]` stays last). transformers
    /// silently ignores a `max_length` below 2; this refuses it.
    pub fn encode_truncated(&self, text: &str, max_length: usize) -> Result<Encoding> {
        if max_length < 2 {
            return Err(Error::msg(format!(
                "BERT encode: max_length {max_length} leaves no room for [CLS] and [SEP]"
            )));
        }
        let mut pieces = self.tokenize(text);
        let cut = pieces.len().saturating_sub(max_length - 2);
        pieces.truncate(pieces.len() - cut);
        Ok(self.wrap(pieces, cut))
    }

    fn wrap(&self, pieces: Vec<(u32, (usize, usize))>, num_truncated: usize) -> Encoding {
        let n = pieces.len() + 2;
        let mut ids = Vec::with_capacity(n);
        let mut spans = Vec::with_capacity(n);
        ids.push(self.cls_id());
        spans.push((0, 0));
        for (id, span) in pieces {
            ids.push(id);
            spans.push(span);
        }
        ids.push(self.sep_id());
        spans.push((0, 0));
        Encoding {
            ids,
            attention_mask: vec![1; n],
            token_type_ids: vec![0; n],
            spans,
            num_truncated,
        }
    }

    /// The word pieces of `text` (no `[CLS]`/`[SEP]`): ids with byte spans.
    pub fn tokenize(&self, text: &str) -> Vec<(u32, (usize, usize))> {
        let mut out = Vec::new();
        let mut rest = 0;
        while rest < text.len() {
            let (start, end, id) =
                self.next_special(text, rest)
                    .unwrap_or((text.len(), text.len(), 0));
            self.tokenize_plain(&text[rest..start], rest, &mut out);
            if start < end {
                out.push((id, (start, end)));
            }
            rest = end;
        }
        out
    }

    /// Leftmost special token at or after byte `from`: (start, end, id).
    fn next_special(&self, text: &str, from: usize) -> Option<(usize, usize, u32)> {
        let bytes = text.as_bytes();
        (from..bytes.len())
            .filter(|&i| bytes[i] == b'[')
            .find_map(|i| {
                let k = SPECIALS
                    .iter()
                    .position(|s| bytes[i..].starts_with(s.as_bytes()))?;
                Some((i, i + SPECIALS[k].len(), self.special_ids[k]))
            })
    }

    /// Normalize, pre-tokenize and WordPiece a text without special tokens; `base` is its
    /// byte offset in the caller's text.
    fn tokenize_plain(&self, text: &str, base: usize, out: &mut Vec<(u32, (usize, usize))>) {
        let norm = normalize(text, base);
        let mut word: Vec<NChar> = Vec::new();
        for nc in norm {
            if is_whitespace(nc.c) {
                self.wordpiece(&word, out);
                word.clear();
            } else if is_punct(nc.c) {
                self.wordpiece(&word, out);
                word.clear();
                self.wordpiece(&[nc], out);
            } else {
                word.push(nc);
            }
        }
        self.wordpiece(&word, out);
    }

    /// Greedy longest-match-first over one word (`tokenizers`' WordPiece::tokenize).
    fn wordpiece(&self, word: &[NChar], out: &mut Vec<(u32, (usize, usize))>) {
        let (Some(first), Some(last)) = (word.first(), word.last()) else {
            return;
        };
        let whole = (first.start, last.end);
        if word.len() > MAX_WORD_CHARS {
            out.push((self.unk_id(), whole));
            return;
        }
        let mark = out.len();
        let mut buf = String::new();
        let mut start = 0;
        while start < word.len() {
            let mut found = None;
            for end in (start + 1..=word.len()).rev() {
                buf.clear();
                if start > 0 {
                    buf.push_str("##");
                }
                buf.extend(word[start..end].iter().map(|nc| nc.c));
                if let Some(&id) = self.vocab.get(buf.as_str()) {
                    found = Some((end, id));
                    break;
                }
            }
            let Some((end, id)) = found else {
                out.truncate(mark);
                out.push((self.unk_id(), whole));
                return;
            };
            out.push((id, (word[start].start, word[end - 1].end)));
            start = end;
        }
    }
}

/// A normalized char and the byte range of the original char it came from.
#[derive(Debug, Clone, Copy)]
struct NChar {
    c: char,
    start: usize,
    end: usize,
}

/// BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase), step by step
/// as `tokenizers` applies them (NFD's reordering sees the text after cleaning).
fn normalize(text: &str, base: usize) -> Vec<NChar> {
    let mut v = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let (start, end) = (base + i, base + i + c.len_utf8());
        let at = |c| NChar { c, start, end };
        if in_ranges(ut::REMOVED, c) {
            continue;
        }
        if in_ranges(ut::WHITESPACE, c) {
            v.push(at(' '));
        } else if in_ranges(ut::CJK, c) {
            v.extend([at(' '), at(c), at(' ')]);
        } else {
            v.push(at(c));
        }
    }
    let mut d = Vec::with_capacity(v.len());
    for nc in &v {
        decompose(nc.c, |c| d.push(NChar { c, ..*nc }));
    }
    reorder(&mut d);
    let mut out = Vec::with_capacity(d.len());
    for nc in d.into_iter().filter(|nc| !in_ranges(ut::MN, nc.c)) {
        out.extend(nc.c.to_lowercase().map(|c| NChar { c, ..nc }));
    }
    out
}

/// Canonical decomposition of `c` (NFD), fed to `emit`.
fn decompose(c: char, mut emit: impl FnMut(char)) {
    let (l0, v0, t0) = (0x1100, 0x1161, 0x11A7);
    let s = (c as u32).wrapping_sub(0xAC00);
    if s < 11172 {
        // Hangul syllable → leading + vowel (+ trailing) jamo (Unicode §3.12).
        let (l, v, t) = (s / (21 * 28), s % (21 * 28) / 28, s % 28);
        for j in [l0 + l, v0 + v]
            .into_iter()
            .chain((t > 0).then_some(t0 + t))
        {
            emit(char::from_u32(j).unwrap_or(c));
        }
        return;
    }
    match ut::NFD.binary_search_by_key(&(c as u32), |&(k, _)| k) {
        Ok(i) => ut::NFD[i].1.chars().for_each(emit),
        Err(_) => emit(c),
    }
}

/// Canonical ordering: a stable sort by combining class within each run of non-starters.
/// Chars move; the alignments stay by position, as in `tokenizers`.
fn reorder(v: &mut [NChar]) {
    let mut i = 0;
    while i < v.len() {
        if ccc(v[i].c) == 0 {
            i += 1;
            continue;
        }
        let run = i..v[i..]
            .iter()
            .position(|nc| ccc(nc.c) == 0)
            .map_or(v.len(), |k| i + k);
        let mut chars: Vec<char> = v[run.clone()].iter().map(|nc| nc.c).collect();
        chars.sort_by_key(|&c| ccc(c));
        for (nc, c) in v[run.clone()].iter_mut().zip(chars) {
            nc.c = c;
        }
        i = run.end;
    }
}

fn ccc(c: char) -> u8 {
    let c = c as u32;
    let i = ut::CCC.partition_point(|&(_, hi, _)| hi < c);
    ut::CCC.get(i).filter(|r| r.0 <= c).map_or(0, |r| r.2)
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    let i = table.partition_point(|&(_, hi)| hi < c);
    table.get(i).is_some_and(|&(lo, _)| lo <= c)
}

fn is_whitespace(c: char) -> bool {
    in_ranges(ut::WHITESPACE, c)
}

fn is_punct(c: char) -> bool {
    in_ranges(ut::PUNCT, c)
}

/// Lines as Python's text-mode `readlines()` + `rstrip("\n")` give them.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match rest.find(['\n', '\r']) {
            Some(i) if rest[i..].starts_with("\r\n") => (&rest[..i], &rest[i + 2..]),
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        Some(line)
    })
}

fn fmt_err(path: &str, record: String, msg: String) -> Error {
    Error::Format {
        path: path.to_string(),
        record,
        msg,
    }
}
