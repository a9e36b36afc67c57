//! BertTokenizer against transformers' BertTokenizer (tests/fixtures/bert-tokenizer-cases.json,
//! written by tools/reference/make_bert_tokenizer_cases.py), the Grounding DINO fixture's
//! prompt, spans and errors.
mod common;

use edgedistill::Error;
use edgedistill::io::Safetensors;
use edgedistill::models::bert::{BertTokenizer, Encoding};
use serde_json::Value;
use std::collections::HashMap;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bert-tokenizer-cases.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tokenizers(fx: &Value) -> HashMap<String, BertTokenizer> {
    fx["vocabs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, text)| {
            let tok = BertTokenizer::from_vocab_str(text.as_str().unwrap(), name).unwrap();
            (name.clone(), tok)
        })
        .collect()
}

fn main_tokenizer() -> BertTokenizer {
    tokenizers(&fixture()).remove("main").unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Where two encodings first differ, with the text around it.
fn first_diff(text: &str, got: &Encoding, ids: &[u32], spans: &[(usize, usize)]) -> String {
    let n = got.ids.len().min(ids.len());
    let i = (0..n)
        .find(|&i| got.ids[i] != ids[i] || got.spans[i] != spans[i])
        .unwrap_or(n);
    let around = |s: (usize, usize)| text.get(s.0..s.1).unwrap_or("?").to_string();
    format!(
        "lengths {} vs {}; token {i}: got {:?} {:?} ({:?}), want {:?} {:?} ({:?})",
        got.ids.len(),
        ids.len(),
        got.ids.get(i),
        got.spans.get(i),
        got.spans.get(i).map(|&s| around(s)),
        ids.get(i),
        spans.get(i),
        spans.get(i).map(|&s| around(s)),
    )
}

#[test]
fn matches_transformers_on_every_case() {
    let fx = fixture();
    let toks = tokenizers(&fx);
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() > 200, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let tok = &toks[c["vocab"].as_str().unwrap()];
        let text = c["text"].as_str().unwrap();
        let got = match c["max_length"].as_u64() {
            Some(n) => tok.encode_truncated(text, n as usize).unwrap(),
            None => tok.encode(text),
        };
        let ids = u32s(&c["ids"]);
        let spans: Vec<(usize, usize)> = c["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o[0].as_u64().unwrap() as usize,
                    o[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let n = ids.len();
        let ok = got.ids == ids
            && got.spans == spans
            && got.attention_mask == vec![1; n]
            && got.token_type_ids == vec![0; n]
            && got.num_truncated as u64 == c["num_truncated"].as_u64().unwrap();
        if !ok {
            let short: String = text.chars().take(60).collect();
            failures.push(format!(
                "case {k} ({}) {short:?}: {} (num_truncated {} want {})",
                c["vocab"],
                first_diff(text, &got, &ids, &spans),
                got.num_truncated,
                c["num_truncated"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(15)].join("\n")
    );
}

#[test]
fn spans_map_phrases_to_tokens() {
    let tok = main_tokenizer();
    let text = "ear of bag . surface defects . printed label .";
    let enc = tok.encode(text);
    let pieces: Vec<&str> = enc
        .ids
        .iter()
        .map(|&i| tok.id_to_token(i).unwrap())
        .collect();
    assert_eq!(
        pieces,
        [
            "[CLS]", "ear", "of", "bag", ".", "surface", "defect", "##s", ".", "printed", "label",
            ".", "[SEP]"
        ]
    );
    let at = |phrase: &str| {
        let s = text.find(phrase).unwrap();
        enc.tokens_in(s, s + phrase.len())
    };
    assert_eq!(at("ear of bag"), [1, 2, 3]);
    assert_eq!(at("surface defects"), [5, 6, 7]);
    assert_eq!(at("defects"), [6, 7]);
    assert_eq!(at("printed label"), [9, 10]);
    assert_eq!((enc.spans[6], enc.spans[7]), ((21, 27), (27, 28)));
    assert_eq!((enc.spans[0], enc.spans[12]), ((0, 0), (0, 0)));

    // Spans are bytes of the original text, across accents, case and CJK padding.
    let text = "Café, 中国!";
    let enc = tok.encode(text);
    let words: Vec<&str> = enc.spans[1..enc.len() - 1]
        .iter()
        .map(|&(s, e)| &text[s..e])
        .collect();
    assert_eq!(words, ["Café", ",", "中", "国", "!"]);
    assert_eq!(enc.ids[1], tok.token_to_id("cafe").unwrap());
    // A word split into pieces, and an unknown word as one [UNK] over the whole word.
    let enc = tok.encode("Naïveness ☃☃");
    assert_eq!(enc.spans[1..4], [(0, 6), (6, 10), (11, 17)]);
    assert_eq!(enc.ids[3], tok.unk_id());
}

#[test]
fn truncation_keeps_sep_and_says_so() {
    let tok = main_tokenizer();
    let full = tok.encode("hello world hello world");
    assert!(!full.truncated());
    let enc = tok.encode_truncated("hello world hello world", 4).unwrap();
    assert_eq!(
        enc.ids,
        [full.ids[..3].to_vec(), vec![tok.sep_id()]].concat()
    );
    assert_eq!(enc.num_truncated, 2);
    assert!(enc.truncated());
    assert_eq!(
        tok.encode_truncated("hello", 3).unwrap(),
        tok.encode("hello")
    );
    for n in [0, 1] {
        let e = tok.encode_truncated("hello", n).unwrap_err().to_string();
        assert!(e.contains("max_length"), "{e}");
    }
}

#[test]
fn vocab_lines_and_ids() {
    let tok = BertTokenizer::from_vocab_str("[PAD]\r\n[UNK]\r[CLS]\n[SEP]\nx\nx\n\n", "v").unwrap();
    assert_eq!(tok.vocab_size(), 7);
    assert_eq!(
        (tok.pad_id(), tok.unk_id(), tok.cls_id(), tok.sep_id()),
        (0, 1, 2, 3)
    );
    assert_eq!(tok.token_to_id("x"), Some(5)); // a later duplicate wins
    assert_eq!(tok.id_to_token(4), None);
    assert_eq!(tok.id_to_token(5), Some("x"));
    assert_eq!(tok.id_to_token(6), Some(""));
    assert_eq!(tok.mask_id(), 6); // added after the 6 distinct tokens
    assert_eq!(tok.encode("[MASK] x").ids, [2, 6, 5, 3]);
}

fn format_err(e: Error) -> (String, String) {
    match e {
        Error::Format { path, msg, .. } => (path, msg),
        e => panic!("want a Format error, got {e}"),
    }
}

#[test]
fn errors_name_the_vocab() {
    for (missing, text) in [
        ("[CLS]", "[PAD]\n[UNK]\n[SEP]\nx"),
        ("[SEP]", "[PAD]\n[UNK]\n[CLS]\nx"),
        ("[UNK]", "[PAD]\n[CLS]\n[SEP]"),
        ("[PAD]", "[UNK]\n[CLS]\n[SEP]"),
    ] {
        let (path, msg) =
            format_err(BertTokenizer::from_vocab_str(text, "my/vocab.txt").unwrap_err());
        assert_eq!(path, "my/vocab.txt");
        assert!(msg.contains(missing), "{msg}");
    }
    let (path, msg) = format_err(BertTokenizer::from_vocab_str("", "empty.txt").unwrap_err());
    assert_eq!(path, "empty.txt");
    assert!(msg.contains("empty"), "{msg}");

    let dir = std::env::temp_dir().join(format!("ed-bert-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let absent = dir.join("absent-vocab.txt");
    let e = BertTokenizer::from_vocab_file(&absent).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("absent-vocab.txt"), "{e}");

    let no_cls = dir.join("no-cls-vocab.txt");
    std::fs::write(&no_cls, "[PAD]\n[UNK]\n[SEP]\n").unwrap();
    let e = BertTokenizer::from_vocab_file(&no_cls)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-cls-vocab.txt") && e.contains("[CLS]"), "{e}");

    let bad = dir.join("bad-utf8-vocab.txt");
    std::fs::write(&bad, b"[PAD]\n[UNK]\n\xff\n").unwrap();
    let e = BertTokenizer::from_vocab_file(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad-utf8-vocab.txt") && e.contains("line 3"),
        "{e}"
    );

    let good = dir.join("vocab.txt");
    std::fs::write(&good, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n").unwrap();
    let tok = BertTokenizer::from_vocab_file(&good).unwrap();
    assert_eq!(tok.encode("Hi!").ids, [2, 4, 1, 3]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn grounding_dino_prompt_ids() {
    let Some(path) = common::shared_or_skip("grounding-dino-visible.safetensors") else {
        return;
    };
    let file = Safetensors::open(&path).unwrap();
    let meta = |k: &str| file.metadata().get(k).unwrap().clone();
    let (vocab, prompt) = (meta("vocab"), meta("prompt"));
    assert_eq!(prompt, "ear of bag . surface defects . printed label .");
    let tok = BertTokenizer::from_vocab_str(&vocab, file.path()).unwrap();
    assert_eq!(tok.vocab_size(), 30522);
    let enc = tok.encode(&prompt);
    let want = |name: &str| -> Vec<u32> {
        let t = file.tensor(name).unwrap();
        assert_eq!(t.dims(), [1, enc.len()], "{name}");
        t.to_vec_f64().unwrap().iter().map(|&v| v as u32).collect()
    };
    assert_eq!(
        enc.ids,
        [
            101, 2000, 2001, 2002, 1012, 2003, 2004, 2007, 1012, 2005, 2006, 1012, 102
        ]
    );
    assert_eq!(enc.ids, want("inputs.input_ids"));
    assert_eq!(enc.attention_mask, want("inputs.attention_mask"));
    assert_eq!(enc.token_type_ids, want("inputs.token_type_ids"));
}
