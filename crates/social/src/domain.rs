//! Validated input. Every value that reaches the database went through a `parse` here, so the
//! database never sees oversized, malformed or NUL-carrying text (PostgreSQL rejects NUL in
//! `text`, which would otherwise surface as a 500).

use time::{Date, OffsetDateTime, macros::format_description};

use crate::error::SocialError;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_CITY_CHARS: usize = 100;
pub const MAX_BIOGRAPHY_CHARS: usize = 2_000;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_POST_CHARS: usize = 10_000;
pub const MAX_SEARCH_PREFIX_CHARS: usize = 100;
/// The largest feed page: enough to read past the 1000 cached posts in one request.
pub const MAX_FEED_LIMIT: usize = 5000;
/// The deepest feed offset served: deeper pages are a crawl, not a reader.
pub const MAX_FEED_OFFSET: usize = 100_000;

/// Validates the feed's `offset` (default 0) and `limit` (default 10). The contract types them
/// as numbers, so `10.0` is accepted; fractions and negatives are not.
pub fn feed_window(offset: Option<f64>, limit: Option<f64>) -> Result<(usize, usize), SocialError> {
    let whole = |name: &str, value: f64, min: usize, max: usize| {
        if value.fract() != 0.0 || !value.is_finite() || value < min as f64 || value > max as f64 {
            Err(SocialError::invalid(format!(
                "{name} must be a whole number from {min} to {max}"
            )))
        } else {
            Ok(value as usize)
        }
    };
    Ok((
        whole("offset", offset.unwrap_or(0.0), 0, MAX_FEED_OFFSET)?,
        whole("limit", limit.unwrap_or(10.0), 1, MAX_FEED_LIMIT)?,
    ))
}
/// `/user/search` returns at most this many users, in name order. Short prefixes match tens
/// of thousands of users among a million; nobody reads past the first screens of those.
pub const SEARCH_RESULT_CAP: i64 = 100;

/// A registration that passed validation.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub first_name: String,
    pub second_name: String,
    pub birthdate: Option<Date>,
    pub biography: Option<String>,
    pub city: Option<String>,
    pub password: String,
}

/// Raw registration fields as they arrived.
#[derive(Debug, Default)]
pub struct Registration {
    pub first_name: Option<String>,
    pub second_name: Option<String>,
    pub birthdate: Option<String>,
    pub biography: Option<String>,
    pub city: Option<String>,
    pub password: Option<String>,
}

impl NewUser {
    pub fn parse(raw: Registration) -> Result<Self, SocialError> {
        Ok(Self {
            first_name: name("first_name", raw.first_name)?,
            second_name: name("second_name", raw.second_name)?,
            birthdate: raw.birthdate.map(|text| birthdate(&text)).transpose()?,
            biography: optional_text("biography", raw.biography, MAX_BIOGRAPHY_CHARS, true)?,
            city: optional_text("city", raw.city, MAX_CITY_CHARS, false)?,
            password: password(raw.password)?,
        })
    }
}

fn name(field: &'static str, value: Option<String>) -> Result<String, SocialError> {
    let value = value.ok_or_else(|| SocialError::invalid(format!("{field} is required")))?;
    optional_text(field, Some(value), MAX_NAME_CHARS, false)?
        .ok_or_else(|| SocialError::invalid(format!("{field} must not be empty")))
}

/// Trims, treats blank as absent, and enforces length and character rules.
fn optional_text(
    field: &'static str,
    value: Option<String>,
    max_chars: usize,
    multiline: bool,
) -> Result<Option<String>, SocialError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > max_chars {
        return Err(SocialError::invalid(format!(
            "{field} must be at most {max_chars} characters"
        )));
    }
    let allowed = |c: char| !c.is_control() || (multiline && (c == '\n' || c == '\t' || c == '\r'));
    if !trimmed.chars().all(allowed) {
        return Err(SocialError::invalid(format!(
            "{field} contains control characters"
        )));
    }
    Ok(Some(trimmed.to_owned()))
}

