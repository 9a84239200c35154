//! The smaller top-level sections: `release`, `board`, `notify`, `flags`.

use std::collections::HashMap;

use crate::check::{Ctx, choice, integer, is_env_name, list, string, strings, table};
use crate::keys;
use crate::model::{Board, Column, Notify, NotifyFormat, Release, ReleaseMode};
use crate::schedule::valid_schedule;
use crate::tree::{Kind, Node, shorten};

pub(crate) fn release(ctx: &mut Ctx<'_>, node: &Node) -> Option<Release> {
    let t = table(ctx, node, "`release`", &keys::RELEASE)?;
    let modes = [
        ("continuous", ReleaseMode::Continuous),
        ("manual", ReleaseMode::Manual),
        ("train", ReleaseMode::Train),
    ];
    let mode = match t.get("mode") {
        None => Some(ReleaseMode::Continuous),
        Some(n) => choice(ctx, n, "release mode", &modes),
    };
    let schedule_node = t.get("schedule");
    let schedule = schedule_node.and_then(|n| {
        let text = string(ctx, n, "`schedule`")?;
        if valid_schedule(&text) {
            Some(text)
        } else {
            ctx.error(
                n.pos,
                format!("bad schedule `{}`", shorten(&text)),
                "write `<day> HH:MM UTC`, e.g. `schedule: \"wed 10:00 UTC\"`".to_string(),
            );
            None
        }
    });
    let mode = mode?;
    match (mode, schedule_node) {
        (ReleaseMode::Train, None) => {
            ctx.error(
                t.pos,
                "a release train needs a `schedule`",
                "add e.g. `schedule: \"wed 10:00 UTC\"`".to_string(),
            );
            return None;
        }
        (ReleaseMode::Continuous | ReleaseMode::Manual, Some(n)) => {
            ctx.error(
                n.pos,
                "`schedule` only applies to `mode: train`",
                "set `mode: train`, or remove `schedule`".to_string(),
            );
            return None;
        }
        _ => {}
    }
    if schedule_node.is_some() && schedule.is_none() {
        return None;
    }
    Some(Release { mode, schedule })
}

pub(crate) fn board(ctx: &mut Ctx<'_>, node: &Node) -> Option<Board> {
    let t = table(ctx, node, "`board`", &keys::BOARD)?;
    let columns_node = t.required(ctx, "columns", "`board`", "columns: [todo, doing, done]")?;
    let items = list(ctx, columns_node, "`columns`", "columns")?;
    if items.is_empty() {
        ctx.error(
            columns_node.pos,
            "`columns` is empty",
            "write e.g. `columns: [todo, { name: doing, wip: 3 }, done]`".to_string(),
        );
        return None;
    }
    let mut columns = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut ok = true;
    for item in items {
        // A column is a name, or `{ name, wip }` when it has a limit.
        let column = match &item.kind {
            Kind::Map(_) => table(ctx, item, "a board column", &keys::COLUMN).and_then(|c| {
                let name = c
                    .required(ctx, "name", "a board column", "name: doing")
                    .and_then(|n| string(ctx, n, "the column name"));
                let wip = match c.get("wip") {
                    None => Some(None),
                    Some(n) => integer(ctx, n, "`wip`", 1, 1000)
                        .and_then(|v| u32::try_from(v).ok())
                        .map(Some),
                };
                Some(Column {
                    name: name?,
                    wip: wip?,
                })
            }),
            _ => string(ctx, item, "a board column").map(|name| Column { name, wip: None }),
        };
        match column {
            Some(column) => {
                if let Some(line) = seen.get(&column.name) {
                    ctx.error(
                        item.pos,
                        format!("duplicate board column `{}`", column.name),
                        format!("the first is on line {line}; rename one"),
                    );
                    ok = false;
                } else {
                    seen.insert(column.name.clone(), item.pos.line);
                    columns.push(column);
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(Board { columns })
}

pub(crate) fn notify(ctx: &mut Ctx<'_>, node: &Node) -> Vec<Notify> {
    let Some(items) = list(ctx, node, "`notify`", "notify") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| notify_one(ctx, item))
        .collect()
}

fn notify_one(ctx: &mut Ctx<'_>, node: &Node) -> Option<Notify> {
    let t = table(ctx, node, "a notify entry", &keys::NOTIFY)?;
    let url = t
        .required(
            ctx,
            "url",
            "a notify entry",
            "url: https://hooks.example.com/andon",
        )
        .and_then(|n| {
            let url = string(ctx, n, "`url`")?;
            if url.starts_with("http://") || url.starts_with("https://") {
                Some(url)
            } else {
                ctx.error(
                    n.pos,
                    format!("`{}` is not an http(s) URL", shorten(&url)),
                    "write e.g. `url: https://hooks.slack.com/services/...`".to_string(),
                );
                None
            }
        });
    let format = match t.get("format") {
        None => Some(NotifyFormat::Json),
        Some(n) => choice(
            ctx,
            n,
            "notify format",
            &[("json", NotifyFormat::Json), ("slack", NotifyFormat::Slack)],
        ),
    };
    let events = t
        .get("events")
        .map(|n| {
            strings(ctx, n, "`events`", "events")
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        })
        .unwrap_or_default();
    let secret = match t.get("secret") {
        None => Some(None),
        Some(n) => string(ctx, n, "`secret`").and_then(|name| {
            if is_env_name(&name) {
                Some(Some(name))
            } else {
                ctx.error(
                    n.pos,
                    format!("`{}` is not a valid secret name", shorten(&name)),
                    "`secret` names a secret stored in the server (letters, digits, `_`), never the value itself".to_string(),
                );
                None
            }
        }),
    };
    Some(Notify {
        url: url?,
        format: format?,
        events,
        secret: secret?,
    })
}

/// The `flags:` section as JSON, typing plain scalars by the YAML 1.2 core
/// schema (quoted ones stay strings).
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.kind {
        Kind::Scalar { text, plain } => {
            if !plain {
                return Value::String(text.clone());
            }
            if node.is_null() {
                return Value::Null;
            }
            match text.as_str() {
                "true" | "True" | "TRUE" => return Value::Bool(true),
                "false" | "False" | "FALSE" => return Value::Bool(false),
                _ => {}
            }
            if let Ok(i) = text.parse::<i64>() {
                return Value::from(i);
            }
            if looks_numeric(text)
                && let Some(n) = text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
            {
                return Value::Number(n);
            }
            Value::String(text.clone())
        }
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}

/// Rust's float parser also takes `inf` and `NaN`; YAML spells those
/// `.inf`/`.nan`, which we leave as strings.
fn looks_numeric(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit())
}
