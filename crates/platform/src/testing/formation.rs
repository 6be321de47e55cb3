//! The test stack's replicated formation (pg_auto_failover: a monitor, a primary and two
//! replicas in quorum commit), for tests that kill, pause and restart its nodes through
//! `./dev replication … test` and check what the services kept (docs/replication.md).

use std::str::FromStr;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::config::NamedServer;

/// One formation per test stack: its tests take turns (test binaries run one at a time, so a
/// lock per binary is enough).
pub static FORMATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Formation {
    /// The primary wherever it is (multi-host, read-write), maintenance database.
    pub primary: String,
    /// Each node by name, maintenance database.
    pub nodes: Vec<NamedServer>,
    pub monitor: String,
    pub dev: String,
}

pub fn formation() -> Formation {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: the replication tests need the test stack (./dev test)")
        })
    };
    Formation {
        primary: var("AGORA_TEST_REPLICATED_URL"),
        nodes: var("AGORA_TEST_REPLICA_URLS")
            .split(',')
            .map(|node| NamedServer::from_str(node).unwrap())
            .collect(),
        monitor: var("AGORA_TEST_REPLICA_MONITOR_URL"),
        dev: var("AGORA_TEST_DEV"),
    }
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::from_str(url).unwrap();
    config.connect_timeout(Duration::from_secs(1));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Formation {
    /// (primary, standbys) among the nodes that answer. Right after a failover the new primary
    /// may miss a connection or two, so this asks again for up to 15 s before it gives up.
    pub async fn roles(&self) -> (String, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut primary = None;
            let mut standbys = Vec::new();
            for node in &self.nodes {
                let Ok(client) = connect(&node.url).await else {
                    continue;
                };
                let Ok(row) = client.query_one("SELECT pg_is_in_recovery()", &[]).await else {
                    continue;
                };
                if row.get(0) {
                    standbys.push(node.name.clone());
                } else {
                    primary = Some(node.name.clone());
                }
            }
            if let Some(primary) = primary {
                return (primary, standbys);
            }
            assert!(
                Instant::now() < deadline,
                "the formation has no primary for 15 s (standbys: {standbys:?})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn node(&self, name: &str) -> &NamedServer {
        self.nodes.iter().find(|node| node.name == name).unwrap()
    }

    /// Every node serving as the monitor wants it (primary or secondary).
    pub async fn settled(&self) -> bool {
        let Ok(monitor) = connect(&self.monitor).await else {
            return false;
        };
        let Ok(rows) = monitor
            .query(
                "SELECT reportedstate::text, goalstate::text FROM pgautofailover.node",
                &[],
            )
            .await
        else {
            return false;
        };
        rows.len() == self.nodes.len()
            && rows.iter().all(|row| {
                let (reported, goal): (String, String) = (row.get(0), row.get(1));
                reported == goal && (goal == "primary" || goal == "secondary")
            })
    }

    /// Waits until the formation has stayed settled for 2 s (right after a fault the monitor
    /// may still move a node or two), and says how long until it first settled.
    pub async fn wait_settled(&self, within: Duration) -> Duration {
        let started = Instant::now();
        let mut settled_since: Option<Instant> = None;
        let mut first_settled = None;
        loop {
            if self.settled().await {
                let since = *settled_since.get_or_insert_with(Instant::now);
                first_settled.get_or_insert(started.elapsed());
                if since.elapsed() >= Duration::from_secs(2) {
                    return first_settled.unwrap();
                }
            } else {
                settled_since = None;
            }
            assert!(
                started.elapsed() < within,
                "the formation did not settle within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `./dev replication ARGS test`.
    pub async fn dev(&self, args: &[&str]) {
        let mut command = std::process::Command::new(&self.dev);
        command.arg("replication").args(args).arg("test");
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "./dev replication {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kills `node` (keeper and PostgreSQL, `kill -9`); it is started again when the returned
    /// guard is dropped, even by a test that fails before starting it itself: a formation left
    /// without its standbys would hang every later write on synchronous commit.
    pub async fn kill<'a>(&'a self, node: &str) -> KilledNode<'a> {
        self.dev(&["kill", node]).await;
        KilledNode {
            formation: self,
            node: node.to_owned(),
            started: false,
        }
    }

    /// Starts every node that is down (a test that failed half-way may have left one).
    pub async fn heal(&self) {
        for node in &self.nodes {
            if connect(&node.url).await.is_err() {
                self.dev(&["start", &node.name]).await;
            }
        }
        resume_replay_everywhere(self);
        self.wait_settled(Duration::from_secs(90)).await;
    }
}

/// A node killed by [`Formation::kill`], started again by [`KilledNode::start`] or on drop.
pub struct KilledNode<'a> {
    formation: &'a Formation,
    node: String,
    started: bool,
}

impl KilledNode<'_> {
    pub async fn start(mut self) {
        self.formation.dev(&["start", &self.node]).await;
        self.started = true;
    }
}

impl Drop for KilledNode<'_> {
    fn drop(&mut self) {
        if !self.started {
            // Blocking on purpose: Drop cannot await, and a panicking test is ending anyway.
            let _ = std::process::Command::new(&self.formation.dev)
                .args(["replication", "start", &self.node, "test"])
                .output();
        }
    }
}

/// Resumes replay on every standby; run from `Drop`, so it must not need the runtime.
pub fn resume_replay_everywhere(formation: &Formation) {
    for node in &formation.nodes {
        let _ = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-d",
                &node.url,
                "-c",
                "SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()",
            ])
            .output();
    }
}

/// Replay paused on a standby until dropped (even by a failing test).
pub struct PausedReplay<'a>(&'a Formation);

impl Drop for PausedReplay<'_> {
    fn drop(&mut self) {
        resume_replay_everywhere(self.0);
    }
}

pub async fn pause_replay<'a>(formation: &'a Formation, node: &str) -> PausedReplay<'a> {
    let client = connect(&formation.node(node).url).await.unwrap();
    client
        .execute("SELECT pg_wal_replay_pause()", &[])
        .await
        .unwrap();
    PausedReplay(formation)
}

/// When the server at `url` started: a change means it restarted.
pub async fn replica_start_time(url: &str) -> String {
    connect(url)
        .await
        .unwrap()
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .unwrap()
        .get(0)
}
