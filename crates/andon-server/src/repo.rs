//! The server's mirror of each watched repository.
//!
//! Runs never touch the user's repository: the server keeps a bare mirror in
//! its data directory, fetches into it (on a poll tick or a webhook), and the
//! runner checks each run's exact commit out of the mirror.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RepoError {
    #[error("git {args} failed: {stderr}")]
    Git { args: String, stderr: String },
    #[error("could not run git: {0}")]
    Spawn(#[from] std::io::Error),
}

async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, RepoError> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true);
    let out = cmd.output().await?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RepoError::Git {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// One lock per mirror: the watcher, a webhook and a run queued on another
/// server can all want the same mirror at once, and two first clones racing
/// for one temporary directory left no mirror at all.
fn mirror_lock(mirror: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    LOCKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(mirror.to_path_buf())
        .or_default()
        .clone()
}

/// Creates the mirror on first use, then fetches every branch into it.
pub(crate) async fn sync(repo: &str, mirror: &Path) -> Result<(), RepoError> {
    let lock = mirror_lock(mirror);
    let _held = lock.lock().await;
    if !mirror.join("HEAD").exists() {
        if let Some(parent) = mirror.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let tmp = mirror.with_extension("tmp");
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        let tmp_s = tmp.to_string_lossy().into_owned();
        git(None, &["clone", "--quiet", "--mirror", "--", repo, &tmp_s]).await?;
        // Rename so a crash mid-clone never leaves a half mirror that looks whole.
        tokio::fs::rename(&tmp, mirror).await?;
        return Ok(());
    }
    git(
        Some(mirror),
        &[
            "fetch",
            "--quiet",
            "--prune",
            "--no-auto-maintenance",
            "--no-write-fetch-head",
            "origin",
            "+refs/heads/*:refs/heads/*",
        ],
    )
    .await?;
    Ok(())
}

/// Branch name → commit, for every branch in the mirror.
pub(crate) async fn heads(mirror: &Path) -> Result<BTreeMap<String, String>, RepoError> {
    let out = git(
        Some(mirror),
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads",
        ],
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect())
}

/// Resolves a branch, tag or commit prefix to a full commit id.
pub(crate) async fn resolve(mirror: &Path, reference: &str) -> Result<String, RepoError> {
    let spec = format!("{reference}^{{commit}}");
    Ok(
        git(Some(mirror), &["rev-parse", "--verify", "--quiet", &spec])
            .await?
            .trim()
            .to_string(),
    )
}

/// (subject, author, commit time in ms) of a commit.
pub(crate) async fn commit_info(
    mirror: &Path,
    commit: &str,
) -> Result<(String, String, i64), RepoError> {
    let out = git(
        Some(mirror),
        &["log", "-1", "--format=%s%x00%an%x00%ct", commit],
    )
    .await?;
    let mut parts = out.trim_end().splitn(3, '\0');
    let subject = parts.next().unwrap_or_default().to_string();
    let author = parts.next().unwrap_or_default().to_string();
    let secs: i64 = parts
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Ok((subject, author, secs * 1000))
}

/// A file's contents at a commit, or `None` if the commit has no such file.
pub(crate) async fn show_file(
    mirror: &Path,
    commit: &str,
    path: &str,
) -> Result<Option<String>, RepoError> {
    let spec = format!("{commit}:{path}");
    match git(Some(mirror), &["show", &spec]).await {
        Ok(s) => Ok(Some(s)),
        Err(RepoError::Git { stderr, .. })
            if stderr.contains("does not exist")
                || stderr.contains("exists on disk, but not in") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
