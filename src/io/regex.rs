//! A small regex for PEFT `target_modules` / `rank_pattern` keys with Python `re.fullmatch`
//! semantics: literals, `.`, escapes, classes, groups, `|`, greedy or lazy quantifiers and
//! `^ $`. Anything else (flags, lookaround, backreferences, `\b`, possessive quantifiers) is
//! an error naming the position, never a silent mismatch.
//!
//! Compiled to an NFA and run as a set of states (Thompson/Pike), not by backtracking: a
//! boolean full match does not depend on greediness, and the state set keeps every pattern
//! linear in the input, so `(a*)*b` cannot blow up. Counted repeats are unrolled, with a cap
//! on the program size.
use crate::{Error, Result};

/// Program size cap: `x{1000}` of a large `x` is refused rather than unrolled without bound.
const MAX_PROG: usize = 100_000;
/// Group nesting cap, so a hostile pattern cannot overflow the parser's stack.
const MAX_DEPTH: usize = 200;

#[derive(Clone, Debug)]
enum Item {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

#[derive(Clone, Debug)]
enum Atom {
    /// `.`: anything but a newline (no DOTALL).
    Any,
    Char(char),
    Class {
        negated: bool,
        items: Vec<Item>,
    },
}

#[derive(Clone, Debug)]
enum Node {
    Empty,
    Atom(Atom),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

#[derive(Clone, Debug)]
enum Inst {
    Atom(Atom),
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    Match,
}

/// A compiled pattern; `full_match` is Python's `re.fullmatch(pattern, s) is not None`.
#[derive(Clone, Debug)]
pub struct Regex {
    pattern: String,
    prog: Vec<Inst>,
}

// Python 3 str patterns use Unicode classes; these agree with it on ASCII (module names).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

impl Item {
    fn hit(&self, c: char) -> bool {
        match *self {
            Item::Range(lo, hi) => lo <= c && c <= hi,
            Item::Digit(neg) => is_digit(c) != neg,
            Item::Word(neg) => is_word(c) != neg,
            Item::Space(neg) => is_space(c) != neg,
        }
    }
}

impl Atom {
    fn hit(&self, c: char) -> bool {
        match self {
            Atom::Any => c != '\n',
            Atom::Char(x) => *x == c,
            Atom::Class { negated, items } => items.iter().any(|i| i.hit(c)) != *negated,
        }
    }
}

struct Parser<'a> {
    pattern: &'a str,
    s: Vec<char>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, pos: usize, what: &str) -> Error {
        Error::msg(format!("regex {:?}: position {pos}: {what}", self.pattern))
    }
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn alt(&mut self) -> Result<Node> {
        let mut branches = vec![self.concat()?];
        while self.eat('|') {
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().expect("one branch")
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let start = self.i;
            let atom = self.atom()?;
            items.push(self.quantified(atom, start)?);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().expect("one item"),
            _ => Node::Concat(items),
        })
    }

    /// Parse `{m}`, `{m,}`, `{,n}`, `{m,n}` at `{`; like Python, any other `{` is a literal.
    fn braces(&mut self) -> Result<Option<(u32, Option<u32>)>> {
        let here = self.i;
        self.i += 1;
        let num = |p: &mut Self| -> Result<Option<u32>> {
            let st = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            if st == p.i {
                return Ok(None);
            }
            let txt: String = p.s[st..p.i].iter().collect();
            txt.parse::<u32>()
                .map(Some)
                .map_err(|_| p.err(st, "repeat count too large"))
        };
        let lo = num(self)?;
        let range = if self.eat(',') {
            Some((lo.unwrap_or(0), num(self)?))
        } else {
            lo.map(|l| (l, Some(l)))
        };
        let Some((min, max)) = range.filter(|_| self.eat('}')) else {
            self.i = here;
            return Ok(None);
        };
        if max.is_some_and(|m| m < min) {
            return Err(self.err(here, "min repeat greater than max repeat"));
        }
        Ok(Some((min, max)))
    }

    fn quantified(&mut self, node: Node, start: usize) -> Result<Node> {
        let (min, max) = match self.peek() {
            Some('*') => {
                self.i += 1;
                (0, None)
            }
            Some('+') => {
                self.i += 1;
                (1, None)
            }
            Some('?') => {
                self.i += 1;
                (0, Some(1))
            }
            Some('{') => match self.braces()? {
                Some(mm) => mm,
                None => return Ok(node),
            },
            _ => return Ok(node),
        };
        if matches!(node, Node::Start | Node::End) {
            return Err(self.err(start, "nothing to repeat"));
        }
        // Lazy `?` does not change whether a full match exists; possessive `+` would.
        self.eat('?');
        if self.peek() == Some('+') {
            return Err(self.err(self.i, "possessive quantifier is not supported"));
        }
        if matches!(self.peek(), Some('*' | '+' | '?'))
            || (self.peek() == Some('{') && {
                let here = self.i;
                let is_q = self.braces()?.is_some();
                self.i = here;
                is_q
            })
        {
            return Err(self.err(self.i, "multiple repeat"));
        }
        Ok(Node::Repeat {
            node: Box::new(node),
            min,
            max,
        })
    }

    fn atom(&mut self) -> Result<Node> {
        let pos = self.i;
        let c = self.peek().ok_or_else(|| self.err(pos, "unexpected end"))?;
        self.i += 1;
        Ok(match c {
            '.' => Node::Atom(Atom::Any),
            '^' => Node::Start,
            '$' => Node::End,
            '*' | '+' | '?' => return Err(self.err(pos, "nothing to repeat")),
            '{' => {
                self.i = pos;
                if self.braces()?.is_some() {
                    return Err(self.err(pos, "nothing to repeat"));
                }
                self.i = pos + 1;
                Node::Atom(Atom::Char('{'))
            }
            '[' => Node::Atom(self.class(pos)?),
            '(' => self.group(pos)?,
            '\\' => match self.escape(pos, false)? {
                Esc::Char(c) => Node::Atom(Atom::Char(c)),
                Esc::Item(it) => Node::Atom(Atom::Class {
                    negated: false,
                    items: vec![it],
                }),
            },
            c => Node::Atom(Atom::Char(c)),
        })
    }

    fn group(&mut self, pos: usize) -> Result<Node> {
        if self.eat('?') {
            if self.eat(':') {
            } else if self.eat('P') && self.eat('<') {
                // Named group: the name does not matter to a boolean match.
                let st = self.i;
                while self.peek().is_some_and(|c| c == '_' || c.is_alphanumeric()) {
                    self.i += 1;
                }
                if st == self.i || !self.eat('>') {
                    return Err(self.err(st, "bad group name"));
                }
            } else {
                return Err(self.err(
                    pos,
                    "group extension (?...) is not supported (only (?:...) and (?P<name>...))",
                ));
            }
        }
        if self.depth == MAX_DEPTH {
            return Err(self.err(pos, "groups nested too deeply"));
        }
        self.depth += 1;
        let inner = self.alt()?;
        self.depth -= 1;
        if !self.eat(')') {
            return Err(self.err(pos, "missing ), unterminated subpattern"));
        }
        Ok(inner)
    }

    fn escape(&mut self, pos: usize, in_class: bool) -> Result<Esc> {
        let c = self
            .peek()
            .ok_or_else(|| self.err(pos, "bad escape (end of pattern)"))?;
        self.i += 1;
        Ok(match c {
            'd' => Esc::Item(Item::Digit(false)),
            'D' => Esc::Item(Item::Digit(true)),
            'w' => Esc::Item(Item::Word(false)),
            'W' => Esc::Item(Item::Word(true)),
            's' => Esc::Item(Item::Space(false)),
            'S' => Esc::Item(Item::Space(true)),
            'n' => Esc::Char('\n'),
            't' => Esc::Char('\t'),
            'r' => Esc::Char('\r'),
            'f' => Esc::Char('\x0c'),
            'v' => Esc::Char('\x0b'),
            'a' => Esc::Char('\x07'),
            'b' if in_class => Esc::Char('\x08'),
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(pos, &format!("escape \\{c} is not supported")));
            }
            c => Esc::Char(c),
        })
    }

    fn class(&mut self, pos: usize) -> Result<Atom> {
        let negated = self.eat('^');
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let at = self.i;
            let c = self
                .peek()
                .ok_or_else(|| self.err(pos, "unterminated character set"))?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                match self.escape(at, true)? {
                    Esc::Item(it) => {
                        if self.peek() == Some('-')
                            && self.s.get(self.i + 1).is_some_and(|&n| n != ']')
                        {
                            return Err(self.err(at, "bad character range"));
                        }
                        items.push(it);
                        continue;
                    }
                    Esc::Char(c) => c,
                }
            } else {
                c
            };
            // `a-z`, but a `-` before `]` is a literal.
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']') {
                self.i += 1;
                let at2 = self.i;
                let c2 = self
                    .peek()
                    .ok_or_else(|| self.err(pos, "unterminated character set"))?;
                self.i += 1;
                let hi = if c2 == '\\' {
                    match self.escape(at2, true)? {
                        Esc::Char(c) => c,
                        Esc::Item(_) => return Err(self.err(at, "bad character range")),
                    }
                } else {
                    c2
                };
                if hi < lo {
                    return Err(self.err(at, &format!("bad character range {lo}-{hi}")));
                }
                items.push(Item::Range(lo, hi));
            } else {
                items.push(Item::Range(lo, lo));
            }
        }
        Ok(Atom::Class { negated, items })
    }
}

