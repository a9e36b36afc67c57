#!/usr/bin/env python3
"""Write tests/fixtures/bert-tokenizer-cases.json: what transformers' BertTokenizer
(do_lower_case=True) gives on small vocabularies, for tests/bert_tokenizer.rs.

Each tokenizer is `BertTokenizer(vocab=load_vocab(vocab.txt))`, i.e. the vocab read as
transformers' `load_vocab` reads it (for the main vocab, `from_pretrained` on a folder
is asserted to agree). Vocabs:
  * main: a few hundred tokens (specials, words, ##-pieces, accent-stripped words, CJK,
    Hangul jamo, Greek, Cyrillic, punctuation, the Grounding DINO prompt words);
  * chars: one token per word that a single code point normalizes to, for the case that
    runs every code point the normalizer changes (case, accents, marks, whitespace,
    controls, punctuation; a sample of CJK and Hangul syllables, no private use);
  * no_mask, dup_no_mask: no [MASK] (transformers adds it after the vocab) and duplicates;
  * crlf: CRLF and lone-CR lines, a BOM, a token with a trailing space.
Cases: {vocab, text, max_length (or null), ids, offsets (UTF-8 byte ranges in text),
num_truncated}. Random texts are drawn from a mixed alphabet with a fixed seed.
"""
import json
import random
import sys
import tempfile
from pathlib import Path

import tokenizers
import transformers
from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizer
from transformers.models.bert.tokenization_bert import load_vocab

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/fixtures/bert-tokenizer-cases.json"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

WORDS = """the a an of and to in is it on for with as at by from this that be are was
ear bag surface defect printed label car cat dog person bottle cup chair table red blue
green small large left right top bottom hello world token word piece un want runn play
cafe angstrom naive resume uber facade jalapeno zurich munchen koln sao paulo
i you he she we they one two three 0 1 2 3 4 5 6 7 8 9 10 100 2024
x y z b c d e f g h j k l m n o p q r s t u v w
αθηνα ελλαδα οδος οδοσ λογος москва привет мир ёж еж""".split()
PIECES = """##s ##ed ##ing ##er ##est ##ly ##able ##ness ##a ##b ##c ##d ##e ##f ##g ##h
##i ##j ##k ##l ##m ##n ##o ##p ##q ##r ##t ##u ##v ##w ##x ##y ##z ##0 ##1 ##2 ##3 ##4
##5 ##6 ##7 ##8 ##9 ##ect ##ace ##bel ##ar ##or ##ion ##ation ##ο ##ς ##σ ##α ##в ##ет
##ᅡ ##ᆫ ##ᅮ ##ᆨ ##ᅥ ##ᅵ""".split()
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["¿", "¡", "«", "»", "—", "–", "…",
         "“", "”", "‘", "’", "·", "、", "。", "「", "」", "・", "§", "¶"]
CJK = list("中国人日本大学生你好世界東京漢字") + ["ᄒ", "ᄀ", "ᄉ", "ᄋ", "한", "국"]
MAIN = SPECIAL + [f"[unused{i}]" for i in range(3)] + WORDS + PIECES + PUNCT + CJK

ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" .,!?;:'\"()[]{}-_/\\@#$%^&*+=<>|~`")
    + list("éèêëÉÈÊËàáâäÀÁÂÄçÇñÑöÖüÜßøØåÅæÆœŒıİĳſ")
    + ["\u0301", "\u0300", "\u0308", "\u0323", "\u0327", "\u034f", "\u0903", "\U0001d165", "\U0001d16d", "\u1734", "\u0890"]
    + list("中国人日本大学生你好東京漢字") + list("한국어가나다") + ["\u1100", "\u1161"]
    + list("ΑΘΗΝΑαθηνάΣσςΟΔΟΣ") + list("МоскваПриветЁё")
    + [" ", "  ", "\t", "\n", "\r", "\u00a0", "\u2028", "\u3000", "\u1680", "\u202f",
       "\u200b", "\ufeff", "\ufffd", "\x00", "\x0b", "\x85", "\u00ad", "\ue000", "\U000f0000"]
    + ["😀", "👍🏽", "❤️", "🥰", "\U0001f970", "\u0378", "\U000e0001"]
    + ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[cls]", "[unused1]"]
    + WORDS[:60] + [w[2:] for w in PIECES[:20]]
)

