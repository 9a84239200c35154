//! 200 trivial jobs (`true`) in a DAG of width 8, against `make -j8` on the
//! same DAG. Goal: Andon's wall time at most 1.2x make's.
//!
//! Run: `cargo bench -p andon-runner --bench dag` (env `DAG_ROUNDS`, default 5).
//! Prints the median wall time of each and the ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andon_artifacts::ArtifactStore;
use andon_core::{Event, RunStatus};
use andon_runner::{JobSpec, LocalExecutor, RunObserver, RunSpec, run_pipeline};
use tokio_util::sync::CancellationToken;

const WIDTH: usize = 8;
const LAYERS: usize = 25;

struct Quiet;
impl RunObserver for Quiet {
    fn event(&self, _: Event) {}
    fn log(&self, _: &str, _: u32, _: &str) {}
}

fn name(layer: usize, col: usize) -> String {
    format!("j{layer}_{col}")
}

/// Job (l, c) needs (l-1, c) and (l-1, c+1 mod width): a DAG that stays
/// `WIDTH` wide and cannot run layer by layer trivially.
fn deps(layer: usize, col: usize) -> Vec<String> {
    if layer == 0 {
        return Vec::new();
    }
    vec![name(layer - 1, col), name(layer - 1, (col + 1) % WIDTH)]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("DAG_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    let store = ArtifactStore::open(&dir.path().join("data")).unwrap();

    let mut jobs = Vec::new();
    let mut makefile = String::from("all:");
    for l in 0..LAYERS {
        for c in 0..WIDTH {
            jobs.push(JobSpec {
                name: name(l, c),
                stage: "s".into(),
                run: "true".into(),
                deps: deps(l, c),
                ..JobSpec::default()
            });
        }
    }
    for c in 0..WIDTH {
        write!(makefile, " {}", name(LAYERS - 1, c)).unwrap();
    }
    makefile.push_str("\n.PHONY: all");
    for j in &jobs {
        write!(makefile, " {}", j.name).unwrap();
    }
    makefile.push('\n');
    for j in &jobs {
        writeln!(makefile, "{}: {}\n\t@true", j.name, j.deps.join(" ")).unwrap();
    }
    let mk = dir.path().join("Makefile");
    std::fs::write(&mk, makefile).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut andon = Vec::new();
    let mut make = Vec::new();
    for round in 0..rounds + 1 {
        let spec = RunSpec {
            run_id: round as u64 + 1,
            checkout: checkout.clone(),
            jobs: jobs.clone(),
            parallelism: WIDTH,
            work_dir: dir.path().join(format!("work{round}")),
            ..RunSpec::default()
        };
        let t = Instant::now();
        let summary = rt.block_on(run_pipeline(
            spec,
            &LocalExecutor,
            &store,
            Arc::new(Quiet),
            CancellationToken::new(),
        ));
        let a = t.elapsed();
        assert_eq!(summary.status, RunStatus::Passed);

        let t = Instant::now();
        let st = Command::new("make")
            .arg("-s")
            .arg("-j8")
            .arg("-f")
            .arg(&mk)
            .status()
            .unwrap();
        let m = t.elapsed();
        assert!(st.success());
        if round > 0 {
            // Round 0 warms caches (binaries, page cache) for both.
            andon.push(a);
            make.push(m);
        }
    }
    let (a, m) = (median(andon), median(make));
    println!(
        "dag 200 jobs width 8: andon {:.1} ms, make -j8 {:.1} ms, ratio {:.2} (goal <= 1.20)",
        a.as_secs_f64() * 1e3,
        m.as_secs_f64() * 1e3,
        a.as_secs_f64() / m.as_secs_f64()
    );
}
