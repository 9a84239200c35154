use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use andon_artifacts::ArtifactStore;
use andon_core::{Event, JobOutcome};
use andon_runner::{
    Executor, JobSpec, LocalExecutor, RunObserver, RunSpec, RunSummary, run_pipeline,
};
use tokio_util::sync::CancellationToken;

/// Every run in these tests ends well within this, or the test fails.
pub(crate) const BOUND: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) events: Mutex<Vec<Event>>,
    pub(crate) logs: Mutex<Vec<(String, u32, String)>>,
    pub(crate) started: tokio::sync::Notify,
}

impl RunObserver for Recorder {
    fn event(&self, event: Event) {
        let is_start = matches!(event, Event::JobStarted { .. });
        self.events.lock().unwrap().push(event);
        if is_start {
            self.started.notify_one();
        }
    }

    fn log(&self, job: &str, attempt: u32, line: &str) {
        self.logs
            .lock()
            .unwrap()
            .push((job.to_owned(), attempt, line.to_owned()));
    }
}

impl Recorder {
    pub(crate) fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub(crate) fn log_of(&self, job: &str) -> String {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|(j, _, _)| j == job)
            .map(|(_, _, l)| format!("{l}\n"))
            .collect()
    }

    pub(crate) fn all_logs(&self) -> String {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, l)| format!("{l}\n"))
            .collect()
    }

    /// Job names in the order they started (first attempts).
    pub(crate) fn start_order(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::JobStarted {
                    job, attempt: 1, ..
                } => Some(job),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn finished(
        &self,
        name: &str,
    ) -> Vec<(u32, JobOutcome, bool, Option<andon_core::TestCounts>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::JobFinished {
                    job,
                    attempt,
                    outcome,
                    flaky,
                    tests,
                    ..
                } if job == name => Some((attempt, outcome, flaky, tests)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn skipped(&self) -> BTreeMap<String, String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::JobSkipped { job, reason, .. } => Some((job, reason)),
                _ => None,
            })
            .collect()
    }
}

/// A checkout directory, a scratch directory and an artifact store.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) checkout: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) store: ArtifactStore,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("checkout");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&checkout).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let store = ArtifactStore::open(&dir.path().join("data")).unwrap();
        Self {
            dir,
            checkout,
            work,
            store,
        }
    }

    /// A directory for the test's own files (outside the checkout).
    pub(crate) fn tmp(&self) -> PathBuf {
        let p = self.dir.path().join("t");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub(crate) fn spec(&self, jobs: Vec<JobSpec>) -> RunSpec {
        RunSpec {
            run_id: unique_run_id(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            checkout: self.checkout.clone(),
            jobs,
            parallelism: 4,
            work_dir: self.work.clone(),
            kill_grace: Duration::from_secs(1),
            ..RunSpec::default()
        }
    }

    pub(crate) async fn run(&self, spec: RunSpec) -> (RunSummary, Arc<Recorder>) {
        self.run_with(spec, &LocalExecutor, CancellationToken::new())
            .await
    }

    pub(crate) async fn run_with(
        &self,
        spec: RunSpec,
        executor: &dyn Executor,
        cancel: CancellationToken,
    ) -> (RunSummary, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let summary = tokio::time::timeout(
            BOUND,
            run_pipeline(spec, executor, &self.store, rec.clone(), cancel),
        )
        .await
        .expect("the run ended in time");
        (summary, rec)
    }
}

/// Run ids unique across concurrently running tests (and test binaries), so
/// that orphan reaping in one test can never touch another's processes.
pub(crate) fn unique_run_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (u64::from(std::process::id()) << 32) ^ (nanos << 8) ^ N.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn job(name: &str, run: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        stage: "test".into(),
        run: run.into(),
        ..JobSpec::default()
    }
}

pub(crate) fn needs(mut j: JobSpec, deps: &[&str]) -> JobSpec {
    j.deps = deps.iter().map(|d| d.to_string()).collect();
    j
}

/// Whether a process has ended (gone, or a zombie nobody reaped yet).
pub(crate) fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Waits (bounded) for every pid to be dead; the kernel may need a moment
/// to deliver SIGKILL to a whole group.
pub(crate) async fn all_dead(pids: &[i32]) -> bool {
    for _ in 0..100 {
        if pids.iter().all(|&p| is_dead(p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub(crate) fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// A git repository made with the git CLI.
pub(crate) struct Repo {
    pub(crate) dir: tempfile::TempDir,
}

impl Repo {
    pub(crate) fn new() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["config", "user.name", "Ada"]);
        repo.git(&["config", "user.email", "ada@example.com"]);
        repo
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub(crate) fn commit(&self, file: &str, contents: &str, message: &str) -> String {
        let p = self.path().join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}
