//! Job logs: appended to one file per job (the record) and published on a
//! channel (the live view). Lines arrive here already masked by the runner;
//! nothing in this module ever sees a secret value.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LogLine {
    pub(crate) run_id: u64,
    pub(crate) job: String,
    pub(crate) attempt: u32,
    pub(crate) line: String,
}

pub(crate) struct LogHub {
    root: PathBuf,
    live: broadcast::Sender<std::sync::Arc<LogLine>>,
}

impl LogHub {
    pub(crate) fn new(root: PathBuf) -> Self {
        let (live, _) = broadcast::channel(8192);
        LogHub { root, live }
    }

    /// File holding a job's log. Job names may contain spaces and
    /// parentheses (matrix expansions), so they are escaped for the file system.
    pub(crate) fn path(&self, run_id: u64, job: &str) -> PathBuf {
        self.root.join(run_id.to_string()).join(file_name(job))
    }

    pub(crate) fn write(&self, run_id: u64, job: &str, attempt: u32, line: &str) {
        let path = self.path(run_id, job);
        if let Err(e) = append_line(&path, attempt, line) {
            tracing::warn!(path = %path.display(), error = %e, "could not store a log line");
        }
        let _ = self.live.send(std::sync::Arc::new(LogLine {
            run_id,
            job: job.to_string(),
            attempt,
            line: line.to_string(),
        }));
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<std::sync::Arc<LogLine>> {
        self.live.subscribe()
    }

    pub(crate) fn read(&self, run_id: u64, job: &str) -> std::io::Result<String> {
        match std::fs::read_to_string(self.path(run_id, job)) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        }
    }
}

fn append_line(path: &Path, attempt: u32, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if attempt > 1 {
        writeln!(f, "[attempt {attempt}] {line}")
    } else {
        writeln!(f, "{line}")
    }
}

fn file_name(job: &str) -> String {
    let mut out = String::with_capacity(job.len() + 4);
    for c in job.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
            out.push(c);
        } else {
            out.push_str(&format!("%{:02X}", c as u32));
        }
    }
    out.push_str(".log");
    out
}
