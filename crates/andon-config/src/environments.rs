//! `environments:` → targets, rollout strategies, judge and alert rules,
//! and the `after` promotion order.

use std::collections::HashMap;
use std::time::Duration;

use crate::check::{
    Ctx, Table, boolean, choice, entries, env_map, float, integer, list, list_keys, nearest,
    percent, positive_duration, secret_names, string, table,
};
use crate::graph;
use crate::keys;
use crate::model::{
    AlertRules, Approval, CanaryStep, ContainerTarget, Environment, JudgeRules, ProcessTarget,
    PromRule, Strategy, Target,
};
use crate::schedule::{freezes, window};
use crate::tree::{Kind, Node, Pos, shorten};

const STRATEGIES: &str = "`recreate`, `rolling`, `blue-green` or `canary`";

/// An environment's name and `after`, read even when the rest of the
/// environment is invalid, so promotion-order errors are never hidden.
struct Link {
    name: String,
    key_pos: Pos,
    after: Option<(String, Pos)>,
}

pub(crate) fn environments(ctx: &mut Ctx<'_>, node: &Node) -> Vec<Environment> {
    let mut result: Vec<Environment> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    for entry in entries(
        ctx,
        node,
        "`environments`",
        "environments: { staging: { target: ... } }",
    ) {
        if !is_environment_name(&entry.key) {
            ctx.error(
                entry.key_pos,
                format!("`{}` is not a valid environment name", shorten(&entry.key)),
                "use letters, digits, `-`, `_` and `.`, starting with a letter or digit (e.g. `staging`)".to_string(),
            );
        }
        let after = match &entry.value.kind {
            Kind::Map(fields) => {
                fields
                    .iter()
                    .find(|f| f.key == "after")
                    .and_then(|f| match &f.value.kind {
                        Kind::Scalar { text, .. } if !f.value.is_null() => {
                            Some((text.clone(), f.value.pos))
                        }
                        _ => None,
                    })
            }
            _ => None,
        };
        links.push(Link {
            name: entry.key.clone(),
            key_pos: entry.key_pos,
            after,
        });
        if let Some(env) = environment(ctx, &entry.key, &entry.value, entry.key_pos) {
            result.push(env);
        }
    }
    check_after(ctx, &links);
    result
}

fn is_environment_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `after:` must name another environment, and the promotion order must not
/// loop.
fn check_after(ctx: &mut Ctx<'_>, links: &[Link]) {
    let index: HashMap<&str, usize> = links
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); links.len()];
    for (i, link) in links.iter().enumerate() {
        let Some((after, pos)) = &link.after else {
            continue;
        };
        match index.get(after.as_str()) {
            Some(&j) => edges[i].push(j),
            None if ctx.is_full() => ctx.error(*pos, "unknown environment in `after`", None),
            None => {
                let others: Vec<&str> = names.iter().copied().filter(|n| *n != link.name).collect();
                let message = match nearest(after, others.iter().copied()) {
                    Some(near) => format!(
                        "unknown environment `{}` in `after`; did you mean `{near}`?",
                        shorten(after)
                    ),
                    None => format!("unknown environment `{}` in `after`", shorten(after)),
                };
                let hint = if others.is_empty() {
                    "`after` names the environment a release must reach first; there is no other environment".to_string()
                } else {
                    format!("environments in this file: {}", list_keys(&others))
                };
                ctx.error(*pos, message, hint);
            }
        }
    }
    for cycle in graph::cycles(&edges) {
        let Some(&first) = cycle.first() else {
            continue;
        };
        let mut chain: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        chain.push(names[first]);
        let pos = links[first]
            .after
            .as_ref()
            .map_or(links[first].key_pos, |(_, p)| *p);
        ctx.error(
            pos,
            format!("cycle in `after`: {}", chain.join(" -> ")),
            "`after` gives the promotion order (production after staging); the first environment of the chain must have no `after`".to_string(),
        );
    }
}

