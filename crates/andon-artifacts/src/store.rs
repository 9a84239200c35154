//! The store on disk: `ROOT/sha256/ab/cdef…` (the server uses
//! `ROOT = DATA/artifacts`), one immutable blob per digest.
//!
//! Writes go to `ROOT/tmp/`, are hashed while written, fsynced, and
//! renamed into place: a reader never sees half a blob, a crash leaves at most
//! a temporary file, and two processes storing the same content at once both
//! succeed with the same result (rename is atomic and the bytes are equal).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::tarball;
use crate::{Digest, Error, Result};

/// Temporary files older than this are left-overs of a crash.
const STALE_TMP: Duration = Duration::from_secs(3600);

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A content-addressed store of deterministic tar streams.
///
/// Cheap to clone (it is a path), so it can move into a blocking task.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    /// Holds `sha256/` and `tmp/`.
    root: PathBuf,
}

impl ArtifactStore {
    /// Opens (creating if needed) the store rooted at `root` (conventionally
    /// `DATA/artifacts`), and removes temporary files a crash left behind.
    pub fn open(root: &Path) -> Result<Self> {
        let root = root.to_path_buf();
        for dir in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        let store = Self { root };
        store.remove_stale_tmp();
        Ok(store)
    }

    /// The directory given to [`Self::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("sha256").join(&hex[..2]).join(&hex[2..])
    }

    /// Stores a file or a directory (recursively) under its own file name.
    pub fn put_path(&self, src: &Path) -> Result<Digest> {
        let name = src
            .file_name()
            .ok_or_else(|| Error::InvalidName(src.display().to_string()))?;
        self.put_path_as(src, &name.to_string_lossy())
    }

    /// Stores a single file under its own file name (same as [`Self::put_path`]
    /// on a file; kept for callers that mean "a file").
    pub fn put_file(&self, src: &Path) -> Result<Digest> {
        self.put_path(src)
    }

    /// Stores a file or directory under `name` inside the archive (a relative
    /// path such as `dist/app`), so that extracting it into a directory
    /// recreates `name` there. The runner uses the path as written in
    /// `artifacts:`, so `./dist/app` from the pipeline works in a deployment.
    pub fn put_path_as(&self, src: &Path, name: &str) -> Result<Digest> {
        let name = tarball::check_name(name)?;
        self.write_blob(|b| tarball::append_path(b, src, &name))
    }

    /// Stores `bytes` as one regular file named `name` (mode 0644).
    pub fn put_bytes_as(&self, name: &str, bytes: &[u8]) -> Result<Digest> {
        let name = tarball::check_name(name)?;
        self.write_blob(|b| tarball::append_bytes(b, &name, bytes))
    }

    /// Stores `bytes` as they are: a blob as another store serves it (a tar
    /// stream). Its digest is computed here, so comparing it with the digest
    /// that was asked for verifies a download before anything is unpacked.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        self.write_raw(|w| w.write_all(bytes))
    }

    fn write_blob(
        &self,
        fill: impl FnOnce(&mut tar::Builder<HashingWriter>) -> Result<()>,
    ) -> Result<Digest> {
        self.write_with(|writer, tmp| {
            let mut builder = tar::Builder::new(writer);
            fill(&mut builder)?;
            builder.into_inner().map_err(Error::io(tmp))
        })
    }

    fn write_raw(&self, fill: impl FnOnce(&mut HashingWriter) -> io::Result<()>) -> Result<Digest> {
        self.write_with(|mut writer, tmp| {
            fill(&mut writer).map_err(Error::io(tmp))?;
            Ok(writer)
        })
    }

    fn write_with(
        &self,
        fill: impl FnOnce(HashingWriter, &Path) -> Result<HashingWriter>,
    ) -> Result<Digest> {
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&tmp).map_err(Error::io(&tmp))?;
        let result = (|| {
            let writer = fill(HashingWriter::new(file), &tmp)?;
            let file = writer
                .file
                .into_inner()
                .map_err(|e| Error::io(&tmp)(e.into_error()))?;
            file.sync_all().map_err(Error::io(&tmp))?;
            drop(file);
            let digest = Digest::from_bytes(writer.hasher.finalize().into());
            let dest = self.blob_path(&digest);
            if dest.exists() {
                // Already stored: deduplicated. The existing blob is kept
                // (its inode may be open by a reader).
                let _ = fs::remove_file(&tmp);
                return Ok(digest);
            }
            let dir = dest.parent().unwrap_or(&self.root).to_owned();
            fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            // Blobs are immutable: read-only on disk as a guard against
            // accidental edits (verification still catches the deliberate ones).
            let _ = fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o444));
            fs::rename(&tmp, &dest).map_err(Error::io(&dest))?;
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(digest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Whether a blob with this digest is present (not verified).
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Where the blob lives, if present. Reading it directly skips
    /// verification: prefer [`Self::open_blob`].
    pub fn get_path(&self, digest: &Digest) -> Option<PathBuf> {
        let p = self.blob_path(digest);
        p.is_file().then_some(p)
    }

    /// Size in bytes of the stored tar stream.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Re-hashes the blob; [`Error::DigestMismatch`] if it was corrupted.
    /// Returns its size.
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        self.open_blob(digest).and_then(|mut f| {
            f.seek(SeekFrom::End(0))
                .map_err(Error::io(self.blob_path(digest)))
        })
    }

    /// Opens the blob (a tar stream) for reading, after checking that its
    /// bytes still hash to `digest`. The file is positioned at the start.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound(*digest)),
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(Error::io(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = Digest::from_bytes(hasher.finalize().into());
        if actual != *digest {
            return Err(Error::DigestMismatch {
                expected: *digest,
                actual,
                path,
            });
        }
        file.seek(SeekFrom::Start(0)).map_err(Error::io(&path))?;
        Ok(file)
    }

    /// Verifies the blob, then unpacks it into `dest` (created if needed):
    /// a file stored as `dist/app` becomes `dest/dist/app`, with its
    /// executable bit. Entries cannot escape `dest`.
    pub fn extract_to(&self, digest: &Digest, dest: &Path) -> Result<()> {
        let file = self.open_blob(digest)?;
        fs::create_dir_all(dest).map_err(Error::io(dest))?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        archive.set_preserve_mtime(false);
        archive.set_overwrite(true);
        archive.unpack(dest).map_err(Error::io(dest))
    }

    /// Entry names in the artifact, in stored order (directories end in `/`).
    pub fn list(&self, digest: &Digest) -> Result<Vec<String>> {
        let path = self.blob_path(digest);
        let file = self.open_blob(digest)?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut names = Vec::new();
        for entry in archive.entries().map_err(Error::io(&path))? {
            let entry = entry.map_err(Error::io(&path))?;
            let mut name = entry
                .path()
                .map_err(Error::io(&path))?
                .display()
                .to_string();
            if entry.header().entry_type().is_dir() {
                name.push('/');
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Every digest in the store, sorted.
    pub fn digests(&self) -> Result<Vec<Digest>> {
        let base = self.root.join("sha256");
        let mut out = Vec::new();
        for prefix in fs::read_dir(&base).map_err(Error::io(&base))? {
            let prefix = prefix.map_err(Error::io(&base))?;
            let p = prefix.file_name().to_string_lossy().into_owned();
            let Ok(rest) = fs::read_dir(prefix.path()) else {
                continue;
            };
            for blob in rest.flatten() {
                let full = format!("sha256:{p}{}", blob.file_name().to_string_lossy());
                if let Ok(d) = full.parse() {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Hashes what goes through it, so a blob's digest is known the moment it
/// is written, without reading it back.
struct HashingWriter {
    file: io::BufWriter<File>,
    hasher: Sha256,
}

impl HashingWriter {
    fn new(file: File) -> Self {
        Self {
            file: io::BufWriter::with_capacity(1 << 16, file),
            hasher: Sha256::new(),
        }
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
