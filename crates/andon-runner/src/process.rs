//! One attempt of a job as an operating-system process group.
//!
//! The shell is the leader of its own process group, so everything it starts
//! (a test server, `sleep 100 &`) can be signalled at once: on timeout or
//! cancellation SIGTERM goes to the group, then SIGKILL after a grace period;
//! when the shell exits, whatever it left behind in the group is killed too.
//!
//! One `select!` loop per attempt drives the pipes, the exit, the deadline
//! and cancellation: no thread and no polling, the task wakes only when one
//! of them has something to say.

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use andon_core::JobOutcome;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::executor::{Executor, Invocation};

/// Lines longer than this are cut into several: a program that writes
/// megabytes without a newline must not hold them all in memory.
const MAX_LINE: usize = 16 * 1024;

/// After the shell exits and its group is killed, how long to wait for the
/// pipes to close (a process that escaped the group may hold them open).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How to start it.
pub(crate) struct Launch<'a> {
    pub(crate) executor: &'a dyn Executor,
    pub(crate) script: &'a str,
    pub(crate) cwd: &'a std::path::Path,
    pub(crate) writable: Vec<PathBuf>,
    pub(crate) env: &'a [(String, String)],
    pub(crate) env_remove: &'a [std::ffi::OsString],
    pub(crate) timeout: Option<Duration>,
    pub(crate) kill_grace: Duration,
    pub(crate) stop: &'a CancellationToken,
}

/// How it ended.
pub(crate) struct Ended {
    pub(crate) outcome: JobOutcome,
    pub(crate) exit_code: Option<i32>,
}

/// Kills the group if the attempt's future is dropped mid-flight (the run was
/// abandoned), so no job outlives the runner's interest in it.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, Signal::SIGKILL);
        }
    }
}

pub(crate) fn signal_group(pgid: i32, signal: Signal) {
    // ESRCH (already gone) is the expected, happy case.
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// Spawns the process; `on_start` gets its process group id (None if it could
/// not start), `on_line` every output line.
pub(crate) async fn run(
    launch: Launch<'_>,
    on_start: impl FnOnce(Option<i32>),
    mut on_line: impl FnMut(&str),
) -> Ended {
    let inv = Invocation {
        script: launch.script,
        cwd: launch.cwd,
        writable: &launch.writable,
    };
    let mut cmd = launch.executor.command(&inv);
    for key in launch.env_remove {
        cmd.env_remove(key);
    }
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            on_start(None);
            on_line(&format!("andon: cannot start the job: {e}"));
            return Ended {
                outcome: JobOutcome::Failed,
                exit_code: None,
            };
        }
    };
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let mut guard = GroupGuard(pgid);
    on_start(pgid);

    let mut out = child.stdout.take().map(LineReader::new);
    let mut err = child.stderr.take().map(LineReader::new);
    let deadline = launch.timeout.map(|t| Instant::now() + t);
    let far = Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600);

    let mut status: Option<io::Result<ExitStatus>> = None;
    let mut stopping: Option<JobOutcome> = None; // TimedOut or Cancelled
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;

    loop {
        if status.is_some() && out.is_none() && err.is_none() {
            break;
        }
        tokio::select! {
            line = next_line(&mut out) => {
                match line {
                    Some(l) => on_line(&l),
                    None => out = None,
                }
            }
            line = next_line(&mut err) => {
                match line {
                    Some(l) => on_line(&l),
                    None => err = None,
                }
            }
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                // Leftovers in the group (background processes) end with the job.
                if let Some(pgid) = pgid {
                    signal_group(pgid, Signal::SIGKILL);
                }
                guard.0 = None;
                drain_until = Some(Instant::now() + DRAIN_GRACE);
            }
            () = tokio::time::sleep_until(deadline.unwrap_or(far)),
                if deadline.is_some() && stopping.is_none() && status.is_none() => {
                on_line(&format!(
                    "andon: timed out after {}, stopping the job",
                    fmt_duration(launch.timeout.unwrap_or_default())
                ));
                stopping = Some(JobOutcome::TimedOut);
                kill_at = Some(terminate(pgid, launch.kill_grace));
            }
            () = launch.stop.cancelled(), if stopping.is_none() && status.is_none() => {
                on_line("andon: cancelled, stopping the job");
                stopping = Some(JobOutcome::Cancelled);
                kill_at = Some(terminate(pgid, launch.kill_grace));
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() && status.is_none() => {
                if let Some(pgid) = pgid {
                    signal_group(pgid, Signal::SIGKILL);
                }
                kill_at = None;
            }
            () = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                on_line("andon: output still open after the job ended (a process left the job's group); not waiting for it");
                break;
            }
        }
    }

    let exit_code = match &status {
        Some(Ok(s)) => s.code(),
        _ => None,
    };
    let outcome = match (stopping, &status) {
        (Some(o), _) => o,
        (None, Some(Ok(s))) if s.success() => JobOutcome::Passed,
        (None, Some(Err(e))) => {
            on_line(&format!("andon: lost track of the job's process: {e}"));
            JobOutcome::Failed
        }
        _ => JobOutcome::Failed,
    };
    Ended { outcome, exit_code }
}

fn terminate(pgid: Option<i32>, grace: Duration) -> Instant {
    if let Some(pgid) = pgid {
        signal_group(pgid, Signal::SIGTERM);
    }
    Instant::now() + grace
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 {
        format!("{ms}ms")
    } else if !ms.is_multiple_of(60_000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m", ms / 60_000)
    }
}

/// Reads lines from a pipe, keeping partial data between calls so it is safe
/// to cancel in `select!`.
struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: BufReader::with_capacity(8192, inner),
            buf: Vec::new(),
        }
    }

    /// Next line without its newline; `None` at end of stream (or on a read
    /// error, which for a pipe means the same).
    async fn next(&mut self) -> Option<String> {
        loop {
            let available = match self.inner.fill_buf().await {
                Ok(b) => b,
                Err(_) => &[],
            };
            if available.is_empty() {
                if self.buf.is_empty() {
                    return None;
                }
                return Some(self.take());
            }
            let room = MAX_LINE - self.buf.len();
            let window = &available[..available.len().min(room)];
            if let Some(pos) = window.iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&window[..pos]);
                self.inner.consume(pos + 1);
                return Some(self.take());
            }
            let n = window.len();
            self.buf.extend_from_slice(window);
            self.inner.consume(n);
            if self.buf.len() >= MAX_LINE {
                return Some(self.take());
            }
        }
    }

    fn take(&mut self) -> String {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        line
    }
}

/// Pends forever on a closed stream so `select!` can keep a uniform shape.
async fn next_line<R: AsyncRead + Unpin>(reader: &mut Option<LineReader<R>>) -> Option<String> {
    match reader {
        Some(r) => r.next().await,
        None => std::future::pending().await,
    }
}
