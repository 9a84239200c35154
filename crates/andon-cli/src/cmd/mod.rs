//! One module per command family.

mod agent;
mod demo;
mod env;
mod flags;
mod flow;
mod local;
mod migrate;
mod procs;
mod release;
mod remote;
mod sse;

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Command};

pub(crate) use env::EnvCmd;
pub(crate) use flags::FlagsCmd;
pub(crate) use flow::{BoardArgs, CardCmd, HookCmd, MetricsArgs};
pub(crate) use migrate::MigrateArgs;

pub(crate) async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { file } => local::check(&file),
        Command::Schema => local::schema(),
        Command::Run {
            json,
            parallelism,
            repo,
            no_fail_fast,
        } => local::run(&repo, json, parallelism, !no_fail_fast).await,
        Command::Server {
            data,
            listen,
            store,
            advertise,
            parallelism,
            router,
        } => procs::server(data, listen, store, advertise, parallelism, router).await,
        Command::Router {
            data,
            listen,
            admin,
            admin_token,
        } => procs::router(data, listen, admin, admin_token).await,
        Command::Demo { keep, dir, port } => demo::run(keep, dir, port).await,
        Command::SampleService { .. } => Ok(ExitCode::SUCCESS),
        Command::Agent {
            labels,
            name,
            work,
            jobs,
            remote,
        } => {
            agent::run(agent::AgentArgs {
                remote,
                labels,
                name,
                work,
                jobs,
            })
            .await
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "andon", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        cmd @ (Command::Deploy { .. }
        | Command::Promote { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Abort { .. }
        | Command::Rollback { .. }
        | Command::Envs { .. }
        | Command::Deploys { .. }) => release::dispatch(cmd).await,
        Command::Flags(cmd) => flags::run(cmd).await,
        Command::MigrateStore(args) => {
            // Blocking store calls: off the async workers.
            tokio::task::spawn_blocking(move || migrate::run(args)).await?
        }
        Command::Env(cmd) => env::run(cmd).await,
        Command::Metrics(a) => flow::metrics(a).await,
        Command::Board(a) => flow::board(a).await,
        Command::Card(cmd) => flow::card(cmd).await,
        Command::Hook(cmd) => flow::hook(cmd),
        other => remote::dispatch(other).await,
    }
}

/// Parallelism when none is given: the machine's cores.
pub(crate) fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
