//! Operating-system plumbing for instances: ports, process groups, signals,
//! liveness.
//!
//! Every instance runs `sh -c COMMAND` as the leader of its own process
//! group, so that whatever the command forks is stopped with it: signals go
//! to the group (`killpg`), never to a single pid.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::DeployError;

/// What an instance's process is started with.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) command: String,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
    /// The full environment: nothing is inherited from the controller.
    pub(crate) env: BTreeMap<String, String>,
}

/// A port that was free a moment ago, found by binding port 0. The instance
/// binds it next; the gap is a few milliseconds and the kernel hands out
/// ephemeral ports round-robin, so a collision is unlikely (and would show
/// as an instance that never becomes ready).
pub(crate) fn free_port() -> Result<u16, DeployError> {
    let l =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(DeployError::io("127.0.0.1:0"))?;
    let port = l
        .local_addr()
        .map_err(DeployError::io("127.0.0.1:0"))?
        .port();
    Ok(port)
}

/// The environment an instance sees: the variables the target declares and
/// its secrets, then what the controller sets (`PORT`, `ANDON_*`), plus a
/// `PATH`. The controller's own environment is not passed on: it holds the
/// server's tokens.
pub(crate) fn instance_env(
    declared: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
    port: u16,
    version: &str,
    instance_id: &str,
    environment: &str,
    dir: &Path,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
    );
    for key in ["LANG", "LC_ALL", "TZ"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.to_string(), v);
        }
    }
    env.insert("HOME".to_string(), dir.display().to_string());
    env.extend(declared.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert("PORT".to_string(), port.to_string());
    env.insert("ANDON_VERSION".to_string(), version.to_string());
    env.insert("ANDON_INSTANCE".to_string(), instance_id.to_string());
    env.insert("ANDON_ENVIRONMENT".to_string(), environment.to_string());
    env
}

/// Starts `sh -c COMMAND` in its own process group, output appended to the log.
pub(crate) fn spawn(launch: &Launch) -> Result<tokio::process::Child, DeployError> {
    let spawn_err = |source| DeployError::Spawn {
        command: launch.command.clone(),
        dir: launch.dir.clone(),
        source,
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(DeployError::io(&launch.log))?;
    let log2 = log.try_clone().map_err(DeployError::io(&launch.log))?;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&launch.command)
        .current_dir(&launch.dir)
        .env_clear()
        .envs(&launch.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .process_group(0)
        // A controller that crashes must leave its instances running, so
        // that the next one can adopt them: never kill on drop.
        .kill_on_drop(false);
    cmd.spawn().map_err(spawn_err)
}

/// Sends `signal` to the whole process group; a group that is already gone is fine.
pub(crate) fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// Whether `pid` is a running process (a zombie is not running).
pub(crate) fn alive(pid: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the command name, which is in
        // parentheses and may itself contain spaces or parentheses.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok(),
    }
}

/// Whether any process of group `pgid` is still running (zombies aside). A
/// leader that exits on SIGTERM may leave children finishing their requests;
/// they get the rest of the grace period before SIGKILL.
pub(crate) fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killpg(Pid::from_raw(pgid), None).is_ok();
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        // Fields after the command: state, ppid, pgrp.
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(pgid) && state != "Z" && state != "X"
    })
}

/// Stops a process group that is not our child (adopted, or an orphan of a
/// previous controller): SIGTERM, up to `grace` for it to finish, SIGKILL.
pub(crate) async fn terminate_group(pgid: i32, grace: std::time::Duration) {
    signal_group(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
}

/// The working directory of `pid`, to make sure a pid read from the log is
/// still the instance it was (pids are reused) before adopting or killing it.
pub(crate) fn cwd_of(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Whether `pid` is alive and runs inside `dir` (or below it).
pub(crate) fn is_instance_process(pid: i32, dir: &Path) -> bool {
    if !alive(pid) {
        return false;
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    cwd_of(pid).is_some_and(|cwd| cwd.starts_with(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_nonzero_and_own_process_is_alive() {
        assert_ne!(free_port().unwrap(), 0);
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(alive(me));
        assert!(!alive(0));
        assert!(is_instance_process(me, &std::env::current_dir().unwrap()));
    }

    #[test]
    fn controller_variables_win_over_declared_ones() {
        let declared = BTreeMap::from([
            ("PORT".to_string(), "1".to_string()),
            ("A".into(), "b".into()),
        ]);
        let secrets = BTreeMap::from([("TOKEN".to_string(), "s".to_string())]);
        let env = instance_env(
            &declared,
            &secrets,
            8080,
            "sha256:x",
            "i-1",
            "prod",
            Path::new("/tmp"),
        );
        assert_eq!(env["PORT"], "8080");
        assert_eq!(env["A"], "b");
        assert_eq!(env["TOKEN"], "s");
        assert_eq!(env["ANDON_VERSION"], "sha256:x");
        assert!(!env.contains_key("CARGO"));
    }
}
