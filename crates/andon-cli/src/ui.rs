//! Terminal output shared by commands: colour only when wanted, and errors
//! printed as `error:`, their causes, and a hint.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static COLOR: AtomicBool = AtomicBool::new(false);

/// Colour is on only for a terminal, and never when NO_COLOR is set
/// (<https://no-color.org>) or `--no-color` is given.
pub(crate) fn init(no_color: bool) {
    let env_no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let on = !no_color && !env_no_color && std::io::stderr().is_terminal();
    COLOR.store(on, Ordering::Relaxed);
}

pub(crate) fn color() -> bool {
    COLOR.load(Ordering::Relaxed)
}

fn paint(code: &str, s: &str) -> String {
    if color() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

pub(crate) fn red(s: &str) -> String {
    paint("31", s)
}
pub(crate) fn green(s: &str) -> String {
    paint("32", s)
}
pub(crate) fn yellow(s: &str) -> String {
    paint("33", s)
}
pub(crate) fn dim(s: &str) -> String {
    paint("2", s)
}
pub(crate) fn bold(s: &str) -> String {
    paint("1", s)
}

/// A status word coloured by meaning.
pub(crate) fn status(s: &str) -> String {
    match s {
        "passed" | "succeeded" => green(s),
        "failed" | "timed_out" | "interrupted" | "rolled_back" => red(s),
        "running" | "queued" | "pending" => yellow(s),
        _ => dim(s),
    }
}

/// `1.2s`, `3m04s`: short enough for a progress line.
pub(crate) fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// An error a user can act on: what failed, why, and a hint when we know one.
#[derive(Debug)]
pub(crate) struct Hinted {
    pub(crate) message: String,
    pub(crate) hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

pub(crate) fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

pub(crate) fn print_error(err: &anyhow::Error) {
    eprintln!("{} {err}", red("error:"));
    for cause in err.chain().skip(1) {
        eprintln!("  {} {cause}", dim("caused by:"));
    }
    if let Some(h) = err.chain().find_map(|e| e.downcast_ref::<Hinted>()) {
        eprintln!("  {} {}", yellow("hint:"), h.hint);
    }
}
