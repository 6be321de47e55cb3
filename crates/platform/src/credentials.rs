//! Passwords and bearer tokens.
//!
//! Passwords: Argon2id with the OWASP minimum (19 MiB, t=2, p=1: the `argon2` crate's defaults).
//! One hash costs tens of milliseconds of CPU and 19 MiB of memory, and login is reachable
//! without authentication, so hashing runs on a few dedicated threads fed by a bounded queue: a
//! login flood gets 503s instead of exhausting memory or starving other requests.
//!
//! Tokens: 256 random bits, base64url. Only their SHA-256 is stored, so a leaked table cannot be
//! replayed; a fast hash is enough because the input is random, not a human password.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Hashing could not even start.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("too many password operations are queued")]
    Overloaded,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl From<argon2::password_hash::Error> for HashingError {
    fn from(error: argon2::password_hash::Error) -> Self {
        HashingError::Failed(error.to_string())
    }
}

impl From<argon2::Error> for HashingError {
    fn from(error: argon2::Error) -> Self {
        HashingError::Failed(error.to_string())
    }
}

/// A stored hash whose memory cost is beyond this many blocks (KiB) is refused rather than
/// computed: only a hash we did not write could ask for it.
const MAX_BLOCKS: usize = 256 * 1024;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Argon2id hashing on `concurrency` threads of its own, each owning one Argon2 memory area
/// that it reuses for every hash. Memory is thus fixed (concurrency × 19 MiB) however many logins
/// arrive; hashing into fresh allocations instead left glibc holding hundreds of megabytes
/// after a burst. At most `max_queued` operations wait; more are refused as overload.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: SyncSender<Job>,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once (one per core is right); at most `max_queued` wait.
    /// The threads end when the last clone of the hasher is dropped.
    pub fn new(concurrency: usize, max_queued: usize) -> Self {
        let (jobs, queue) = sync_channel::<Job>(max_queued);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&queue))
                .expect("spawning a password hashing thread");
        }
        Self { jobs }
    }

    pub async fn hash(&self, password: String) -> Result<String, HashingError> {
        self.run(move |memory| hash_into(memory, password.as_bytes()))
            .await
    }

    /// `Ok(false)` for a wrong password; an unparsable stored hash is an error.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: String,
    ) -> Result<bool, HashingError> {
        self.run(move |memory| verify_into(memory, password.as_bytes(), &stored_hash))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let (reply, outcome) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(work(memory));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HashingError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                return Err(HashingError::Failed("hashing threads are gone".into()));
            }
        }
        outcome
            .await
            .map_err(|_| HashingError::Failed("a hashing thread stopped".into()))?
    }
}

fn hashing_thread(queue: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

/// The thread's memory area, grown (once) to `blocks`.
fn area(memory: &mut Vec<Block>, blocks: usize) -> Result<&mut [Block], HashingError> {
    if blocks > MAX_BLOCKS {
        return Err(HashingError::Failed(format!(
            "a stored hash asks for {blocks} KiB of memory"
        )));
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Ok(&mut memory[..blocks])
}

/// Argon2id with the crate's default parameters (the OWASP minimum), as a PHC string.
fn hash_into(memory: &mut Vec<Block>, password: &[u8]) -> Result<String, HashingError> {
    let argon2 = Argon2::default();
    let params = argon2.params().clone();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2.hash_password_into_with_memory(
        password,
        salt_raw,
        &mut output,
        area(memory, params.block_count())?,
    )?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output)?),
    };
    Ok(hash.to_string())
}

fn verify_into(
    memory: &mut Vec<Block>,
    password: &[u8],
    stored: &str,
) -> Result<bool, HashingError> {
    let parsed = PasswordHash::new(stored)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashingError::Failed(
            "stored hash lacks salt or hash".into(),
        ));
    };
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes)?;
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password,
        salt_raw,
        &mut output,
        area(memory, params.block_count())?,
    )?;
    // Output's equality is constant-time.
    Ok(Output::new(&output)? == expected)
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
        // One running and one waiting at most: of three at once, one is refused.
        let hasher = PasswordHasher::new(1, 1);
        let (a, b, c) = tokio::join!(
            hasher.hash("x".into()),
            hasher.hash("y".into()),
            hasher.hash("z".into())
        );
        let refused = [a, b, c]
            .iter()
            .filter(|outcome| matches!(outcome, Err(HashingError::Overloaded)))
            .count();
        assert!(refused >= 1);
    }

    #[test]
    fn hashes_are_the_crates_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut memory = Vec::new();
        let ours = hash_into(&mut memory, b"correct horse").unwrap();
        // The crate's own verifier accepts our string, and we accept the crate's.
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(verify_into(&mut memory, b"correct horse", &theirs).unwrap());
        assert!(!verify_into(&mut memory, b"wrong horse", &theirs).unwrap());
        // One area, sized once, serves every hash.
        assert_eq!(memory.len(), Params::default().block_count());
    }
}
