//! Jobs a killed server left behind.
//!
//! A server stopped with `kill -9` cannot kill its jobs' process groups, and
//! the jobs keep running (deploying, holding ports) with nobody watching.
//! Every job carries `ANDON_RUN_ID` (and `ANDON_INSTANCE`, if set) in its
//! environment, which its children inherit, so at the next start the server
//! finds them in `/proc/*/environ` and ends them, whatever their process
//! group or parent has become.

use std::collections::BTreeSet;
use std::fs;
use std::io;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getpgid};

/// Kills (SIGKILL, with their process groups) every process whose environment
/// has `ANDON_RUN_ID=<id>` for one of `run_ids`. Returns how many processes
/// matched. Processes of other users (unreadable environ) are not touched.
pub fn reap_orphans(run_ids: &[u64]) -> io::Result<usize> {
    reap(None, run_ids)
}

/// Like [`reap_orphans`], restricted to processes that also carry
/// `ANDON_INSTANCE=<instance>` (see `RunSpec::instance`): the safe choice
/// when several Andon servers share a machine and reuse run numbers.
pub fn reap_orphans_of(instance: &str, run_ids: &[u64]) -> io::Result<usize> {
    reap(Some(instance), run_ids)
}

fn reap(instance: Option<&str>, run_ids: &[u64]) -> io::Result<usize> {
    if run_ids.is_empty() {
        return Ok(0);
    }
    let wanted: BTreeSet<String> = run_ids
        .iter()
        .map(|id| format!("ANDON_RUN_ID={id}"))
        .collect();
    let want_instance = instance.map(|i| format!("ANDON_INSTANCE={i}"));
    let me = std::process::id();
    let my_group = getpgid(None).ok();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Gone, a zombie, or someone else's: nothing to read, nothing to do.
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        let mut run_match = false;
        let mut instance_match = want_instance.is_none();
        for var in environ.split(|&b| b == 0) {
            let Ok(var) = std::str::from_utf8(var) else {
                continue;
            };
            run_match |= wanted.contains(var);
            if let Some(w) = &want_instance {
                instance_match |= var == w;
            }
        }
        if run_match
            && instance_match
            && let Ok(pid) = i32::try_from(pid)
        {
            pids.push(Pid::from_raw(pid));
        }
    }
    let mut groups = BTreeSet::new();
    for &pid in &pids {
        if let Ok(g) = getpgid(Some(pid)) {
            // Never our own group: a server started from a job would
            // otherwise kill itself.
            if Some(g) != my_group && g.as_raw() > 1 {
                groups.insert(g);
            }
        }
    }
    for g in groups {
        let _ = nix::sys::signal::killpg(g, Signal::SIGKILL);
    }
    for &pid in &pids {
        let _ = kill(pid, Signal::SIGKILL);
    }
    Ok(pids.len())
}
