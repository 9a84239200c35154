//! Keeping the last route table on disk, replaced atomically.
//!
//! The file is written beside its final name, flushed to disk, then renamed over it (and the
//! directory synced), so a crash leaves either the old table or the new one, never half.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::RouterError;
use crate::table::RouteTable;

const FILE: &str = "routes.json";

pub(crate) fn routes_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The saved table, `None` when there is none yet. Runs at start-up only.
pub(crate) fn load(dir: &Path) -> Result<Option<RouteTable>, RouterError> {
    std::fs::create_dir_all(dir).map_err(|source| RouterError::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    let path = routes_path(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RouterError::ReadRoutes { path, source }),
    };
    let table: RouteTable =
        serde_json::from_slice(&text).map_err(|source| RouterError::ParseRoutes {
            path: path.clone(),
            source,
        })?;
    table
        .validate()
        .map_err(|source| RouterError::InvalidRoutes { path, source })?;
    Ok(Some(table))
}

/// Writes `table` as the saved one: tmp file, fsync, rename, fsync of the directory.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn save(dir: &Path, table: &RouteTable) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(table).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, routes_path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let t = RouteTable {
            generation: 4,
            ..Default::default()
        };
        save(dir.path(), &t).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(t));
        assert!(!dir.path().join("routes.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{nope").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("routes.json"), "{e}");
    }
}
