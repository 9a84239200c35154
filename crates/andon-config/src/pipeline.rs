//! `pipeline:` → stages and jobs: matrix expansion, `needs` resolution,
//! implicit stage order, and cycle detection over the effective graph.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::check::{
    Ctx, boolean, choice, entries, env_map, integer, is_env_name, list, list_keys, nearest,
    positive_duration, secret_names, string, strings, table,
};
use crate::graph;
use crate::keys;
use crate::model::{Job, Pipeline, Stage, StageKind, When};
use crate::tree::{Kind, Node, Pos, shorten};

/// More expansions than this is almost certainly a mistake, and would
/// flood the runner.
const MAX_MATRIX_JOBS: usize = 256;

/// Bounds the dependency graph (a stage's jobs each depend on every job of
/// the previous stage, so edges grow with the square of this).
const MAX_JOBS: usize = 1_000;

const EMPTY_HINT: &str = "add stages with jobs, e.g.\n    pipeline:\n      stages:\n        - name: test\n          jobs:\n            - name: unit-tests\n              run: cargo test";

/// A job as written, before matrix expansion.
struct RawJob {
    name: String,
    name_pos: Pos,
    stage: usize,
    run: String,
    needs: Option<Vec<(String, Pos)>>,
    env: BTreeMap<String, String>,
    secrets: Vec<String>,
    timeout: Option<Duration>,
    retries: u32,
    artifacts: Vec<String>,
    allow_failure: bool,
    image: Option<String>,
    sandbox: bool,
    runs_on: Vec<String>,
    when: Option<When>,
    /// One map per expansion; empty when the job has no matrix.
    matrix: Vec<BTreeMap<String, String>>,
}

pub(crate) fn pipeline(ctx: &mut Ctx<'_>, node: Option<&Node>, top: Pos) -> Option<Pipeline> {
    let Some(node) = node else {
        ctx.error(
            top,
            "missing required key `pipeline`: the pipeline is empty",
            EMPTY_HINT.to_string(),
        );
        return None;
    };
    if node.is_null() {
        ctx.error(node.pos, "the pipeline is empty", EMPTY_HINT.to_string());
        return None;
    }
    let t = table(ctx, node, "`pipeline`", &keys::PIPELINE)?;
    let stages_node = t.required(ctx, "stages", "`pipeline`", "stages: [...]")?;
    let items = list(ctx, stages_node, "`stages`", "stages")?;
    if items.is_empty() {
        ctx.error(
            stages_node.pos,
            "the pipeline is empty: it has no stages",
            EMPTY_HINT.to_string(),
        );
        return None;
    }

    let mut stages: Vec<(String, Option<StageKind>)> = Vec::new();
    let mut first_stage: HashMap<String, Pos> = HashMap::new();
    let mut raw: Vec<RawJob> = Vec::new();
    for item in items {
        let Some(st) = table(ctx, item, "a stage", &keys::STAGE) else {
            continue;
        };
        let name = st
            .required(ctx, "name", "a stage", "name: test")
            .and_then(|n| string(ctx, n, "the stage name").map(|s| (s, n.pos)));
        let kinds: Vec<(&str, StageKind)> =
            StageKind::ALL.iter().map(|k| (k.as_str(), *k)).collect();
        let kind = st
            .get("kind")
            .and_then(|n| choice(ctx, n, "stage kind", &kinds));
        let owner = name
            .as_ref()
            .map_or("a stage".to_string(), |(n, _)| format!("stage `{n}`"));
        let jobs_node = st.required(
            ctx,
            "jobs",
            &owner,
            "jobs: [{ name: test, run: ./test.sh }]",
        );
        if let Some((name, pos)) = &name {
            if let Some(first) = first_stage.get(name) {
                ctx.error(
                    *pos,
                    format!("duplicate stage name `{name}`"),
                    format!("the first stage named `{name}` is on line {}; stage names must be unique, rename one", first.line),
                );
            } else {
                first_stage.insert(name.clone(), *pos);
            }
        }
        let index = stages.len();
        stages.push((name.map(|(n, _)| n).unwrap_or_default(), kind));
        let Some(jobs_node) = jobs_node else { continue };
        let Some(job_items) = list(ctx, jobs_node, "`jobs`", "jobs") else {
            continue;
        };
        if job_items.is_empty() {
            ctx.error(
                jobs_node.pos,
                format!("{owner} has no jobs"),
                "add at least one job (`- name: ...` with `run: ...`), or remove the stage"
                    .to_string(),
            );
        }
        raw.extend(job_items.iter().filter_map(|j| job(ctx, j, index)));
    }
    assemble(ctx, stages, raw)
}

