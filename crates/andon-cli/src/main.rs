//! `andon`: continuous delivery in one binary.
//!
//! # Layout
//! - `cli`: the command-line grammar (clap); every flag documented once here.
//! - `cmd::*`: one module per command family; local commands (`check`,
//!   `run`, `schema`), the processes (`server`, `router`), and the client
//!   commands that talk to a server through `client`.
//! - `ui`: colour (respecting `NO_COLOR`) and formatting shared by commands.
//!
//! Exit codes: 0 success; 1 the thing checked or run failed (invalid config,
//! red pipeline); 2 usage errors (clap); other errors print `error:` with
//! their cause chain and exit 1.

mod cli;
mod client;
mod cmd;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    ui::init(cli.no_color);
    // The sample service runs its own runtime: start it before ours.
    if let cli::Command::SampleService { args } = cli.command {
        return sample_service::main_with_args(args.into_iter());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::dispatch(cli)) {
        Ok(code) => code,
        Err(err) => {
            ui::print_error(&err);
            ExitCode::FAILURE
        }
    }
}
