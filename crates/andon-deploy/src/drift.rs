//! Drift: an instance whose files no longer match the artifact it was
//! started from (a snowflake someone edited by hand).
//!
//! The manifest of an artifact is read from its verified blob, never from
//! an instance directory, so an edit cannot hide itself: every regular
//! file's sha256 and executable bit, every symlink's target, every
//! directory. An instance is compared with it by walking its directory.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use andon_artifacts::{ArtifactStore, Digest};
use sha2::{Digest as _, Sha256};

use crate::error::DeployError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { sha256: [u8; 32], exec: bool },
    Link(PathBuf),
}

/// What an artifact's tree is made of, by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    entries: BTreeMap<PathBuf, Entry>,
}

/// Most differences listed in one drift report; the rest are counted.
const MAX_LISTED: usize = 10;

/// `a/./b/` → `a/b`.
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

fn hash(mut reader: impl Read) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

impl Manifest {
    /// Reads the manifest of `digest` from the store (verifying the blob).
    /// Blocking: call from `spawn_blocking`.
    pub(crate) fn of_artifact(store: &ArtifactStore, digest: &Digest) -> Result<Self, DeployError> {
        let blob = store.get_path(digest).unwrap_or_default();
        let io = |e| DeployError::Io {
            path: blob.clone(),
            source: e,
        };
        let file = store.open_blob(digest)?;
        let mut archive = tar::Archive::new(BufReader::new(file));
        let mut m = Manifest::default();
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = normal(&entry.path().map_err(io)?);
            if path.as_os_str().is_empty() {
                continue;
            }
            let kind = entry.header().entry_type();
            let e = if kind.is_dir() {
                Entry::Dir
            } else if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(io)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                Entry::Link(target)
            } else {
                let exec = entry.header().mode().map_err(io)? & 0o111 != 0;
                Entry::File {
                    sha256: hash(&mut entry).map_err(io)?,
                    exec,
                }
            };
            // Parents of a stored file exist once extracted even when the
            // archive has no entry for them.
            for parent in path.ancestors().skip(1) {
                if !parent.as_os_str().is_empty() {
                    m.entries.entry(parent.to_path_buf()).or_insert(Entry::Dir);
                }
            }
            m.entries.insert(path, e);
        }
        Ok(m)
    }

    /// Reads what is in `dir` now. Blocking.
    fn of_dir(dir: &Path) -> std::io::Result<Self> {
        let mut m = Manifest::default();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for child in std::fs::read_dir(dir.join(&rel))? {
                let child = child?;
                let rel_child = rel.join(child.file_name());
                let meta = std::fs::symlink_metadata(child.path())?;
                let ft = meta.file_type();
                let e = if ft.is_symlink() {
                    Entry::Link(std::fs::read_link(child.path())?)
                } else if ft.is_dir() {
                    stack.push(rel_child.clone());
                    Entry::Dir
                } else {
                    Entry::File {
                        sha256: hash(std::fs::File::open(child.path())?)?,
                        exec: meta.permissions().mode() & 0o111 != 0,
                    }
                };
                m.entries.insert(rel_child, e);
            }
        }
        Ok(m)
    }

    /// What differs between the artifact and `dir`, as one line; `None` when
    /// they match. Blocking.
    pub(crate) fn compare(&self, dir: &Path) -> Option<String> {
        let actual = match Self::of_dir(dir) {
            Ok(a) => a,
            Err(e) => return Some(format!("cannot read {}: {e}", dir.display())),
        };
        let mut diffs = Vec::new();
        for (path, want) in &self.entries {
            match actual.entries.get(path) {
                None => diffs.push(format!("missing: {}", path.display())),
                Some(got) if got != want => diffs.push(format!("modified: {}", path.display())),
                Some(_) => {}
            }
        }
        for path in actual.entries.keys() {
            if !self.entries.contains_key(path) {
                diffs.push(format!("added: {}", path.display()));
            }
        }
        if diffs.is_empty() {
            return None;
        }
        let more = diffs.len().saturating_sub(MAX_LISTED);
        diffs.truncate(MAX_LISTED);
        let mut line = diffs.join("; ");
        if more > 0 {
            line.push_str(&format!("; and {more} more"));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extracted_artifact_matches_and_edits_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src/app");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/run"), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join("bin/run"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(src.join("conf"), b"a=1\n").unwrap();
        let store = ArtifactStore::open(&tmp.path().join("artifacts")).unwrap();
        let digest = store.put_path(&src).unwrap();
        let m = Manifest::of_artifact(&store, &digest).unwrap();

        let inst = tmp.path().join("inst");
        store.extract_to(&digest, &inst).unwrap();
        assert_eq!(m.compare(&inst), None);

        std::fs::write(inst.join("app/conf"), b"a=2\n").unwrap();
        std::fs::write(inst.join("app/extra"), b"x").unwrap();
        std::fs::set_permissions(
            inst.join("app/bin/run"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let d = m.compare(&inst).unwrap();
        assert_eq!(
            d,
            "modified: app/bin/run; modified: app/conf; added: app/extra"
        );

        std::fs::remove_file(inst.join("app/conf")).unwrap();
        assert!(m.compare(&inst).unwrap().contains("missing: app/conf"));
    }

    #[test]
    fn a_single_file_artifact_has_its_parent_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(&tmp.path().join("artifacts")).unwrap();
        let digest = store.put_bytes_as("dist/app", b"bin").unwrap();
        let m = Manifest::of_artifact(&store, &digest).unwrap();
        let inst = tmp.path().join("inst");
        store.extract_to(&digest, &inst).unwrap();
        assert_eq!(m.compare(&inst), None);
    }
}