fn job(ctx: &mut Ctx<'_>, node: &Node, stage: usize) -> Option<RawJob> {
    let t = table(ctx, node, "a job", &keys::JOB)?;
    let name = t
        .required(ctx, "name", "a job", "name: unit-tests")
        .and_then(|n| string(ctx, n, "the job name").map(|s| (s, n.pos)));
    let owner = name
        .as_ref()
        .map_or("a job".to_string(), |(n, _)| format!("job `{n}`"));
    let run = t
        .required(ctx, "run", &owner, "run: ./test.sh")
        .and_then(|n| match &n.kind {
            // GitLab's `script:` is a list; say how to write that here.
            Kind::Seq(_) => {
                ctx.error(
                    n.pos,
                    "wrong type for `run`: expected a script, got a list",
                    "write several commands as a block, one per line:\n    run: |\n      cargo build\n      cargo test".to_string(),
                );
                None
            }
            _ => string(ctx, n, "`run`"),
        });
    let needs = t.get("needs").map(|n| {
        if n.is_null() {
            ctx.error(
                n.pos,
                "wrong type for `needs`: expected a list, got nothing (null)",
                "write `needs: []` to start at once, or remove `needs` to wait for the previous stage".to_string(),
            );
        }
        strings(ctx, n, "`needs`", "needs")
    });
    let mut env = t
        .get("env")
        .map(|n| env_map(ctx, n, "`env`"))
        .unwrap_or_default();
    let secrets = t
        .get("secrets")
        .map(|n| secret_names(ctx, n, "`secrets`"))
        .unwrap_or_default();
    let timeout = t
        .get("timeout")
        .and_then(|n| positive_duration(ctx, n, "`timeout`"));
    let retries = t
        .get("retries")
        .and_then(|n| integer(ctx, n, "`retries`", 0, 10))
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0);
    let artifacts = t
        .get("artifacts")
        .map(|n| {
            strings(ctx, n, "`artifacts`", "artifacts")
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        })
        .unwrap_or_default();
    let allow_failure = t
        .get("allow_failure")
        .and_then(|n| boolean(ctx, n, "`allow_failure`"))
        .unwrap_or(false);
    let image = t.get("image").and_then(|n| string(ctx, n, "`image`"));
    let sandbox = t
        .get("sandbox")
        .and_then(|n| boolean(ctx, n, "`sandbox`"))
        .unwrap_or(false);
    let runs_on = t
        .get("runs_on")
        .map(|n| runs_on(ctx, n, image.is_some() || sandbox))
        .unwrap_or_default();
    let when = t.get("when").and_then(|n| when(ctx, n));
    let matrix = t
        .get("matrix")
        .and_then(|n| matrix(ctx, n))
        .unwrap_or_default();
    if let Some((name, _)) = &name
        && name.contains('\n')
    {
        ctx.error(t.pos, "a job name must fit on one line", None);
    }
    // Matrix values reach the script as variables; they win over `env`
    // because they are what distinguishes the expansions.
    if let Some(first) = matrix.first() {
        for key in first.keys() {
            env.remove(key);
        }
    }
    let (name, name_pos) = name?;
    Some(RawJob {
        name,
        name_pos,
        stage,
        run: run.unwrap_or_default(),
        needs,
        env,
        secrets,
        timeout,
        retries,
        artifacts,
        allow_failure,
        image,
        sandbox,
        runs_on,
        when,
        matrix,
    })
}

