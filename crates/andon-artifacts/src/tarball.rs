//! Deterministic tar streams: the same tree always gives the same bytes.
//!
//! Only what identifies the content goes in: entry names (sorted byte-wise),
//! file bytes, symlink targets, and whether a file is executable. Times,
//! owners and the rest of the mode are fixed, so a rebuild on another machine,
//! another day, under another umask, yields the same digest.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tar::{EntryType, Header};

use crate::{Error, Result};

const DIR_MODE: u32 = 0o755;
const EXEC_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// Checks that `name` stays inside the directory it will be extracted to.
pub(crate) fn check_name(name: &str) -> Result<PathBuf> {
    let path = Path::new(name);
    let ok = !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(Error::InvalidName(name.to_owned()));
    }
    // Normalise away `./` so `./dist` and `dist` give the same digest.
    Ok(path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect())
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes `src` (a file, a directory, or a symlink's target at the top level)
/// into `builder` under `name`.
pub(crate) fn append_path<W: Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
) -> Result<()> {
    // The top level follows symlinks: `artifacts: [result]` pointing at a
    // build output means the output, not the link.
    let meta = fs::metadata(src).map_err(Error::io(src))?;
    append_entry(builder, src, name, &meta)
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
    meta: &fs::Metadata,
) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(Error::io(src))?;
        let mut h = header(EntryType::Symlink, 0o777, 0);
        builder
            .append_link(&mut h, name, &target)
            .map_err(Error::io(src))?;
    } else if ft.is_file() {
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            EXEC_MODE
        } else {
            FILE_MODE
        };
        let file = fs::File::open(src).map_err(Error::io(src))?;
        let mut h = header(EntryType::Regular, mode, meta.len());
        // If the file changes size while we read it, tar fails loudly rather
        // than storing a torn artifact.
        builder
            .append_data(&mut h, name, io::BufReader::with_capacity(1 << 16, file))
            .map_err(Error::io(src))?;
    } else if ft.is_dir() {
        let mut h = header(EntryType::Directory, DIR_MODE, 0);
        builder
            .append_data(&mut h, name, io::empty())
            .map_err(Error::io(src))?;
        let mut children = fs::read_dir(src)
            .map_err(Error::io(src))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()
            .map_err(Error::io(src))?;
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for child in children {
            let child_src = src.join(&child);
            let child_meta = fs::symlink_metadata(&child_src).map_err(Error::io(&child_src))?;
            append_entry(builder, &child_src, &name.join(&child), &child_meta)?;
        }
    } else {
        return Err(Error::Unsupported {
            path: src.to_owned(),
            kind: "special file (fifo, socket or device)",
        });
    }
    Ok(())
}

/// Writes one regular file entry from memory.
pub(crate) fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &Path,
    bytes: &[u8],
) -> Result<()> {
    let mut h = header(EntryType::Regular, FILE_MODE, bytes.len() as u64);
    builder
        .append_data(&mut h, name, bytes)
        .map_err(Error::io(name))
}
