//! Time-ordered 64-bit ids, rendered as decimal strings in the API.
//!
//! Layout (Instagram's): 41 bits of milliseconds since [`EPOCH_UNIX_MS`], 13 bits of logical
//! shard, 10 bits of sequence. Ids sort by creation time both as numbers and, for ids of equal
//! length, as strings, which is what clients that sort post ids expect. The logical shard bits
//! are reserved for sharded data (dialogs): a row's shard can be read back from its id.
//!
//! PostgreSQL generates ids with the `next_id(shard)` function of the first migration, which
//! uses the same layout; [`compose`] exists for bulk loaders that build ids themselves.

/// 2024-01-01T00:00:00Z. 41 bits of milliseconds last about 69 years from here.
pub const EPOCH_UNIX_MS: i64 = 1_704_067_200_000;
pub const SHARD_BITS: u32 = 13;
pub const SEQUENCE_BITS: u32 = 10;
pub const MAX_SHARD: i64 = (1 << SHARD_BITS) - 1;
pub const MAX_SEQUENCE: i64 = (1 << SEQUENCE_BITS) - 1;

/// The parts of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdParts {
    pub unix_ms: i64,
    pub shard: i64,
    pub sequence: i64,
}

/// Builds an id from its parts; shard and sequence are masked to their widths.
pub fn compose(parts: IdParts) -> i64 {
    ((parts.unix_ms - EPOCH_UNIX_MS) << (SHARD_BITS + SEQUENCE_BITS))
        | ((parts.shard & MAX_SHARD) << SEQUENCE_BITS)
        | (parts.sequence & MAX_SEQUENCE)
}

pub fn decompose(id: i64) -> IdParts {
    IdParts {
        unix_ms: (id >> (SHARD_BITS + SEQUENCE_BITS)) + EPOCH_UNIX_MS,
        shard: (id >> SEQUENCE_BITS) & MAX_SHARD,
        sequence: id & MAX_SEQUENCE,
    }
}

/// Parses an id as the API renders it: a positive decimal number with no sign, spaces or
/// leading zeros (one id has one spelling, so it can serve as a cache or map key as sent).
pub fn parse(text: &str) -> Option<i64> {
    if text.is_empty()
        || text.len() > 19
        || text.starts_with('0')
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Typed ids: a user's id cannot be passed where a message's is expected. Each is rendered
/// as the API spells ids (a decimal string) and parsed with [`parse`]'s rules.
macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                parse(text).map($name).ok_or(InvalidId)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

/// A text that is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an id is a positive decimal number without leading zeros")]
pub struct InvalidId;

typed_id!(
    /// A user of the social network (and of every service that authenticates through it).
    UserId,
    /// A post.
    PostId,
    /// A private message in a dialog.
    MessageId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_decompose_are_inverse() {
        let parts = IdParts {
            unix_ms: EPOCH_UNIX_MS + 123_456_789,
            shard: 4321,
            sequence: 1000,
        };
        assert_eq!(decompose(compose(parts)), parts);
    }

    #[test]
    fn later_ids_are_larger() {
        let early = compose(IdParts {
            unix_ms: EPOCH_UNIX_MS + 1,
            shard: MAX_SHARD,
            sequence: MAX_SEQUENCE,
        });
        let late = compose(IdParts {
            unix_ms: EPOCH_UNIX_MS + 2,
            shard: 0,
            sequence: 0,
        });
        assert!(late > early);
    }

    #[test]
    fn typed_ids_travel_as_decimal_strings() {
        let id: UserId = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(id, UserId(42));
        assert_eq!(serde_json::to_string(&MessageId(7)).unwrap(), "\"7\"");
        assert!(serde_json::from_str::<PostId>("\"042\"").is_err());
        assert_eq!("9".parse::<PostId>(), Ok(PostId(9)));
    }

    #[test]
    fn parse_accepts_only_plain_positive_decimals() {
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1.0",
            "abc",
            "9223372036854775808",
            "042",
            "0000000000000000042",
            "١٢",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} must be rejected");
        }
    }
}
