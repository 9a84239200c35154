//! `traffic:` → what steers an environment's traffic (Andon's router, or a
//! team's HAProxy), and the judge rules that only the router can serve.

use std::path::PathBuf;

use crate::check::{Ctx, nearest, string, table};
use crate::keys;
use crate::model::{HaproxyTraffic, Traffic};
use crate::tree::{Kind, Node, shorten};

const EXAMPLE: &str = "traffic: { haproxy: { socket: /run/haproxy/admin.sock, backend: app } }";

/// `traffic: router`, `traffic: { router: {} }` or
/// `traffic: { haproxy: { socket: PATH, backend: NAME } }`.
pub(crate) fn traffic(ctx: &mut Ctx<'_>, node: &Node) -> Option<Traffic> {
    if let Kind::Scalar { text, .. } = &node.kind
        && !node.is_null()
    {
        return match text.trim() {
            "router" => Some(Traffic::Router),
            "haproxy" => {
                ctx.error(
                    node.pos,
                    "`traffic: haproxy` needs its stats socket and backend",
                    format!("write `{EXAMPLE}`"),
                );
                None
            }
            other => {
                let message = match nearest(other, keys::TRAFFIC.keys.iter().copied()) {
                    Some(near) => format!(
                        "unknown traffic driver `{}`; did you mean `{near}`?",
                        shorten(other)
                    ),
                    None => format!("unknown traffic driver `{}`", shorten(other)),
                };
                ctx.error(
                    node.pos,
                    message,
                    "valid drivers: `router` (the default), `haproxy`".to_string(),
                );
                None
            }
        };
    }
    let t = table(ctx, node, "`traffic`", &keys::TRAFFIC)?;
    match (t.get("router"), t.get("haproxy")) {
        (Some(_), Some(_)) => {
            ctx.error(
                t.pos,
                "`traffic` names both `router` and `haproxy`",
                "an environment's traffic goes through one of them; keep one".to_string(),
            );
            None
        }
        (Some(_), None) => Some(Traffic::Router),
        (None, Some(n)) => haproxy(ctx, n).map(Traffic::Haproxy),
        // Unknown keys were reported already.
        (None, None) if t.len() > 0 => None,
        (None, None) => {
            ctx.error(
                t.pos,
                "`traffic` is empty",
                format!("remove it to use Andon's router, or write `{EXAMPLE}`"),
            );
            None
        }
    }
}

fn haproxy(ctx: &mut Ctx<'_>, node: &Node) -> Option<HaproxyTraffic> {
    let t = table(ctx, node, "`haproxy`", &keys::HAPROXY)?;
    let socket = t
        .required(
            ctx,
            "socket",
            "`haproxy`",
            "socket: /run/haproxy/admin.sock",
        )
        .and_then(|n| {
            let path = string(ctx, n, "`socket`")?;
            if path.starts_with('/') {
                Some(PathBuf::from(path))
            } else {
                ctx.error(
                    n.pos,
                    format!(
                        "`socket` must be an absolute path, got `{}`",
                        shorten(&path)
                    ),
                    "the Unix stats socket declared in haproxy.cfg with `stats socket PATH level admin`".to_string(),
                );
                None
            }
        });
    let backend = t
        .required(ctx, "backend", "`haproxy`", "backend: app")
        .and_then(|n| {
            let name = string(ctx, n, "`backend`")?;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if valid {
                Some(name)
            } else {
                ctx.error(
                    n.pos,
                    format!("`{}` is not an HAProxy backend name", shorten(&name)),
                    "use the name of a `backend` section of haproxy.cfg (letters, digits, `-`, `_`, `.`, `:`)".to_string(),
                );
                None
            }
        });
    Some(HaproxyTraffic {
        socket: socket?,
        backend: backend?,
    })
}

