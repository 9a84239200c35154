//! The bubblewrap sandbox: no network, read-only root, private /tmp.

use std::net::TcpListener;

use andon_core::{RunStatus, TestCounts};
use andon_runner::{BwrapExecutor, LocalExecutor};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Fixture, job};

/// Skips only when bubblewrap cannot run here at all, and says why.
fn sandbox() -> Option<BwrapExecutor> {
    let b = BwrapExecutor::new();
    match b.check() {
        Ok(()) => Some(b),
        Err(why) => {
            eprintln!("SKIPPED: bubblewrap cannot run here: {why} (apt-get install -y bubblewrap)");
            None
        }
    }
}

#[tokio::test]
async fn the_sandbox_has_no_network_a_read_only_root_and_its_own_tmp() {
    let Some(bwrap) = sandbox() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_tmp = tempfile::Builder::new()
        .prefix("andon-host-only-")
        .tempfile_in("/tmp")
        .unwrap();
    let fx = Fixture::new();
    let inside = format!("/tmp/andon-inside-only-{}", crate::helpers::unique_run_id());
    let script = format!(
        "if bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo NET-OPEN; else echo NET-CLOSED; fi\n\
         if touch /usr/andon-sandbox-probe 2>/dev/null; then echo ROOT-WRITABLE; else echo ROOT-READONLY; fi\n\
         if [ -e {host} ]; then echo TMP-SHARED; else echo TMP-PRIVATE; fi\n\
         echo sandboxed > {inside}\n\
         echo built > result.txt\n\
         echo '<testsuite name=\"s\"><testcase name=\"t\"/></testsuite>' > \"$ANDON_REPORTS/r.xml\"",
        host = host_tmp.path().display()
    );
    let spec = fx.spec(vec![job("probe", &script)]);
    let (summary, rec) = fx.run_with(spec, &bwrap, CancellationToken::new()).await;
    let log = rec.log_of("probe");
    assert_eq!(summary.status, RunStatus::Passed, "{log}");
    for want in ["NET-CLOSED", "ROOT-READONLY", "TMP-PRIVATE"] {
        assert!(log.contains(want), "{want} not in\n{log}");
    }
    assert!(!std::path::Path::new(&inside).exists());
    assert_eq!(
        std::fs::read_to_string(fx.checkout.join("result.txt")).unwrap(),
        "built\n"
    );
    assert_eq!(
        summary.job("probe").unwrap().tests,
        Some(TestCounts {
            passed: 1,
            failed: 0,
            skipped: 0
        })
    );
    assert!(rec.events().iter().any(
        |e| matches!(e, andon_core::Event::JobStarted { executor, .. } if executor == "bwrap")
    ));

    // The same probe outside the sandbox does reach the listener: the test
    // can tell the difference.
    let (_, rec) = fx
        .run_with(
            fx.spec(vec![job("probe", &script)]),
            &LocalExecutor,
            CancellationToken::new(),
        )
        .await;
    assert!(
        rec.log_of("probe").contains("NET-OPEN"),
        "{}",
        rec.log_of("probe")
    );
    let _ = std::fs::remove_file(&inside);
    drop(listener);
}

#[tokio::test]
async fn a_sandboxed_job_is_killed_on_timeout() {
    let Some(bwrap) = sandbox() else { return };
    let fx = Fixture::new();
    let mut j = job("hang", "sleep 100");
    j.timeout = Some(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let (summary, _) = fx
        .run_with(fx.spec(vec![j]), &bwrap, CancellationToken::new())
        .await;
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        summary.job("hang").unwrap().outcome,
        andon_core::JobOutcome::TimedOut
    );
}
