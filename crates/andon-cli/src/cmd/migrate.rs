//! `andon migrate-store`: moves a team's history from one store to another
//! (typically from the single-server SQLite file to the PostgreSQL that
//! several servers share), then checks the copy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::ui;

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The store to copy from: `sqlite:PATH` (or a bare path) or `postgres://...`.
    #[arg(long)]
    from: String,
    /// The store to copy to, usually `postgres://user@host:port/db`.
    #[arg(long)]
    to: String,
    /// Data directory holding the source's secrets key (`secret.key`).
    /// Default: the directory of the SQLite file given to --from.
    #[arg(long)]
    from_data: Option<PathBuf>,
    /// Data directory holding (or receiving) the destination's secrets key;
    /// secrets are re-encrypted with it. Every server using the destination
    /// needs this key file. Default: the source's data directory (same key).
    #[arg(long)]
    to_data: Option<PathBuf>,
    /// Empty a destination that already holds data before copying.
    #[arg(long)]
    force: bool,
}

fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

fn sqlite_path(location: &str) -> &str {
    location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location)
}

/// The data directory of a location: the SQLite file's directory.
fn default_data(location: &str) -> Result<PathBuf> {
    if is_postgres(location) {
        bail!(
            "--from-data is required when copying from PostgreSQL (the directory holding secret.key)"
        );
    }
    let path = Path::new(sqlite_path(location));
    Ok(path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

/// What a store holds, for the check after the copy.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    events: u64,
    last_seq: u64,
    tokens: usize,
    secrets: usize,
}

fn counts(store: &dyn andon_store::Store) -> Result<Counts> {
    let mut events = 0u64;
    let mut after = 0;
    loop {
        let page = store.read(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events += page.len() as u64;
    }
    let mut secrets = 0;
    for scope in store.secret_scopes()? {
        secrets += store.secret_names(&scope)?.len();
    }
    Ok(Counts {
        events,
        last_seq: store.last_seq()?,
        tokens: store.tokens()?.len(),
        secrets,
    })
}

pub(crate) fn run(args: MigrateArgs) -> Result<ExitCode> {
    let from_data = match args.from_data {
        Some(d) => d,
        None => default_data(&args.from)?,
    };
    let to_data = args.to_data.unwrap_or_else(|| from_data.clone());
    if !is_postgres(&args.from) && !Path::new(sqlite_path(&args.from)).is_file() {
        bail!("no SQLite database at {}", sqlite_path(&args.from));
    }
    let from = andon_store::open(&args.from, &from_data)
        .with_context(|| format!("could not open the source store {}", args.from))?;
    let mut to =
        andon_store::open(&args.to, &to_data).context("could not open the destination store")?;
    let existing = counts(&*to)?;
    if existing.events > 0 || existing.tokens > 0 || existing.secrets > 0 {
        if !args.force {
            return Err(ui::hinted(
                format!(
                    "the destination already holds {} events, {} tokens and {} secrets",
                    existing.events, existing.tokens, existing.secrets
                ),
                "migrate into an empty store, or pass --force to empty it first",
            ));
        }
        drop(to);
        wipe(&args.to, &to_data)?;
        to = andon_store::open(&args.to, &to_data)
            .context("could not reopen the destination store")?;
        println!("emptied the destination ({} events)", existing.events);
    }
    let started = std::time::Instant::now();
    let copied = andon_store::copy_events(&*from, &*to).context("the copy failed")?;
    let (src, dst) = (counts(&*from)?, counts(&*to)?);
    println!(
        "copied {copied} events, {} tokens, {} secrets in {:.1} s",
        dst.tokens,
        dst.secrets,
        started.elapsed().as_secs_f64()
    );
    if src != dst {
        bail!("verification failed: source has {src:?}, destination has {dst:?}");
    }
    let last = |s: &dyn andon_store::Store, seq: u64| -> Result<Option<andon_store::Envelope>> {
        Ok(s.read(seq.saturating_sub(1), 1)?.into_iter().next())
    };
    if last(&*from, src.last_seq)? != last(&*to, dst.last_seq)? {
        bail!("verification failed: the last events differ");
    }
    println!(
        "verified: {} events, last seq {}, {} tokens, {} secrets on both sides",
        dst.events, dst.last_seq, dst.tokens, dst.secrets
    );
    if to_data != from_data {
        println!(
            "secrets are encrypted with {}; give every server using the destination that key file",
            to_data.join("secret.key").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Empties the destination for `--force`.
fn wipe(location: &str, data: &Path) -> Result<()> {
    if is_postgres(location) {
        let store = andon_store::PgStore::connect(location, data)?;
        store.wipe().context("could not empty the destination")?;
        return Ok(());
    }
    let path = sqlite_path(location);
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{path}{suffix}");
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("could not remove {file}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_defaults_to_the_sqlite_files_directory() {
        assert_eq!(
            default_data("sqlite:/srv/andon/andon.db").unwrap(),
            PathBuf::from("/srv/andon")
        );
        assert_eq!(default_data("andon.db").unwrap(), PathBuf::from("."));
        assert!(default_data("postgres://h/db").is_err());
    }
}