fn environment(ctx: &mut Ctx<'_>, name: &str, node: &Node, key_pos: Pos) -> Option<Environment> {
    let owner = format!("environment `{name}`");
    if node.is_null() {
        ctx.error(
            key_pos,
            format!("{owner} is empty"),
            "add at least `target:`, e.g. `target: { process: { command: ./app } }`".to_string(),
        );
        return None;
    }
    let t = table(ctx, node, &format!("`{name}`"), &keys::ENVIRONMENT)?.at(key_pos);
    let after = t.get("after").and_then(|n| string(ctx, n, "`after`"));
    let target = t
        .required(
            ctx,
            "target",
            &owner,
            "target: { process: { command: ./app --port $PORT } }",
        )
        .and_then(|n| target(ctx, n));
    let strategy = match t.get("strategy") {
        Some(n) => strategy(ctx, n),
        None => Some(Strategy::Recreate),
    };
    let judge = t.get("judge").map(|n| judge(ctx, n));
    let rollback_window = opt(&t, "rollback_window", |n| {
        positive_duration(ctx, n, "`rollback_window`")
    });
    let approval = t.get("approval").and_then(|n| {
        choice(
            ctx,
            n,
            "approval",
            &[("auto", Approval::Auto), ("manual", Approval::Manual)],
        )
    });
    let window = t.get("window").map(|n| window(ctx, n));
    let freezes = t
        .get("freezes")
        .map(|n| freezes(ctx, n))
        .unwrap_or_default();
    let ttl = t
        .get("ttl")
        .and_then(|n| positive_duration(ctx, n, "`ttl`"));
    let host = t.get("host").and_then(|n| host(ctx, n));
    let alerts = t.get("alerts").map(|n| alerts(ctx, n));
    let traffic = match t.get("traffic") {
        Some(n) => crate::traffic::traffic(ctx, n),
        None => Some(crate::model::Traffic::Router),
    };
    if let Some(traffic) = &traffic {
        crate::traffic::check_judge(ctx, traffic, t.get("judge"));
    }
    Some(Environment {
        name: name.to_string(),
        after,
        target: target?,
        strategy: strategy?,
        judge: judge.unwrap_or(Some(None))?,
        rollback_window: rollback_window.unwrap_or(Some(Duration::from_secs(30 * 60)))?,
        approval: approval.unwrap_or(Approval::Auto),
        window: window.unwrap_or(Some(None))?,
        freezes,
        ttl,
        host,
        alerts: alerts.unwrap_or(Some(None))?,
        traffic: traffic?,
    })
}

/// `None` = key absent (use the default), `Some(None)` = an error was
/// recorded, `Some(Some(v))` = a value.
fn opt<T>(t: &Table<'_>, key: &str, convert: impl FnOnce(&Node) -> Option<T>) -> Option<Option<T>> {
    t.get(key).map(convert)
}

fn host(ctx: &mut Ctx<'_>, node: &Node) -> Option<String> {
    let host = string(ctx, node, "`host`")?;
    if host.contains("://") || host.contains('/') || host.contains(char::is_whitespace) {
        ctx.error(
            node.pos,
            format!("`{}` is not a host name", shorten(&host)),
            "write only the host name the router answers to, e.g. `shop.example.com` (no scheme, no path)".to_string(),
        );
        return None;
    }
    Some(host)
}

fn target(ctx: &mut Ctx<'_>, node: &Node) -> Option<Target> {
    let t = table(ctx, node, "`target`", &keys::TARGET)?;
    match (t.get("process"), t.get("container")) {
        (Some(_), Some(_)) => {
            ctx.error(
                t.pos,
                "`target` has both `process` and `container`",
                "an environment runs one kind of target; keep one of them".to_string(),
            );
            None
        }
        (Some(n), None) => process(ctx, n).map(Target::Process),
        (None, Some(n)) => container(ctx, n).map(Target::Container),
        // Unknown keys were reported already; this would only repeat them.
        (None, None) if t.len() > 0 => None,
        (None, None) => {
            ctx.error(
                t.pos,
                "`target` needs `process` or `container`",
                "write e.g. `target: { process: { command: ./app --port $PORT } }`".to_string(),
            );
            None
        }
    }
}

