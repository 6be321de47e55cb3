//! Passwords and bearer tokens.
//!
//! Passwords: Argon2id with the OWASP minimum (19 MiB, t=2, p=1: the `argon2` crate's defaults).
//! One hash costs tens of milliseconds of CPU and 19 MiB of memory, and login is reachable
//! without authentication, so hashing runs on blocking threads behind a semaphore with a bounded
//! queue: a login flood gets 503s instead of exhausting memory or starving other requests.
//!
//! Tokens: 256 random bits, base64url. Only their SHA-256 is stored, so a leaked table cannot be
//! replayed; a fast hash is enough because the input is random, not a human password.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Hashing could not even start.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("too many password operations are queued")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Argon2id hashing with bounded concurrency and a bounded queue.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once (one per core is right); at most `max_queued` wait.
    pub fn new(concurrency: usize, max_queued: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued,
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| HashingError::Failed(error.to_string()))
        })
        .await
    }

    /// `Ok(false)` for a wrong password; an unparsable stored hash is an error.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: String,
    ) -> Result<bool, HashingError> {
        self.run(move || {
            let parsed = PasswordHash::new(&stored_hash)
                .map_err(|error| HashingError::Failed(error.to_string()))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(HashingError::Overloaded);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let permit = permit.map_err(|_| HashingError::Failed("hasher closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|error| HashingError::Failed(error.to_string()))?
    }
}

/// A freshly issued bearer token: give `token` to the client, store `hash`.
pub struct IssuedToken {
    pub token: String,
    pub hash: Vec<u8>,
}

pub fn issue_token() -> IssuedToken {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    IssuedToken { token, hash }
}

/// The stored form of a token. Returns `None` for strings that cannot be a token we issued, so
/// garbage never reaches the database.
pub fn stored_token_hash(token: &str) -> Option<Vec<u8>> {
    let plausible = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| hash_token(token))
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_unique_and_verifiable() {
        let first = issue_token();
        let second = issue_token();
        assert_ne!(first.token, second.token);
        assert_eq!(stored_token_hash(&first.token), Some(first.hash));
    }

    #[test]
    fn implausible_tokens_are_rejected_without_hashing() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}!", "a".repeat(42)),
        ] {
            assert_eq!(stored_token_hash(bad), None);
        }
    }

    #[tokio::test]
    async fn password_round_trip() {
        let hasher = PasswordHasher::new(1, 4);
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong horse".into(), hash).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_instead_of_growing() {
        let hasher = PasswordHasher::new(1, 0);
        assert!(matches!(
            hasher.hash("x".into()).await,
            Err(HashingError::Overloaded)
        ));
    }
}
