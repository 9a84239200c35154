//! JUnit XML from `ANDON_REPORTS` and from `.xml` artifacts.

use andon_core::{JobOutcome, RunStatus, TestCounts};

use crate::helpers::{Fixture, job};

fn report(cases: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><testsuites><testsuite name=\"s\">{cases}</testsuite></testsuites>"
    )
}

#[tokio::test]
async fn junit_reports_are_counted_per_job() {
    let fx = Fixture::new();
    let xml = report(
        "<testcase classname=\"m\" name=\"a\"/><testcase classname=\"m\" name=\"b\"/><testcase classname=\"m\" name=\"c\"/>\
         <testcase classname=\"m\" name=\"bad\"><failure>x</failure></testcase>\
         <testcase classname=\"m\" name=\"later\"><skipped/></testcase>",
    );
    let reports = job(
        "reports",
        &format!("cat > \"$ANDON_REPORTS/unit.xml\" <<'EOF'\n{xml}\nEOF\nexit 1"),
    );
    let mut art = job(
        "artifact",
        &format!(
            "mkdir -p out && cat > out/junit.xml <<'EOF'\n{}\nEOF",
            report("<testcase name=\"only\"/>")
        ),
    );
    art.artifacts = vec!["out/junit.xml".into()];
    let none = job("none", "echo '<html/>' > \"$ANDON_REPORTS/page.xml\"");
    let mut spec = fx.spec(vec![reports, art, none]);
    spec.fail_fast = false;
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Failed);

    let r = summary.job("reports").unwrap();
    assert_eq!(r.outcome, JobOutcome::Failed);
    let counts = TestCounts {
        passed: 3,
        failed: 1,
        skipped: 1,
    };
    assert_eq!(r.tests, Some(counts));
    assert_eq!(r.failed_tests, ["m.bad"]);
    assert_eq!(rec.finished("reports")[0].3, Some(counts));

    assert_eq!(
        summary.job("artifact").unwrap().tests,
        Some(TestCounts {
            passed: 1,
            failed: 0,
            skipped: 0
        })
    );
    assert_eq!(
        summary.job("none").unwrap().tests,
        None,
        "non-JUnit XML is not a report"
    );
}

#[tokio::test]
async fn a_test_that_fails_then_passes_on_the_same_commit_is_a_flaky_test() {
    let fx = Fixture::new();
    let marker = fx.tmp().join("second");
    let script = format!(
        "if [ -f {m} ]; then r='<testcase name=\"t1\"/>'; else touch {m}; r='<testcase name=\"t1\"><failure/></testcase>'; fi\n\
         echo \"<testsuite name=\\\"s\\\">$r<testcase name=\\\"t2\\\"/></testsuite>\" > \"$ANDON_REPORTS/r.xml\"\n\
         case \"$r\" in *failure*) exit 1;; esac",
        m = marker.display()
    );
    let mut j = job("tests", &script);
    j.retries = 1;
    let (summary, rec) = fx.run(fx.spec(vec![j])).await;
    assert_eq!(summary.status, RunStatus::Passed, "{}", rec.all_logs());
    let r = summary.job("tests").unwrap();
    assert!(r.flaky);
    assert_eq!(r.flaky_tests, ["t1"]);
    assert!(r.failed_tests.is_empty());
    assert_eq!(
        r.tests,
        Some(TestCounts {
            passed: 2,
            failed: 0,
            skipped: 0
        })
    );
    let f = rec.finished("tests");
    assert_eq!(
        f[0].3,
        Some(TestCounts {
            passed: 1,
            failed: 1,
            skipped: 0
        }),
        "attempt 1 counted alone"
    );
    assert!(
        rec.log_of("tests")
            .contains("flaky tests (failed and passed on the same commit): t1")
    );
}
