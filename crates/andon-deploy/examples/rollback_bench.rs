//! How long from the judge's fail verdict until every request is served by
//! the stable version, over many rollbacks of a bad canary.
//!
//! `rollback_bench --sample-service PATH` (`ROUNDS`, default 25). A client
//! hammers the router and records, per request, when it was sent and which
//! role answered (`x-andon-served-by`). For each round, the rollback time is
//! from the `JudgeVerdict{fail}` event to the send time of the last request
//! answered by the canary or the baseline. The last line is
//! `rollback p50_ms: X p99_ms: Y`.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use andon_core::DeployOutcome;
use common::{Answer, ROLES, Stack, environment, hammer, ms, percentile, sample_service_arg};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String, common::Error> {
    let rounds: u64 = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let bin = sample_service_arg()?;
    let tmp = tempfile::tempdir()?;
    let stack = Stack::start(tmp.path()).await?;
    let bg = environment(1, "      blue-green", "")?;
    let canary = environment(
        1,
        "      canary:\n        steps:\n          - { weight: 50, for: 60s }",
        "    judge:\n      compare_to_baseline: true",
    )?;
    let good = stack.release(&bin, "good", 0.0)?;
    let bad = stack.release(&bin, "bad", 0.5)?;
    let (_, o) = stack.release_and_wait(&bg, good).await?;
    if o != DeployOutcome::Succeeded {
        return Err(format!("the stable version did not deploy: {o:?}").into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(hammer(
        stack.router_url.clone(),
        8,
        0,
        Duration::from_secs(900),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::new();
    for round in 1..=rounds {
        let (id, o) = stack.release_and_wait(&canary, bad).await?;
        if o != DeployOutcome::RolledBack {
            return Err(format!("round {round}: the bad canary ended {o:?}").into());
        }
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let samples = load.await?;
    let rec = stack.rec.clone();
    stack.stop().await;

    let stable = ROLES.iter().position(|r| *r == "stable").unwrap_or(0) as u8;
    let errors = samples
        .iter()
        .filter(|s| matches!(s.answer, Answer::RouterError | Answer::ConnectionError))
        .count();
    eprintln!(
        "{} requests, {errors} router errors or connection errors",
        samples.len()
    );
    let mut times = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let fail = rec
            .fail_verdict(*id)
            .ok_or_else(|| format!("deploy {id}: no fail verdict"))?;
        // Until the next canary is requested: its traffic is not this round's.
        let end = ids.get(i + 1).and_then(|next| rec.requested_at(*next));
        let last_other = samples
            .iter()
            .filter(|s| s.sent >= fail && end.is_none_or(|e| s.sent < e))
            .filter(|s| matches!(s.answer, Answer::Ok(r) | Answer::AppError(r) if r != stable))
            .map(|s| s.sent)
            .max();
        let t = last_other.map_or(0.0, |t| ms(fail, t));
        eprintln!("round {}: {t:.1} ms", i + 1);
        times.push(t);
    }
    times.sort_by(f64::total_cmp);
    Ok(format!(
        "rollback p50_ms: {:.1} p99_ms: {:.1}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    ))
}