fn instances(ctx: &mut Ctx<'_>, t: &Table<'_>) -> Option<u32> {
    match t.get("instances") {
        None => Some(1),
        Some(n) => integer(ctx, n, "`instances`", 1, 1000).and_then(|v| u32::try_from(v).ok()),
    }
}

fn health(ctx: &mut Ctx<'_>, t: &Table<'_>) -> Option<Option<String>> {
    let Some(n) = t.get("health") else {
        return Some(None);
    };
    let path = string(ctx, n, "`health`")?;
    if !path.starts_with('/') {
        ctx.error(
            n.pos,
            format!(
                "`health` must be an HTTP path starting with `/`, got `{}`",
                shorten(&path)
            ),
            "write e.g. `health: /healthz`".to_string(),
        );
        return None;
    }
    Some(Some(path))
}

fn process(ctx: &mut Ctx<'_>, node: &Node) -> Option<ProcessTarget> {
    let t = table(ctx, node, "`process`", &keys::PROCESS)?;
    let command = t
        .required(ctx, "command", "`process`", "command: ./app --port $PORT")
        .and_then(|n| string(ctx, n, "`command`"));
    let instances = instances(ctx, &t);
    let health = health(ctx, &t);
    let env = t
        .get("env")
        .map(|n| env_map(ctx, n, "`env`"))
        .unwrap_or_default();
    let secrets = t
        .get("secrets")
        .map(|n| secret_names(ctx, n, "`secrets`"))
        .unwrap_or_default();
    let ready_timeout = match t.get("ready_timeout") {
        None => Some(Duration::from_secs(30)),
        Some(n) => positive_duration(ctx, n, "`ready_timeout`"),
    };
    Some(ProcessTarget {
        command: command?,
        instances: instances?,
        health: health?,
        env,
        secrets,
        ready_timeout: ready_timeout?,
    })
}

fn container(ctx: &mut Ctx<'_>, node: &Node) -> Option<ContainerTarget> {
    let t = table(ctx, node, "`container`", &keys::CONTAINER)?;
    let image = t
        .required(
            ctx,
            "image",
            "`container`",
            "image: registry.example.com/shop:latest",
        )
        .and_then(|n| string(ctx, n, "`image`"));
    let instances = instances(ctx, &t);
    let health = health(ctx, &t);
    let env = t
        .get("env")
        .map(|n| env_map(ctx, n, "`env`"))
        .unwrap_or_default();
    let port = t
        .required(ctx, "port", "`container`", "port: 8080")
        .and_then(|n| integer(ctx, n, "`port`", 1, 65535))
        .and_then(|p| u16::try_from(p).ok());
    Some(ContainerTarget {
        image: image?,
        instances: instances?,
        health: health?,
        env,
        port: port?,
    })
}

