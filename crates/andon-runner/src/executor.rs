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
        let mut cmd = match simple_command(inv.script) {
            // What make does too: a plain `prog arg ...` runs without a shell,
            // one process instead of two per job, same result.
            Some(words) => {
                let mut cmd = Command::new(words[0]);
                cmd.args(&words[1..]);
                cmd
            }
            None => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(inv.script);
                cmd
            }
        };
        cmd.current_dir(inv.cwd);
        cmd
    }
}

/// Shell words whose meaning a direct `exec` would change: builtins that act
/// on the shell itself, and reserved words.
const SHELL_ONLY: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "elif",
    "else", "esac", "eval", "exec", "exit", "export", "fc", "fg", "fi", "for", "function",
    "getopts", "hash", "if", "in", "jobs", "local", "read", "readonly", "return", "select", "set",
    "shift", "source", "then", "time", "times", "trap", "type", "ulimit", "umask", "unalias",
    "unset", "until", "wait", "while", "!", "{", "}",
];

/// The words of a script that a shell would run as one plain command with
/// literal arguments: one line of `[A-Za-z0-9_./,:@%+=-]` words, no variable,
/// quote, glob, redirection, assignment prefix or builtin, and a program
/// found on `PATH` (or given by path). Anything else goes to `sh -c`, so
/// the shell's own answers (`not found`, exit 127) stay the shell's.
fn simple_command(script: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./,:@%+=- ".contains(c);
    let line = script.trim();
    if line.is_empty() || !line.chars().all(plain) {
        return None;
    }
    let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
    let program = *words.first()?;
    if program.contains('=') || SHELL_ONLY.contains(&program) {
        return None;
    }
    let runnable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        // Relative to the checkout, which the caller has not entered yet:
        // leave those to the shell.
        program.starts_with('/') && runnable(Path::new(program))
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| runnable(&dir.join(program)))
        })
    };
    found.then_some(words)
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

#[cfg(test)]
mod tests {
    use super::simple_command;

    #[test]
    fn plain_commands_skip_the_shell() {
        assert_eq!(simple_command("true"), Some(vec!["true"]));
        assert_eq!(
            simple_command("  ls -la /tmp  "),
            Some(vec!["ls", "-la", "/tmp"])
        );
        assert_eq!(
            simple_command("/bin/echo a=b"),
            Some(vec!["/bin/echo", "a=b"])
        );
    }

    #[test]
    fn anything_the_shell_would_interpret_keeps_the_shell() {
        for script in [
            "",
            "echo $HOME",
            "echo 'a b'",
            "ls *.rs",
            "true && false",
            "true; false",
            "echo a > f",
            "FOO=1 env",
            "cd /tmp",
            "exit 3",
            "export A",
            "true\nfalse",
            "echo ~",
            "echo a # comment",
            "./build.sh",
            "no-such-program-anywhere-4711",
        ] {
            assert_eq!(simple_command(script), None, "{script:?}");
        }
    }
}
