//! Comparing our tensor with a reference one: an element passes when
//! |ours − ref| ≤ atol + rtol·|ref|; a tensor passes when every element does and the shapes
//! are equal. NaN matches only NaN; an infinity matches only the same infinity.
use super::tolerance::Tolerance;
use crate::{Result, Shape, Tensor};
use std::fmt;

/// One compared tensor: a line of `ed-check` output.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckLine {
    pub name: String,
    /// The reference's shape (ours when the reference could not be read).
    pub shape: Shape,
    /// max |ours − ref| over elements.
    pub max_abs: f64,
    /// max |ours − ref| / |ref| over elements with ref ≠ 0.
    pub max_rel: f64,
    pub pass: bool,
    /// Why it failed when the numbers do not say (shape mismatch, unreadable tensor).
    pub note: Option<String>,
}

impl CheckLine {
    /// A failure with a reason and no numbers (a tensor our code cannot produce, ...).
    pub fn failed(name: impl Into<String>, shape: Shape, why: impl Into<String>) -> Self {
        CheckLine {
            name: name.into(),
            shape,
            max_abs: f64::NAN,
            max_rel: f64::NAN,
            pass: false,
            note: Some(why.into()),
        }
    }
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} max_abs={:.3e} max_rel={:.3e} {}",
            self.name,
            self.shape,
            self.max_abs,
            self.max_rel,
            if self.pass { "PASS" } else { "FAIL" }
        )?;
        if let Some(n) = &self.note {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// Equal NaNs, or equal infinities, count as a match.
fn same_special(o: f64, r: f64) -> bool {
    (o.is_nan() && r.is_nan()) || (o.is_infinite() && o == r)
}

/// One element outside `atol + rtol·|ref|`. A NaN difference is unordered, so it misses
/// too; an infinite ref would make the bound infinite, so unmatched infinities fail
/// explicitly.
fn misses(o: f64, r: f64, tol: Tolerance) -> bool {
    use std::cmp::Ordering::{Equal, Less};
    let within = (o - r).abs().partial_cmp(&(tol.atol + tol.rtol * r.abs()));
    r.is_infinite() || !matches!(within, Some(Less | Equal))
}

/// Elementwise comparison of equal-length value lists: (max_abs, max_rel, all pass).
pub fn compare_values(ours: &[f64], reference: &[f64], tol: Tolerance) -> (f64, f64, bool) {
    let (mut max_abs, mut max_rel, mut pass) = (0.0f64, 0.0f64, true);
    for (&o, &r) in ours.iter().zip(reference) {
        if same_special(o, r) {
            continue;
        }
        let d = (o - r).abs();
        if misses(o, r, tol) {
            pass = false;
        }
        max_abs = if d.is_nan() { f64::NAN } else { max_abs.max(d) };
        if r != 0.0 && !max_rel.is_nan() {
            let rel = d / r.abs();
            max_rel = if rel.is_nan() {
                f64::NAN
            } else {
                max_rel.max(rel)
            };
        }
    }
    (max_abs, max_rel, pass && ours.len() == reference.len())
}

/// Compare `ours` with `reference` under `tol`.
pub fn compare_tensors(
    name: &str,
    ours: &Tensor,
    reference: &Tensor,
    tol: Tolerance,
) -> Result<CheckLine> {
    if ours.shape() != reference.shape() {
        return Ok(CheckLine::failed(
            name,
            reference.shape().clone(),
            format!("shape mismatch: ours {}", ours.shape()),
        ));
    }
    let (a, r) = (ours.to_vec_f64()?, reference.to_vec_f64()?);
    let (max_abs, max_rel, pass) = compare_values(&a, &r, tol);
    // How many elements miss tells a reader a few rounding outliers from a wrong tensor.
    let note = (!pass).then(|| {
        format!(
            "{} of {} elements outside atol + rtol·|ref|",
            count_outside(&a, &r, tol),
            r.len()
        )
    });
    Ok(CheckLine {
        name: name.to_string(),
        shape: reference.shape().clone(),
        max_abs,
        max_rel,
        pass,
        note,
    })
}

/// Elements that fail the tolerance (same rule as `compare_values`).
pub fn count_outside(ours: &[f64], reference: &[f64], tol: Tolerance) -> usize {
    ours.iter()
        .zip(reference)
        .filter(|&(&o, &r)| !same_special(o, r) && misses(o, r, tol))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tolerance = Tolerance {
        atol: 0.1,
        rtol: 0.01,
    };

    #[test]
    fn arithmetic() {
        // |1.15 − 1| = 0.15 > 0.1 + 0.01: fails; rel = 0.15.
        let (a, r, p) = compare_values(&[1.15, 5.0], &[1.0, 5.0], T);
        assert!(!p);
        assert!((a - 0.15).abs() < 1e-12 && (r - 0.15).abs() < 1e-12);
        // |110 − 100| = 10 > 0.1 + 1: fails; |100.5 − 100| passes on rtol.
        assert!(compare_values(&[100.5], &[100.0], T).2);
        assert!(!compare_values(&[110.0], &[100.0], T).2);
        // Exactly on the bound passes.
        assert!(
            compare_values(
                &[0.125],
                &[0.0],
                Tolerance {
                    atol: 0.125,
                    rtol: 0.0
                }
            )
            .2
        );
        // ref = 0 adds nothing to max_rel.
        let (a, r, p) = compare_values(&[0.05], &[0.0], T);
        assert!(p && a == 0.05 && r == 0.0);
        // NaN matches NaN only; infinities match themselves.
        assert!(compare_values(&[f64::NAN, f64::INFINITY], &[f64::NAN, f64::INFINITY], T).2);
        assert!(!compare_values(&[f64::NAN], &[1.0], T).2);
        assert!(!compare_values(&[1.0], &[f64::NAN], T).2);
        assert!(!compare_values(&[f64::NEG_INFINITY], &[f64::INFINITY], T).2);
        assert!(!compare_values(&[1.0], &[1.0, 2.0], T).2);
        // The count agrees with the rule, element by element.
        let (o, r) = (
            [1.15, 5.0, f64::NAN, 0.05, 2.0],
            [1.0, 5.0, f64::NAN, 0.0, f64::NAN],
        );
        assert_eq!(count_outside(&o, &r, T), 2);
    }

    #[test]
    fn tensors_and_shapes() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]).unwrap();
        let b = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.05], [2, 2]).unwrap();
        let l = compare_tensors("x", &a, &b, T).unwrap();
        assert!(l.pass && (l.max_abs - 0.05).abs() < 1e-9, "{l}");
        let c = a.reshape([4]).unwrap();
        let l = compare_tensors("x", &c, &b, T).unwrap();
        assert!(!l.pass && l.note.as_deref().unwrap().contains("[4]"), "{l}");
        assert!(l.to_string().contains("FAIL") && l.to_string().starts_with("x [2, 2]"));
    }
}
