//! Canary: weighted steps, judged live against a baseline.
//!
//! The baseline is fresh instances of the STABLE version, started with the
//! canary and given the same weight: canary and baseline are then the same
//! age, on the same kind of traffic, so what the judge compares is the
//! release and not "new process vs warmed-up process" (Argo Rollouts #532;
//! Kayenta does the same). The rest of the traffic stays on the stable
//! instances, which are never scaled down: a rollback is one route update.
//!
//! Layout of the router's service, oldest first: `stable`, `baseline`,
//! `canary`. The router gives the low buckets to the last listed, so the
//! canary owns buckets `[0, w)`, and sticky users keep it as `w` grows.

use std::time::Duration;

use andon_config::{CanaryStep, JudgeRules};
use andon_core::Event;
use andon_judge::{Judge, JudgeConfig, Outcome, VersionStats};
use tokio::time::Instant;

use crate::env::EnvState;
use crate::groups::role;
use crate::prometheus::PromWatch;
use crate::release::{Halt, Held, Release, first};
use crate::routes::{BASELINE, CANARY, STABLE};

pub(crate) fn judge_config(r: &JudgeRules) -> JudgeConfig {
    JudgeConfig {
        alpha: r.alpha,
        max_error_rate: r.max_error_rate,
        max_p99: r.max_p99,
        compare_to_baseline: r.compare_to_baseline,
        min_requests: r.min_requests,
    }
}

fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Pending => "pending",
    }
}

/// `a - b`, counter by counter: counts since the release started, even if
/// the router still had counters for the same role and version from an
/// earlier attempt at the same release.
fn minus(a: &VersionStats, b: &VersionStats) -> VersionStats {
    let mut buckets = [0u64; 14];
    for (i, slot) in buckets.iter_mut().enumerate() {
        *slot = a.latency_buckets[i].saturating_sub(b.latency_buckets[i]);
    }
    VersionStats {
        requests: a.requests.saturating_sub(b.requests),
        errors: a.errors.saturating_sub(b.errors),
        latency_buckets: buckets,
    }
}

/// Instances for a weight: the share of the environment's count, at least one.
fn instances_for(n: usize, weight: u8) -> usize {
    (n * usize::from(weight)).div_ceil(100).clamp(1, n)
}

/// Weights of (stable, baseline, canary) for a canary weight.
fn layout(weight: u8, baseline: bool) -> (u32, u32, u32) {
    let w = u32::from(weight.min(100));
    let b = if baseline { w.min(100 - w) } else { 0 };
    (100 - w - b, b, w)
}

/// The judge and what it has seen.
struct Watch {
    judge: Option<Judge>,
    compare: bool,
    origin: (VersionStats, VersionStats),
    last: Option<Outcome>,
    /// The `judge.prometheus` rules, asked beside the counters.
    prom: Option<PromWatch>,
}

impl Watch {
    async fn counters(rel: &Release, compare: bool) -> Option<(VersionStats, VersionStats)> {
        let stats = match rel.inner.traffic(&rel.slot.service).stats().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the router's counters; the judge waits");
                return None;
            }
        };
        let service = &rel.slot.service;
        let canary = stats
            .live(service, CANARY)
            .map(|c| c.stats)
            .unwrap_or_default();
        let baseline = if compare {
            stats
                .live(service, BASELINE)
                .map(|c| c.stats)
                .unwrap_or_default()
        } else {
            VersionStats::default()
        };
        Some((canary, baseline))
    }

    /// Whether a step must not end by itself: a Prometheus rule could not
    /// be read, so the evidence is incomplete.
    fn inconclusive(&self) -> bool {
        self.prom.as_ref().is_some_and(PromWatch::inconclusive)
    }

    /// One scrape, one verdict; `Err` on a Fail.
    async fn look(&mut self, rel: &Release) -> Result<(), Halt> {
        if let Some(prom) = &mut self.prom {
            prom.look(rel).await?;
        }
        if self.judge.is_none() {
            return Ok(());
        }
        let Some((c, b)) = Self::counters(rel, self.compare).await else {
            return Ok(());
        };
        let Some(judge) = &mut self.judge else {
            return Ok(());
        };
        let v = judge.observe(&minus(&c, &self.origin.0), &minus(&b, &self.origin.1));
        if self.last != Some(v.outcome) {
            self.last = Some(v.outcome);
            rel.emit(Event::JudgeVerdict {
                environment: rel.slot.environment.clone(),
                deploy_id: rel.req.deploy_id,
                outcome: outcome_str(v.outcome).to_string(),
                sentence: v.sentence.clone(),
            });
        }
        if v.outcome == Outcome::Fail {
            return Err(Halt::Judge(v.sentence));
        }
        Ok(())
    }
}