/// `runs_on: [linux, gpu]` (or one label as a string): agent labels, each
/// `[A-Za-z0-9._-]+`, kept sorted and unique so matching is a subset test.
fn runs_on(ctx: &mut Ctx<'_>, node: &Node, isolated: bool) -> Vec<String> {
    let written = match &node.kind {
        Kind::Scalar { .. } if !node.is_null() => {
            string(ctx, node, "`runs_on`").map_or_else(Vec::new, |s| vec![(s, node.pos)])
        }
        _ => strings(ctx, node, "`runs_on`", "runs_on"),
    };
    let mut labels: Vec<String> = Vec::new();
    for (label, pos) in written {
        let valid = !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            ctx.error(
                pos,
                format!("`{}` is not a valid agent label", shorten(&label)),
                "labels are letters, digits, `.`, `_` and `-` (e.g. `linux`, `gpu`, `arm64`)"
                    .to_string(),
            );
        } else if !labels.contains(&label) {
            labels.push(label);
        }
    }
    if node.is_null() || matches!(&node.kind, Kind::Seq(items) if items.is_empty()) {
        ctx.error(
            node.pos,
            "`runs_on` has no labels",
            "write e.g. `runs_on: [linux]`, or remove `runs_on` to run the job in the server"
                .to_string(),
        );
    }
    if isolated && !labels.is_empty() {
        ctx.error(
            node.pos,
            "`runs_on` cannot be combined with `image` or `sandbox`",
            "an agent runs the script with its own shell; remove one of them".to_string(),
        );
    }
    labels.sort();
    labels
}

fn when(ctx: &mut Ctx<'_>, node: &Node) -> Option<When> {
    let t = table(ctx, node, "`when`", &keys::WHEN)?;
    let globs = |ctx: &mut Ctx<'_>, key: &str| -> Vec<String> {
        t.get(key)
            .map(|n| {
                strings(ctx, n, &format!("`{key}`"), key)
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect()
            })
            .unwrap_or_default()
    };
    let branches = globs(ctx, "branches");
    let not_branches = globs(ctx, "not_branches");
    if branches.is_empty() && not_branches.is_empty() {
        ctx.error(
            t.pos,
            "`when` has no condition",
            "add `branches: [main]` and/or `not_branches: [\"wip/*\"]`, or remove `when`"
                .to_string(),
        );
        return None;
    }
    Some(When {
        branches,
        not_branches,
    })
}

