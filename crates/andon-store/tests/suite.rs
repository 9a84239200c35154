//! One suite for every backend: each generic test runs against SQLite, and
//! against PostgreSQL when `ANDON_TEST_PG` holds a connection URL (see
//! `scripts/pg-test-cluster.sh`); each PostgreSQL test gets a fresh database.
//! Then SQLite-only tests: kill -9 durability, disk full, busy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use andon_core::{Role, RunStatus, Trigger};
use andon_store::{
    Envelope, Event, SqliteOptions, SqliteStore, Store, StoreError, TokenRecord, copy_events,
    hash_token,
};
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Fixtures

/// A fresh, empty store location of one backend, plus raw SQL access to it
/// for the checks the trait cannot make (bytes on disk, schema table).
struct Fixture {
    dir: TempDir,
    backend: Backend,
}

enum Backend {
    Sqlite,
    Pg(PgDb),
}

/// A database created for one test, dropped with it.
struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

impl Fixture {
    fn sqlite() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            backend: Backend::Sqlite,
        }
    }

    /// None (after saying so) when no PostgreSQL is configured.
    fn pg() -> Option<Fixture> {
        let Ok(admin_url) = std::env::var("ANDON_TEST_PG") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but ANDON_TEST_PG is not: start PostgreSQL with scripts/pg-test-cluster.sh"
            );
            println!("skipped: ANDON_TEST_PG not set");
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "andon_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        pg_exec(&admin_url, &format!("CREATE DATABASE {name}"));
        let url = with_database(&admin_url, &name);
        Some(Fixture {
            dir: tempfile::tempdir().unwrap(),
            backend: Backend::Pg(PgDb {
                admin_url,
                name,
                url,
            }),
        })
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("andon.db")
    }

    fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite => format!("sqlite:{}", self.db_path().display()),
            Backend::Pg(db) => db.url.clone(),
        }
    }

    fn open(&self) -> Arc<dyn Store> {
        self.try_open().unwrap()
    }

    fn try_open(&self) -> Result<Arc<dyn Store>, StoreError> {
        andon_store::open(&self.location(), self.data_dir())
    }

    /// Runs SQL directly against the backing database.
    fn exec(&self, sql: &str) {
        match &self.backend {
            Backend::Sqlite => {
                rusqlite::Connection::open(self.db_path())
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            Backend::Pg(db) => pg_exec(&db.url, sql),
        }
    }

    /// One integer from a raw query.
    fn query_i64(&self, sql: &str) -> i64 {
        match &self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.db_path())
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Backend::Pg(db) => pg_rows(&db.url, sql)[0].get::<_, i64>(0),
        }
    }

    /// Every byte the backend keeps about secrets, as stored.
    fn raw_secret_bytes(&self) -> Vec<u8> {
        match &self.backend {
            // The whole file set, as a thief copying the data directory would get it.
            Backend::Sqlite => ["", "-wal", "-shm"]
                .iter()
                .filter_map(|suffix| {
                    std::fs::read(format!("{}{suffix}", self.db_path().display())).ok()
                })
                .flatten()
                .collect(),
            Backend::Pg(db) => pg_rows(&db.url, "SELECT sealed FROM secrets")
                .iter()
                .flat_map(|r| r.get::<_, Vec<u8>>(0))
                .collect(),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Backend::Pg(db) = &self.backend {
            // Best effort: the cluster is throwaway anyway.
            let _ = pg_try_exec(
                &db.admin_url,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name),
            );
        }
    }
}

/// The same URL pointing at another database.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

fn pg_rows(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let rows = client.query(sql, &[]).await.unwrap();
        drop(client);
        let _ = task.await;
        rows
    })
}

fn pg_try_exec(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        let result = client.batch_execute(sql).await;
        drop(client);
        let _ = task.await;
        result
    })
}

fn pg_exec(url: &str, sql: &str) {
    pg_try_exec(url, sql).unwrap();
}

/// Declares each generic test once per backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Fixture::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(fixture) = super::Fixture::pg() { super::$name(fixture) }
            } )*
        }
    };
}

