//! Smoke tests: the `smoke:` command of the judge rules, run against the new
//! version THROUGH THE ROUTER before users see it.
//!
//! The router sends a request carrying `x-andon-version: <role>` to that
//! role even at weight 0, so the script tests the real path (routing,
//! headers, the new instances) without any user reaching them. It gets:
//! `ANDON_URL` (the router), `ANDON_VERSION_HEADER` and `ANDON_VERSION`
//! (the header to send and its value), e.g.
//! `curl -fsS -H "$ANDON_VERSION_HEADER: $ANDON_VERSION" "$ANDON_URL/healthz"`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::process;
use crate::routes::OVERRIDE_HEADER;

/// Longest a smoke test may run.
pub(crate) const SMOKE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `command` with `sh -c` in `dir` (an instance directory of the new
/// version, so a script shipped in the artifact can be run). The error is a
/// sentence with the tail of its output.
pub(crate) async fn run(
    command: &str,
    dir: &Path,
    router_url: &str,
    role: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
        )
        .env("HOME", dir)
        .env("ANDON_URL", router_url.trim_end_matches('/'))
        .env("ANDON_VERSION_HEADER", OVERRIDE_HEADER)
        .env("ANDON_VERSION", role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stdout));
            let tail: String = text
                .trim()
                .chars()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let tail = tail.replace('\n', " | ");
            if tail.is_empty() {
                Err(format!("`{command}` {}", out.status))
            } else {
                Err(format!("`{command}` {}: {tail}", out.status))
            }
        }
        Ok(Err(e)) => Err(format!("`{command}` could not be waited for: {e}")),
        Err(_) => {
            if let Some(pgid) = pgid {
                process::signal_group(pgid, Signal::SIGKILL);
            }
            Err(format!(
                "`{command}` did not finish within {}",
                andon_config::format_duration(timeout)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_script_sees_the_router_and_the_header_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let ok = r#"test "$ANDON_URL" = http://r:1 && test "$ANDON_VERSION_HEADER" = x-andon-version && test "$ANDON_VERSION" = green"#;
        run(
            ok,
            dir.path(),
            "http://r:1/",
            "green",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let e = run(
            "echo broken >&2; exit 3",
            dir.path(),
            "http://r:1",
            "green",
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("broken"), "{e}");
        let e = run(
            "sleep 5",
            dir.path(),
            "http://r:1",
            "green",
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }
}
