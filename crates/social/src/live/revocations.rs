//! Ends live sockets whose session ends: a sign-out (API, web, or everywhere), or a session
//! pushed out by newer logins, closes the user's sockets on every instance with 1008.
//!
//! Every revocation is announced on the session cache's Redis channel (see
//! `agora_platform::auth`). Each instance hears it, asks PostgreSQL which of that user's
//! socket sessions are still open, and tells the rest to close. When the instance may have
//! missed announcements (its subscription restarted, or it fell behind), it checks every
//! socket it holds, a thousand sessions per query. Sessions that merely expire end by the
//! socket's own timer.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::invalidation::Forget;
use agora_platform::session::Sessions;
use tokio::sync::{broadcast, watch};

use super::LiveHub;

/// Sessions checked per query when every socket is checked.
const CHECK_CHUNK: usize = 1000;
/// Tries per check while the database does not answer; sockets stay open meanwhile.
const CHECK_TRIES: u32 = 5;

/// Runs until `stop` turns true.
pub async fn end_revoked_sockets(
    hub: LiveHub,
    sessions: Sessions,
    mut heard: broadcast::Receiver<Forget>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let scope = tokio::select! {
            heard = heard.recv() => match heard {
                Ok(Forget::Key(user)) => Some(user),
                Ok(Forget::All) | Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let candidates = hub.sessions(scope);
        for chunk in candidates.chunks(CHECK_CHUNK) {
            end_closed(&hub, &sessions, chunk).await;
        }
    }
}

async fn end_closed(hub: &LiveHub, sessions: &Sessions, candidates: &[Arc<[u8]>]) {
    let hashes: Vec<Vec<u8>> = candidates.iter().map(|hash| hash.to_vec()).collect();
    for attempt in 1..=CHECK_TRIES {
        match sessions.still_open(&hashes).await {
            Ok(open) => {
                let ended: Vec<Arc<[u8]>> = candidates
                    .iter()
                    .filter(|hash| !open.iter().any(|open| open[..] == hash[..]))
                    .cloned()
                    .collect();
                let closed = hub.end_sessions(&ended);
                if closed > 0 {
                    metrics::counter!("live_sockets_signed_out_total").increment(closed as u64);
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, attempt, "cannot check live sockets' sessions");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
}