/// `strategy: canary` or `strategy: { canary: { steps: [...] } }`.
fn strategy(ctx: &mut Ctx<'_>, node: &Node) -> Option<Strategy> {
    let names = keys::STRATEGY.keys;
    match &node.kind {
        Kind::Scalar { text, .. } if !node.is_null() => match text.trim() {
            "recreate" => Some(Strategy::Recreate),
            "rolling" => Some(Strategy::Rolling { max_unavailable: 1 }),
            "blue-green" => Some(Strategy::BlueGreen { smoke_for: None }),
            "canary" => Some(Strategy::Canary {
                steps: Strategy::default_canary_steps(),
            }),
            other => {
                unknown_strategy(ctx, node.pos, other, names);
                None
            }
        },
        Kind::Map(entries) => {
            let Some(entry) = entries.first() else {
                ctx.error(
                    node.pos,
                    "`strategy` is empty",
                    format!("write one of {STRATEGIES}"),
                );
                return None;
            };
            let mut known = true;
            for e in entries.iter().filter(|e| !names.contains(&e.key.as_str())) {
                unknown_strategy(ctx, e.key_pos, &e.key, names);
                known = false;
            }
            if !known {
                return None;
            }
            if entries.len() > 1 {
                ctx.error(
                    node.pos,
                    "`strategy` names more than one strategy",
                    format!("keep one of {STRATEGIES}"),
                );
                return None;
            }
            let settings = &entry.value;
            match entry.key.as_str() {
                "recreate" => {
                    if !settings.is_null() {
                        table(ctx, settings, "`recreate`", &keys::RECREATE)?;
                    }
                    Some(Strategy::Recreate)
                }
                "rolling" => {
                    let mut max_unavailable = Some(1);
                    if !settings.is_null() {
                        let t = table(ctx, settings, "`rolling`", &keys::ROLLING)?;
                        if let Some(n) = t.get("max_unavailable") {
                            max_unavailable = integer(ctx, n, "`max_unavailable`", 1, 1000)
                                .and_then(|v| u32::try_from(v).ok());
                        }
                    }
                    Some(Strategy::Rolling {
                        max_unavailable: max_unavailable?,
                    })
                }
                "blue-green" => {
                    let mut smoke_for = Some(None);
                    if !settings.is_null() {
                        let t = table(ctx, settings, "`blue-green`", &keys::BLUE_GREEN)?;
                        if let Some(n) = t.get("smoke_for") {
                            smoke_for = positive_duration(ctx, n, "`smoke_for`").map(Some);
                        }
                    }
                    Some(Strategy::BlueGreen {
                        smoke_for: smoke_for?,
                    })
                }
                "canary" => {
                    if settings.is_null() {
                        return Some(Strategy::Canary {
                            steps: Strategy::default_canary_steps(),
                        });
                    }
                    let t = table(ctx, settings, "`canary`", &keys::CANARY)?;
                    match t.get("steps") {
                        None => Some(Strategy::Canary {
                            steps: Strategy::default_canary_steps(),
                        }),
                        Some(n) => canary_steps(ctx, n).map(|steps| Strategy::Canary { steps }),
                    }
                }
                // Unknown names were reported above.
                _ => None,
            }
        }
        _ => {
            ctx.error(
                node.pos,
                format!("wrong type for `strategy`: expected a name or a mapping, got {}", node.describe()),
                format!("write one of {STRATEGIES}, or e.g. `strategy: {{ canary: {{ steps: [...] }} }}`"),
            );
            None
        }
    }
}

fn unknown_strategy(ctx: &mut Ctx<'_>, pos: Pos, name: &str, names: &[&str]) {
    let message = match nearest(name, names.iter().copied()) {
        Some(near) => format!(
            "unknown strategy `{}`; did you mean `{near}`?",
            shorten(name)
        ),
        None => format!("unknown strategy `{}`", shorten(name)),
    };
    ctx.error(
        pos,
        message,
        format!("valid strategies: {}", list_keys(names)),
    );
}

