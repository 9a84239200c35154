//! Appends to a store in a loop and prints each acknowledged seq, one per
//! line, as soon as `append` returns. The crash test in `tests/suite.rs`
//! kills this with SIGKILL mid-loop and checks that every printed seq
//! survived.
//!
//! Usage: `append_loop DATA_DIR [MAX_APPENDS]` (SQLite at DATA_DIR/andon.db).
//! Bounded: stops after MAX_APPENDS (default 100000) appends or 60 seconds.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use andon_store::{Event, StoreError};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: append_loop DATA_DIR [MAX_APPENDS]");
        return ExitCode::from(2);
    };
    let max: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    match run(&dir, max) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("append_loop: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &std::path::Path, max: u64) -> Result<(), StoreError> {
    let store = andon_store::open("", dir)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stdout = std::io::stdout().lock();
    for i in 0..max {
        if Instant::now() > deadline {
            break;
        }
        // Batches of 1 to 3 events, so a kill can land inside a multi-event commit.
        let batch = (0..=(i % 3))
            .map(|j| Event::JobSkipped {
                run_id: i,
                job: format!("job-{j}"),
                reason: "crash test".into(),
            })
            .collect();
        for env in store.append("crash-test", batch)? {
            // A closed stdout (the test stopped reading) ends the loop.
            if writeln!(stdout, "{}", env.seq)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}
