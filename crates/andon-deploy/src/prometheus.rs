//! The judge's Prometheus rules: PromQL instant queries asked during a
//! canary's steps, failing the release when one stays above its `max` for
//! its `for`.
//!
//! A query that cannot be answered (Prometheus down, a bad query, no data,
//! `NaN`) proves nothing either way: the rule is *inconclusive*. That is
//! never silent: a `judge_verdict` event with outcome `inconclusive` says
//! why (once per change, and a warning in the log at every failed ask), and
//! a step that ends while a rule is inconclusive pauses the release for a
//! person to resume, promote or abort (as Argo Rollouts does for an
//! inconclusive analysis).

use std::time::Duration;

use andon_config::{JudgeRules, PromRule};
use andon_core::Event;
use tokio::time::Instant;

use crate::release::{Halt, Release};

/// Rules are asked at most this often (Prometheus scrapes every few
/// seconds at best; asking more often only loads it).
const EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one ask gave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading {
    Value(f64),
    /// Why the rule could not be read.
    Inconclusive(String),
}

struct RuleState {
    rule: PromRule,
    /// The query with `$version`, `$stable`, `$environment`, `$project` set.
    query: String,
    over_since: Option<Instant>,
    inconclusive: bool,
}

/// The rules of one release and what they have shown.
pub(crate) struct PromWatch {
    url: String,
    rules: Vec<RuleState>,
    last_ask: Option<Instant>,
}

/// The query as sent: placeholders replaced by this release's values.
pub(crate) fn substitute(query: &str, vars: &[(&str, &str)]) -> String {
    let mut q = query.to_string();
    for (name, value) in vars {
        q = q.replace(&format!("${name}"), value);
    }
    q
}

impl PromWatch {
    /// `None` when there are no rules. `vars`: placeholder name → value.
    pub(crate) fn new(rules: &JudgeRules, vars: &[(&str, &str)]) -> Option<Self> {
        if rules.prometheus.is_empty() {
            return None;
        }
        Some(PromWatch {
            url: rules.prometheus_url.clone().unwrap_or_default(),
            rules: rules
                .prometheus
                .iter()
                .map(|r| RuleState {
                    query: substitute(&r.query, vars),
                    rule: r.clone(),
                    over_since: None,
                    inconclusive: false,
                })
                .collect(),
            last_ask: None,
        })
    }

    /// Whether some rule's last ask gave no answer.
    pub(crate) fn inconclusive(&self) -> bool {
        self.rules.iter().any(|r| r.inconclusive)
    }

    /// Asks every rule (at most once per [`EVERY`]); `Err` with the verdict
    /// sentence when one has been above its `max` for its `for`.
    pub(crate) async fn look(&mut self, rel: &Release) -> Result<(), Halt> {
        let now = Instant::now();
        if self.last_ask.is_some_and(|t| now - t < EVERY) {
            return Ok(());
        }
        self.last_ask = Some(now);
        for r in &mut self.rules {
            let reading = query(&rel.inner.ctx.http, &self.url, &r.query).await;
            let emit = |outcome: &str, sentence: &str| {
                rel.emit(Event::JudgeVerdict {
                    environment: rel.slot.environment.clone(),
                    deploy_id: rel.req.deploy_id,
                    outcome: outcome.to_string(),
                    sentence: sentence.to_string(),
                });
            };
            match reading {
                Reading::Inconclusive(why) => {
                    tracing::warn!(rule = %r.rule.name, url = %self.url, %why, "prometheus rule inconclusive");
                    if !r.inconclusive {
                        r.inconclusive = true;
                        emit(
                            "inconclusive",
                            &format!("prometheus rule `{}` is inconclusive: {why}", r.rule.name),
                        );
                    }
                }
                Reading::Value(v) => {
                    r.inconclusive = false;
                    if v <= r.rule.max {
                        r.over_since = None;
                        continue;
                    }
                    let since = *r.over_since.get_or_insert(now);
                    let held = now - since;
                    if held >= r.rule.for_ {
                        let sentence = fail_sentence(&r.rule, v, held);
                        emit("fail", &sentence);
                        return Err(Halt::Judge(sentence));
                    }
                }
            }
        }
        Ok(())
    }
}

