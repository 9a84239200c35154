//! How a job's script becomes a process.
//!
//! An executor only builds the command; the runner adds the environment,
//! pipes, and its own process group, and supervises it. That keeps the kill
//! and log logic in one place whatever the isolation.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// What to run and where.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The job's `run:` script, for `sh -c`.
    pub script: &'a str,
    /// Working directory: the checkout.
    pub cwd: &'a Path,
    /// Directories the job must be able to write besides `cwd` (its
    /// `ANDON_REPORTS` directory).
    pub writable: &'a [PathBuf],
}

pub trait Executor: Send + Sync {
    /// `local`, `bwrap`, ...: recorded in `JobStarted.executor`.
    fn name(&self) -> &str;
    fn command(&self, inv: &Invocation<'_>) -> Command;
}

/// `sh -c SCRIPT` in the checkout, as the user running Andon.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn name(&self) -> &str {
        "local"
    }

    fn command(&self, inv: &Invocation<'_>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(inv.script).current_dir(inv.cwd);
        cmd
    }
}

/// A hermetic sandbox with bubblewrap: read-only root, private `/tmp`, no
/// network (only a loopback of its own), its own PID namespace; only the
/// checkout and the reports directory are writable. It dies with the runner.
#[derive(Debug, Clone)]
pub struct BwrapExecutor {
    program: PathBuf,
}

impl Default for BwrapExecutor {
    fn default() -> Self {
        Self {
            program: PathBuf::from("bwrap"),
        }
    }
}

impl BwrapExecutor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses a specific `bwrap` binary.
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// Checks that bubblewrap can create a sandbox here (installed, and
    /// namespaces allowed). The error says why not.
    pub fn check(&self) -> Result<(), String> {
        let out = std::process::Command::new(&self.program)
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args(["--unshare-all", "--die-with-parent", "true"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}): {}",
                self.program.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Executor for BwrapExecutor {
    fn name(&self) -> &str {
        "bwrap"
    }

    fn command(&self, inv: &Invocation<'_>) -> Command {
        let mut cmd = Command::new(&self.program);
        // Order matters: bwrap applies mounts in sequence, so the private
        // /tmp comes before the binds that may live under /tmp.
        cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args(["--tmpfs", "/tmp"]);
        for dir in inv.writable.iter().map(PathBuf::as_path).chain([inv.cwd]) {
            cmd.arg("--bind").arg(dir).arg(dir);
        }
        cmd.args(["--unshare-all", "--die-with-parent", "--chdir"])
            .arg(inv.cwd)
            .args(["--", "sh", "-c"])
            .arg(inv.script);
        cmd
    }
}
