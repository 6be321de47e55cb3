//! How numbers and times read in reports: thousands grouped, no trailing zeros, units that
//! fit the value.

/// "2025-06-01T12:00:03Z" → "2025-06-01 12:00:03 UTC"; anything else unchanged.
pub(super) fn pretty_time(t: &str) -> String {
    let b = t.as_bytes();
    if b.len() >= 19 && b[10] == b'T' && t.ends_with('Z') {
        let secs = &t[11..t.len() - 1];
        let secs = secs.split('.').next().unwrap_or(secs);
        format!("{} {secs} UTC", &t[..10])
    } else {
        t.to_owned()
    }
}

pub(super) fn fmt_secs(s: f64) -> String {
    trim_zeros(format!("{s:.1}"))
}

/// Milliseconds (or any positive quantity) to three significant digits, exact to the µs below
/// 1 ms, whole numbers with thousands separators from 100: 0.042, 0.423, 3.14, 31.4, 314, 3,140.
pub(super) fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a < 1.0 {
        format!("{v:.3}")
    } else if a < 10.0 {
        format!("{v:.2}")
    } else if a < 100.0 {
        format!("{v:.1}")
    } else {
        group_thousands(v)
    }
}

/// 1234567.8 → "1,234,568".
pub(super) fn group_thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Requests per second: as [`fmt_ms`].
pub(super) fn fmt_rps(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    fmt_ms(v)
}

pub(super) fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}
