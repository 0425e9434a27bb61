//! The rule shared by every short, single-line text a person names things with (titles, names).

use super::ValidationError;

/// `raw` as given when it is not blank, has at most `max_chars` characters, and holds no control
/// character or line separator (which would let it forge log lines or headers).
pub fn one_line(raw: &str, field: &str, max_chars: usize) -> Result<(), ValidationError> {
    let bad = |m: String| Err(ValidationError::field(field, m));
    if raw.trim().is_empty() {
        return bad("must not be empty".into());
    }
    if raw.chars().count() > max_chars {
        return bad(format!("must be at most {max_chars} characters"));
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return bad("must not contain control characters".into());
    }
    Ok(())
}
