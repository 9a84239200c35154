//! Schema migrations, embedded in the binary.
//!
//! Each backend has numbered SQL files under `migrations/<backend>/`, applied
//! in order at open inside one transaction and recorded in a
//! `schema_migrations` table. A database whose highest recorded version is
//! above what this binary knows was written by a newer Andon: opening it is
//! refused rather than risking writes the newer schema does not expect.
//!
//! Rule for contributors: never edit a released file; add the next number.

use crate::StoreError;

/// One numbered migration.
pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_leader.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_leader.sql"),
    },
];

/// The migrations still to apply to a database at version `current`, or an
/// error if that database is newer than `all`.
pub(crate) fn pending(
    all: &'static [Migration],
    current: i64,
) -> Result<&'static [Migration], StoreError> {
    let supported = all.last().map_or(0, |m| m.version);
    let current = u32::try_from(current).unwrap_or(u32::MAX);
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    let done = all.iter().take_while(|m| m.version <= current).count();
    Ok(all.get(done..).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_from_one_without_gaps() {
        for list in [SQLITE, POSTGRES] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version as usize, i + 1);
            }
        }
    }

    #[test]
    fn pending_and_too_new() {
        assert_eq!(pending(SQLITE, 0).unwrap().len(), SQLITE.len());
        assert!(pending(SQLITE, SQLITE.len() as i64).unwrap().is_empty());
        assert!(matches!(
            pending(SQLITE, 99),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }
}