/// `matrix: { os: [linux, mac], rust: [stable, beta] }` → one map per
/// combination, keys sorted, values in written order.
fn matrix(ctx: &mut Ctx<'_>, node: &Node) -> Option<Vec<BTreeMap<String, String>>> {
    let example = "matrix: { os: [linux, mac] }";
    let axes_entries = entries(ctx, node, "`matrix`", example);
    if axes_entries.is_empty() {
        if node.is_null() || matches!(node.kind, Kind::Map(_)) {
            ctx.error(
                node.pos,
                "`matrix` is empty",
                format!("write e.g. `{example}`, or remove `matrix`"),
            );
        }
        return None;
    }
    let mut axes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ok = true;
    for entry in axes_entries {
        if !is_env_name(&entry.key) {
            ctx.error(
                entry.key_pos,
                format!("`{}` is not a valid matrix key", shorten(&entry.key)),
                "matrix keys become environment variables: letters, digits and `_` (e.g. `os`)"
                    .to_string(),
            );
            ok = false;
            continue;
        }
        let label = format!("matrix `{}`", entry.key);
        let values = strings(ctx, &entry.value, &label, &entry.key);
        if entry.value.is_null()
            || matches!(&entry.value.kind, Kind::Seq(items) if items.is_empty())
        {
            ctx.error(
                entry.value.pos,
                format!("{label} has no values"),
                format!("write e.g. `{}: [a, b]`", entry.key),
            );
            ok = false;
        }
        let mut kept: Vec<String> = Vec::new();
        for (value, pos) in values {
            if kept.contains(&value) {
                ctx.error(
                    pos,
                    format!("duplicate value `{}` in {label}", shorten(&value)),
                    None,
                );
                ok = false;
            } else {
                kept.push(value);
            }
        }
        if kept.is_empty() {
            ok = false;
        }
        axes.insert(entry.key.clone(), kept);
    }
    if !ok {
        return None;
    }
    let count = axes
        .values()
        .try_fold(1usize, |acc, v| acc.checked_mul(v.len()));
    if count.is_none_or(|c| c > MAX_MATRIX_JOBS) {
        let shown = count.map_or("too many".to_string(), |c| c.to_string());
        ctx.error(
            node.pos,
            format!("`matrix` expands to {shown} jobs; at most {MAX_MATRIX_JOBS} are allowed"),
            "use fewer values, or split the job".to_string(),
        );
        return None;
    }
    let mut combos = vec![BTreeMap::new()];
    for (key, values) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|combo: BTreeMap<String, String>| {
                values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.insert(key.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    Some(combos)
}

fn expansion_name(base: &str, combo: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base} ({})", pairs.join(", "))
}

/// Expands matrices, resolves `needs`, computes effective dependencies and
/// rejects cycles.
fn assemble(
    ctx: &mut Ctx<'_>,
    stage_list: Vec<(String, Option<StageKind>)>,
    raw: Vec<RawJob>,
) -> Option<Pipeline> {
    // Unique names first: everything below looks jobs up by name.
    let mut first_job: HashMap<String, Pos> = HashMap::new();
    let mut unique: Vec<RawJob> = Vec::new();
    for job in raw {
        if let Some(first) = first_job.get(&job.name) {
            ctx.error(
                job.name_pos,
                format!("duplicate job name `{}`", job.name),
                format!(
                    "the first job named `{}` is on line {}; job names must be unique across the pipeline, rename one",
                    job.name, first.line
                ),
            );
            continue;
        }
        first_job.insert(job.name.clone(), job.name_pos);
        unique.push(job);
    }

    // Expand: `expanded[i]` is (raw index, full name, matrix values).
    let mut expanded: Vec<(usize, String, BTreeMap<String, String>)> = Vec::new();
    let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_full: HashMap<String, usize> = HashMap::new();
    for (r, job) in unique.iter().enumerate() {
        let combos = if job.matrix.is_empty() {
            vec![BTreeMap::new()]
        } else {
            job.matrix.clone()
        };
        for combo in combos {
            let full = if combo.is_empty() {
                job.name.clone()
            } else {
                expansion_name(&job.name, &combo)
            };
            if by_full.contains_key(&full) {
                ctx.error(
                    job.name_pos,
                    format!("job name `{full}` is used twice (a matrix expansion is named like this job)"),
                    "rename the job".to_string(),
                );
                continue;
            }
            by_full.insert(full.clone(), expanded.len());
            by_base
                .entry(job.name.as_str())
                .or_default()
                .push(expanded.len());
            expanded.push((r, full, combo));
        }
    }

    if expanded.len() > MAX_JOBS {
        let at = expanded.get(MAX_JOBS).map_or(
            Pos {
                line: 1,
                col: 1,
                len: 1,
            },
            |(r, _, _)| unique[*r].name_pos,
        );
        ctx.error(
            at,
            format!(
                "the pipeline has {} jobs (after matrix expansion); at most {MAX_JOBS} are allowed",
                expanded.len()
            ),
            "split the work into fewer, larger jobs".to_string(),
        );
        return None;
    }

    // Resolve `needs` once per written job.
    let mut base_names: Vec<&str> = unique.iter().map(|j| j.name.as_str()).collect();
    base_names.sort_unstable();
    let mut resolved: Vec<Option<Vec<(usize, Pos)>>> = Vec::new();
    for job in &unique {
        let Some(needs) = &job.needs else {
            resolved.push(None);
            continue;
        };
        let mut targets: Vec<(usize, Pos)> = Vec::new();
        let mut seen: HashSet<usize> = HashSet::new();
        for (name, pos) in needs {
            let found: Vec<usize> = match (by_base.get(name.as_str()), by_full.get(name)) {
                (Some(all), _) => all.clone(),
                (None, Some(one)) => vec![*one],
                (None, None) => {
                    unknown_need(ctx, name, *pos, &base_names);
                    continue;
                }
            };
            for target in found {
                if seen.insert(target) {
                    targets.push((target, *pos));
                }
            }
        }
        resolved.push(Some(targets));
    }

    // Effective dependencies: explicit needs, else the previous non-empty
    // stage's jobs.
    let mut stage_jobs: Vec<Vec<usize>> = vec![Vec::new(); stage_list.len()];
    for (e, (r, _, _)) in expanded.iter().enumerate() {
        if let Some(list) = stage_jobs.get_mut(unique[*r].stage) {
            list.push(e);
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(expanded.len());
    for (r, _, _) in &expanded {
        let job = &unique[*r];
        deps.push(match &resolved[*r] {
            Some(targets) => targets.iter().map(|(t, _)| *t).collect(),
            None => stage_jobs[..job.stage]
                .iter()
                .rev()
                .find(|jobs| !jobs.is_empty())
                .cloned()
                .unwrap_or_default(),
        });
    }

    for cycle in graph::cycles(&deps) {
        report_cycle(ctx, &cycle, &expanded, &unique, &resolved, &stage_list);
    }

    let mut stages: Vec<Stage> = stage_list
        .iter()
        .map(|(name, kind)| Stage {
            name: name.clone(),
            kind: *kind,
            jobs: Vec::new(),
        })
        .collect();
    for (e, (r, full, combo)) in expanded.iter().enumerate() {
        let job = &unique[*r];
        let names = |list: &[usize]| {
            list.iter()
                .map(|&i| expanded[i].1.clone())
                .collect::<Vec<_>>()
        };
        let needs = resolved[*r]
            .as_ref()
            .map(|t| t.iter().map(|(i, _)| expanded[*i].1.clone()).collect());
        let mut env = job.env.clone();
        env.extend(combo.iter().map(|(k, v)| (k.clone(), v.clone())));
        let built = Job {
            name: full.clone(),
            stage: stage_list[job.stage].0.clone(),
            run: job.run.clone(),
            needs: needs.unwrap_or_default(),
            deps: names(&deps[e]),
            env,
            secrets: job.secrets.clone(),
            timeout: job.timeout,
            retries: job.retries,
            artifacts: job.artifacts.clone(),
            allow_failure: job.allow_failure,
            image: job.image.clone(),
            sandbox: job.sandbox,
            runs_on: job.runs_on.clone(),
            when: job.when.clone(),
            matrix: combo.clone(),
        };
        if let Some(stage) = stages.get_mut(job.stage) {
            stage.jobs.push(built);
        }
    }
    Some(Pipeline { stages })
}

fn unknown_need(ctx: &mut Ctx<'_>, name: &str, pos: Pos, base_names: &[&str]) {
    if ctx.is_full() {
        ctx.error(pos, "unknown job in `needs`", None);
        return;
    }
    let message = match nearest(name, base_names.iter().copied()) {
        Some(near) => format!(
            "unknown job `{}` in `needs`; did you mean `{near}`?",
            shorten(name)
        ),
        None => format!("unknown job `{}` in `needs`", shorten(name)),
    };
    let shown: Vec<&str> = base_names.iter().copied().take(12).collect();
    let more = if base_names.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    ctx.error(
        pos,
        message,
        format!(
            "`needs` names jobs of this pipeline: {}{more}",
            list_keys(&shown)
        ),
    );
}

fn report_cycle(
    ctx: &mut Ctx<'_>,
    cycle: &[usize],
    expanded: &[(usize, String, BTreeMap<String, String>)],
    unique: &[RawJob],
    resolved: &[Option<Vec<(usize, Pos)>>],
    stages: &[(String, Option<StageKind>)],
) {
    let Some(&first) = cycle.first() else { return };
    let mut chain: Vec<&str> = cycle.iter().map(|&i| expanded[i].1.as_str()).collect();
    chain.push(expanded[first].1.as_str());
    let next = cycle.get(1).copied().unwrap_or(first);
    let raw = expanded[first].0;
    // Point at the `needs` entry that closes the loop, else at the job.
    let pos = resolved[raw]
        .as_ref()
        .and_then(|targets| targets.iter().find(|(t, _)| *t == next).map(|(_, p)| *p))
        .unwrap_or(unique[raw].name_pos);
    let implicit = cycle.iter().enumerate().find_map(|(k, &i)| {
        let r = expanded[i].0;
        resolved[r].is_none().then(|| {
            let to = cycle[(k + 1) % cycle.len()];
            let stage = unique[expanded[to].0].stage;
            (
                expanded[i].1.as_str(),
                expanded[to].1.as_str(),
                stages[stage].0.as_str(),
            )
        })
    });
    let hint = match implicit {
        Some((job, dep, stage)) => format!(
            "`{job}` has no `needs`, so it waits for every job of the previous stage `{stage}`, including `{dep}`; \
             remove a `needs` entry of this cycle, or give `{job}` its own `needs`"
        ),
        None => {
            "each job waits for the next one in this chain; remove one of these `needs` entries"
                .to_string()
        }
    };
    ctx.error(
        pos,
        format!("cycle in job dependencies: {}", chain.join(" -> ")),
        hint,
    );
}