fn canary_steps(ctx: &mut Ctx<'_>, node: &Node) -> Option<Vec<CanaryStep>> {
    let items = list(ctx, node, "`steps`", "steps")?;
    if items.is_empty() {
        ctx.error(
            node.pos,
            "`steps` is empty",
            "write e.g. `steps: [{ weight: 10, for: 1m }, { weight: 100 }]`".to_string(),
        );
        return None;
    }
    let mut steps: Vec<CanaryStep> = Vec::new();
    let mut ok = true;
    let mut previous: Option<u8> = None;
    for item in items {
        let Some(t) = table(ctx, item, "a canary step", &keys::CANARY_STEP) else {
            ok = false;
            continue;
        };
        let weight_node = t.required(ctx, "weight", "a canary step", "weight: 10");
        let weight = weight_node.and_then(|n| weight(ctx, n));
        let for_ = match t.get("for") {
            None => Some(None),
            Some(n) => positive_duration(ctx, n, "`for`").map(Some),
        };
        let pause = match t.get("pause") {
            None => Some(false),
            Some(n) => boolean(ctx, n, "`pause`"),
        };
        if let (Some(w), Some(p), Some(n)) = (weight, previous, weight_node)
            && w <= p
        {
            ctx.error(
                n.pos,
                format!("canary weights must increase: {w}% comes after {p}%"),
                "list the steps from the smallest traffic share to the largest, e.g. 5, 25, 100"
                    .to_string(),
            );
            ok = false;
        }
        if let Some(w) = weight {
            previous = Some(w);
        }
        match (weight, for_, pause) {
            (Some(weight), Some(for_), Some(pause)) => steps.push(CanaryStep {
                weight,
                for_,
                pause,
            }),
            _ => ok = false,
        }
    }
    if !ok {
        return None;
    }
    // As in Argo Rollouts: after the last step, all traffic moves over.
    if steps.last().is_some_and(|s| s.weight < 100) {
        steps.push(CanaryStep {
            weight: 100,
            for_: None,
            pause: false,
        });
    }
    Some(steps)
}

/// `5`, `5%` → 5. Zero is rejected: a step without traffic judges nothing.
fn weight(ctx: &mut Ctx<'_>, node: &Node) -> Option<u8> {
    let Kind::Scalar { text, .. } = &node.kind else {
        ctx.error(
            node.pos,
            format!(
                "wrong type for `weight`: expected a percentage, got {}",
                node.describe()
            ),
            None,
        );
        return None;
    };
    let digits = text.trim().trim_end_matches('%').trim();
    match digits.parse::<u64>() {
        Ok(w) if (1..=100).contains(&w) => u8::try_from(w).ok(),
        Ok(w) if w > 100 => {
            ctx.error(
                node.pos,
                format!("canary weight {w}% is above 100%"),
                "a weight is the share of traffic on the new version, from 1 to 100".to_string(),
            );
            None
        }
        _ => {
            ctx.error(
                node.pos,
                format!("bad canary weight `{}`", shorten(text)),
                "a weight is a whole percentage from 1 to 100, e.g. `weight: 25`".to_string(),
            );
            None
        }
    }
}

fn judge(ctx: &mut Ctx<'_>, node: &Node) -> Option<Option<JudgeRules>> {
    let t = table(ctx, node, "`judge`", &keys::JUDGE)?;
    let max_error_rate = opt(&t, "max_error_rate", |n| {
        percent(ctx, n, "`max_error_rate`")
    });
    let max_p99 = opt(&t, "max_p99", |n| positive_duration(ctx, n, "`max_p99`"));
    let compare_to_baseline = opt(&t, "compare_to_baseline", |n| {
        boolean(ctx, n, "`compare_to_baseline`")
    });
    let alpha = opt(&t, "alpha", |n| {
        let value = float(ctx, n, "`alpha`")?;
        if value > 0.0 && value <= 0.5 {
            Some(value)
        } else {
            ctx.error(
                n.pos,
                format!("`alpha` must be in (0, 0.5], got {value}"),
                "alpha bounds the chance of a false rollback; 0.01 or 0.05 are usual".to_string(),
            );
            None
        }
    });
    let smoke = opt(&t, "smoke", |n| string(ctx, n, "`smoke`"));
    let min_requests = opt(&t, "min_requests", |n| {
        integer(ctx, n, "`min_requests`", 1, u64::from(u32::MAX))
    });
    let prometheus = t.get("prometheus").map(|n| prom_rules(ctx, n));
    let prometheus_url = opt(&t, "prometheus_url", |n| prom_url(ctx, n));
    if let (Some(n), None) = (t.get("prometheus"), t.get("prometheus_url"))
        && matches!(prometheus, Some(Some(ref rules)) if !rules.is_empty())
    {
        ctx.error(
            n.pos,
            "`prometheus` rules need `prometheus_url`",
            "add e.g. `prometheus_url: http://127.0.0.1:9090` to `judge`".to_string(),
        );
    }
    Some(Some(JudgeRules {
        max_error_rate: max_error_rate.map_or(Some(None), |v| v.map(Some))?,
        max_p99: max_p99.map_or(Some(None), |v| v.map(Some))?,
        compare_to_baseline: compare_to_baseline.unwrap_or(Some(true))?,
        alpha: alpha.unwrap_or(Some(0.01))?,
        smoke: smoke.map_or(Some(None), |v| v.map(Some))?,
        min_requests: min_requests.unwrap_or(Some(100))?,
        prometheus: prometheus.unwrap_or(Some(Vec::new()))?,
        prometheus_url: prometheus_url.map_or(Some(None), |v| v.map(Some))?,
    }))
}

