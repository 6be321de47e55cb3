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

/// `#[serde(serialize_with = "ids::as_text")]`: ids travel as decimal strings (a JavaScript
/// number cannot hold every 64-bit id).
pub fn as_text<S: serde::Serializer>(id: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
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

/// Makes ids in the process, for services whose database must not (pgpool-II's statement
/// replication runs each INSERT on every backend, where `next_id()` would differ). The 13 bits
/// PostgreSQL uses for the logical shard name the generating process instead: `node`, chosen at
/// random at start unless configured, so instances of one deployment rarely share it; a
/// collision would need the same node, millisecond and sequence, and the primary key refuses it.
pub struct IdGenerator {
    node: i64,
    /// (milliseconds since the Unix epoch, last sequence used in it)
    last: std::sync::Mutex<(i64, i64)>,
}

impl IdGenerator {
    pub fn new(node: i64) -> Self {
        Self {
            node: node & MAX_SHARD,
            last: std::sync::Mutex::new((0, 0)),
        }
    }

    /// A generator with a random node.
    pub fn random_node() -> Self {
        use rand_core::RngCore;
        Self::new(i64::from(rand_core::OsRng.next_u32()) & MAX_SHARD)
    }

    pub fn next(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(EPOCH_UNIX_MS, |elapsed| elapsed.as_millis() as i64);
        let mut last = self.last.lock().expect("not poisoned");
        // The clock may step back (NTP): never go below the last millisecond used.
        let (mut unix_ms, mut sequence) = (now.max(last.0), 0);
        if unix_ms == last.0 {
            sequence = last.1 + 1;
            if sequence > MAX_SEQUENCE {
                // 1024 ids in one millisecond: borrow the next one.
                unix_ms += 1;
                sequence = 0;
            }
        }
        *last = (unix_ms, sequence);
        compose(IdParts {
            unix_ms,
            shard: self.node,
            sequence,
        })
    }
}

/// A text that is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an id is a positive decimal number without leading zeros")]
pub struct InvalidId;

typed_id!(
    /// A user of every service (identity and sessions are the platform's).
    UserId,
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
    fn generated_ids_grow_and_carry_their_node() {
        let ids = IdGenerator::new(77);
        let mut previous = 0;
        for _ in 0..5000 {
            let id = ids.next();
            assert!(id > previous);
            assert_eq!(decompose(id).shard, 77);
            previous = id;
        }
    }

    #[test]
    fn typed_ids_travel_as_decimal_strings() {
        let id: UserId = serde_json::from_str("\"42\"").unwrap();
        assert_eq!(id, UserId(42));
        assert_eq!(serde_json::to_string(&MessageId(7)).unwrap(), "\"7\"");
        assert!(serde_json::from_str::<MessageId>("\"042\"").is_err());
        assert_eq!("9".parse::<MessageId>(), Ok(MessageId(9)));
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
