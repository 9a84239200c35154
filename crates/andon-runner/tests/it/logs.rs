//! Logs: streamed line by line, secrets masked in every form, stdout and stderr.

use andon_core::{JobOutcome, RunStatus};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::helpers::{Fixture, job};

const TOKEN: &str = "hunter2/s3cr3t+x y";
const KEY: &str =
    "-----BEGIN TEST KEY-----\nline-one-abcdef\nline-two-ghijkl\n-----END TEST KEY-----";

#[tokio::test]
async fn secrets_are_masked_in_every_form_on_both_streams() {
    let fx = Fixture::new();
    let mut leaky = job(
        "leaky",
        r#"echo "plain: $TOKEN"
echo "stderr: $TOKEN" >&2
echo "b64: $(printf %s "$TOKEN" | base64)"
echo "b64nl: $(echo "$TOKEN" | base64)"
echo "b64url: $(printf %s "$TOKEN" | base64 | tr '+/' '-_' | tr -d '=')"
echo "url: hunter2%2Fs3cr3t%2Bx%20y"
echo "form: hunter2%2fs3cr3t%2bx+y"
echo "$KEY"
echo "done""#,
    );
    leaky.secrets = vec!["TOKEN".into(), "KEY".into()];
    let other = job("other", r#"echo "token=${TOKEN:-unset}""#);
    let mut spec = fx.spec(vec![leaky, other]);
    spec.secrets.insert("TOKEN".into(), TOKEN.into());
    spec.secrets.insert("KEY".into(), KEY.into());
    let (summary, rec) = fx.run(spec).await;
    assert_eq!(summary.status, RunStatus::Passed, "{}", rec.all_logs());

    let all = rec.all_logs();
    for leak in [
        "hunter2",
        "s3cr3t",
        &STANDARD.encode(TOKEN),
        &STANDARD.encode(format!("{TOKEN}\n")),
        &URL_SAFE_NO_PAD.encode(TOKEN),
        "line-one",
        "line-two",
    ] {
        assert!(!all.contains(leak), "`{leak}` leaked:\n{all}");
    }
    let log = rec.log_of("leaky");
    for masked in [
        "plain: ***",
        "stderr: ***",
        "b64: ***",
        "b64nl: ***",
        "b64url: ***",
        "url: ***",
        "form: ***",
    ] {
        assert!(
            log.lines().any(|l| l == masked),
            "missing `{masked}` in\n{log}"
        );
    }
    assert!(log.contains("done"));
    // Secrets are only in the environment of the jobs that name them.
    assert!(rec.log_of("other").contains("token=unset"));
}

#[tokio::test]
async fn a_missing_secret_fails_the_job_without_running_it() {
    let fx = Fixture::new();
    let ran = fx.tmp().join("ran");
    let mut j = job("deploy", &format!("touch {}", ran.display()));
    j.secrets = vec!["API_KEY".into()];
    j.retries = 2;
    let (summary, rec) = fx.run(fx.spec(vec![j])).await;
    assert_eq!(summary.status, RunStatus::Failed);
    let r = summary.job("deploy").unwrap();
    assert_eq!((r.outcome, r.attempts), (JobOutcome::Failed, 1));
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("secret `API_KEY` is not set")
    );
    assert!(rec.log_of("deploy").contains("secret `API_KEY` is not set"));
    assert!(!ran.exists());
    assert_eq!(rec.finished("deploy").len(), 1);
}

#[tokio::test]
async fn long_and_binary_lines_are_kept_safe() {
    let fx = Fixture::new();
    let j = job(
        "noisy",
        "head -c 100000 /dev/zero | tr '\\0' 'a'; echo; printf 'bin\\377ary\\r\\n'; printf 'no newline at end'",
    );
    let (summary, rec) = fx.run(fx.spec(vec![j])).await;
    assert_eq!(summary.status, RunStatus::Passed);
    let log = rec.log_of("noisy");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.iter().all(|l| l.len() <= 16 * 1024));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with('a'))
            .map(|l| l.len())
            .sum::<usize>(),
        100_000
    );
    assert!(lines.contains(&"bin\u{FFFD}ary"));
    assert_eq!(lines.last(), Some(&"no newline at end"));
}
