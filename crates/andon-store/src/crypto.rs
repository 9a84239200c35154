//! Secrets at rest: ChaCha20-Poly1305 with a 32-byte key kept in
//! `DATA/secret.key` (mode 0600), a fresh random nonce per value.
//!
//! The key lives in a file beside the database rather than in it so that a
//! copied or backed-up database alone does not reveal secrets. The price:
//! losing the key file loses the secrets, and several servers sharing one
//! PostgreSQL database must share the same key file.
//!
//! A sealed value is `VERSION || nonce (12 bytes) || ciphertext+tag`. The
//! scope and name are the associated data, so a sealed value copied into
//! another row fails to open instead of leaking into the wrong place.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::StoreError;

/// Name of the key file inside the data directory.
pub(crate) const KEY_FILE: &str = "secret.key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const VERSION: u8 = 1;

/// The secrets key. Deliberately without `Debug` output of its bytes.
pub(crate) struct SecretKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// Reads `DATA/secret.key`, creating it (mode 0600) on first use.
    ///
    /// Creation writes a temporary file and hard-links it into place, which
    /// fails if the name exists: two processes starting at once agree on one
    /// key, and nobody ever reads a half-written key file.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let path = data_dir.join(KEY_FILE);
        match fs::read(&path) {
            Ok(bytes) => return Self::from_bytes(&bytes, &path),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&path, e)),
        }

        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| StoreError::Crypto {
            detail: format!("the system random generator failed: {e}"),
        })?;
        let tmp = data_dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&key)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io(&tmp, e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                // Make the new name durable before any secret depends on it.
                if let Ok(dir) = fs::File::open(data_dir) {
                    let _ = dir.sync_all();
                }
                Self::from_bytes(&key, &path)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                Self::from_bytes(&bytes, &path)
            }
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, StoreError> {
        if bytes.len() != KEY_LEN {
            return Err(StoreError::Crypto {
                detail: format!(
                    "{} holds {} bytes, expected {KEY_LEN}; restore it from a backup",
                    path.display(),
                    bytes.len()
                ),
            });
        }
        Ok(SecretKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        })
    }

    /// Encrypts `value` for the row (`scope`, `name`).
    pub(crate) fn seal(&self, scope: &str, name: &str, value: &str) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Crypto {
            detail: format!("the system random generator failed: {e}"),
        })?;
        let aad = associated_data(scope, name);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Crypto {
                detail: format!("cannot encrypt secret {scope}/{name}"),
            })?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts a value sealed by [`SecretKey::seal`] for the same row.
    pub(crate) fn open(
        &self,
        scope: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<String, StoreError> {
        let fail = |why: &str| StoreError::Crypto {
            detail: format!("secret {scope}/{name} cannot be decrypted: {why}"),
        };
        let (version, rest) = sealed.split_first().ok_or_else(|| fail("empty value"))?;
        if *version != VERSION || rest.len() < NONCE_LEN {
            return Err(fail("unknown format"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(scope, name);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                fail(&format!(
                    "{KEY_FILE} is not the key it was written with (all servers sharing a \
                     database must share one key file)"
                ))
            })?;
        String::from_utf8(plain).map_err(|_| fail("not UTF-8"))
    }
}

/// Length-prefixed so that (`a`, `bc`) and (`ab`, `c`) differ.
fn associated_data(scope: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(4 + scope.len() + name.len());
    aad.extend_from_slice(&(scope.len() as u32).to_le_bytes());
    aad.extend_from_slice(scope.as_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal("web", "API_KEY", "hunter2").unwrap();
        assert_eq!(key.open("web", "API_KEY", &sealed).unwrap(), "hunter2");
        // Bound to its row.
        assert!(key.open("web", "OTHER", &sealed).is_err());
        assert!(key.open("we", "bAPI_KEY", &sealed).is_err());
        // Fresh nonce each time.
        assert_ne!(sealed, key.seal("web", "API_KEY", "hunter2").unwrap());
        // The same file gives the same key; another file does not.
        let again = SecretKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open("web", "API_KEY", &sealed).unwrap(), "hunter2");
        let other_dir = tempfile::tempdir().unwrap();
        let other = SecretKey::load_or_create(other_dir.path()).unwrap();
        assert!(matches!(
            other.open("web", "API_KEY", &sealed),
            Err(StoreError::Crypto { .. })
        ));
    }

    #[test]
    fn short_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(matches!(
            SecretKey::load_or_create(dir.path()),
            Err(StoreError::Crypto { .. })
        ));
    }
}
