//! Artifacts: stored by digest after a passing job, deduplicated, required.

use andon_artifacts::Digest;
use andon_core::{Event, JobOutcome, RunStatus};

use crate::helpers::{Fixture, job};

#[tokio::test]
async fn artifacts_are_stored_by_digest_and_deduplicated() {
    let fx = Fixture::new();
    let build = "mkdir -p $OUT/lib logs && printf '#!/bin/sh\\necho app\\n' > $OUT/app && chmod +x $OUT/app \
                 && echo x > $OUT/lib/x.txt && echo l1 > logs/1.txt && echo l2 > logs/2.txt";
    let mut a = job("build-a", &build.replace("$OUT", "dist-a"));
    a.artifacts = vec![
        "dist-a/app".into(),
        "./dist-a/lib".into(),
        "logs/*.txt".into(),
    ];
    let mut b = job("build-b", &build.replace("$OUT", "dist-b"));
    b.artifacts = vec!["dist-b/lib".into()];
    let (summary, rec) = fx.run(fx.spec(vec![a, b])).await;
    assert_eq!(summary.status, RunStatus::Passed, "{}", rec.all_logs());

    let stored: Vec<(String, String, String, u64)> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ArtifactStored {
                job,
                path,
                digest,
                size,
                ..
            } => Some((job, path, digest, size)),
            _ => None,
        })
        .collect();
    let paths: Vec<&str> = stored
        .iter()
        .filter(|s| s.0 == "build-a")
        .map(|s| s.1.as_str())
        .collect();
    assert_eq!(
        paths,
        ["dist-a/app", "dist-a/lib", "logs/1.txt", "logs/2.txt"]
    );
    for (_, _, digest, size) in &stored {
        let d: Digest = digest.parse().unwrap();
        assert_eq!(fx.store.verify(&d).unwrap(), *size);
    }
    let a = summary.job("build-a").unwrap();
    assert_eq!(a.artifacts.len(), 4);
    assert!(
        a.artifacts
            .iter()
            .all(|x| x.digest.to_string().starts_with("sha256:"))
    );

    // The app extracts under its path, executable.
    let app = a.artifacts.iter().find(|x| x.path == "dist-a/app").unwrap();
    let out = fx.tmp().join("deploy");
    fx.store.extract_to(&app.digest, &out).unwrap();
    let status = std::process::Command::new(out.join("dist-a/app"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "app\n");

    // Same tree under the same name: same digest, one blob. (`dist-b/lib`
    // is a different name, hence a different artifact.)
    let before = fx.store.digests().unwrap().len();
    let mut again = job(
        "rebuild",
        "mkdir -p dist-a/lib && echo x > dist-a/lib/x.txt",
    );
    again.artifacts = vec!["dist-a/lib".into()];
    let (s2, _) = fx.run(fx.spec(vec![again])).await;
    let lib_a = a.artifacts.iter().find(|x| x.path == "dist-a/lib").unwrap();
    assert_eq!(s2.job("rebuild").unwrap().artifacts[0].digest, lib_a.digest);
    assert_eq!(fx.store.digests().unwrap().len(), before);
}

#[tokio::test]
async fn a_missing_artifact_fails_the_job_with_a_clear_line() {
    let fx = Fixture::new();
    let mut j = job("build", "mkdir -p dist && touch dist/present");
    j.artifacts = vec![
        "dist/present".into(),
        "dist/absent".into(),
        "reports/*.xml".into(),
    ];
    let (summary, rec) = fx.run(fx.spec(vec![j])).await;
    assert_eq!(summary.status, RunStatus::Failed);
    let r = summary.job("build").unwrap();
    assert_eq!((r.outcome, r.exit_code), (JobOutcome::Failed, Some(0)));
    assert!(r.artifacts.is_empty());
    let log = rec.log_of("build");
    assert!(
        log.contains("artifact `dist/absent` not found in the checkout"),
        "{log}"
    );
    assert!(log.contains("artifact `reports/*.xml` not found"), "{log}");
    assert!(
        !rec.events()
            .iter()
            .any(|e| matches!(e, Event::ArtifactStored { .. }))
    );
}