HAND = [
    "", " ", "   ", "\t\n\r", "hello", "Hello World", "HELLO WORLD!", "hello,world",
    "ear of bag . surface defects . printed label .",
    "Ear of Bag. Surface Defects. Printed Label.",
    "café", "Café", "CAFÉ", "cafe\u0301", "Ångström", "naïve", "résumé", "Über façade",
    "jalapeño", "Zürich München Köln São Paulo", "İ", "ı", "ĳ", "ß", "ſ", "Σ", "ΟΔΟΣ",
    "ΑΘΗΝΑ", "Αθήνα", "Ελλάδα", "λόγος", "Москва", "ПРИВЕТ мир", "Ёж", "ёж",
    "中国人", "我爱中国", "日本語のテキスト", "東京大学", "hello中国world", "中,国",
    "한국", "한국어", "\u1112\u1161\u11ab", "가나다",
    "...", "!!!", "?!?!", "a.b.c", "---", "(hello)", "[hello]", "{x}", "\"quoted\"",
    "it's", "don't", "e-mail", "a/b\\c", "¿qué?", "«x»", "x—y", "x…", "“hi”",
    "a\x00b", "a\x01b", "a\x0bb", "a\x0cb", "a\x85b", "a\u200bb", "a\ufeffb", "a\ufffdb",
    "a\u00adb", "a\ue000b", "a\U000f0000b", "a\u0890b", "a\tb", "a\nb", "a\r\nb",
    "a\u00a0b", "a\u2028b", "a\u2029b", "a\u3000b", "a\u1680b", "a\u202fb", "a\u205fb",
    "a\u2000b\u200ab", "😀", "hello 😀 world", "👍🏽", "❤️", "🥰", "a\u0378b",
    "\u0301", "a\u0301", "\u0301a", "e\u0301\u0300\u0323", "o\u0308\u0304",
    "x\U0001d16d\U0001d165", "x\U0001d165\U0001d16d", "x\U0001d16d\u034f\U0001d165",
    "\U0001d15f", "\u1734\u1734", "\u0915\u093c\u094d", "k\u0903",
    "[CLS]", "[SEP] hello [CLS]", "a[CLS]b", "[cls]", "[MASK]", "hello[MASK]world",
    "[[CLS]]", "[CLS", "[unused1]", "[UNK]", "[PAD]",
    "a" * 100, "a" * 101, "a" * 99 + "!", "é" * 100, "é" * 101, "e\u0301" * 100,
    "hello" * 25, "x" * 300, "unwanted", "unwantedly", "running", "playable",
    "xyzzy", "qqq", "zzzz", "surfaces", "labels", "defects", "printed", "labelled",
    "1234567890", "2024-01-01", "3.14", "$100", "50%", "#hashtag", "@user", "a_b",
    "\uf900", "\u2f800", "\U0002f800", "\U00020000", "\u3400", "\u4e00\u9fff",
    "ｆｕｌｌｗｉｄｔｈ", "Ⅻ", "ﬁ", "Å", "Ω", "K",
]
TRUNC = [
    ("ear of bag . surface defects . printed label .", 2),
    ("ear of bag . surface defects . printed label .", 3),
    ("ear of bag . surface defects . printed label .", 5),
    ("ear of bag . surface defects . printed label .", 13),
    ("ear of bag . surface defects . printed label .", 14),
    ("hello world hello world", 4),
    ("unwantedly running", 3),
    ("", 2),
]


