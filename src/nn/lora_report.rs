//! Trainable vs total parameter counts, printed as PEFT's `print_trainable_parameters`.
use super::Module;
use std::collections::HashSet;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamCount {
    pub trainable: usize,
    pub total: usize,
}

impl ParamCount {
    /// Each parameter counted once even when reachable by two names (torch's
    /// `named_parameters` skips shared tensors too).
    pub fn of(m: &dyn Module) -> Self {
        let mut seen = HashSet::new();
        let mut c = ParamCount {
            trainable: 0,
            total: 0,
        };
        m.visit_params("", &mut |_, t| {
            if seen.insert(t.id()) {
                c.total += t.elem_count();
                if t.requires_grad() {
                    c.trainable += t.elem_count();
                }
            }
        });
        c
    }
}

/// 1234567 → "1,234,567" (Python's `{:,d}`).
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for ParamCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PEFT divides by zero here; an empty model reads as 0%.
        let pct = if self.total == 0 {
            0.0
        } else {
            100.0 * self.trainable as f64 / self.total as f64
        };
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {pct:.4}",
            grouped(self.trainable),
            grouped(self.total)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_peft() {
        let c = ParamCount {
            trainable: 1234,
            total: 5678,
        };
        assert_eq!(
            c.to_string(),
            "trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(100), "100");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(108680450), "108,680,450");
    }
}