/// "prometheus rule `error-ratio` returned 0.31 for 3 s, above its max
/// 0.05 (query: ...)".
fn fail_sentence(rule: &PromRule, value: f64, held: Duration) -> String {
    let during = if rule.for_.is_zero() {
        String::new()
    } else {
        let whole = Duration::from_secs(held.max(rule.for_).as_secs().max(1));
        format!(" for {}", andon_config::format_duration(whole))
    };
    format!(
        "prometheus rule `{}` returned {}{during}, above its max {} (query: {})",
        rule.name,
        number(value),
        number(rule.max),
        rule.query
    )
}

fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// One instant query (`GET /api/v1/query`). Several series: the largest
/// counts (the rule bounds the worst of them).
pub(crate) async fn query(http: &reqwest::Client, base: &str, q: &str) -> Reading {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let resp = match http
        .get(&url)
        .query(&[("query", q)])
        .timeout(QUERY_TIMEOUT)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Reading::Inconclusive(format!(
                "cannot ask Prometheus at {base}: {}",
                crate::error::chain(&e)
            ));
        }
    };
    let status = resp.status();
    match resp.json::<serde_json::Value>().await {
        Ok(body) => parse(&body),
        Err(e) => Reading::Inconclusive(format!(
            "Prometheus at {base} answered {status} without JSON: {e}"
        )),
    }
}

/// Reads an instant-query answer.
pub(crate) fn parse(body: &serde_json::Value) -> Reading {
    if body["status"] != "success" {
        let why = body["error"].as_str().unwrap_or("no reason given");
        return Reading::Inconclusive(format!("Prometheus refused the query: {why}"));
    }
    let data = &body["data"];
    let sample = |pair: &serde_json::Value| {
        pair.get(1)
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let values: Vec<f64> = match data["resultType"].as_str() {
        Some("scalar") => sample(&data["result"]).into_iter().collect(),
        Some("vector") => data["result"]
            .as_array()
            .map(|series| series.iter().filter_map(|s| sample(&s["value"])).collect())
            .unwrap_or_default(),
        other => {
            return Reading::Inconclusive(format!(
                "the query returned a {}, not a number (use an instant vector or a scalar)",
                other.unwrap_or("nothing")
            ));
        }
    };
    let values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
    match values.into_iter().reduce(f64::max) {
        Some(v) => Reading::Value(v),
        None => Reading::Inconclusive(
            "the query returned no data (write `... or vector(0)` if none means zero)".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_read_as_the_largest_number_or_inconclusive() {
        let vector = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"1"},"value":[1.0,"0.25"]},{"metric":{"a":"2"},"value":[1.0,"0.5"]}]}});
        assert_eq!(parse(&vector), Reading::Value(0.5));
        let scalar =
            json!({"status":"success","data":{"resultType":"scalar","result":[1.0,"+Inf"]}});
        assert_eq!(parse(&scalar), Reading::Value(f64::INFINITY));
        let nan = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1.0,"NaN"]}]}});
        assert!(matches!(parse(&nan), Reading::Inconclusive(w) if w.contains("no data")));
        let bad = json!({"status":"error","errorType":"bad_data","error":"parse error"});
        assert!(matches!(parse(&bad), Reading::Inconclusive(w) if w.contains("parse error")));
        let matrix = json!({"status":"success","data":{"resultType":"matrix","result":[]}});
        assert!(matches!(parse(&matrix), Reading::Inconclusive(w) if w.contains("matrix")));
    }

    #[test]
    fn placeholders_are_replaced_and_sentences_name_the_rule() {
        let q = substitute(
            r#"sum(rate(x{version="$version",service="$project/$environment"}[1m]))"#,
            &[
                ("version", "sha256:ab"),
                ("environment", "production"),
                ("project", "shop"),
            ],
        );
        assert_eq!(
            q,
            r#"sum(rate(x{version="sha256:ab",service="shop/production"}[1m]))"#
        );
        let rule = PromRule {
            name: "errors".into(),
            query: "q".into(),
            max: 0.05,
            for_: Duration::from_secs(3),
        };
        assert_eq!(
            fail_sentence(&rule, 0.3125, Duration::from_secs(4)),
            "prometheus rule `errors` returned 0.3125 for 4s, above its max 0.05 (query: q)"
        );
    }
}