pub(super) async fn run(
    rel: &mut Release,
    st: &mut EnvState,
    steps: &[CanaryStep],
) -> Result<(), Halt> {
    let Some(stable) = st.stable.clone() else {
        // Nothing to compare with: the first release just starts.
        return first(rel, st).await;
    };
    let rules = rel.env().judge.clone();
    let judge = rules
        .as_ref()
        .map(|r| Judge::new(judge_config(r)))
        .transpose()
        .map_err(|e| Halt::Error(e.into()))?;
    let compare = judge.is_some() && rules.as_ref().is_some_and(|r| r.compare_to_baseline);
    let n = rel.n();
    let first_weight = steps.first().map_or(100, |s| s.weight);
    let c = rel.add_group(CANARY, rel.req.version, rel.launch.clone());
    let b = compare.then(|| rel.add_group(BASELINE, stable.version, stable.launch.clone()));
    let k = instances_for(n, first_weight);
    let mut wants = vec![(c, k)];
    wants.extend(b.map(|b| (b, k)));
    rel.grow(&wants).await?;
    rel.checkpoint()?;

    let roles = |rel: &Release, weight: u8| {
        let (s, bw, cw) = layout(weight, b.is_some());
        let mut roles = vec![role(STABLE, &stable, s)];
        if let Some(b) = b {
            roles.push(role(BASELINE, rel.group(b), bw));
        }
        roles.push(role(CANARY, rel.group(c), cw));
        roles
    };
    rel.publish(&roles(rel, 0)).await?;
    rel.smoke(CANARY, c).await?;

    let origin = Watch::counters(rel, compare).await.unwrap_or_default();
    let (version, stable_version) = (rel.req.version.to_string(), stable.version.to_string());
    let vars = [
        ("version", version.as_str()),
        ("stable", stable_version.as_str()),
        ("environment", rel.slot.environment.as_str()),
        ("project", rel.slot.project.as_str()),
    ];
    let prom = rules.as_ref().and_then(|r| PromWatch::new(r, &vars));
    let mut watch = Watch {
        judge,
        compare,
        origin,
        last: None,
        prom,
    };
    for step in steps {
        if step.weight >= 100 {
            break;
        }
        let k = instances_for(n, step.weight);
        let mut wants = vec![(c, k)];
        wants.extend(b.map(|b| (b, k)));
        rel.grow_to(&wants).await?;
        rel.publish(&roles(rel, step.weight)).await?;
        if hold_step(rel, &mut watch, step).await? == Held::Promoted {
            break;
        }
    }

    // Promotion: full capacity first, then all traffic in one update.
    rel.grow_to(&[(c, n)]).await?;
    rel.checkpoint()?;
    rel.publish(&[role(STABLE, rel.group(c), 100)]).await?;
    let promoted = rel.take(c);
    let mut retired = vec![stable.clone()];
    let mut keys = vec![(STABLE, stable.version)];
    if let Some(b) = b {
        retired.push(rel.take(b));
        keys.push((BASELINE, stable.version));
    }
    st.stable = Some(promoted);
    let why = format!("replaced by deploy {}", rel.req.deploy_id);
    rel.inner
        .retire(&rel.slot.service, &keys, retired, &why)
        .await;
    Ok(())
}

/// Holds one step: its duration (paused time does not count), judged every
/// scrape; a `pause: true` step then waits for resume or promote.
async fn hold_step(rel: &mut Release, watch: &mut Watch, step: &CanaryStep) -> Result<Held, Halt> {
    let every = rel.inner.cfg.scrape_every.max(Duration::from_millis(10));
    let duration = step.for_.unwrap_or_default();
    let mut held = Duration::ZERO;
    let mut last = Instant::now();
    let mut gated = false;
    loop {
        let ctl = *rel.ctl_rx.borrow_and_update();
        if ctl.abort {
            return Err(Halt::Abort);
        }
        if ctl.promote {
            return Ok(Held::Promoted);
        }
        watch.look(rel).await?;
        let now = Instant::now();
        if !ctl.paused {
            held += now - last;
        }
        last = now;
        if held >= duration {
            if (step.pause || watch.inconclusive()) && !gated {
                gated = true;
                rel.ctl.send_modify(|c| c.paused = true);
                rel.emit(Event::DeployPaused {
                    environment: rel.slot.environment.clone(),
                    deploy_id: rel.req.deploy_id,
                });
            } else if !ctl.paused {
                return Ok(Held::Elapsed);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = rel.ctl_rx.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_matches_the_canary_and_stable_keeps_the_rest() {
        assert_eq!(layout(5, true), (90, 5, 5));
        assert_eq!(layout(50, true), (0, 50, 50));
        assert_eq!(layout(70, true), (0, 30, 70));
        assert_eq!(layout(20, false), (80, 0, 20));
        assert_eq!(layout(0, true), (100, 0, 0));
    }

    #[test]
    fn instance_counts_follow_the_weight() {
        assert_eq!(instances_for(3, 5), 1);
        assert_eq!(instances_for(3, 50), 2);
        assert_eq!(instances_for(3, 100), 3);
        assert_eq!(instances_for(1, 1), 1);
    }

    #[test]
    fn counts_are_taken_since_the_origin() {
        let a = VersionStats {
            requests: 10,
            errors: 2,
            latency_buckets: [1; 14],
        };
        let b = VersionStats {
            requests: 4,
            errors: 3,
            latency_buckets: [2; 14],
        };
        let d = minus(&a, &b);
        assert_eq!((d.requests, d.errors, d.latency_buckets[0]), (6, 0, 0));
    }
}