suite!(
    append_then_read_in_order,
    failed_batch_is_rolled_back_whole,
    batches_are_visible_whole,
    concurrent_appends_are_gap_free,
    two_handles_appending_stay_gap_free,
    reopen_keeps_everything,
    tokens_by_hash_and_revoke,
    secrets_round_trip_encrypted_at_rest,
    secrets_need_the_same_key,
    key_file_is_private,
    migrations_are_idempotent,
    newer_schema_is_refused,
    copy_events_preserves_everything,
    leadership_is_exclusive_and_released_on_drop,
    conditional_append_refuses_a_moved_log,
    conditional_appends_race_without_duplicates,
    leader_record_is_written_only_by_the_leader,
);

// ---------------------------------------------------------------------------
// Helpers

fn commit(i: u64) -> Event {
    Event::CommitSeen {
        project: "web".into(),
        branch: "main".into(),
        commit: format!("c{i:04}"),
        message: format!("change {i} \u{0} with a NUL and émoji 🚦"),
        author: "ada".into(),
        committed_at_ms: 1_700_000_000_000 + i as i64,
    }
}

fn run_event(run_id: u64) -> Event {
    Event::RunQueued {
        project: "web".into(),
        run_id,
        commit: "abc".into(),
        branch: "main".into(),
        trigger: Trigger::Webhook("github".into()),
    }
}

fn all(store: &dyn Store) -> Vec<Envelope> {
    store.read(0, usize::MAX).unwrap()
}

fn assert_gap_free(envs: &[Envelope]) {
    for (i, env) in envs.iter().enumerate() {
        assert_eq!(env.seq, i as u64 + 1, "seq {} at position {i}", env.seq);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn token(id: &str, secret: &str, created_at_ms: i64) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: format!("name-{id}"),
        role: Role::Deployer,
        environment: Some("staging".into()),
        hash: hash_token(secret),
        created_at_ms,
        revoked: false,
    }
}

// ---------------------------------------------------------------------------
// Generic tests

