//! `container` targets against a real Podman service (Docker Engine API):
//! images imported from busybox-static, each serving `busybox httpd` on
//! `$PORT` behind the in-process router.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use andon_artifacts::{ArtifactStore, Digest};
use andon_core::{DeployOutcome, Deploys, Envelope, Event};
use andon_deploy::{Controller, ControllerConfig, DeployRequest, EnvSpec, RollbackRequest};

use crate::podman::{self, Podman};
use crate::support::{Recorder, Router, serial};

const CMD: &str = r#"["sh", "-c", "exec httpd -f -p $PORT -h /www"]"#;
const BROKEN_CMD: &str = r#"["sh", "-c", "echo cannot start >&2; exit 3"]"#;

/// An image serving `/version` (`tag`) and `/healthz`; a `broken` one
/// exits at once instead.
fn web_image(pm: &Podman, tag: &str, broken: bool) -> Digest {
    let version = format!("{tag}\n");
    let files = [("www/version", version.as_str()), ("www/healthz", "ok\n")];
    let cmd = if broken { BROKEN_CMD } else { CMD };
    let id = pm.import(&format!("localhost/web:{tag}"), &files, cmd);
    id.parse().unwrap()
}

fn environment(strategy: &str, instances: u32) -> andon_config::Environment {
    let yaml = format!(
        r#"
pipeline:
  stages:
    - name: s
      jobs:
        - name: j
          run: "true"
environments:
  production:
    target:
      container:
        image: localhost/web:v1
        instances: {instances}
        health: /healthz
        port: 8080
        env:
          GREETING: hello
    strategy:
{strategy}
"#
    );
    let cfg = andon_config::parse("andon.yaml", &yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut env = cfg.environments.into_iter().next().unwrap();
    env.rollback_window = Duration::ZERO;
    env
}

struct Setup {
    tmp: tempfile::TempDir,
    router: Router,
    store: ArtifactStore,
    rec: Arc<Recorder>,
    ctl: Controller,
    next: u64,
}

fn config(tmp: &std::path::Path, router: &Router, host: &str) -> ControllerConfig {
    let mut cfg = ControllerConfig::new(tmp.join("data"), &router.admin, &router.url);
    cfg.scrape_every = Duration::from_millis(100);
    cfg.stop_timeout = Duration::from_secs(3);
    cfg.drain_timeout = Duration::from_secs(3);
    cfg.docker_host = Some(host.to_owned());
    cfg
}

impl Setup {
    async fn new(pm: &Podman) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let router = Router::start(&tmp.path().join("router")).await;
        let store = ArtifactStore::open(&tmp.path().join("data/artifacts")).unwrap();
        let rec = Arc::new(Recorder::default());
        let ctl = Controller::new(
            config(tmp.path(), &router, &pm.host),
            store.clone(),
            rec.clone(),
        )
        .unwrap();
        Setup {
            tmp,
            router,
            store,
            rec,
            ctl,
            next: 1,
        }
    }

    async fn deploy(&mut self, env: &andon_config::Environment, version: Digest) -> DeployOutcome {
        let id = self.next;
        self.next += 1;
        use andon_deploy::DeployObserver;
        self.rec.event(Event::DeployRequested {
            project: "shop".into(),
            environment: env.name.clone(),
            deploy_id: id,
            version: version.to_string(),
            strategy: "test".into(),
            run_id: None,
            commit: None,
            reason: None,
        });
        self.ctl
            .deploy(DeployRequest {
                project: "shop".into(),
                deploy_id: id,
                environment: env.clone(),
                version,
                secrets: BTreeMap::new(),
                stable: None,
                contract_migration: false,
            })
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(90),
            self.ctl.wait_idle("shop", &env.name),
        )
        .await
        .expect("release did not finish in time");
        self.rec.finished(id).expect("no DeployFinished").0
    }

    /// What the router serves at `/version`.
    async fn served(&self) -> String {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = client
            .get(format!("{}/version", self.router.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap().trim().to_owned()
    }
}

fn running_versions(pm: &Podman) -> Vec<String> {
    let out = pm
        .cli()
        .args([
            "ps",
            "--filter",
            "label=andon.environment=production",
            "--format",
            "{{ index .Labels \"andon.version\" }}",
        ])
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("no value"))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_target_recreate_rollback_canary_and_crash_restart() {
    let _serial = serial().await;
    let Some(pm) = podman::start() else { return };
    let v1 = web_image(&pm, "v1", false);
    let v2 = web_image(&pm, "v2", false);
    let broken = web_image(&pm, "broken", true);
    let mut s = Setup::new(&pm).await;

    // The name in `image:` resolves to the id that is deployed.
    assert_eq!(s.ctl.image_id("localhost/web:v1").await.unwrap(), v1);

    let recreate = environment("      recreate", 2);
    assert_eq!(s.deploy(&recreate, v1).await, DeployOutcome::Succeeded);
    assert_eq!(s.served().await, "v1");
    assert_eq!(running_versions(&pm), [v1.to_string(), v1.to_string()]);
    let infos = s.ctl.instances();
    assert_eq!(infos.len(), 2);
    assert!(infos.iter().all(|i| i.ready && i.pid.is_some()));
    let drift = s.ctl.check_drift().await;
    assert!(
        drift.is_empty(),
        "fresh containers have not drifted: {drift:?}"
    );
    let edited = pm
        .cli()
        .args(["exec", "-l", "sh", "-c", "echo hacked > /www/version"])
        .output()
        .unwrap();
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let drift = s.ctl.check_drift().await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].detail.contains("/www/version"), "{drift:?}");
    assert!(s.rec.count("instance_drift") >= 1);

    assert_eq!(s.deploy(&recreate, v2).await, DeployOutcome::Succeeded);
    assert_eq!(s.served().await, "v2");
    assert_eq!(
        running_versions(&pm),
        [v2.to_string(), v2.to_string()],
        "v1's containers are stopped and removed"
    );

    // Rollback by hand: fresh v1 containers take the traffic back.
    let id = s.next;
    s.next += 1;
    let back = s
        .ctl
        .rollback(RollbackRequest {
            project: "shop".into(),
            environment: "production".into(),
            deploy_id: id,
            to: None,
        })
        .await
        .unwrap();
    assert_eq!(back, v1);
    assert_eq!(s.rec.finished(id).unwrap().0, DeployOutcome::Succeeded);
    assert_eq!(s.served().await, "v1");
    assert_eq!(running_versions(&pm), [v1.to_string(), v1.to_string()]);

    // A canary whose containers exit at once: rolled back, its
    // containers removed, v1 untouched.
    let mut canary = environment(
        "      canary:\n        steps:\n          - { weight: 50, for: 1s }",
        1,
    );
    canary.target = match canary.target {
        andon_config::Target::Container(mut c) => {
            c.instances = 2;
            andon_config::Target::Container(c)
        }
        t => t,
    };
    let before: Vec<String> = s.ctl.instances().iter().map(|i| i.id.clone()).collect();
    let outcome = s.deploy(&canary, broken).await;
    assert_ne!(outcome, DeployOutcome::Succeeded);
    assert_eq!(s.served().await, "v1");
    assert_eq!(running_versions(&pm), [v1.to_string(), v1.to_string()]);
    let after: Vec<String> = s.ctl.instances().iter().map(|i| i.id.clone()).collect();
    assert_eq!(before, after, "the stable containers were never touched");

    // A container that dies is replaced by a fresh one (backoff restart).
    let victim = s.ctl.instances()[0].clone();
    let ids = pm.containers_with(&format!("andon.instance={}", victim.id));
    assert_eq!(ids.len(), 1);
    let killed = pm.cli().arg("kill").arg(&ids[0]).output().unwrap();
    assert!(
        killed.status.success(),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = s
            .ctl
            .instances()
            .into_iter()
            .find(|i| i.id == victim.id)
            .unwrap();
        if now.restarts >= 1 && now.ready {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not restarted: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running_versions(&pm), [v1.to_string(), v1.to_string()]);

    s.ctl.shutdown(true).await;
    assert!(
        running_versions(&pm).is_empty(),
        "shutdown removes every container"
    );
    assert!(
        pm.containers_with("andon.environment=production")
            .is_empty()
    );
    s.router.stop().await;
    drop(s.store);
    drop(s.tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_adopts_running_containers() {
    let _serial = serial().await;
    let Some(pm) = podman::start() else { return };
    let v1 = web_image(&pm, "v1", false);
    let s = {
        let mut s = Setup::new(&pm).await;
        let env = environment("      recreate", 2);
        assert_eq!(s.deploy(&env, v1).await, DeployOutcome::Succeeded);
        s
    };
    let env = environment("      recreate", 2);
    let adopted_ids: Vec<String> = s.ctl.instances().iter().map(|i| i.id.clone()).collect();
    // A container no instance owns (its start never reached the log).
    let stray = pm
        .cli()
        .args([
            "run",
            "-d",
            "--network=host",
            "--ulimit",
            "nofile=1024:1024",
        ])
        .args(["--ulimit", "nproc=1024:1024"])
        .args(["--label", "andon.project=shop"])
        .args(["--label", "andon.environment=production"])
        .args(["--label", "andon.instance=stray-1"])
        .args(["localhost/web:v1", "sleep", "300"])
        .output()
        .unwrap();
    assert!(
        stray.status.success(),
        "{}",
        String::from_utf8_lossy(&stray.stderr)
    );
    s.ctl.shutdown(false).await; // the controller goes; its containers stay
    assert_eq!(running_versions(&pm).len(), 2);

    let mut deploys = Deploys::new();
    for (seq, e) in s.rec.all().into_iter().enumerate() {
        deploys.apply(&Envelope {
            seq: seq as u64 + 1,
            at_ms: 0,
            actor: "t".into(),
            event: e,
        });
    }
    let rec2 = Arc::new(Recorder::default());
    let ctl2 = Controller::new(
        config(s.tmp.path(), &s.router, &pm.host),
        s.store.clone(),
        rec2.clone(),
    )
    .unwrap();
    let report = ctl2
        .recover(
            &deploys,
            &[EnvSpec {
                project: "shop".into(),
                environment: env.clone(),
                secrets: BTreeMap::new(),
            }],
        )
        .await
        .unwrap();
    let mut adopted = report.adopted.clone();
    adopted.sort();
    let mut expected = adopted_ids.clone();
    expected.sort();
    assert_eq!(adopted, expected, "{report:?}");
    assert!(report.started.is_empty(), "{report:?}");
    assert!(report.killed.contains(&"stray-1".to_string()), "{report:?}");
    assert!(pm.containers_with("andon.instance=stray-1").is_empty());
    assert_eq!(s.served().await, "v1");
    ctl2.shutdown(true).await;
    assert!(
        pm.containers_with("andon.environment=production")
            .is_empty()
    );
    s.router.stop().await;
}
