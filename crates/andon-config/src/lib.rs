//! Parses and validates `andon.yaml` into a checked model, with
//! `FILE:LINE:COL` diagnostics that show the line, underline the spot and
//! say how to fix it.
//!
//! Parsing happens in two steps, so that every error can point at the
//! source: YAML text becomes a tree of nodes that remember their line and
//! column ([`tree`]), then hand-written converters check that tree and build
//! the model, recording a diagnostic for each problem and carrying on, so
//! one run reports every error in file order.
//!
//! # Layout
//! - `tree`: YAML → spanned node tree (on `yaml-rust2`'s event parser;
//!   anchors, aliases and `<<` merges; duplicate keys; hostile-input limits).
//! - `check`: the conversion toolbox (`Ctx` collects diagnostics; typed
//!   converters; unknown-key suggestions).
//! - `keys`: the keys each mapping accepts (shared with the JSON Schema).
//! - `top`, `pipeline`, `environments`, `schedule`, `sections`, `traffic`:
//!   one converter per part of the file.
//! - `graph`: cycle finding for `needs` and `after`.
//! - `branch`: `when:` globs and [`Config::pipeline_for_branch`].
//! - `model`: the checked types others use.
//! - `diagnostic`: [`Diagnostic`], [`Diagnostics`], [`LoadError`].
//! - `units`: [`parse_duration`], [`parse_percent`].
//! - `schema`: [`json_schema`] for editors.

mod branch;
mod check;
mod diagnostic;
mod environments;
mod graph;
mod keys;
mod model;
mod pipeline;
mod schedule;
mod schema;
mod sections;
mod top;
mod traffic;
mod tree;
mod units;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, LoadError};
pub use model::*;
pub use schema::json_schema;
pub use std::time::Duration;
pub use units::{format_duration, parse_duration, parse_percent};

/// Parses and validates `source`. `file_name` is used only in messages.
///
/// Never panics; on failure returns every problem found, in file order.
pub fn parse(file_name: &str, source: &str) -> Result<Config, Diagnostics> {
    let lines = tree::Source::new(source);
    let mut ctx = check::Ctx::new(file_name, &lines);
    match tree::build(&lines, source) {
        Err(fatal) => ctx.error(fatal.pos, fatal.message, fatal.hint),
        Ok((root, problems)) => {
            for p in problems {
                ctx.error(p.pos, p.message, p.hint);
            }
            let config = top::config(&mut ctx, &root);
            if !ctx.has_errors()
                && let Some(config) = config
            {
                return Ok(config);
            }
        }
    }
    let mut diagnostics = ctx.finish();
    if diagnostics.is_empty() {
        // Unreachable by construction (every `None` records why), but a
        // silent failure would be the worst possible message.
        diagnostics.push(Diagnostic {
            file: file_name.to_string(),
            line: 1,
            column: 1,
            message: "the configuration is invalid".to_string(),
            hint: Some("this is a bug in andon: please report it with the file".to_string()),
            source_line: lines.line(1).to_string(),
            span_len: 1,
        });
    }
    Err(Diagnostics(diagnostics))
}

/// Reads and parses the file at `path`; messages name it as given.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&path.display().to_string(), &source).map_err(LoadError::Invalid)
}

impl Config {
    /// `project:` when set, else the name of the repository directory.
    pub fn project_name(&self, repo_dir: &Path) -> String {
        if let Some(project) = &self.project {
            return project.clone();
        }
        let named = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        named(repo_dir)
            .or_else(|| repo_dir.canonicalize().ok().and_then(|p| named(&p)))
            .unwrap_or_else(|| "project".to_string())
    }
}
