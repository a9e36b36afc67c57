//! Tolerances by tensor-name pattern (the fixture's `tolerances` metadata). A pattern is a
//! name where `*` matches any run of characters (dots included).
//!
//! When several patterns match, the most specific wins:
//! 1. a pattern without `*` (an exact name) beats every wildcard pattern;
//! 2. otherwise the pattern with the most literal (non-`*`) characters wins, so
//!    `outputs.loss*` beats `outputs.*` for `outputs.loss_sum`;
//! 3. ties go to the pattern with fewer `*`, then to the lexicographically smaller one, so
//!    the choice never depends on the JSON's key order.
use crate::{Error, Result};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Tolerance {
    /// Used when no pattern matches a name.
    pub const DEFAULT: Tolerance = Tolerance {
        atol: 1e-5,
        rtol: 1e-4,
    };
}

#[derive(Clone, Debug, Default)]
pub struct Tolerances {
    patterns: Vec<(String, Tolerance)>,
}

pub use crate::io::glob::glob_match;

/// Sort key: larger is more specific.
fn specificity(pat: &str) -> (bool, usize, std::cmp::Reverse<usize>) {
    let stars = pat.matches('*').count();
    (stars == 0, pat.len() - stars, std::cmp::Reverse(stars))
}

impl Tolerances {
    pub fn new(patterns: Vec<(String, Tolerance)>) -> Self {
        Tolerances { patterns }
    }

    /// Parse the JSON map `{"pattern": {"atol": .., "rtol": ..}}`; `source` labels errors.
    pub fn from_json(source: &str, json: &str) -> Result<Self> {
        let m: std::collections::BTreeMap<String, Tolerance> =
            serde_json::from_str(json).map_err(|e| Error::Format {
                path: source.to_string(),
                record: "metadata \"tolerances\"".into(),
                msg: format!("expected {{\"pattern\": {{\"atol\": x, \"rtol\": y}}}}: {e}"),
            })?;
        Ok(Tolerances {
            patterns: m.into_iter().collect(),
        })
    }

    /// The most specific matching pattern and its tolerance.
    pub fn lookup(&self, name: &str) -> Option<(&str, Tolerance)> {
        self.patterns
            .iter()
            .filter(|(p, _)| glob_match(p, name))
            .max_by(|(a, _), (b, _)| {
                specificity(a).cmp(&specificity(b)).then_with(|| b.cmp(a)) // smaller string wins a full tie
            })
            .map(|(p, t)| (p.as_str(), *t))
    }

    /// The tolerance for `name`, or `Tolerance::DEFAULT`.
    pub fn get(&self, name: &str) -> Tolerance {
        self.lookup(name).map_or(Tolerance::DEFAULT, |(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(a: f64) -> Tolerance {
        Tolerance { atol: a, rtol: 0.0 }
    }

    #[test]
    fn glob() {
        assert!(glob_match("outputs.*", "outputs.pred"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "a.x.b.y.c"));
        assert!(glob_match("a*a", "aa"));
        assert!(!glob_match("a*a", "a"));
        assert!(!glob_match("outputs.*", "grads.x"));
        assert!(glob_match("*.weight", "model.0.conv.weight"));
        assert!(!glob_match("exact", "exact2"));
    }

    #[test]
    fn most_specific_wins() {
        let t = Tolerances::new(vec![
            ("outputs.*".into(), tol(1.0)),
            ("outputs.loss*".into(), tol(2.0)),
            ("outputs.loss_sum".into(), tol(3.0)),
            ("*".into(), tol(4.0)),
            ("*s.lo*".into(), tol(5.0)),
        ]);
        assert_eq!(t.get("outputs.loss_sum").atol, 3.0);
        assert_eq!(t.get("outputs.loss_items").atol, 2.0);
        assert_eq!(t.get("outputs.pred").atol, 1.0);
        assert_eq!(t.get("grads.x").atol, 4.0);
        assert_eq!(t.lookup("outputs.loss_items").unwrap().0, "outputs.loss*");
        let none = Tolerances::default();
        assert_eq!(none.get("x"), Tolerance::DEFAULT);
        // Equal literal counts: fewer stars, then the smaller string, regardless of order.
        let a = Tolerances::new(vec![("ab*".into(), tol(1.0)), ("*ab".into(), tol(2.0))]);
        let b = Tolerances::new(vec![("*ab".into(), tol(2.0)), ("ab*".into(), tol(1.0))]);
        assert_eq!(a.get("ab").atol, b.get("ab").atol);
        assert_eq!(a.get("ab").atol, 2.0);
        let c = Tolerances::new(vec![("a*b*".into(), tol(1.0)), ("ab*".into(), tol(2.0))]);
        assert_eq!(c.get("ab").atol, 2.0);
    }

    #[test]
    fn parses_fixture_json() {
        let t = Tolerances::from_json(
            "f.safetensors",
            r#"{"outputs.*": {"atol": 0.0002, "rtol": 0.002}, "outputs.loss*": {"atol": 0.0001, "rtol": 0.0001}}"#,
        )
        .unwrap();
        assert_eq!(t.get("outputs.loss_sum").rtol, 0.0001);
        let e = Tolerances::from_json("f.safetensors", "{\"x\": 3}").unwrap_err();
        assert!(e.to_string().contains("f.safetensors"), "{e}");
    }
}
