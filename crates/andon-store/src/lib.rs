//! The event log and artifact store: SQLite (WAL) behind a trait, content-addressed blobs.
