//! Git, through the `git` command line: what the user has installed is what
//! their repository works with (hooks aside, config, alternates, LFS filters).
//!
//! Runs build in a disposable clone of the exact commit, never in the user's
//! tree: `git clone --shared --no-checkout` (objects borrowed from the source
//! through alternates, so it is fast and copies nothing big), then a detached
//! checkout. A clone rather than a worktree, so a job that runs `git commit`,
//! `git branch -D` or `git gc` cannot touch the user's refs. These functions
//! block: call them from `spawn_blocking` in async code.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Marks a directory as an Andon checkout (inside its `.git`, invisible to
/// jobs' `git status`), so pruning never removes anything else.
const MARKER: &str = "andon-checkout";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git")]
    Spawn(#[source] io::Error),
    #[error("`git {args}` failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{dest} already exists; a checkout needs a fresh directory")]
    DestinationExists { dest: PathBuf },
    #[error("HEAD of {repo} is detached: no branch is checked out")]
    DetachedHead { repo: PathBuf },
}

fn git<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(&args)
        // The caller's own git context (a hook, `git rebase --exec`) must not
        // redirect these commands to another repository.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            dir: dir.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

/// The commit HEAD points at (full SHA).
pub fn head(repo: &Path) -> Result<String, GitError> {
    resolve(repo, "HEAD")
}

/// The full SHA of a commit named by any revision (`main`, a tag, a short SHA).
pub fn resolve(repo: &Path, rev: &str) -> Result<String, GitError> {
    // `--end-of-options` keeps a revision starting with `-` from being read
    // as an option.
    git(
        repo,
        [
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|e| match e {
        GitError::Failed { args, dir, stderr } if stderr.is_empty() => GitError::Failed {
            args,
            dir,
            stderr: format!("no commit named `{rev}`"),
        },
        e => e,
    })
}

/// The checked-out branch; [`GitError::DetachedHead`] when there is none.
pub fn branch(repo: &Path) -> Result<String, GitError> {
    match git(repo, ["symbolic-ref", "--quiet", "--short", "HEAD"]) {
        Ok(b) => Ok(b),
        Err(GitError::Failed { stderr, .. }) if stderr.is_empty() => Err(GitError::DetachedHead {
            repo: repo.to_owned(),
        }),
        Err(e) => Err(e),
    }
}

/// What `CommitSeen` records about a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// The full message, trailing whitespace trimmed.
    pub message: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// Committer time (when it reached the branch, closest to what lead time
    /// measures), ms since the epoch.
    pub time_ms: i64,
}

pub fn commit_info(repo: &Path, commit: &str) -> Result<CommitInfo, GitError> {
    let sha = resolve(repo, commit)?;
    let out = git(
        repo,
        ["show", "-s", "--format=%an <%ae>%x00%ct%x00%B", &sha],
    )?;
    let mut parts = out.splitn(3, '\0');
    let author = parts.next().unwrap_or_default().to_owned();
    let secs: i64 = parts.next().unwrap_or_default().trim().parse().unwrap_or(0);
    let message = parts.next().unwrap_or_default().trim_end().to_owned();
    Ok(CommitInfo {
        message,
        author,
        time_ms: secs.saturating_mul(1000),
    })
}

/// A disposable checkout of one commit. Removed on drop (errors ignored) or
/// by [`Checkout::remove`] (errors reported).
#[derive(Debug)]
pub struct Checkout {
    path: PathBuf,
    commit: String,
    removed: bool,
}

impl Checkout {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full SHA checked out.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        remove_tree(&self.path)
    }

    /// Leaves the directory in place and returns its path: for a caller that
    /// removes it later (e.g. in the background, after answering the user).
    pub fn release(mut self) -> PathBuf {
        self.removed = true;
        self.path.clone()
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Makes each directory writable again before removal: jobs (Go's module
/// cache, some test suites) leave read-only directories behind.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(
            path,
            fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
        );
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Checks out `commit` of `repo` (a local repository) into `dest`, which
/// must not exist yet.
pub fn checkout(repo: &Path, commit: &str, dest: &Path) -> Result<Checkout, GitError> {
    // A full commit id needs no resolving (one git process less on the
    // webhook-to-first-job path); `checkout` below fails clearly if it is absent.
    let full_sha = commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    let sha = if full_sha {
        commit.to_ascii_lowercase()
    } else {
        resolve(repo, commit)?
    };
    if dest.exists() {
        return Err(GitError::DestinationExists {
            dest: dest.to_owned(),
        });
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|source| GitError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    let source = fs::canonicalize(repo).map_err(|source| GitError::Io {
        path: repo.to_owned(),
        source,
    })?;
    // From here on the directory exists: the guard removes it on any error.
    let co = Checkout {
        path: dest.to_owned(),
        commit: sha.clone(),
        removed: false,
    };
    let here = dest.parent().unwrap_or(Path::new("/"));
    git(
        here,
        [
            // A checkout is disposable: syncing every object file to disk
            // only slows the start of a run.
            OsStr::new("-c"),
            OsStr::new("core.fsync=none"),
            OsStr::new("clone"),
            OsStr::new("--quiet"),
            OsStr::new("--shared"),
            OsStr::new("--no-checkout"),
            OsStr::new("--"),
            source.as_os_str(),
            dest.as_os_str(),
        ],
    )?;
    fs::write(dest.join(".git").join(MARKER), &sha).map_err(|source| GitError::Io {
        path: dest.join(".git").join(MARKER),
        source,
    })?;
    git(
        dest,
        [
            "-c",
            "advice.detachedHead=false",
            "-c",
            "core.fsync=none",
            "checkout",
            "--quiet",
            "--detach",
            &sha,
        ],
    )?;
    Ok(co)
}

/// Removes checkouts left under `parent` by a crash (only directories this
/// module made). Call it before starting runs, not while they use `parent`.
/// Returns how many were removed.
pub fn prune_checkouts(parent: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.join(".git").join(MARKER).is_file() {
            remove_tree(&p)?;
            removed += 1;
        }
    }
    Ok(removed)
}
