//! What clients may send, checked before anything touches the database, and the page cursors.

use base64::Engine as _;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::UgcError;

/// A film's id as the catalog gives it: a UUID, kept in its canonical lowercase form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilmId(String);

impl FilmId {
    pub fn parse(text: &str) -> Result<Self, UgcError> {
        let invalid =
            || UgcError::invalid("film_id must be a UUID (8-4-4-4-12 hexadecimal digits)");
        let bytes = text.as_bytes();
        if bytes.len() != 36 {
            return Err(invalid());
        }
        for (i, byte) in bytes.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => *byte == b'-',
                _ => byte.is_ascii_hexdigit(),
            };
            if !ok {
                return Err(invalid());
            }
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const MAX_SCORE: i16 = 10;
pub const MAX_REVIEW_CHARS: usize = 5_000;
pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    pub score: i64,
}

pub fn score(value: i64) -> Result<i16, UgcError> {
    if (0..=i64::from(MAX_SCORE)).contains(&value) {
        Ok(value as i16)
    } else {
        Err(UgcError::invalid(format!(
            "score must be a whole number from 0 to {MAX_SCORE}"
        )))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub text: String,
    pub score: i64,
}

/// A review's text and score, checked.
pub struct ReviewFields {
    pub text: String,
    pub score: i16,
}

impl ReviewRequest {
    pub fn validate(self) -> Result<ReviewFields, UgcError> {
        let text = self.text.trim();
        if text.is_empty() {
            return Err(UgcError::invalid("text must not be empty"));
        }
        if text.chars().count() > MAX_REVIEW_CHARS {
            return Err(UgcError::invalid(format!(
                "text must be at most {MAX_REVIEW_CHARS} characters"
            )));
        }
        if text.contains('\0') {
            return Err(UgcError::invalid("text must not contain NUL characters"));
        }
        Ok(ReviewFields {
            text: text.to_owned(),
            score: score(self.score)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    Like,
    Dislike,
}

impl Vote {
    pub fn as_db(self) -> i16 {
        match self {
            Vote::Like => 1,
            Vote::Dislike => -1,
        }
    }

    pub fn from_db(value: i16) -> Option<Self> {
        match value {
            1 => Some(Vote::Like),
            -1 => Some(Vote::Dislike),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    pub vote: Vote,
}

/// How a film's reviews are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReviewOrder {
    /// Newest first.
    #[default]
    Newest,
    /// Most liked first: likes minus dislikes, then newest.
    Top,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewsQuery {
    #[serde(default)]
    pub sort: ReviewOrder,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookmarksQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub fn page_size(limit: Option<i64>) -> Result<usize, UgcError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => Ok(n as usize),
        Some(_) => Err(UgcError::invalid(format!(
            "limit must be from 1 to {MAX_PAGE}"
        ))),
    }
}

/// Where a page ends, so that the next one starts right after it whatever was written since
/// (keyset paging: no row is skipped or repeated, and a deep page costs what the first does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// A review in newest-first order.
    Newest { at: OffsetDateTime, author: i64 },
    /// A review in most-liked-first order.
    Top {
        votes: i64,
        at: OffsetDateTime,
        author: i64,
    },
    /// A bookmark.
    Bookmark { at: OffsetDateTime, film: String },
}

fn micros(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000
}

fn from_micros(value: &str) -> Option<OffsetDateTime> {
    let micros: i128 = value.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?).ok()
}

impl Cursor {
    pub fn encode(&self) -> String {
        let text = match self {
            Cursor::Newest { at, author } => format!("n:{}:{author}", micros(*at)),
            Cursor::Top { votes, at, author } => format!("t:{votes}:{}:{author}", micros(*at)),
            Cursor::Bookmark { at, film } => format!("b:{}:{film}", micros(*at)),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(text: &str) -> Result<Self, UgcError> {
        let invalid = || UgcError::invalid("cursor must be a next_cursor this API returned");
        if text.len() > 200 {
            return Err(invalid());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let parts: Vec<&str> = text.split(':').collect();
        let cursor = match parts.as_slice() {
            ["n", at, author] => Cursor::Newest {
                at: from_micros(at).ok_or_else(invalid)?,
                author: author.parse().map_err(|_| invalid())?,
            },
            ["t", votes, at, author] => Cursor::Top {
                votes: votes.parse().map_err(|_| invalid())?,
                at: from_micros(at).ok_or_else(invalid)?,
                author: author.parse().map_err(|_| invalid())?,
            },
            ["b", at, film] => Cursor::Bookmark {
                at: from_micros(at).ok_or_else(invalid)?,
                film: FilmId::parse(film).map_err(|_| invalid())?.0,
            },
            _ => return Err(invalid()),
        };
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn film_ids_are_uuids_in_canonical_form() {
        let id = FilmId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
        assert_eq!(id.as_str(), "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        for bad in [
            "",
            "6f9619ff8b86d011b42d00c04fc964ff",
            "6f9619ff-8b86-d011-b42d-00c04fc964fg",
            "🎬",
        ] {
            assert!(FilmId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scores_are_zero_to_ten() {
        assert_eq!(score(0).unwrap(), 0);
        assert_eq!(score(10).unwrap(), 10);
        assert!(score(-1).is_err());
        assert!(score(11).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_456_000).unwrap();
        for cursor in [
            Cursor::Newest { at, author: 42 },
            Cursor::Top {
                votes: -3,
                at,
                author: 7,
            },
            Cursor::Bookmark {
                at,
                film: "6f9619ff-8b86-d011-b42d-00c04fc964ff".into(),
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        }
        for bad in ["", "!!!", "bjox", &"A".repeat(300)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reviews_need_text() {
        let blank = ReviewRequest {
            text: "  ".into(),
            score: 5,
        };
        assert!(blank.validate().is_err());
        let long = ReviewRequest {
            text: "a".repeat(MAX_REVIEW_CHARS + 1),
            score: 5,
        };
        assert!(long.validate().is_err());
        let fine = ReviewRequest {
            text: " good ".into(),
            score: 5,
        }
        .validate()
        .unwrap();
        assert_eq!(fine.text, "good");
    }
}