/// HAProxy reports per-server averages, not a latency histogram, so a
/// `max_p99` could never be judged there: refuse it rather than let it
/// pass silently, and point at a Prometheus rule instead.
pub(crate) fn check_judge(ctx: &mut Ctx<'_>, traffic: &Traffic, judge: Option<&Node>) {
    if !matches!(traffic, Traffic::Haproxy(_)) {
        return;
    }
    let Some(Kind::Map(fields)) = judge.map(|n| &n.kind) else {
        return;
    };
    if let Some(f) = fields.iter().find(|f| f.key == "max_p99") {
        ctx.error(
            f.key_pos,
            "`max_p99` cannot be judged on HAProxy traffic",
            "HAProxy keeps latency averages, not a histogram; judge latency with a `prometheus` rule, e.g. `histogram_quantile(0.99, ...) `".to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{HaproxyTraffic, Traffic};

    fn env(extra: &str) -> String {
        format!(
            "pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: j\n          run: 'true'\nenvironments:\n  prod:\n    target: {{ process: {{ command: ./app }} }}\n{extra}"
        )
    }

    fn errors(extra: &str) -> String {
        match crate::parse("andon.yaml", &env(extra)) {
            Ok(_) => String::new(),
            Err(d) => {
                d.0.iter()
                    .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    #[test]
    fn the_router_is_the_default_and_haproxy_is_read() {
        let cfg = crate::parse("andon.yaml", &env("")).unwrap();
        assert_eq!(cfg.environments[0].traffic, Traffic::Router);
        let cfg = crate::parse(
            "andon.yaml",
            &env("    traffic: { haproxy: { socket: /run/haproxy.sock, backend: app } }\n"),
        )
        .unwrap();
        assert_eq!(
            cfg.environments[0].traffic,
            Traffic::Haproxy(HaproxyTraffic {
                socket: "/run/haproxy.sock".into(),
                backend: "app".into()
            })
        );
        let cfg = crate::parse("andon.yaml", &env("    traffic: router\n")).unwrap();
        assert_eq!(cfg.environments[0].traffic, Traffic::Router);
    }

    #[test]
    fn bad_traffic_is_reported_with_its_position() {
        assert_eq!(
            errors("    traffic: haprxy\n"),
            "andon.yaml:10:14: unknown traffic driver `haprxy`; did you mean `haproxy`?"
        );
        assert_eq!(
            errors("    traffic: { haproxy: { socket: run/h.sock, backend: app } }\n"),
            "andon.yaml:10:35: `socket` must be an absolute path, got `run/h.sock`"
        );
        assert_eq!(
            errors("    traffic:\n      haproxy:\n        socket: /run/h.sock\n"),
            "andon.yaml:12:9: missing required key `backend` in `haproxy`"
        );
        assert_eq!(
            errors(
                "    traffic: { haproxy: { socket: /h.sock, backend: app } }\n    judge:\n      max_p99: 300ms\n"
            ),
            "andon.yaml:12:7: `max_p99` cannot be judged on HAProxy traffic"
        );
    }

    #[test]
    fn prometheus_rules_need_a_url_and_take_a_duration() {
        let rules =
            "    judge:\n      prometheus:\n        - { name: e, query: up, max: 1, for: 3s }\n";
        assert_eq!(
            errors(rules),
            "andon.yaml:12:9: `prometheus` rules need `prometheus_url`"
        );
        let ok = format!("{rules}      prometheus_url: http://127.0.0.1:9090/\n");
        let cfg = crate::parse("andon.yaml", &env(&ok)).unwrap();
        let judge = cfg.environments[0].judge.clone().unwrap();
        assert_eq!(
            judge.prometheus_url.as_deref(),
            Some("http://127.0.0.1:9090")
        );
        assert_eq!(judge.prometheus[0].for_, std::time::Duration::from_secs(3));
        assert_eq!(
            errors(&format!("{rules}      prometheus_url: 127.0.0.1:9090\n")),
            "andon.yaml:13:23: `127.0.0.1:9090` is not a Prometheus URL"
        );
    }
}
