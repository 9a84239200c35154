//! Step two's toolbox: turning tree nodes into typed values while recording
//! a located diagnostic for everything that does not fit.
//!
//! Every converter returns `Option`: `None` means "an error was recorded,
//! carry on", so one pass finds all the problems in the file.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diagnostic::Diagnostic;
use crate::tree::{Entry, Kind, Node, Pos, Source, shorten};
use crate::units::{parse_duration, parse_percent};

/// Past this many errors the rest are counted, not kept: nobody reads the
/// 201st, and hostile input must not make memory grow without bound.
const MAX_DIAGNOSTICS: usize = 200;
/// Longer source lines are cut when quoted in a diagnostic.
const MAX_QUOTED_LINE: usize = 1_000;

pub(crate) struct Ctx<'s> {
    file: &'s str,
    source: &'s Source<'s>,
    diags: Vec<Diagnostic>,
    dropped: usize,
}

impl<'s> Ctx<'s> {
    pub(crate) fn new(file: &'s str, source: &'s Source<'s>) -> Self {
        Self {
            file,
            source,
            diags: Vec::new(),
            dropped: 0,
        }
    }

    pub(crate) fn error(
        &mut self,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        if self.is_full() {
            self.dropped += 1;
            return;
        }
        let line = self.source.line(pos.line);
        let source_line = match line.char_indices().nth(MAX_QUOTED_LINE) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        };
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.col,
            message: message.into(),
            hint: hint.into(),
            source_line,
            span_len: pos.len.max(1),
        });
    }

    /// True once further errors would only be counted; lets costly checks
    /// (suggestions over many names) stop early.
    pub(crate) fn is_full(&self) -> bool {
        self.diags.len() >= MAX_DIAGNOSTICS
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// The diagnostics in file order (stable, so same-place errors keep the
    /// order they were found in).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.line, d.column));
        self.diags.dedup();
        if self.dropped > 0
            && let Some(last) = self.diags.last()
        {
            let note = Diagnostic {
                message: format!("too many errors: {} more not shown", self.dropped),
                hint: Some("fix the errors above and run the check again".to_string()),
                ..last.clone()
            };
            self.diags.push(note);
        }
        self.diags
    }
}

/// The keys a mapping may hold, and how to name such a mapping in messages.
pub(crate) struct Spec {
    /// e.g. "a job": used as "valid keys in a job: ...".
    pub(crate) place: &'static str,
    pub(crate) keys: &'static [&'static str],
}

/// A mapping whose keys have been checked against a [`Spec`].
pub(crate) struct Table<'n> {
    pub(crate) pos: Pos,
    entries: &'n [Entry],
}

impl<'n> Table<'n> {
    /// Report "missing key" errors at `pos` (e.g. an environment's name)
    /// instead of at the mapping's first key.
    pub(crate) fn at(self, pos: Pos) -> Self {
        Self { pos, ..self }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// Like `get`, but records "missing required key" when absent.
    /// `owner` names the mapping (e.g. "job `lint`"), `example` is a line
    /// the user could add.
    pub(crate) fn required(
        &self,
        ctx: &mut Ctx<'_>,
        key: &str,
        owner: &str,
        example: &str,
    ) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            ctx.error(
                self.pos,
                format!("missing required key `{key}` in {owner}"),
                format!("add `{example}`"),
            );
        }
        found
    }
}

/// Checks that `node` is a mapping with only the keys of `spec`.
pub(crate) fn table<'n>(
    ctx: &mut Ctx<'_>,
    node: &'n Node,
    label: &str,
    spec: &Spec,
) -> Option<Table<'n>> {
    let Kind::Map(entries) = &node.kind else {
        let hint = format!(
            "write {label} as `key: value` lines indented under it; valid keys: {}",
            list_keys(spec.keys)
        );
        ctx.error(
            node.pos,
            format!(
                "wrong type for {label}: expected a mapping, got {}",
                node.describe()
            ),
            hint,
        );
        return None;
    };
    for entry in entries {
        if spec.keys.contains(&entry.key.as_str()) {
            continue;
        }
        if ctx.is_full() {
            ctx.error(entry.key_pos, "unknown key", None);
            continue;
        }
        let message = match nearest(&entry.key, spec.keys.iter().copied()) {
            Some(near) => format!("unknown key `{}`; did you mean `{near}`?", entry.key),
            None => format!("unknown key `{}` in {}", shorten(&entry.key), spec.place),
        };
        ctx.error(
            entry.key_pos,
            message,
            format!("valid keys in {}: {}", spec.place, list_keys(spec.keys)),
        );
    }
    Some(Table {
        pos: node.pos,
        entries,
    })
}

