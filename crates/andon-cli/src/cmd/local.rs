//! Commands that need no server: `check`, `schema`, `run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use andon_core::{Envelope, Event, RunStatus, Runs, Trigger};
use andon_runner::{RunObserver, RunSpec};
use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use super::default_parallelism;
use crate::ui;

pub(crate) fn check(file: &Path) -> Result<ExitCode> {
    match andon_config::load(file) {
        Ok(cfg) => {
            let jobs: usize = cfg.pipeline.stages.iter().map(|s| s.jobs.len()).sum();
            println!(
                "{} {}: {} stages, {} jobs, {} environments",
                ui::green("ok"),
                file.display(),
                cfg.pipeline.stages.len(),
                jobs,
                cfg.environments.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(andon_config::LoadError::Invalid(diags)) => {
            eprint!("{diags}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

pub(crate) fn schema() -> Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&andon_config::json_schema())?
    );
    Ok(ExitCode::SUCCESS)
}

/// `andon run`: the pipeline of HEAD in a clean checkout, live progress,
/// exit 0 only if it passed.
pub(crate) async fn run(
    repo: &Path,
    json: bool,
    parallelism: Option<usize>,
    fail_fast: bool,
) -> Result<ExitCode> {
    let repo = git_toplevel(repo)?;
    let commit = andon_runner::git::head(&repo).map_err(|e| {
        ui::hinted(
            format!("could not read HEAD of {}: {e}", repo.display()),
            "`andon run` runs the last commit; commit your andon.yaml first",
        )
    })?;
    let branch = andon_runner::git::branch(&repo).unwrap_or_else(|_| "HEAD".to_string());
    let data = local_data_dir(&repo)?;
    let stamp = format!("{}-{}", std::process::id(), unix_ms());
    let work = data.join("work").join(&stamp);
    let checkout_dir = work.join("checkout");
    let checkout = andon_runner::git::checkout(&repo, &commit, &checkout_dir)
        .with_context(|| format!("could not check out {commit}"))?;
    let config_path = checkout_dir.join("andon.yaml");
    let config = match andon_config::load(&config_path) {
        Ok(c) => c,
        Err(andon_config::LoadError::Invalid(diags)) => {
            eprint!(
                "{}",
                diags
                    .to_string()
                    .replace(&checkout_dir.display().to_string(), ".")
            );
            drop(checkout);
            let _ = std::fs::remove_dir_all(&work);
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            drop(checkout);
            let _ = std::fs::remove_dir_all(&work);
            return Err(anyhow::Error::new(e).context(format!(
                "commit {} has no readable andon.yaml",
                &commit[..commit.len().min(12)]
            )));
        }
    };
    let pipeline = config.pipeline_for_branch(&branch);
    let history = History::load(&data);
    let artifacts = andon_artifacts::ArtifactStore::open(&data.join("artifacts"))
        .context("could not open the local artifact store")?;
    let secrets: BTreeMap<String, String> = BTreeMap::new();
    let spec = RunSpec {
        run_id: 0,
        commit: Some(commit.clone()),
        checkout: checkout_dir.clone(),
        jobs: andon_runner::jobs_from_config(&pipeline),
        parallelism: parallelism.unwrap_or_else(default_parallelism).max(1),
        secrets,
        medians_ms: history.medians(),
        work_dir: work.join("scratch"),
        fail_fast,
        ..RunSpec::default()
    };
    let progress = Arc::new(Progress::new(json, &commit, &branch));
    let observer: Arc<dyn RunObserver> = progress.clone();
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    let executor = andon_runner::LocalExecutor;
    andon_runner::run_pipeline(spec, &executor, &artifacts, observer, cancel).await;
    let run = progress.finish();
    checkout.release();
    discard(&data, &work);
    history.record(&data, &run);
    Ok(if run.status == RunStatus::Passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Moves a finished run's work directory to the trash and empties the trash
/// in a detached process. On a busy disk, deleting the checkout and hundreds
/// of per-job directories took longer than running trivial jobs, and nobody
/// needs to wait for it; a run cut short leaves the trash for the next one.
fn discard(data: &Path, work: &Path) {
    let trash = data.join("trash");
    let moved = work
        .file_name()
        .map(|name| trash.join(name))
        .filter(|to| std::fs::create_dir_all(&trash).is_ok() && std::fs::rename(work, to).is_ok());
    if moved.is_none() {
        let _ = andon_runner::git::remove_tree(work);
        return;
    }
    use std::os::unix::process::CommandExt;
    // Its own process group: a Ctrl-C in the shell after we exit must not
    // stop it half-way (the next run would finish the job anyway).
    let spawned = std::process::Command::new("sh")
        .args([
            "-c",
            r#"chmod -R u+w -- "$1" 2>/dev/null; rm -rf -- "$1""#,
            "sh",
        ])
        .arg(&trash)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if spawned.is_err() {
        let _ = andon_runner::git::remove_tree(&trash);
    }
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn git_toplevel(dir: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .context("could not run git")?;
    if !out.status.success() {
        return Err(ui::hinted(
            format!("{} is not inside a git repository", dir.display()),
            "run `andon run` in a repository with an andon.yaml, or pass --repo",
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Local runs keep their artifacts and job durations inside `.git/andon`:
/// out of the working tree, per repository, gone with the clone.
fn local_data_dir(repo: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--git-common-dir"])
        .output()
        .context("could not run git")?;
    let git_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let git_dir = if git_dir.is_absolute() {
        git_dir
    } else {
        repo.join(git_dir)
    };
    let dir = git_dir.join("andon");
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    Ok(dir)
}

/// Recent durations of passed jobs, for "fastest feedback first".
struct History {
    samples: BTreeMap<String, Vec<u64>>,
}

impl History {
    const FILE: &'static str = "durations.json";
    const KEEP: usize = 20;

    fn load(data: &Path) -> Self {
        let samples = std::fs::read(data.join(Self::FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        History { samples }
    }

    fn medians(&self) -> BTreeMap<String, u64> {
        self.samples
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                let mut v = v.clone();
                v.sort_unstable();
                (k.clone(), v[v.len() / 2])
            })
            .collect()
    }

    fn record(mut self, data: &Path, run: &andon_core::RunView) {
        for j in run.jobs.iter().filter(|j| j.status == "passed") {
            let v = self.samples.entry(j.name.clone()).or_default();
            v.push(j.duration_ms);
            if v.len() > Self::KEEP {
                v.remove(0);
            }
        }
        if let Ok(bytes) = serde_json::to_vec(&self.samples) {
            let tmp = data.join(format!("{}.tmp", Self::FILE));
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(tmp, data.join(Self::FILE));
            }
        }
    }
}

/// Live progress of a local run, folded from the runner's events with the
/// same projection the server uses.
struct Progress {
    json: bool,
    started: std::time::Instant,
    inner: Mutex<ProgressState>,
}

struct ProgressState {
    runs: Runs,
    seq: u64,
    logs: BTreeMap<String, Vec<String>>,
    bars: BTreeMap<String, indicatif::ProgressBar>,
    multi: Option<indicatif::MultiProgress>,
}

impl Progress {
    fn new(json: bool, commit: &str, branch: &str) -> Self {
        let mut runs = Runs::new();
        runs.apply(&Envelope {
            seq: 1,
            at_ms: 0,
            actor: "local".into(),
            event: Event::RunQueued {
                project: "local".into(),
                run_id: 0,
                commit: commit.to_string(),
                branch: branch.to_string(),
                trigger: Trigger::Local,
            },
        });
        let live = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if !json {
            eprintln!(
                "{} {} on {}",
                ui::bold("andon run"),
                &commit[..commit.len().min(12)],
                branch
            );
        }
        Progress {
            json,
            started: std::time::Instant::now(),
            inner: Mutex::new(ProgressState {
                runs,
                seq: 1,
                logs: BTreeMap::new(),
                bars: BTreeMap::new(),
                multi: live.then(indicatif::MultiProgress::new),
            }),
        }
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints the summary (or the JSON) and returns the folded run.
    fn finish(&self) -> andon_core::RunView {
        let st = self.lock();
        for bar in st.bars.values() {
            bar.finish();
        }
        let Some(run) = st.runs.get(0).cloned() else {
            return fallback_run();
        };
        if self.json {
            let out = serde_json::json!({
                "status": run.status,
                "commit": run.commit,
                "branch": run.branch,
                "duration_ms": run.duration_ms(self.now_ms()),
                "jobs": run.jobs,
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            return run;
        }
        eprintln!();
        let width = run
            .jobs
            .iter()
            .map(|j| j.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for j in &run.jobs {
            let mut extra = String::new();
            if let Some(t) = j.tests {
                extra.push_str(&format!(
                    "  tests {} passed, {} failed, {} skipped",
                    t.passed, t.failed, t.skipped
                ));
            }
            if j.flaky {
                extra.push_str(&format!("  {}", ui::yellow("flaky")));
            }
            if j.attempts > 1 {
                extra.push_str(&format!("  {} attempts", j.attempts));
            }
            eprintln!(
                "  {:width$}  {:>9}  {:>8}{extra}",
                j.name,
                ui::status(&j.status),
                ui::duration_ms(j.duration_ms),
            );
        }
        let total = run.duration_ms(self.now_ms()).unwrap_or(0);
        let passed = run.jobs.iter().filter(|j| j.status == "passed").count();
        eprintln!(
            "\n{} {} in {} ({passed}/{} jobs passed)",
            ui::bold("pipeline"),
            ui::status(run.status.as_str()),
            ui::duration_ms(total),
            run.jobs.len()
        );
        run
    }
}

fn fallback_run() -> andon_core::RunView {
    andon_core::RunView {
        id: 0,
        project: "local".into(),
        commit: String::new(),
        branch: String::new(),
        trigger: Trigger::Local,
        status: RunStatus::Failed,
        queued_at_ms: 0,
        started_at_ms: None,
        finished_at_ms: None,
        reason: None,
        jobs: Vec::new(),
    }
}

impl RunObserver for Progress {
    fn event(&self, event: Event) {
        let at_ms = self.now_ms();
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        let line = describe(&event);
        let job_name = match &event {
            Event::JobStarted { job, .. }
            | Event::JobFinished { job, .. }
            | Event::JobSkipped { job, .. } => Some(job.clone()),
            _ => None,
        };
        let failed_job = match &event {
            Event::JobFinished {
                job,
                outcome: andon_core::JobOutcome::Failed | andon_core::JobOutcome::TimedOut,
                ..
            } => Some(job.clone()),
            _ => None,
        };
        st.runs.apply(&Envelope {
            seq,
            at_ms,
            actor: "local".into(),
            event,
        });
        if self.json {
            return;
        }
        if let (Some(multi), Some(name)) = (st.multi.clone(), job_name.clone()) {
            let job = st.runs.get(0).and_then(|r| r.job(&name)).cloned();
            let bar = st
                .bars
                .entry(name.clone())
                .or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new_spinner());
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                    b.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    b
                })
                .clone();
            if let Some(j) = job {
                bar.set_message(format!("{} {}", j.name, ui::status(&j.status)));
                if j.status != "running" {
                    bar.finish_with_message(format!(
                        "{} {} {}",
                        j.name,
                        ui::status(&j.status),
                        ui::duration_ms(j.duration_ms)
                    ));
                }
            }
        } else if let Some(l) = line {
            eprintln!(
                "{} {l}",
                ui::dim(&format!("[{}]", ui::duration_ms(at_ms.max(0) as u64)))
            );
        }
        if let Some(job) = failed_job {
            let lines = st.logs.get(&job).cloned().unwrap_or_default();
            let tail = lines.len().saturating_sub(200);
            let print = |s: String| match &st.multi {
                Some(m) => {
                    let _ = m.println(s);
                }
                None => eprintln!("{s}"),
            };
            print(ui::red(&format!(
                "--- log of {job} (last {} lines) ---",
                lines.len() - tail
            )));
            for l in &lines[tail..] {
                print(format!("  {l}"));
            }
            print(ui::red("---"));
        }
    }

    fn log(&self, job: &str, _attempt: u32, line: &str) {
        let mut st = self.lock();
        let v = st.logs.entry(job.to_string()).or_default();
        v.push(line.to_string());
        if v.len() > 5000 {
            v.remove(0);
        }
    }
}

/// One progress line for non-interactive output.
fn describe(event: &Event) -> Option<String> {
    match event {
        Event::JobStarted { job, attempt, .. } if *attempt > 1 => Some(format!(
            "{job} {} (attempt {attempt})",
            ui::status("running")
        )),
        Event::JobStarted { job, .. } => Some(format!("{job} {}", ui::status("running"))),
        Event::JobFinished {
            job,
            outcome,
            duration_ms,
            ..
        } => Some(format!(
            "{job} {} {}",
            ui::status(outcome.as_str()),
            ui::duration_ms(*duration_ms)
        )),
        Event::JobSkipped { job, reason, .. } => {
            Some(format!("{job} {} ({reason})", ui::status("skipped")))
        }
        Event::ArtifactStored {
            job, path, digest, ..
        } => Some(format!("{job} stored {path} as {digest}")),
        _ => None,
    }
}