def make(vocab_text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "vocab.txt"
        path.write_bytes(vocab_text.encode("utf-8"))
        tok = BertTokenizer(vocab=load_vocab(str(path)), do_lower_case=True)
        return tok, path


def byte_offsets(text, offsets):
    at = [0]
    for ch in text:
        at.append(at[-1] + len(ch.encode("utf-8")))
    return [[at[s], at[e]] for s, e in offsets]


def case(tok, name, text, max_length=None):
    kw = dict(truncation=True, max_length=max_length) if max_length else {}
    enc = tok(text, return_offsets_mapping=True, **kw)
    full = tok(text)["input_ids"]
    assert enc["token_type_ids"] == [0] * len(enc["input_ids"])
    assert enc["attention_mask"] == [1] * len(enc["input_ids"])
    return {
        "vocab": name, "text": text, "max_length": max_length, "ids": enc["input_ids"],
        "offsets": byte_offsets(text, enc["offset_mapping"]),
        "num_truncated": len(full) - len(enc["input_ids"]),
    }


def chars_case():
    """Every code point the normalizer changes or splits off, but a sample of CJK
    ideographs and Hangul syllables, and no private-use chars (whole ranges)."""
    bert = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    picked, words = [], set()
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF or 0xE000 <= c <= 0xF8FF or c >= 0xF0000 or c == 0x20:
            continue
        ch = chr(c)
        norm = bert.normalize_str(ch)
        pieces = [p for p, _ in pre.pre_tokenize_str(norm)]
        if norm != ch or pieces != [ch]:
            cjk = len(norm) == 3 and norm[0] == norm[2] == " "
            if cjk and c % 997 or 0xAC00 <= c <= 0xD7A3 and c % 53:
                continue  # CJK and Hangul syllables: a sample
            picked.append(ch)
            words.update(pieces)
    vocab = SPECIAL + sorted(words - set(SPECIAL))
    return vocab, " ".join(picked)


def main():
    rng = random.Random(20240601)
    main_text = "\n".join(MAIN)
    chars_vocab, chars_text = chars_case()
    no_mask = [t for t in MAIN if t != "[MASK]"]
    vocabs = {
        "main": main_text,
        "chars": "\n".join(chars_vocab),
        "no_mask": "\n".join(no_mask) + "\n",
        "dup_no_mask": "\n".join(["hello"] * 6 + ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "world"]),
        "crlf": "\ufeffzz\r\n[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nabc\r\nabc \rx\r\ny\n\nq\n",
    }
    toks = {k: make(v)[0] for k, v in vocabs.items()}

    with tempfile.TemporaryDirectory() as d:  # the folder path agrees on the main vocab
        (Path(d) / "vocab.txt").write_text(main_text, encoding="utf-8")
        fp = BertTokenizer.from_pretrained(d)
        for text in HAND:
            assert fp(text)["input_ids"] == toks["main"](text)["input_ids"], text

    cases = [case(toks["main"], "main", t) for t in HAND]
    cases += [case(toks["main"], "main", t, n) for t, n in TRUNC]
    for i in range(60):
        n = rng.randint(1, 14)
        text = "".join(rng.choice(ALPHABET) for _ in range(n))
        if i % 3 == 0:
            text = text.upper()
        cases.append(case(toks["main"], "main", text, rng.choice([None, None, None, 8])))
    cases.append(case(toks["chars"], "chars", chars_text))
    for name, texts in [
        ("no_mask", ["[MASK] hello", "hello [MASK]"]),
        ("dup_no_mask", ["hello [MASK] world", "hello", "[SEP][CLS]"]),
        ("crlf", ["abc", "x y q zz", "\ufeffzz", "abc x"]),
    ]:
        cases += [case(toks[name], name, t) for t in texts]

    fixture = {
        "reference": f"transformers {transformers.__version__} BertTokenizer "
                     f"(tokenizers {tokenizers.__version__}), do_lower_case=True",
        "vocabs": vocabs,
        "cases": cases,
    }
    dump = lambda x: json.dumps(x, ensure_ascii=False, separators=(",", ":"))
    head = dump({k: v for k, v in fixture.items() if k != "cases"})[:-1]
    OUT.write_text(head + ',"cases":[\n' + ",\n".join(map(dump, cases)) + "\n]}\n")
    print(f"wrote {OUT}: {len(cases)} cases, {OUT.stat().st_size} bytes, "
          f"chars case {len(chars_text)} chars / vocab {len(chars_vocab)}")


main()