/// A mapping with free-form keys (`env:`, `matrix:`, `environments:`).
pub(crate) fn entries<'n>(
    ctx: &mut Ctx<'_>,
    node: &'n Node,
    label: &str,
    example: &str,
) -> &'n [Entry] {
    match &node.kind {
        Kind::Map(entries) => entries,
        _ if node.is_null() => &[],
        _ => {
            ctx.error(
                node.pos,
                format!(
                    "wrong type for {label}: expected a mapping, got {}",
                    node.describe()
                ),
                format!("write it as `{example}`"),
            );
            &[]
        }
    }
}

pub(crate) fn list_keys(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidate closest to `word`, if close enough to be a likely typo.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

pub(crate) fn scalar<'n>(
    ctx: &mut Ctx<'_>,
    node: &'n Node,
    label: &str,
    expected: &str,
) -> Option<&'n str> {
    match &node.kind {
        Kind::Scalar { text, .. } if !node.is_null() => Some(text),
        _ => {
            ctx.error(
                node.pos,
                format!(
                    "wrong type for {label}: expected {expected}, got {}",
                    node.describe()
                ),
                None,
            );
            None
        }
    }
}

/// Any scalar, as text; numbers and booleans are accepted as written
/// (`project: 2024` is the string "2024").
pub(crate) fn string(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<String> {
    let text = scalar(ctx, node, label, "a string")?;
    if text.trim().is_empty() {
        ctx.error(node.pos, format!("{label} is empty"), None);
        return None;
    }
    Some(text.to_string())
}

pub(crate) fn boolean(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<bool> {
    let text = scalar(ctx, node, label, "`true` or `false`")?;
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        other => {
            ctx.error(
                node.pos,
                format!(
                    "wrong type for {label}: expected `true` or `false`, got `{}`",
                    shorten(other)
                ),
                Some(
                    "YAML 1.2 booleans are only `true` and `false` (not `yes`, `no`, `on`, `off`)"
                        .to_string(),
                ),
            );
            None
        }
    }
}

/// An integer in `min..=max`.
pub(crate) fn integer(
    ctx: &mut Ctx<'_>,
    node: &Node,
    label: &str,
    min: u64,
    max: u64,
) -> Option<u64> {
    let text = scalar(ctx, node, label, "a whole number")?;
    match text.trim().parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Some(value),
        Ok(_) => {
            ctx.error(
                node.pos,
                format!(
                    "{label} must be between {min} and {max}, got {}",
                    text.trim()
                ),
                None,
            );
            None
        }
        Err(_) if text.trim().starts_with('-') && text.trim()[1..].parse::<u64>().is_ok() => {
            ctx.error(
                node.pos,
                format!(
                    "{label} must be between {min} and {max}, got {}",
                    text.trim()
                ),
                None,
            );
            None
        }
        Err(_) => {
            ctx.error(
                node.pos,
                format!(
                    "wrong type for {label}: expected a whole number, got {}",
                    node.describe()
                ),
                None,
            );
            None
        }
    }
}

pub(crate) fn float(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<f64> {
    let text = scalar(ctx, node, label, "a number")?;
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Some(value),
        _ => {
            ctx.error(
                node.pos,
                format!(
                    "wrong type for {label}: expected a number, got {}",
                    node.describe()
                ),
                None,
            );
            None
        }
    }
}