enum Esc {
    Char(char),
    Item(Item),
}

struct Compiler<'a> {
    prog: Vec<Inst>,
    pattern: &'a str,
}

impl Compiler<'_> {
    fn push(&mut self, i: Inst) -> Result<usize> {
        if self.prog.len() >= MAX_PROG {
            return Err(Error::msg(format!(
                "regex {:?}: too large once repeats are unrolled (over {MAX_PROG} steps)",
                self.pattern
            )));
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }
    fn patch(&mut self, at: usize, to: usize) {
        match &mut self.prog[at] {
            Inst::Split(_, b) => *b = to,
            Inst::Jmp(t) => *t = to,
            _ => unreachable!("only splits and jumps are patched"),
        }
    }
    fn emit(&mut self, n: &Node) -> Result<()> {
        match n {
            Node::Empty => {}
            Node::Atom(a) => {
                self.push(Inst::Atom(a.clone()))?;
            }
            Node::Start => {
                self.push(Inst::Start)?;
            }
            Node::End => {
                self.push(Inst::End)?;
            }
            Node::Concat(v) => {
                for x in v {
                    self.emit(x)?;
                }
            }
            Node::Alt(v) => {
                let mut jumps = Vec::new();
                for (k, x) in v.iter().enumerate() {
                    if k + 1 < v.len() {
                        let s = self.push(Inst::Split(0, 0))?;
                        self.prog[s] = Inst::Split(s + 1, 0);
                        self.emit(x)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.patch(s, next);
                    } else {
                        self.emit(x)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.patch(j, end);
                }
            }
            Node::Repeat { node, min, max } => {
                for _ in 0..*min {
                    self.emit(node)?;
                }
                match max {
                    None => {
                        let s = self.push(Inst::Split(0, 0))?;
                        self.prog[s] = Inst::Split(s + 1, 0);
                        self.emit(node)?;
                        self.push(Inst::Jmp(s))?;
                        let end = self.prog.len();
                        self.patch(s, end);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            let s = self.push(Inst::Split(0, 0))?;
                            self.prog[s] = Inst::Split(s + 1, 0);
                            splits.push(s);
                            self.emit(node)?;
                        }
                        let end = self.prog.len();
                        for s in splits {
                            self.patch(s, end);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Regex {
    /// Compile `pattern`; unsupported or malformed syntax is an error naming the pattern and
    /// the character position.
    pub fn new(pattern: &str) -> Result<Regex> {
        let mut p = Parser {
            pattern,
            s: pattern.chars().collect(),
            i: 0,
            depth: 0,
        };
        let ast = p.alt()?;
        if p.i < p.s.len() {
            return Err(p.err(p.i, "unbalanced parenthesis"));
        }
        let mut c = Compiler {
            prog: Vec::new(),
            pattern,
        };
        c.emit(&ast)?;
        c.push(Inst::Match)?;
        Ok(Regex {
            pattern: pattern.to_string(),
            prog: c.prog,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `s` matches (Python `re.fullmatch`).
    pub fn full_match(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        let n = self.prog.len();
        let mut cur = States::new(n);
        let mut next = States::new(n);
        let mut stack = Vec::new();
        cur.add(&self.prog, 0, 0, &s, &mut stack);
        for pos in 0..s.len() {
            if cur.list.is_empty() {
                return false;
            }
            next.clear();
            for k in 0..cur.list.len() {
                let pc = cur.list[k];
                if let Inst::Atom(a) = &self.prog[pc]
                    && a.hit(s[pos])
                {
                    next.add(&self.prog, pc + 1, pos + 1, &s, &mut stack);
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        cur.list
            .iter()
            .any(|&pc| matches!(self.prog[pc], Inst::Match))
    }
}

/// The NFA states live at one input position, each once.
struct States {
    list: Vec<usize>,
    on: Vec<bool>,
}

impl States {
    fn new(n: usize) -> Self {
        States {
            list: Vec::new(),
            on: vec![false; n],
        }
    }
    fn clear(&mut self) {
        for &pc in &self.list {
            self.on[pc] = false;
        }
        self.list.clear();
    }
    /// Add `pc` and everything reachable from it without consuming input at `pos`.
    fn add(&mut self, prog: &[Inst], pc: usize, pos: usize, s: &[char], stack: &mut Vec<usize>) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if self.on[pc] {
                continue;
            }
            self.on[pc] = true;
            self.list.push(pc);
            match prog[pc] {
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::Jmp(t) => stack.push(t),
                Inst::Start if pos == 0 => stack.push(pc + 1),
                // Python's `$`: at the end, or before a newline that ends the string.
                Inst::End if pos == s.len() || (pos + 1 == s.len() && s[pos] == '\n') => {
                    stack.push(pc + 1)
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p).unwrap().full_match(s)
    }

    #[test]
    fn peft_sam_pattern() {
        let p = r".*mask_decoder.*\.(q_proj|k_proj|v_proj|out_proj)";
        assert!(m(p, "mask_decoder.transformer.layers.0.self_attn.q_proj"));
        assert!(m(
            p,
            "mask_decoder.transformer.final_attn_token_to_image.out_proj"
        ));
        assert!(!m(
            p,
            "mask_decoder.transformer.layers.0.self_attn.q_proj.lora_A"
        ));
        assert!(!m(p, "vision_encoder.layers.0.attn.q_proj"));
        assert!(!m(p, "mask_decoder.q_projx"));
    }

    #[test]
    fn syntax() {
        assert!(m("a.c", "abc") && !m("a.c", "a\nc"));
        assert!(m(r"a\.c", "a.c") && !m(r"a\.c", "abc"));
        assert!(m(r"\d+\w*\s?", "12ab_ ") && !m(r"\d+", "1a"));
        assert!(m(r"[a-z0-9_]+", "q_proj0") && !m(r"[a-z0-9_]+", "Q"));
        assert!(m(r"[^.]+", "abc") && !m(r"[^.]+", "a.c"));
        assert!(m(r"[]a]+", "]a]") && m(r"[a-]+", "-a") && m(r"[\]\\]+", r"]\"));
        assert!(m(r"(?:ab)+", "abab") && !m(r"(?:ab)+", "aba"));
        assert!(m(r"(?P<x>a|b)c", "bc"));
        assert!(m("a|b|", "") && m("a|b|", "b") && !m("a|b|", "c"));
        assert!(m("a{2}", "aa") && !m("a{2}", "aaa"));
        assert!(m("a{2,}", "aaaa") && !m("a{2,}", "a"));
        assert!(m("a{1,3}", "aaa") && !m("a{1,3}", "aaaa") && !m("a{1,3}", ""));
        assert!(m("a{,2}", "") && m("a{,2}", "aa") && !m("a{,2}", "aaa"));
        assert!(m("a{x}", "a{x}") && m("a{", "a{") && m("{}", "{}"));
        assert!(m("^ab$", "ab") && !m("a^b", "ab") && m("a$\n", "a\n"));
        assert!(m(".*?x", "aax") && m("a??b", "b"));
        assert!(m(r"\\", "\\") && m(r"\(\)", "()"));
    }

    #[test]
    fn no_exponential_blowup() {
        let s = "a".repeat(5000);
        assert!(!m("(a*)*b", &s) && !m("(a|a)*b", &s) && !m("(a+)+$b", &s));
        assert!(m("(a*)*", &s));
    }

    #[test]
    fn errors_name_pattern_and_position() {
        for (p, pos) in [
            ("a(b", 1),
            ("ab)", 2),
            ("*a", 0),
            ("a**", 2),
            ("(?=a)", 0),
            (r"\bq", 0),
            (r"\1", 0),
            ("[a-", 0),
            ("[z-a]", 1),
            ("a{3,2}", 1),
            ("a*+", 2),
        ] {
            let e = Regex::new(p).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{p:?}")) && e.contains(&format!("position {pos}")),
                "{p}: {e}"
            );
        }
        assert!(Regex::new("(abcd){30000}").is_err());
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(
            Regex::new(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested")
        );
    }
}
