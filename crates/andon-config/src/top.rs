//! The top level of `andon.yaml`: ties the sections together.

use crate::check::{Ctx, string, table};
use crate::environments::environments;
use crate::keys;
use crate::model::Config;
use crate::pipeline::pipeline;
use crate::sections::{board, notify, release, to_json};
use crate::tree::{Kind, Node};

pub(crate) fn config(ctx: &mut Ctx<'_>, root: &Node) -> Option<Config> {
    if !matches!(root.kind, Kind::Map(_)) {
        ctx.error(
            root.pos,
            format!("andon.yaml must be a mapping of keys, got {}", root.describe()),
            "start with `pipeline:` (and optionally `project:`, `trunk:`, `environments:`); see examples/andon.yaml".to_string(),
        );
        return None;
    }
    let t = table(ctx, root, "andon.yaml", &keys::TOP)?;
    let project = t.get("project").map(|n| string(ctx, n, "`project`"));
    let trunk = match t.get("trunk") {
        None => Some("main".to_string()),
        Some(n) => string(ctx, n, "`trunk`").filter(|name| {
            let ok = !name.contains(char::is_whitespace)
                && !name.contains("..")
                && !name.starts_with('-');
            if !ok {
                ctx.error(
                    n.pos,
                    format!("`{name}` is not a valid branch name"),
                    "write the trunk branch name, e.g. `trunk: main`".to_string(),
                );
            }
            ok
        }),
    };
    let pipeline = pipeline(ctx, t.get("pipeline"), t.pos);
    let environments = t
        .get("environments")
        .map(|n| environments(ctx, n))
        .unwrap_or_default();
    let flags = t.get("flags").filter(|n| !n.is_null()).map(to_json);
    let release = t.get("release").map(|n| release(ctx, n));
    let board = t.get("board").map(|n| board(ctx, n));
    let notify = t.get("notify").map(|n| notify(ctx, n)).unwrap_or_default();
    Some(Config {
        // Errors in optional sections were recorded; `parse` discards this
        // value whenever any error was, so flattening them away is safe.
        project: project.flatten(),
        trunk: trunk?,
        pipeline: pipeline?,
        environments,
        flags,
        release: release.flatten(),
        board: board.flatten(),
        notify,
    })
}