pub(crate) fn duration(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<Duration> {
    let text = scalar(ctx, node, label, "a duration such as `30s`")?;
    match parse_duration(text) {
        Ok(value) => Some(value),
        Err(why) => {
            ctx.error(
                node.pos,
                format!("bad duration for {label}: {why}"),
                Some(
                    "durations are written `500ms`, `30s`, `10m`, `2h` or combined, e.g. `1h30m`"
                        .to_string(),
                ),
            );
            None
        }
    }
}

/// A duration that must be more than zero.
pub(crate) fn positive_duration(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<Duration> {
    let value = duration(ctx, node, label)?;
    if value.is_zero() {
        ctx.error(node.pos, format!("{label} must be longer than zero"), None);
        return None;
    }
    Some(value)
}

pub(crate) fn percent(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<f64> {
    let text = scalar(ctx, node, label, "a percentage such as `2%`")?;
    match parse_percent(text) {
        Ok(value) => Some(value),
        Err(why) => {
            ctx.error(
                node.pos,
                format!("bad percentage for {label}: {why}"),
                Some(
                    "percentages are written `2%` or as a fraction `0.02`, at most 100%"
                        .to_string(),
                ),
            );
            None
        }
    }
}

/// A list; `key: ~` counts as empty. A scalar where a list belongs gets a
/// hint showing the bracketed form.
pub(crate) fn list<'n>(
    ctx: &mut Ctx<'_>,
    node: &'n Node,
    label: &str,
    key: &str,
) -> Option<&'n [Node]> {
    match &node.kind {
        Kind::Seq(items) => Some(items),
        _ if node.is_null() => Some(&[]),
        Kind::Scalar { text, .. } => {
            ctx.error(
                node.pos,
                format!(
                    "wrong type for {label}: expected a list, got {}",
                    node.describe()
                ),
                format!("write a list: `{key}: [{}]`", shorten(text)),
            );
            None
        }
        Kind::Map(_) => {
            ctx.error(
                node.pos,
                format!("wrong type for {label}: expected a list, got a mapping"),
                format!("write a list, one `- item` per line, or `{key}: [a, b]`"),
            );
            None
        }
    }
}

/// A list of non-empty strings, each with its position.
pub(crate) fn strings(
    ctx: &mut Ctx<'_>,
    node: &Node,
    label: &str,
    key: &str,
) -> Vec<(String, Pos)> {
    let Some(items) = list(ctx, node, label, key) else {
        return Vec::new();
    };
    let item_label = format!("an entry of {label}");
    items
        .iter()
        .filter_map(|item| string(ctx, item, &item_label).map(|s| (s, item.pos)))
        .collect()
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what `sh` accepts as a variable name.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `env:` mappings: variable names checked, scalar values kept as written.
pub(crate) fn env_map(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for entry in entries(ctx, node, label, "env: { NAME: value }") {
        if !is_env_name(&entry.key) {
            ctx.error(
                entry.key_pos,
                format!(
                    "`{}` is not a valid environment variable name",
                    shorten(&entry.key)
                ),
                Some(
                    "use letters, digits and `_`, not starting with a digit (e.g. `API_URL`)"
                        .to_string(),
                ),
            );
            continue;
        }
        let value = match &entry.value.kind {
            Kind::Scalar { .. } if entry.value.is_null() => Some(String::new()),
            Kind::Scalar { text, .. } => Some(text.clone()),
            _ => {
                ctx.error(
                    entry.value.pos,
                    format!(
                        "wrong type for `{}`: expected a string, got {}",
                        entry.key,
                        entry.value.describe()
                    ),
                    Some("environment values are single strings; quote them if needed".to_string()),
                );
                None
            }
        };
        if let Some(value) = value {
            env.insert(entry.key.clone(), value);
        }
    }
    env
}

/// `secrets:` lists: names only, checked like environment variable names
/// because that is how they reach the job.
pub(crate) fn secret_names(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Vec<String> {
    strings(ctx, node, label, "secrets")
        .into_iter()
        .filter_map(|(name, pos)| {
            if is_env_name(&name) {
                Some(name)
            } else {
                ctx.error(
                    pos,
                    format!("`{}` is not a valid secret name", shorten(&name)),
                    Some("secret names become environment variables: letters, digits and `_` (e.g. `API_KEY`); the value itself lives in the server, never in andon.yaml".to_string()),
                );
                None
            }
        })
        .collect()
}

/// One of a fixed set of words (`kind`, `approval`, `format`...).
pub(crate) fn choice<T: Copy>(
    ctx: &mut Ctx<'_>,
    node: &Node,
    label: &str,
    options: &[(&'static str, T)],
) -> Option<T> {
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let text = scalar(ctx, node, label, &format!("one of {}", list_keys(&names)))?;
    if let Some((_, value)) = options.iter().find(|(name, _)| *name == text.trim()) {
        return Some(*value);
    }
    let message = match nearest(text.trim(), names.iter().copied()) {
        Some(near) => format!(
            "unknown {label} `{}`; did you mean `{near}`?",
            shorten(text)
        ),
        None => format!("unknown {label} `{}`", shorten(text)),
    };
    ctx.error(
        node.pos,
        message,
        format!("valid values: {}", list_keys(&names)),
    );
    None
}
