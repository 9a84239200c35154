//! What to run and what came of it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use andon_artifacts::Digest;
use andon_core::{Event, JobOutcome, RunStatus, TestCounts};

/// One job, as the config resolved it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub stage: String,
    /// Stage kind (`unit`, `acceptance`, ...).
    pub kind: Option<String>,
    /// Shell script, run as `sh -c SCRIPT` in the checkout (like GitLab CI and
    /// GitHub Actions' `sh` shell; no `-e`, so the exit status is the last
    /// command's unless the script says `set -e`).
    pub run: String,
    /// Effective dependencies: the job starts when all of them passed (or
    /// failed with `allow_failure`).
    pub deps: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Names of secrets to put in the job's environment; values come from
    /// [`RunSpec::secrets`]. A missing one fails the job.
    pub secrets: Vec<String>,
    pub timeout: Option<Duration>,
    /// Extra attempts after a failure or timeout (not after cancellation).
    pub retries: u32,
    /// Paths or globs relative to the checkout, stored after a passing attempt.
    pub artifacts: Vec<String>,
    /// A failure neither fails the run nor stops dependents.
    pub allow_failure: bool,
    /// Run the script in a container of this image (Docker Engine API; see
    /// [`RunSpec::docker_host`]) instead of with the run's executor.
    pub image: Option<String>,
    /// Run the script in the bubblewrap sandbox ([`crate::BwrapExecutor`])
    /// whatever the run's executor. Ignored when `image` is set.
    pub sandbox: bool,
    /// Agent labels (`runs_on:`): with [`RunSpec::remote`] set, the job runs
    /// on an agent that has all of them; without it, here as any other job.
    pub runs_on: Vec<String>,
}

/// One run of a pipeline on one commit.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run_id: u64,
    /// The commit being built; exported as `ANDON_COMMIT`.
    pub commit: Option<String>,
    /// A clean checkout of the commit, already made (see [`crate::git::checkout`]).
    /// Every job runs here; jobs share it, as stages share a workspace.
    pub checkout: PathBuf,
    /// Jobs in plan order (the tie-break among equally fast ready jobs).
    pub jobs: Vec<JobSpec>,
    /// At most this many jobs at once; 0 means the number of cores.
    pub parallelism: usize,
    /// Every secret value the run may use, by name. All of them are masked in
    /// every job's log, not only the ones a job names.
    pub secrets: BTreeMap<String, String>,
    /// Recorded median duration per job name, for fastest-feedback-first.
    pub medians_ms: BTreeMap<String, u64>,
    /// Scratch directory owned by the caller (per-attempt JUnit report dirs
    /// go under `work_dir/reports/`).
    pub work_dir: PathBuf,
    /// Stop the whole run at the first failure (the default). When false, a
    /// failure only skips the jobs that need it.
    pub fail_fast: bool,
    /// Time between SIGTERM and SIGKILL when a job is timed out or cancelled.
    pub kill_grace: Duration,
    /// Exported as `ANDON_INSTANCE`, so [`crate::reap_orphans_of`] only ends
    /// this server's processes when several share a machine.
    pub instance: Option<String>,
    /// The Docker engine for jobs with an `image` (`unix:///...` or
    /// `tcp://...`); None means `DOCKER_HOST`, then Docker's default socket.
    pub docker_host: Option<String>,
    /// Where jobs with `runs_on` go. `None` (`andon run` on a laptop): they
    /// run here like the others.
    pub remote: Option<std::sync::Arc<dyn crate::remote::RemoteJobs>>,
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            run_id: 0,
            commit: None,
            checkout: PathBuf::new(),
            jobs: Vec::new(),
            parallelism: 0,
            secrets: BTreeMap::new(),
            medians_ms: BTreeMap::new(),
            work_dir: PathBuf::new(),
            fail_fast: true,
            kill_grace: Duration::from_secs(5),
            instance: None,
            docker_host: None,
            remote: None,
        }
    }
}

/// Receives everything a run produces, as it happens. Called from the
/// runner's task: keep it quick (hand off to a channel for slow IO).
pub trait RunObserver: Send + Sync + 'static {
    fn event(&self, event: Event);
    /// One line of a job's stdout or stderr (or a runner message prefixed
    /// `andon: `), already masked, without its newline.
    fn log(&self, job: &str, attempt: u32, line: &str);
}

/// An artifact a job stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// Path relative to the checkout (a glob's matches are listed one by one).
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub name: String,
    /// The last attempt's outcome, or `Skipped` if it never ran.
    pub outcome: JobOutcome,
    /// Attempts made (0 if skipped).
    pub attempts: u32,
    pub exit_code: Option<i32>,
    /// Sum over attempts.
    pub duration_ms: u64,
    /// The last attempt's JUnit counts, if it produced any.
    pub tests: Option<TestCounts>,
    /// Failing tests of the last attempt (`classname.name`).
    pub failed_tests: Vec<String>,
    /// Failed, then passed on retry, on the same commit.
    pub flaky: bool,
    /// Tests that both failed and passed across this job's attempts.
    pub flaky_tests: Vec<String>,
    pub artifacts: Vec<StoredArtifact>,
    /// Why it failed or was skipped, when the runner knows better than the
    /// exit code (missing secret, missing artifact, dependency failed...).
    pub reason: Option<String>,
}

impl JobReport {
    pub(crate) fn skipped(name: &str, reason: String) -> Self {
        Self {
            name: name.to_owned(),
            outcome: JobOutcome::Skipped,
            attempts: 0,
            exit_code: None,
            duration_ms: 0,
            tests: None,
            failed_tests: Vec::new(),
            flaky: false,
            flaky_tests: Vec::new(),
            artifacts: Vec::new(),
            reason: Some(reason),
        }
    }
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub status: RunStatus,
    pub reason: Option<String>,
    /// One report per job, in plan order.
    pub jobs: Vec<JobReport>,
}

impl RunSummary {
    pub fn job(&self, name: &str) -> Option<&JobReport> {
        self.jobs.iter().find(|j| j.name == name)
    }
}
