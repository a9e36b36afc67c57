#!/usr/bin/env python3
"""Write src/models/bert/unicode_tables.rs: the character classes of transformers'
BertTokenizer, which in transformers 5 is the Rust `tokenizers` pipeline
BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase) +
BertPreTokenizer + WordPiece.

The classes are *probed from that library code point by code point*, not taken from
Python's unicodedata, because `tokenizers` carries its own, older Unicode tables
(unicode_categories ~ Unicode 8: e.g. U+0890 is Cf for Python 3.11 but not for it) and its
own rules (clean_text drops Co private-use chars but keeps unassigned Cn ones). Python's
unicodedata is used only for canonical combining classes (immutable once assigned), each one
confirmed against the library's NFD; the differences to unicodedata are printed.

Usage: make_bert_unicode_tables.py [OUT.rs]   (default: src/models/bert/unicode_tables.rs)
"""
import sys
import unicodedata as ud
from pathlib import Path

import tokenizers
from tokenizers import normalizers, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src/models/bert/unicode_tables.rs"
SEP = "q"  # no step changes it, and no canonical decomposition contains it
CPS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and chr(c) != SEP]
HANGUL = range(0xAC00, 0xD7A4)


def per_char(fn):
    """fn applied to each code point on its own (batched, SEP between them)."""
    out = {}
    for i in range(0, len(CPS), 4096):
        chunk = CPS[i : i + 4096]
        parts = fn(SEP + SEP.join(map(chr, chunk)) + SEP).split(SEP)
        assert len(parts) == len(chunk) + 2, i
        out.update(zip(chunk, parts[1:-1]))
    return out


def bert(clean=False, cjk=False, strip=False, lower=False):
    n = normalizers.BertNormalizer(
        clean_text=clean, handle_chinese_chars=cjk, strip_accents=strip, lowercase=lower
    )
    return per_char(n.normalize_str)


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


clean = bert(clean=True)
removed = {c for c, s in clean.items() if s == ""}
white = {c for c, s in clean.items() if s == " "} | {0x20}
assert all(s in ("", " ", chr(c)) for c, s in clean.items())

cjk = {c for c, s in bert(cjk=True).items() if s == f" {chr(c)} "}

nfd = per_char(normalizers.NFD().normalize_str)
strip = bert(strip=True)
# Mn: what strip_accents drops among characters NFD leaves alone.
mn = {c for c in CPS if nfd[c] == chr(c) and strip[c] == ""}
decomp = {c: nfd[c] for c in CPS if nfd[c] != chr(c) and c not in HANGUL}
for c in HANGUL:  # decomposed algorithmically in Rust
    assert nfd[c] == ud.normalize("NFD", chr(c)), hex(c)
for c in CPS:  # the tables reproduce strip_accents on every single character
    assert "".join(x for x in nfd[c] if ord(x) not in mn) == strip[c], hex(c)

# Canonical combining classes: unicodedata's, kept where the library's NFD reorders too.
nfd_str = normalizers.NFD().normalize_str
ccc, ccc_dropped = {}, []
for c in CPS:
    v = ud.combining(chr(c))
    if not v or nfd[c] != chr(c):
        continue
    if v < 230:  # an acute (230) before c moves after it iff 0 < ccc(c) < 230
        ok = nfd_str("\u0301" + chr(c)) == chr(c) + "\u0301"
    else:  # a ccc-1 overlay after c moves before it iff ccc(c) > 1
        ok = nfd_str(chr(c) + "\u0334") == "\u0334" + chr(c)
    if ok:
        ccc[c] = v
    else:
        ccc_dropped.append(c)
ccc_ranges = []
for c in sorted(ccc):
    if ccc_ranges and ccc_ranges[-1][1] == c - 1 and ccc_ranges[-1][2] == ccc[c]:
        ccc_ranges[-1][1] = c
    else:
        ccc_ranges.append([c, c, ccc[c]])

