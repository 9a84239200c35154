//! `sh -c SCRIPT`, with a watchdog that kills the job if its agent dies.
//!
//! The runner puts each job in its own process group and kills that group
//! when the job ends, times out or is cancelled. An agent killed with
//! `kill -9` does none of that, and its job would run on, unsupervised,
//! while the server hands the attempt to another agent. So a job's shell
//! first starts a watchdog in the job's own group, which checks once a
//! second that the agent still lives and otherwise kills the whole group.
//! (No `prctl(PR_SET_PDEATHSIG)`: setting it needs `unsafe` `pre_exec`, and
//! it would only reach the shell, not what the shell started.)

use andon_runner::{Executor, Invocation};
use tokio::process::Command;

/// `$1` is the agent's pid, `$2` the job's script. `kill -0` alone would
/// take a zombie agent (killed, not yet reaped) for a live one. The shell
/// leads the job's group (the runner makes it so) and keeps its pid across
/// `exec`, so `-$$` names exactly the job's group.
const WATCHDOG: &str = r#"agent=$1
( while kill -0 "$agent" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$agent/status"; do sleep 1; done
  kill -KILL -$$ ) </dev/null >/dev/null 2>&1 &
exec sh -c "$2"
"#;

#[derive(Debug, Clone, Copy)]
pub(crate) struct AgentExecutor {
    pub(crate) agent_pid: u32,
}

impl Executor for AgentExecutor {
    fn name(&self) -> &str {
        "agent"
    }

    fn command(&self, inv: &Invocation<'_>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("andon-job")
            .arg(self.agent_pid.to_string())
            .arg(inv.script)
            .current_dir(inv.cwd);
        cmd
    }
}