fn append_then_read_in_order(f: Fixture) {
    let store = f.open();
    assert_eq!(store.last_seq().unwrap(), 0);
    assert!(all(&*store).is_empty());
    assert!(store.append("nobody", Vec::new()).unwrap().is_empty());

    let before = now_ms();
    let first = store.append("ada", vec![commit(1), run_event(7)]).unwrap();
    let second = store
        .append(
            "system",
            vec![
                Event::RunFinished {
                    run_id: 7,
                    status: RunStatus::Passed,
                    reason: None,
                },
                run_event(8),
                commit(2),
            ],
        )
        .unwrap();
    let after = now_ms();

    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(second.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    // One timestamp per batch, taken at append time (PostgreSQL's clock is
    // this machine's clock here; allow a little slack for rounding).
    for env in first.iter().chain(&second) {
        assert!(
            env.at_ms >= before - 5 && env.at_ms <= after + 5,
            "at_ms {}",
            env.at_ms
        );
    }
    assert_eq!(first[0].at_ms, first[1].at_ms);
    assert_eq!(first[0].actor, "ada");

    let stored = all(&*store);
    assert_eq!(stored, [first.clone(), second.clone()].concat());
    assert_gap_free(&stored);
    assert_eq!(store.last_seq().unwrap(), 5);

    // Paging.
    let page = store.read(2, 2).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(store.read(5, 10).unwrap().is_empty());
    assert!(store.read(0, 0).unwrap().is_empty());

    // The run index.
    let run7 = store.run_events(7).unwrap();
    assert_eq!(run7.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(store.run_events(8).unwrap().len(), 1);
    assert!(store.run_events(9).unwrap().is_empty());
}

/// A batch that fails on its second event leaves nothing behind, and the
/// next append takes the next seq: no gap.
fn failed_batch_is_rolled_back_whole(f: Fixture) {
    let store = f.open();
    store.append("ada", vec![commit(1)]).unwrap();
    match f.backend {
        Backend::Sqlite => f.exec(
            "CREATE TRIGGER boom BEFORE INSERT ON events
             WHEN NEW.actor = 'boom' AND NEW.type = 'project_removed'
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        ),
        Backend::Pg(_) => f.exec(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
             CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW
               WHEN (NEW.actor = 'boom' AND NEW.type = 'project_removed')
               EXECUTE FUNCTION boom();",
        ),
    }
    let batch = vec![
        commit(2),
        Event::ProjectRemoved {
            project: "web".into(),
        },
        commit(3),
    ];
    assert!(store.append("boom", batch).is_err());
    assert_eq!(store.last_seq().unwrap(), 1);
    assert_eq!(all(&*store).len(), 1);

    let next = store.append("ada", vec![commit(4)]).unwrap();
    assert_eq!(next[0].seq, 2);
    assert_gap_free(&all(&*store));
}

/// A reader running beside an appender of 4-event batches never sees part
/// of a batch.
fn batches_are_visible_whole(f: Fixture) {
    let writer = f.open();
    let reader = f.open();
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            for i in 0..40 {
                writer
                    .append("w", (0..4).map(|j| commit(i * 4 + j)).collect())
                    .unwrap();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !w.is_finished() && Instant::now() < deadline {
            let seen = reader.read(0, usize::MAX).unwrap();
            assert_eq!(seen.len() % 4, 0, "saw half a batch: {} events", seen.len());
            assert_gap_free(&seen);
        }
        w.join().unwrap();
    });
    assert_eq!(reader.last_seq().unwrap(), 160);
}

fn hammer(stores: &[Arc<dyn Store>], threads_per_store: usize, appends: u64) -> Vec<Vec<u64>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .flat_map(|store| std::iter::repeat_n(store, threads_per_store))
            .enumerate()
            .map(|(t, store)| {
                s.spawn(move || {
                    let mut batches = Vec::new();
                    for i in 0..appends {
                        let size = 1 + (i + t as u64) % 3;
                        let envs = store
                            .append(&format!("t{t}"), (0..size).map(commit).collect())
                            .unwrap();
                        batches.push(envs.iter().map(|e| e.seq).collect::<Vec<_>>());
                    }
                    batches
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn check_hammered(store: &dyn Store, batches: Vec<Vec<u64>>) {
    let mut acked = BTreeSet::new();
    for batch in &batches {
        // Each batch got consecutive seqs.
        for pair in batch.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "batch {batch:?} not consecutive");
        }
        for seq in batch {
            assert!(acked.insert(*seq), "seq {seq} handed out twice");
        }
    }
    let stored = all(store);
    assert_gap_free(&stored);
    assert_eq!(stored.len(), acked.len());
    assert_eq!(acked.last().copied(), Some(stored.len() as u64));
}

fn concurrent_appends_are_gap_free(f: Fixture) {
    let store = f.open();
    let batches = hammer(std::slice::from_ref(&store), 8, 40);
    check_hammered(&*store, batches);
}

/// Two handles (two connections; for PostgreSQL, what two server processes
/// look like) appending at once.
fn two_handles_appending_stay_gap_free(f: Fixture) {
    let a = f.open();
    let b = f.open();
    let batches = hammer(&[a.clone(), b], 4, 40);
    check_hammered(&*a, batches);
}

fn reopen_keeps_everything(f: Fixture) {
    let written = {
        let store = f.open();
        let mut written = store.append("ada", (0..10).map(commit).collect()).unwrap();
        written.extend(store.append("bob", vec![run_event(1)]).unwrap());
        store.put_token(&token("t1", "s1", 1)).unwrap();
        store.set_secret("web", "API_KEY", "hunter2").unwrap();
        written
    };
    let store = f.open();
    assert_eq!(all(&*store), written);
    assert_eq!(store.tokens().unwrap(), [token("t1", "s1", 1)]);
    assert_eq!(store.secrets("web").unwrap()["API_KEY"], "hunter2");
    assert_eq!(store.append("ada", vec![commit(99)]).unwrap()[0].seq, 12);
}

fn tokens_by_hash_and_revoke(f: Fixture) {
    let store = f.open();
    assert!(store.tokens().unwrap().is_empty());
    let admin = TokenRecord {
        id: "tok_admin".into(),
        name: "admin".into(),
        role: Role::Admin,
        environment: None,
        hash: hash_token("andon_secret_admin"),
        created_at_ms: 100,
        revoked: false,
    };
    let sdk = token("tok_sdk", "andon_secret_sdk", 200);
    store.put_token(&sdk).unwrap();
    store.put_token(&admin).unwrap();

    assert_eq!(
        store.tokens().unwrap(),
        [admin.clone(), sdk.clone()],
        "oldest first"
    );
    assert_eq!(
        store
            .token_by_hash(&hash_token("andon_secret_sdk"))
            .unwrap(),
        Some(sdk.clone())
    );
    assert_eq!(store.token_by_hash(&hash_token("wrong")).unwrap(), None);
    // The secret itself is not a key.
    assert_eq!(store.token_by_hash("andon_secret_sdk").unwrap(), None);

    assert!(store.revoke_token("tok_sdk").unwrap());
    assert!(!store.revoke_token("tok_sdk").unwrap(), "already revoked");
    assert!(!store.revoke_token("tok_nope").unwrap());
    let revoked = store.token_by_hash(&sdk.hash).unwrap().unwrap();
    assert!(revoked.revoked);
    assert!(!store.token_by_hash(&admin.hash).unwrap().unwrap().revoked);

    // put_token replaces by id.
    let renamed = TokenRecord {
        name: "renamed".into(),
        ..admin.clone()
    };
    store.put_token(&renamed).unwrap();
    assert_eq!(store.tokens().unwrap()[0].name, "renamed");
    assert_eq!(store.tokens().unwrap().len(), 2);

    // A hash belongs to one token.
    let clash = TokenRecord {
        id: "tok_other".into(),
        ..sdk
    };
    assert!(matches!(
        store.put_token(&clash),
        Err(StoreError::Conflict { .. })
    ));
}

fn secrets_round_trip_encrypted_at_rest(f: Fixture) {
    let store = f.open();
    let value = "correct-horse-battery-staple-4f1c";
    store.set_secret("web", "API_KEY", value).unwrap();
    store.set_secret("web", "DB_PASSWORD", "first").unwrap();
    store
        .set_secret("web", "DB_PASSWORD", "s3cond-pässwörd")
        .unwrap();
    store
        .set_secret("api", "TOKEN", "api-token-value-9d2e")
        .unwrap();

    let web = store.secrets("web").unwrap();
    assert_eq!(
        web,
        BTreeMap::from([
            ("API_KEY".to_owned(), value.to_owned()),
            ("DB_PASSWORD".to_owned(), "s3cond-pässwörd".to_owned()),
        ])
    );
    assert_eq!(
        store.secret_names("web").unwrap(),
        ["API_KEY", "DB_PASSWORD"]
    );
    assert_eq!(store.secret_scopes().unwrap(), ["api", "web"]);
    assert!(store.secrets("nope").unwrap().is_empty());
    assert!(store.secret_names("nope").unwrap().is_empty());

    assert!(store.delete_secret("web", "DB_PASSWORD").unwrap());
    assert!(!store.delete_secret("web", "DB_PASSWORD").unwrap());
    assert_eq!(store.secret_names("web").unwrap(), ["API_KEY"]);

    // Not in plaintext anywhere the backend keeps it.
    let raw = f.raw_secret_bytes();
    assert!(!raw.is_empty());
    for plain in [value, "api-token-value-9d2e", "s3cond-pässwörd"] {
        assert!(
            !raw.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{plain} found in plaintext"
        );
    }
    // ... while the event log text (for contrast) is stored readably.
    if let Backend::Sqlite = f.backend {
        store.append("ada", vec![commit(1)]).unwrap();
        drop(store);
        let raw = f.raw_secret_bytes();
        assert!(
            raw.windows(5).any(|w| w == b"c0001"),
            "sanity: the grep can find text"
        );
    }
}

fn secrets_need_the_same_key(f: Fixture) {
    {
        let store = f.open();
        store.set_secret("web", "API_KEY", "hunter2").unwrap();
    }
    // Another key file: the value must not open (and must not come out garbled).
    let key = f.data_dir().join("secret.key");
    std::fs::remove_file(&key).unwrap();
    let store = f.open();
    assert!(matches!(
        store.secrets("web"),
        Err(StoreError::Crypto { .. })
    ));
    // Names need no key.
    assert_eq!(store.secret_names("web").unwrap(), ["API_KEY"]);
}

fn key_file_is_private(f: Fixture) {
    let _store = f.open();
    let meta = std::fs::metadata(f.data_dir().join("secret.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    // Reopening keeps the same key file.
    let before = std::fs::read(f.data_dir().join("secret.key")).unwrap();
    drop(f.open());
    assert_eq!(
        std::fs::read(f.data_dir().join("secret.key")).unwrap(),
        before
    );
}

fn migrations_are_idempotent(f: Fixture) {
    for _ in 0..3 {
        let store = f.open();
        store.append("ada", vec![commit(1)]).unwrap();
    }
    let applied = f.query_i64("SELECT COUNT(*) FROM schema_migrations");
    let max = f.query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations");
    assert_eq!(applied, max, "each migration recorded once");
    assert!(applied >= 1);
    assert_eq!(f.open().last_seq().unwrap(), 3);
}

fn newer_schema_is_refused(f: Fixture) {
    drop(f.open());
    f.exec("INSERT INTO schema_migrations (version, applied_at_ms) VALUES (999, 0)");
    let err = f
        .try_open()
        .err()
        .expect("opening a newer schema must fail");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer andon"), "{err}");
}

/// SQLite → this backend → a fresh SQLite: nothing lost or altered.
fn copy_events_preserves_everything(f: Fixture) {
    let src_dir = tempfile::tempdir().unwrap();
    let src = SqliteStore::open(&src_dir.path().join("src.db"), src_dir.path()).unwrap();
    for i in 0..30 {
        src.append(&format!("actor-{}", i % 3), vec![commit(i), run_event(i)])
            .unwrap();
        // Distinct timestamps, so that a copy which re-stamps would show.
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut revoked = token("t2", "s2", 2);
    revoked.revoked = true;
    src.put_token(&token("t1", "s1", 1)).unwrap();
    src.put_token(&revoked).unwrap();
    src.set_secret("web", "A", "alpha").unwrap();
    src.set_secret("api", "B", "beta").unwrap();

    let target = f.open();
    assert_eq!(copy_events(&src, &*target).unwrap(), 60);
    assert_eq!(all(&*target), all(&src));
    assert_eq!(target.tokens().unwrap(), src.tokens().unwrap());
    assert_eq!(target.secrets("web").unwrap(), src.secrets("web").unwrap());
    assert_eq!(target.secrets("api").unwrap(), src.secrets("api").unwrap());
    assert_eq!(target.run_events(5).unwrap(), src.run_events(5).unwrap());
    // New appends continue after the copied log.
    assert_eq!(target.append("x", vec![commit(0)]).unwrap()[0].seq, 61);

    // Refused into a non-empty store.
    assert!(matches!(
        copy_events(&src, &*target),
        Err(StoreError::NotEmpty { last_seq: 61 })
    ));
    // import() itself refuses to rewrite history or leave gaps.
    let log = all(&src);
    assert!(matches!(
        target.import(&log[..1]),
        Err(StoreError::NotEmpty { .. })
    ));

    // And back out again.
    let back_dir = tempfile::tempdir().unwrap();
    let back = SqliteStore::open(&back_dir.path().join("back.db"), back_dir.path()).unwrap();
    assert_eq!(copy_events(&*target, &back).unwrap(), 61);
    assert_eq!(all(&back), all(&*target));
    assert_eq!(back.secrets("api").unwrap()["B"], "beta");
}

fn leadership_is_exclusive_and_released_on_drop(f: Fixture) {
    let a = f.open();
    let b = f.open();
    assert!(a.try_lead().unwrap());
    assert!(!b.try_lead().unwrap());
    assert!(a.try_lead().unwrap(), "a leader stays leader");
    assert!(!b.try_lead().unwrap());
    drop(a);
    // Dropping closes the session; allow the database a moment to notice.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.try_lead().unwrap() {
        assert!(
            Instant::now() < deadline,
            "leadership not released after drop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = f.open();
    assert!(!c.try_lead().unwrap());
}

fn conditional_append_refuses_a_moved_log(f: Fixture) {
    let a = f.open();
    let b = f.open();
    assert_eq!(a.append_after(0, "a", vec![commit(1)]).unwrap()[0].seq, 1);
    // `b` decided from an empty log: refused, nothing written.
    let err = b.append_after(0, "b", vec![commit(2)]).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LogMoved {
                expected: 0,
                found: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(b.last_seq().unwrap(), 1);
    // After catching up it goes through.
    let envs = b.append_after(1, "b", vec![commit(2), commit(3)]).unwrap();
    assert_eq!(envs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    // An empty batch is a no-op, whatever the expectation.
    assert!(a.append_after(0, "a", vec![]).unwrap().is_empty());
    assert_gap_free(&all(&*a));
}

/// Several handles (servers) each allocate "the next id" from their own
/// view of the log and append it conditionally, retrying on a moved log:
/// every id is handed out exactly once, and every append lands.
fn conditional_appends_race_without_duplicates(f: Fixture) {
    let stores: Vec<Arc<dyn Store>> = (0..3).map(|_| f.open()).collect();
    let per_handle = 15u64;
    let threads: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(h, store)| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let mut next_id = 1u64;
                let mut conflicts = 0u32;
                for _ in 0..per_handle {
                    loop {
                        for env in store.read(seen, 1000).unwrap() {
                            seen = env.seq;
                            if let Some(id) = env.event.run_id() {
                                next_id = next_id.max(id + 1);
                            }
                        }
                        match store.append_after(seen, &format!("h{h}"), vec![run_event(next_id)]) {
                            Ok(envs) => {
                                seen = envs[0].seq;
                                next_id += 1;
                                break;
                            }
                            Err(StoreError::LogMoved { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let log = all(&*stores[0]);
    assert_gap_free(&log);
    assert_eq!(log.len() as u64, 3 * per_handle);
    let ids: BTreeSet<u64> = log.iter().filter_map(|e| e.event.run_id()).collect();
    assert_eq!(
        ids.len() as u64,
        3 * per_handle,
        "an id was handed out twice"
    );
    println!("conflicts retried: {conflicts}");
}

fn leader_record_is_written_only_by_the_leader(f: Fixture) {
    let a = f.open();
    let b = f.open();
    assert_eq!(a.leader().unwrap(), None);
    assert!(
        !a.advertise_leader("http://a", "A").unwrap(),
        "not leading yet"
    );
    assert!(a.try_lead().unwrap());
    assert!(a.advertise_leader("http://a", "A").unwrap());
    assert!(!b.try_lead().unwrap());
    assert!(!b.advertise_leader("http://b", "B").unwrap());
    let rec = b.leader().unwrap().unwrap();
    assert_eq!((rec.api.as_str(), rec.instance.as_str()), ("http://a", "A"));
    assert!(rec.since_ms > 0);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.try_lead().unwrap() {
        assert!(Instant::now() < deadline, "leadership not released");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b.advertise_leader("http://b", "B").unwrap());
    assert_eq!(b.leader().unwrap().unwrap().api, "http://b");
}

// ---------------------------------------------------------------------------
// SQLite only

#[test]
fn sqlite_location_forms() {
    let dir = tempfile::tempdir().unwrap();
    andon_store::open("", dir.path())
        .unwrap()
        .append("a", vec![commit(1)])
        .unwrap();
    assert!(dir.path().join("andon.db").exists());
    let other = dir.path().join("sub/other.db");
    andon_store::open(other.to_str().unwrap(), dir.path()).unwrap();
    assert!(other.exists());
    let url = format!("sqlite:{}", dir.path().join("third.db").display());
    andon_store::open(&url, dir.path()).unwrap();
    assert!(dir.path().join("third.db").exists());
    // The database really is in WAL mode (persistent in the file).
    let conn = rusqlite::Connection::open(dir.path().join("andon.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn postgres_url_errors_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = andon_store::open("postgres://u:pw@127.0.0.1:1/x?sslmode=bogus", dir.path())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(!err.to_string().contains("pw"));
    // Nothing listens on port 1.
    let err = andon_store::open("postgres://u@127.0.0.1:1/x", dir.path())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
}

/// Where cargo put the example binary; built on demand when a filtered
/// `cargo test` did not build examples.
fn append_loop_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug_dir = exe.parent().unwrap().parent().unwrap();
    let bin = debug_dir.join("examples/append_loop");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "andon-store", "--example", "append_loop"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// kill -9 during appends, ten times: every seq the process printed (i.e.
/// every append that returned) is still there, and the log has no gaps.
#[test]
fn sqlite_acknowledged_appends_survive_kill_9() {
    let bin = append_loop_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut total_acked = 0;
    for round in 0..10u64 {
        let mut child = Command::new(&bin)
            .arg(dir.path())
            .arg("100000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = 5 + round * 13;
        let mut acked = Vec::new();
        for line in lines.by_ref() {
            acked.push(line.unwrap().parse::<u64>().unwrap());
            if acked.len() as u64 == kill_after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        // Lines already written before the kill were acknowledged too.
        acked.extend(lines.map(|l| l.unwrap().parse::<u64>().unwrap()));
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child finished before the kill"
        );
        total_acked += acked.len();

        let store = SqliteStore::open(&dir.path().join("andon.db"), dir.path()).unwrap();
        let log = all(&store);
        assert_gap_free(&log);
        let present: BTreeSet<u64> = log.iter().map(|e| e.seq).collect();
        for seq in &acked {
            assert!(
                present.contains(seq),
                "round {round}: acknowledged seq {seq} lost"
            );
        }
        drop(store);
        let conn = rusqlite::Connection::open(dir.path().join("andon.db")).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    assert!(total_acked >= 10 * 5);
}

/// Fills a store until it reports a full disk, then checks that nothing was
/// half-written and that reads still work.
fn fill_until_full(store: &SqliteStore) -> Vec<Envelope> {
    let big = |i: u64| Event::CommitSeen {
        project: "web".into(),
        branch: "main".into(),
        commit: format!("c{i}"),
        message: "x".repeat(6_000),
        author: "ada".into(),
        committed_at_ms: 0,
    };
    let mut written = Vec::new();
    for i in 0..10_000u64 {
        match store.append("ada", vec![big(i), big(i + 1)]) {
            Ok(envs) => written.extend(envs),
            Err(StoreError::DiskFull) => {
                let msg = StoreError::DiskFull.to_string();
                assert!(msg.contains("full"), "{msg}");
                assert_eq!(store.last_seq().unwrap(), written.len() as u64);
                assert_eq!(all(store), written, "a failed append left something behind");
                // Still refuses the same batch cleanly, and still reads.
                assert!(matches!(
                    store.append("ada", vec![big(i), big(i + 1)]),
                    Err(StoreError::DiskFull)
                ));
                assert_eq!(store.read(0, 1).unwrap().len(), 1);
                return written;
            }
            Err(other) => panic!("expected DiskFull, got {other:?}"),
        }
    }
    panic!("never ran out of space");
}

#[test]
fn sqlite_size_cap_reports_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        max_pages: Some(64),
        ..SqliteOptions::default()
    };
    let path = dir.path().join("andon.db");
    let store = SqliteStore::open_with(&path, dir.path(), &options).unwrap();
    let written = fill_until_full(&store);
    assert!(!written.is_empty());
    drop(store);
    let store = SqliteStore::open(&path, dir.path()).unwrap();
    assert_eq!(all(&store), written);
}

/// A real ENOSPC, on a 512 KiB tmpfs. Needs root (mount); skipped otherwise.
#[test]
fn sqlite_full_filesystem_reports_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let path = dir.path().join("andon.db");
    let written = {
        let store = SqliteStore::open(&path, dir.path()).unwrap();
        fill_until_full(&store)
    };
    assert!(!written.is_empty());
    // What was acknowledged is still there after closing and reopening.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count as usize, written.len());
}

/// Another connection holds the write lock: append waits for the busy
/// timeout, then says Busy; reads still work; afterwards appends work.
#[test]
fn sqlite_busy_after_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("andon.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(200),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, dir.path(), &options).unwrap();
    store.append("ada", vec![commit(1)]).unwrap();

    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = store.append("ada", vec![commit(2)]).unwrap_err();
    assert!(
        matches!(err, StoreError::Busy { waited_ms: 200 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("another process"), "{err}");
    assert_eq!(store.read(0, 10).unwrap().len(), 1, "reads are not blocked");
    other.execute_batch("ROLLBACK").unwrap();

    assert_eq!(store.append("ada", vec![commit(2)]).unwrap()[0].seq, 2);
}

/// The PostgreSQL backend is usable from inside a tokio runtime (where the
/// sync `postgres` crate would panic), directly or via spawn_blocking.
#[test]
fn postgres_works_inside_a_tokio_runtime() {
    let Some(f) = Fixture::pg() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = f.open();
        store.append("async", vec![commit(1)]).unwrap();
        let s = store.clone();
        let seq =
            tokio::task::spawn_blocking(move || s.append("async", vec![commit(2)]).unwrap()[0].seq)
                .await
                .unwrap();
        assert_eq!(seq, 2);
        assert_eq!(store.last_seq().unwrap(), 2);
    });
}
