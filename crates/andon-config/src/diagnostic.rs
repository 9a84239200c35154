//! User-facing errors: `FILE:LINE:COL: message`, the source line, a caret
//! underline and a hint, in the style of rustc and uv.

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file, located precisely enough to be
/// parsed by editors' problem matchers (`FILE:LINE:COL: message`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file name as given to [`crate::parse`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
    /// The text of the offending line, without its line break.
    pub source_line: String,
    /// How many characters the caret underline covers (at least 1).
    pub span_len: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{number} | {}", self.source_line)?;
        // Keep tabs as tabs so the caret lines up however the terminal
        // expands them.
        let lead: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{gutter} | {lead}{}", "^".repeat(self.span_len.max(1)))?;
        if let Some(hint) = &self.hint {
            // Continuation lines line up under the text after "help: ".
            let hint = hint.replace('\n', &format!("\n{gutter}         "));
            write!(f, "\n{gutter} = help: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file, in file order.
///
/// Validation does not stop at the first error: fixing a config one error
/// per run is the main annoyance this type exists to avoid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.0 {
            writeln!(f, "{diagnostic}\n")?;
        }
        match self.0.len() {
            1 => write!(f, "1 error"),
            n => write!(f, "{n} errors"),
        }
    }
}

impl std::error::Error for Diagnostics {}

/// Why [`crate::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid `andon.yaml`.
    #[error("{0}")]
    Invalid(Diagnostics),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_caret_and_hint() {
        let d = Diagnostic {
            file: "andon.yaml".into(),
            line: 11,
            column: 9,
            message: "unknown key `need`; did you mean `needs`?".into(),
            hint: Some("valid keys: name, needs".into()),
            source_line: "        need: [build]".into(),
            span_len: 4,
        };
        assert_eq!(
            d.to_string(),
            "andon.yaml:11:9: unknown key `need`; did you mean `needs`?\n   |\n11 |         need: [build]\n   |         ^^^^\n   = help: valid keys: name, needs"
        );
        assert!(
            Diagnostics(vec![d.clone(), d])
                .to_string()
                .ends_with("\n\n2 errors")
        );
    }
}