/// `http://host:port[/prefix]`: where the instant-query API is asked.
fn prom_url(ctx: &mut Ctx<'_>, node: &Node) -> Option<String> {
    let url = string(ctx, node, "`prometheus_url`")?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) => {
            Some(url.trim_end_matches('/').to_string())
        }
        _ => {
            ctx.error(
                node.pos,
                format!("`{}` is not a Prometheus URL", shorten(&url)),
                "write the server's base URL, e.g. `http://127.0.0.1:9090`".to_string(),
            );
            None
        }
    }
}

fn prom_rules(ctx: &mut Ctx<'_>, node: &Node) -> Option<Vec<PromRule>> {
    let items = list(ctx, node, "`prometheus`", "prometheus")?;
    let mut rules = Vec::new();
    let mut ok = true;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items {
        let Some(t) = table(ctx, item, "a prometheus rule", &keys::PROM_RULE) else {
            ok = false;
            continue;
        };
        let name_node = t.required(ctx, "name", "a prometheus rule", "name: queue-depth");
        let name = name_node.and_then(|n| string(ctx, n, "the rule name"));
        let query = t
            .required(
                ctx,
                "query",
                "a prometheus rule",
                "query: sum(rate(errors_total[1m]))",
            )
            .and_then(|n| string(ctx, n, "`query`"));
        let max = t
            .required(ctx, "max", "a prometheus rule", "max: 10")
            .and_then(|n| float(ctx, n, "`max`"));
        let for_ = match t.get("for") {
            None => Some(Duration::ZERO),
            Some(n) => positive_duration(ctx, n, "`for`"),
        };
        if let (Some(name), Some(n)) = (&name, name_node) {
            if let Some(line) = seen.get(name) {
                ctx.error(
                    n.pos,
                    format!("duplicate prometheus rule name `{name}`"),
                    format!("the first is on line {line}; rename one"),
                );
                ok = false;
            } else {
                seen.insert(name.clone(), n.pos.line);
            }
        }
        match (name, query, max, for_) {
            (Some(name), Some(query), Some(max), Some(for_)) => rules.push(PromRule {
                name,
                query,
                max,
                for_,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(rules)
}

fn alerts(ctx: &mut Ctx<'_>, node: &Node) -> Option<Option<AlertRules>> {
    let t = table(ctx, node, "`alerts`", &keys::ALERTS)?;
    let max_error_rate = opt(&t, "max_error_rate", |n| {
        percent(ctx, n, "`max_error_rate`")
    });
    let max_p99 = opt(&t, "max_p99", |n| positive_duration(ctx, n, "`max_p99`"));
    let for_ = opt(&t, "for", |n| positive_duration(ctx, n, "`for`"));
    if max_error_rate.is_none() && max_p99.is_none() {
        ctx.error(
            t.pos,
            "`alerts` has no threshold",
            "add `max_error_rate: 5%` and/or `max_p99: 500ms`, or remove `alerts`".to_string(),
        );
        return None;
    }
    Some(Some(AlertRules {
        max_error_rate: max_error_rate.map_or(Some(None), |v| v.map(Some))?,
        max_p99: max_p99.map_or(Some(None), |v| v.map(Some))?,
        for_: for_.unwrap_or(Some(Duration::from_secs(60)))?,
    }))
}