# BertPreTokenizer: punctuation comes out as a piece of its own, whitespace vanishes.
pre = pre_tokenizers.BertPreTokenizer()
punct, pre_white = set(), set()
for i in range(0, len(CPS), 4096):
    chunk = CPS[i : i + 4096]
    text = SEP + SEP.join(map(chr, chunk)) + SEP
    seen = set()
    for piece, _ in pre.pre_tokenize_str(text):
        seen.update(map(ord, piece))
        if len(piece) == 1 and piece != SEP:
            punct.add(ord(piece))
    pre_white.update(c for c in chunk if c not in seen)
assert pre_white - removed == white, sorted(pre_white - removed ^ white)
assert not punct & (white | removed | cjk)


def cat_set(pred):
    return {c for c in CPS if pred(ud.category(chr(c)))}


def report(name, ours, py):
    extra, missing = sorted(ours - py), sorted(py - ours)
    show = lambda xs: " ".join(f"{x:04X}" for x in xs[:12]) + (" ..." if len(xs) > 12 else "")
    print(f"{name}: {len(ours)} chars; vs unicodedata +{len(extra)} [{show(extra)}] "
          f"-{len(missing)} [{show(missing)}]")


py_removed = cat_set(lambda k: k in ("Cc", "Cf")) - {9, 10, 13} | {0, 0xFFFD}
report("removed (clean_text)", removed, py_removed)
report("whitespace", white, cat_set(lambda k: k == "Zs") | {9, 10, 13})
report("punctuation", punct, cat_set(lambda k: k[0] == "P")
       | {c for c in range(128) if chr(c) in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"})
report("Mn", mn, cat_set(lambda k: k == "Mn"))
print(f"CJK: {len(cjk)} chars in {len(ranges(cjk))} ranges")
print(f"NFD: {len(decomp)} decompositions + Hangul; ccc dropped (not in the library's "
      f"tables): {' '.join(f'{c:04X}' for c in ccc_dropped)}")


def emit_ranges(name, doc, rs, width=96):
    items = [f"(0x{a:X}, 0x{b:X})" for a, b in rs]
    return emit(name, doc, "(u32, u32)", items, width)


def emit(name, doc, ty, items, width=96):
    lines, cur = [], "    "
    for it in items:
        if len(cur) + len(it) + 2 > width:
            lines.append(cur.rstrip())
            cur = "    "
        cur += it + ", "
    lines.append(cur.rstrip())
    body = "\n".join(lines)
    return f"/// {doc}\n#[rustfmt::skip]\npub(crate) static {name}: &[{ty}] = &[\n{body}\n];\n"


def rust_str(s):
    return "".join(x if 0x20 <= ord(x) < 0x7F and x not in '"\\' else f"\\u{{{ord(x):x}}}"
                   for x in s)


out = f"""//! Generated by tools/reference/make_bert_unicode_tables.py: do not edit.
//! Probed from tokenizers {tokenizers.__version__} (BertNormalizer, NFD, BertPreTokenizer), whose
//! Unicode tables are older than Python's; canonical combining classes from Python's
//! unicodedata {ud.unidata_version}, confirmed against that library's NFD.
//! Range tables are sorted, inclusive and disjoint.

{emit_ranges("REMOVED", "clean_text drops these (NUL, U+FFFD, Cc/Cf/Co except tab, LF, CR).", ranges(removed))}
{emit_ranges("WHITESPACE", "clean_text maps these to a space; the pre-tokenizer splits on them.", ranges(white))}
{emit_ranges("CJK", "handle_chinese_chars puts a space either side of these.", ranges(cjk))}
{emit_ranges("PUNCT", "The pre-tokenizer makes each of these a word of its own.", ranges(punct))}
{emit_ranges("MN", "Nonspacing marks (Mn): strip_accents drops them after NFD.", ranges(mn))}
{emit("CCC", "Canonical combining classes other than 0, for NFD's canonical reordering.",
      "(u32, u32, u8)", [f"(0x{a:X}, 0x{b:X}, {v})" for a, b, v in ccc_ranges])}
{emit("NFD", "Full canonical decompositions (Hangul syllables are computed instead).",
      "(u32, &str)", [f'(0x{c:X}, "{rust_str(s)}")' for c, s in sorted(decomp.items())])}"""
OUT.write_text(out)
print(f"wrote {OUT} ({len(out)} bytes)")
