//! The `agora` binary's data commands, run as a newcomer would run them, against the test stack.

mod common;

use std::process::{Command, Output};

use agora_platform::testing::TestDatabase;
use tokio_postgres::NoTls;

use common::redis_url;

struct Cli {
    database_url: String,
    namespace: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_agora"))
            .args(args)
            .env("AGORA_DATABASE_URL", &self.database_url)
            .env("AGORA_REDIS_URL", redis_url())
            .env("AGORA_NAMESPACE", &self.namespace)
            .env("AGORA_LOG", "warn")
            .output()
            .expect("running agora")
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "agora {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

/// Newest-first ids of a feed as cached, or None when it is not cached.
async fn cached_feed(
    redis: &mut redis::aio::MultiplexedConnection,
    key: String,
) -> Option<Vec<i64>> {
    let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(redis).await.unwrap();
    bytes.map(|bytes| {
        bytes[1..]
            .chunks_exact(8)
            .map(|chunk| i64::from_be_bytes(chunk.try_into().unwrap()))
            .collect()
    })
}

#[tokio::test]
async fn feed_rebuild_writes_one_feed_or_all_of_them_as_the_database_has_them() {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let cli = Cli {
        database_url: database.url.clone(),
        namespace: format!("clitest{}", std::process::id()),
    };
    let seeded = cli.run_ok(&[
        "seed",
        "users",
        "--users",
        "300",
        "--posts-mean",
        "4",
        "--celebrities",
        "1",
    ]);
    assert!(seeded.contains("300 users"), "{seeded}");

    let (sql, connection) = tokio_postgres::connect(&database.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    // The database's own answer for a user's feed: friends' newest posts.
    let expected_feed = |user: i64| {
        let sql = &sql;
        async move {
            sql.query(
                "SELECT p.id FROM friendships f JOIN posts p ON p.author_id = f.friend_id \
                 WHERE f.user_id = $1 ORDER BY p.id DESC LIMIT 1000",
                &[&user],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, i64>(0))
            .collect::<Vec<_>>()
        }
    };
    let readers: Vec<i64> = sql
        .query(
            "SELECT DISTINCT user_id FROM friendships ORDER BY user_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(readers.len() > 100);

    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = |user: i64| format!("{}:feed:{user}", cli.namespace);

    let one = readers[7];
    let rebuilt = cli.run_ok(&["feed", "rebuild", "--user", &one.to_string()]);
    assert!(
        rebuilt.contains(&format!("rebuilt user {one}")),
        "{rebuilt}"
    );
    assert_eq!(
        cached_feed(&mut redis, key(one)).await,
        Some(expected_feed(one).await)
    );
    assert_eq!(
        cached_feed(&mut redis, key(readers[8])).await,
        None,
        "only the one asked for"
    );

    let all = cli.run_ok(&["feed", "rebuild", "--all"]);
    assert!(
        all.contains(&format!("rebuilt {} feeds", readers.len())),
        "{all}"
    );
    // 300 users make no celebrity at the default threshold (10,000 followers), so every
    // friend's posts are in the feed itself.
    for &user in &readers {
        assert_eq!(
            cached_feed(&mut redis, key(user)).await,
            Some(expected_feed(user).await),
            "user {user}"
        );
    }

    // Neither --user nor --all: a usage error, not a guess.
    let output = cli.run(&["feed", "rebuild"]);
    assert_eq!(output.status.code(), Some(2));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", cli.namespace))
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut redis)
        .await
        .unwrap();
}
