//! `andon migrate-store`: moving everything from one store to another.

use crate::{Store, StoreError};

/// Events per import transaction: bounds memory for large logs.
const PAGE: usize = 5_000;

/// Copies the whole log (seq, time and actor preserved), then the tokens and
/// secrets (re-encrypted with the target's key), from `from` to `to`.
/// Returns the number of events copied.
///
/// Refuses with [`StoreError::NotEmpty`] unless `to` has no events. Events are
/// imported in pages, each atomic: if the copy fails midway, the target holds
/// a gap-free prefix of the log and must be emptied before retrying. Stop the
/// servers using `from` first, or events appended during the copy may be missed.
pub fn copy_events(from: &dyn Store, to: &dyn Store) -> Result<u64, StoreError> {
    let existing = to.last_seq()?;
    if existing != 0 {
        return Err(StoreError::NotEmpty { last_seq: existing });
    }
    let mut after = 0;
    let mut copied = 0u64;
    loop {
        let page = from.read(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        to.import(&page)?;
        copied += page.len() as u64;
    }
    for token in from.tokens()? {
        to.put_token(&token)?;
    }
    for scope in from.secret_scopes()? {
        for (name, value) in from.secrets(&scope)? {
            to.set_secret(&scope, &name, &value)?;
        }
    }
    Ok(copied)
}