fn password(value: Option<String>) -> Result<String, SocialError> {
    let value = value.ok_or_else(|| SocialError::invalid("password is required"))?;
    let chars = value.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(SocialError::invalid(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(SocialError::invalid(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if value.contains('\0') {
        return Err(SocialError::invalid("password contains a NUL character"));
    }
    Ok(value)
}

/// `YYYY-MM-DD`, a real calendar date between 1900-01-01 and today.
pub fn birthdate(text: &str) -> Result<Date, SocialError> {
    let format = format_description!("[year]-[month]-[day]");
    let date = Date::parse(text, &format)
        .map_err(|_| SocialError::invalid("birthdate must be a date in the form YYYY-MM-DD"))?;
    let today = OffsetDateTime::now_utc().date();
    if date.year() < 1900 || date > today {
        return Err(SocialError::invalid(
            "birthdate must be between 1900-01-01 and today",
        ));
    }
    Ok(date)
}

pub fn format_date(date: Date) -> String {
    let format = format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap_or_default()
}

/// A post's text: non-blank, bounded, stored exactly as sent.
pub fn post_text(value: Option<String>) -> Result<String, SocialError> {
    let value = value.ok_or_else(|| SocialError::invalid("text is required"))?;
    if value.trim().is_empty() {
        return Err(SocialError::invalid("text must not be empty"));
    }
    if value.chars().count() > MAX_POST_CHARS {
        return Err(SocialError::invalid(format!(
            "text must be at most {MAX_POST_CHARS} characters"
        )));
    }
    if value.contains('\0') {
        return Err(SocialError::invalid("text contains a NUL character"));
    }
    Ok(value)
}

/// A user or post id from a path or body.
pub fn id(field: &'static str, text: &str) -> Result<i64, SocialError> {
    agora_platform::ids::parse(text)
        .ok_or_else(|| SocialError::invalid(format!("{field} must be a positive decimal id")))
}

/// A name search: two prefixes, turned into escaped `LIKE` patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSearch {
    /// The prefixes as given (trimmed): the bounds of the index range scan.
    pub first_name_prefix: String,
    pub second_name_prefix: String,
    /// The same prefixes as LIKE patterns with wildcards escaped: the exact filter.
    pub first_name_pattern: String,
    pub second_name_pattern: String,
}

impl NameSearch {
    pub fn parse(
        first_name: Option<String>,
        last_name: Option<String>,
    ) -> Result<Self, SocialError> {
        let first = first_name.ok_or_else(|| SocialError::invalid("first_name is required"))?;
        let last = last_name.ok_or_else(|| SocialError::invalid("last_name is required"))?;
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() && last.is_empty() {
            return Err(SocialError::invalid(
                "first_name and last_name must not both be empty",
            ));
        }
        for (field, value) in [("first_name", first), ("last_name", last)] {
            if value.chars().count() > MAX_SEARCH_PREFIX_CHARS {
                return Err(SocialError::invalid(format!(
                    "{field} must be at most {MAX_SEARCH_PREFIX_CHARS} characters"
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(SocialError::invalid(format!(
                    "{field} contains control characters"
                )));
            }
        }
        Ok(Self {
            first_name_prefix: first.to_owned(),
            second_name_prefix: last.to_owned(),
            first_name_pattern: like_prefix(first),
            second_name_pattern: like_prefix(last),
        })
    }
}

/// `prefix%` with LIKE's wildcards in the prefix taken literally.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> Registration {
        Registration {
            first_name: Some("Иван".into()),
            second_name: Some("Петров".into()),
            password: Some("секретная строка".into()),
            ..Registration::default()
        }
    }

    #[test]
    fn minimal_registration_is_valid() {
        let user = NewUser::parse(registration()).unwrap();
        assert_eq!(user.first_name, "Иван");
        assert!(user.birthdate.is_none() && user.city.is_none() && user.biography.is_none());
    }

    #[test]
    fn names_are_trimmed_and_required() {
        let mut raw = registration();
        raw.first_name = Some("  Иван ".into());
        assert_eq!(NewUser::parse(raw).unwrap().first_name, "Иван");
        for blank in [None, Some("   ".to_owned())] {
            let mut raw = registration();
            raw.second_name = blank;
            assert!(NewUser::parse(raw).is_err());
        }
    }

    #[test]
    fn birthdates_must_be_real_past_dates() {
        assert!(birthdate("1990-02-28").is_ok());
        for bad in [
            "1990-02-30",
            "1990-2-3",
            "28.02.1990",
            "1899-12-31",
            "3000-01-01",
            "",
        ] {
            assert!(birthdate(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn control_characters_and_nul_are_rejected() {
        let mut raw = registration();
        raw.city = Some("Мос\0ква".into());
        assert!(NewUser::parse(raw).is_err());
        assert!(post_text(Some("a\0b".into())).is_err());
        assert!(post_text(Some("line one\nline two".into())).is_ok());
    }

    #[test]
    fn search_prefixes_escape_like_wildcards() {
        let search = NameSearch::parse(Some("a_%".into()), Some("b\\".into())).unwrap();
        assert_eq!(search.first_name_pattern, "a\\_\\%%");
        assert_eq!(search.second_name_pattern, "b\\\\%");
        assert!(NameSearch::parse(Some("".into()), Some(" ".into())).is_err());
        assert!(NameSearch::parse(None, Some("x".into())).is_err());
    }

    #[test]
    fn feed_window_defaults_and_bounds() {
        assert_eq!(feed_window(None, None).unwrap(), (0, 10));
        assert_eq!(feed_window(Some(1000.0), Some(10.0)).unwrap(), (1000, 10));
        for (offset, limit) in [
            (Some(-1.0), None),
            (Some(0.5), None),
            (None, Some(0.0)),
            (None, Some(5001.0)),
            (Some(f64::NAN), None),
            (Some(100_001.0), None),
        ] {
            assert!(feed_window(offset, limit).is_err(), "{offset:?} {limit:?}");
        }
    }
}
