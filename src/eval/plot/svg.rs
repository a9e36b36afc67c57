//! Text helpers shared by the plots: XML escaping, number formatting, axis ticks.

/// Escape text for XML/HTML content and attribute values. Characters XML 1.0 forbids
/// (most C0 controls) become U+FFFD so a stray byte in a class name cannot break the page.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A pixel coordinate: two decimals, trailing zeros dropped ("12.5", "40").
pub fn fmt_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Round tick positions covering `[lo, hi]`: about `n` steps of 1, 2 or 5 × 10^k.
/// Returns the (possibly widened) range and the ticks;
/// `None` when the range is not finite (NaN, infinite, or too wide for an f64 span).
pub(crate) fn nice_ticks(
    lo: f64,
    hi: f64,
    n: usize,
    widen: bool,
) -> Option<((f64, f64), Vec<f64>)> {
    let (mut lo, mut hi) = (lo, hi);
    if !(hi - lo).is_finite() || hi < lo {
        return None;
    }
    if hi == lo {
        // Constant data: give it a visible band around the value.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if widen {
        lo = (lo / step).floor() * step;
        hi = (hi / step).ceil() * step;
    }
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // Multiplying an integer index keeps ticks free of accumulated rounding (0.30000000000000004).
    // At most 2n+2 ticks by construction; the cap guards against float surprises.
    let ticks = (first..=last)
        .take(4 * n + 4)
        .map(|k| k as f64 * step)
        .collect();
    Some(((lo, hi), ticks))
}

/// A tick label with as many decimals as the step needs.
pub(crate) fn tick_label(v: f64, step: f64) -> String {
    if step.abs() < 1e-4 || step.abs() >= 1e6 {
        return format!("{v:.1e}");
    }
    let decimals = (-step.abs().log10().floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.starts_with('-')
        && s.trim_matches(|c| c == '-' || c == '0' || c == '.')
            .is_empty()
    {
        s[1..].to_string()
    } else {
        s
    }
}

/// Rough rendered width of `s` at `font_px` in a sans-serif font (for layout only).
pub(crate) fn text_width(s: &str, font_px: f64) -> f64 {
    s.chars().count() as f64 * font_px * 0.6
}

/// `s` cut to at most `max` characters with an ellipsis (display only; the full name goes
/// into a `<title>` tooltip).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
