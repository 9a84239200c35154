//! End-to-end release: the sample service v1, a blue/green switch to v2
//! under load, then a bad canary v3 (5% errors against a 1% baseline) that
//! the judge must roll back, all through a real router on 127.0.0.1.
//!
//! `release_e2e --sample-service PATH [--short]`. The last line is
//! `release-e2e failed_requests: N of M, bad_canary: rolled_back|not_rolled_back, leftover_instances: K`
//! where a failed request is a connection error, a 5xx the router made
//! itself, or a 5xx from a non-canary version that is not one of the
//! service's deliberate `ERROR_RATE` answers (v1 and v2 answer 1% errors on
//! purpose, as the baseline must); K counts processes of the canary release
//! alive 10s after its rollback plus any instance alive after shutdown.
//! Exit status 0 when N = 0, rolled back and K = 0.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use andon_core::DeployOutcome;
use common::{Answer, ROLES, Stack, alive, environment, flag, hammer, sample_service_arg};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok((line, ok)) => {
            println!("{line}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(String, bool), common::Error> {
    let total: u64 = if flag("--short") { 5_000 } else { 50_000 };
    let bin = sample_service_arg()?;
    let tmp = tempfile::tempdir()?;
    let stack = Stack::start(tmp.path()).await?;
    let bg = environment(2, "      blue-green", "")?;
    let canary = environment(
        2,
        "      canary:\n        steps:\n          - { weight: 20, for: 90s }",
        "    judge:\n      compare_to_baseline: true\n      alpha: 0.01",
    )?;
    let v1 = stack.release(&bin, "v1", 0.01)?;
    let v2 = stack.release(&bin, "v2", 0.01)?;
    let v3 = stack.release(&bin, "v3", 0.05)?;

    eprintln!("== v1: first release");
    let (_, o) = stack.release_and_wait(&bg, v1).await?;
    if o != DeployOutcome::Succeeded {
        return Err(format!("v1 did not deploy: {o:?}").into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(hammer(
        stack.router_url.clone(),
        16,
        total,
        Duration::from_secs(300),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    eprintln!("== v2: blue/green under load");
    let (_, o) = stack.release_and_wait(&bg, v2).await?;
    eprintln!("   {o:?}");
    eprintln!("== v3: canary at 5% errors against a 1% baseline");
    let started = Instant::now();
    let (id3, o3) = stack.release_and_wait(&canary, v3).await?;
    eprintln!("   {o3:?} after {:.1}s", started.elapsed().as_secs_f64());
    if let Some(verdict) = stack
        .rec
        .events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            andon_core::Event::JudgeVerdict {
                outcome, sentence, ..
            } if outcome == "fail" => Some(sentence.clone()),
            _ => None,
        })
    {
        eprintln!("   judge: {verdict}");
    }
    let canary_pids = stack.rec.pids_of(id3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while canary_pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut leftover = canary_pids.iter().filter(|p| alive(**p)).count();

    stop.store(true, Ordering::Relaxed);
    let samples = load.await?;
    let all_pids = stack.rec.all_pids();
    stack.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    leftover += all_pids.iter().filter(|p| alive(**p)).count();

    let mut by = std::collections::BTreeMap::<String, u64>::new();
    let mut failed = 0u64;
    for s in &samples {
        let (key, fails) = match s.answer {
            Answer::Ok(r) => (format!("ok:{}", ROLES[usize::from(r)]), false),
            Answer::AppError(r) => (format!("app_5xx:{}", ROLES[usize::from(r)]), false),
            Answer::RouterError => ("router_5xx".to_string(), true),
            Answer::ConnectionError => ("connection_error".to_string(), true),
        };
        *by.entry(key).or_default() += 1;
        failed += u64::from(fails);
    }
    eprintln!("   answers: {by:?}");
    let rolled = if o3 == DeployOutcome::RolledBack {
        "rolled_back"
    } else {
        "not_rolled_back"
    };
    let line = format!(
        "release-e2e failed_requests: {failed} of {}, bad_canary: {rolled}, leftover_instances: {leftover}",
        samples.len()
    );
    let ok = failed == 0
        && o3 == DeployOutcome::RolledBack
        && leftover == 0
        && o == DeployOutcome::Succeeded;
    Ok((line, ok))
}
