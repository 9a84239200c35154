//! Feature flags over real HTTP on 127.0.0.1: the management API and its
//! audit trail, the scheduler, the SDK snapshot, exposure reports, and
//! OFREP checked against the protocol's own OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-token";

struct TestServer {
    base: String,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

async fn start_in(dir: &Path) -> TestServer {
    let server = andon_server::Server::start(andon_server::ServerConfig {
        data_dir: dir.to_path_buf(),
        store_url: None,
        admin_token: Some(ADMIN.into()),
        parallelism: 1,
        router: None,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    TestServer {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        task,
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl TestServer {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let a = self.send(req).await;
        (a.status, a.body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(ADMIN), None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(ADMIN), Some(body))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(ADMIN), Some(body))
            .await
    }

    async fn put_flag(&self, key: &str, flag: Value) -> Value {
        let (status, body) = self
            .put(
                &format!("/api/v1/flags/{key}"),
                json!({"flag": flag, "reason": "test setup"}),
            )
            .await;
        assert!(status == 201 || status == 200, "{status} {body}");
        body
    }

    async fn token(&self, name: &str, role: &str, env: Option<&str>) -> String {
        let (status, body) = self
            .post(
                "/api/v1/tokens",
                json!({"name": name, "role": role, "environment": env}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// OFREP call with the admin token unless one is given.
    async fn ofrep(&self, path: &str, body: &str, token: Option<&str>) -> Answer {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .bearer_auth(token.unwrap_or(ADMIN))
            .body(body.to_string());
        self.send(req).await
    }

    async fn events_of(&self, kind: &str) -> Vec<Value> {
        let (_, events) = self.get("/api/v1/events?limit=5000").await;
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }
}

async fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (start_in(dir.path()).await, dir)
}

fn checkout() -> Value {
    json!({
        "description": "the new checkout",
        "temporary": true,
        "environments": {
            "production": {"enabled": true, "rules": [
                {"conditions": [{"attribute": "country", "operator": "in", "values": ["no"]}], "serve": "on"}
            ]},
            "staging": {"enabled": true}
        }
    })
}

// --- the management API and its audit trail ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_a_reason_a_role_and_are_audited() {
    let (s, _dir) = start().await;
    let created = s.put_flag("checkout", checkout()).await;
    assert_eq!(created["created"], true);
    assert!(
        created["changes"][0]
            .as_str()
            .unwrap()
            .contains("+ flag checkout"),
        "{created}"
    );

    // No reason, no change.
    let (status, body) = s
        .put(
            "/api/v1/flags/checkout",
            json!({"flag": checkout(), "reason": " "}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reason")
    );

    // A viewer reads but does not change.
    let viewer = s.token("reader", "viewer", None).await;
    let (status, _) = s
        .call(reqwest::Method::GET, "/api/v1/flags", Some(&viewer), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/flags/checkout/kill",
            Some(&viewer),
            Some(json!({"reason": "no"})),
        )
        .await;
    assert_eq!(status, 403);

    // Validation names the field.
    let mut bad = checkout();
    bad["environments"]["production"]["default_variant"] = json!("purple");
    let (status, body) = s
        .put(
            "/api/v1/flags/checkout",
            json!({"flag": bad, "reason": "typo"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("flags.checkout.environments.production.default_variant"),
        "{msg}"
    );
    let (status, body) = s
        .put(
            "/api/v1/flags/checkout",
            json!({"flag": {"kind": "bool", "colour": 1}, "reason": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{body}"
    );
    let (status, _) = s
        .put("/api/v1/flags/stale", json!({"flag": {}, "reason": "x"}))
        .await;
    assert!(
        status == 400 || status == 405,
        "reserved key accepted: {status}"
    );

    // Kill switch in one environment, then a rollout.
    let (status, body) = s
        .post(
            "/api/v1/flags/checkout/kill",
            json!({"environment": "production", "reason": "errors spiked"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["switched_off"], json!(["production"]));
    assert_eq!(
        body["changes"],
        json!(["~ flag checkout env production: enabled true -> false"])
    );
    let (status, body) = s
        .post(
            "/api/v1/flags/checkout/rollout",
            json!({"environment": "staging", "percentage": 25, "reason": "ramp"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .post(
            "/api/v1/flags/checkout/rollout",
            json!({"environment": "staging", "percentage": 250, "reason": "ramp"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // The listing and the history.
    let (_, list) = s.get("/api/v1/flags").await;
    let row = &list["flags"][0];
    assert_eq!(row["key"], "checkout");
    assert_eq!(row["environments"]["production"]["enabled"], false);
    assert_eq!(row["environments"]["staging"]["rollout"], 25.0);
    let (status, one) = s.get("/api/v1/flags/checkout").await;
    assert_eq!(status, 200);
    let history = one["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{one}");
    assert_eq!(history[1]["actor"], "admin");
    assert_eq!(history[1]["reason"], "errors spiked");
    assert_eq!(history[0]["action"], "created");

    // Every change is a flag_changed event with who and why.
    let events = s.events_of("flag_changed").await;
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e["project"] == "" && e["actor"] == "admin")
    );
    assert_eq!(events[1]["reason"], "errors spiked");

    // Deleting a flag another one needs is refused; then deleted for real.
    s.put_flag(
        "child",
        json!({"environments": {"staging": {"enabled": true, "prerequisites": [{"flag": "checkout"}]}}}),
    )
    .await;
    let (status, body) = s
        .call(
            reqwest::Method::DELETE,
            "/api/v1/flags/checkout",
            Some(ADMIN),
            Some(json!({"reason": "done"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            "/api/v1/flags/child?reason=gone",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = s.get("/api/v1/flags/child").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deleted by admin"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_changes_only_its_environment() {
    let (s, _dir) = start().await;
    s.put_flag("checkout", checkout()).await;
    let staging = s.token("staging-dev", "developer", Some("staging")).await;
    let call = |path: &'static str, body: Value| {
        let s = &s;
        let staging = staging.clone();
        async move {
            s.call(reqwest::Method::POST, path, Some(&staging), Some(body))
                .await
                .0
        }
    };
    assert_eq!(
        call(
            "/api/v1/flags/checkout/kill",
            json!({"environment": "staging", "reason": "r"})
        )
        .await,
        200
    );
    assert_eq!(
        call(
            "/api/v1/flags/checkout/kill",
            json!({"environment": "production", "reason": "r"})
        )
        .await,
        403
    );
    assert_eq!(
        call("/api/v1/flags/checkout/kill", json!({"reason": "r"})).await,
        403
    );
    // A PUT that also touches production is refused; one that does not passes.
    let mut f = checkout();
    f["environments"]["production"]["enabled"] = json!(false);
    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/flags/checkout",
            Some(&staging),
            Some(json!({"flag": f, "reason": "r"})),
        )
        .await;
    assert_eq!(status, 403);
    let mut f = checkout();
    f["environments"]["staging"]["enabled"] = json!(false);
    let (status, body) = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/flags/checkout",
            Some(&staging),
            Some(json!({"flag": f, "reason": "r"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_changes_are_applied_by_the_scheduler() {
    let (s, _dir) = start().await;
    s.put_flag("checkout", checkout()).await;
    let (status, body) = s
        .post(
            "/api/v1/flags/checkout/schedule",
            json!({"at": "2001-01-01T00:00:00Z", "environment": "nowhere", "percentage": 50, "reason": "r"}),
        )
        .await;
    assert_eq!(status, 400, "an unknown environment is refused: {body}");
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1500;
    let (status, body) = s
        .post(
            "/api/v1/flags/checkout/schedule",
            json!({"at": at, "environment": "staging", "percentage": 50, "reason": "ramp to half"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schedule"][0]["by"], "admin");
    let deadline = Instant::now() + Duration::from_secs(10);
    let applied = loop {
        let (_, one) = s.get("/api/v1/flags/checkout").await;
        let last = one["history"].as_array().unwrap().last().cloned().unwrap();
        if last["actor"] == "scheduler" {
            break one;
        }
        assert!(Instant::now() < deadline, "not applied: {one}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last = applied["history"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.contains("staging") && reason.contains("50") && reason.contains("ramp to half"),
        "{reason}"
    );
    assert_eq!(applied["schedule"], json!([]));
    let rules = &applied["flag"]["environments"]["staging"]["rules"];
    assert_eq!(rules[0]["rollout"]["percentage"], 50.0, "{applied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_shows_the_diff_then_makes_the_document_the_truth() {
    let (s, _dir) = start().await;
    s.put_flag(
        "old",
        json!({"environments": {"production": {"enabled": true}}}),
    )
    .await;
    let doc = json!({
        "flags": {
            "checkout": checkout(),
            "theme": {"kind": "string", "variants": {"light": "#fff", "dark": "#000"},
                       "environments": {"production": {"enabled": true, "default_variant": "dark",
                           "rules": [{"segments": ["beta"], "serve": "light"}]}}}
        },
        "segments": {"beta": {"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@andon.dev"]}]}}
    });
    let (status, dry) = s
        .post(
            "/api/v1/flags/apply",
            json!({"document": doc, "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["applied"], false);
    let lines: Vec<&str> = dry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"+ segment beta"), "{lines:?}");
    assert!(lines.contains(&"- flag old"), "{lines:?}");
    assert!(lines.contains(&"+ flag theme"), "{lines:?}");
    let (_, list) = s.get("/api/v1/flags").await;
    assert_eq!(
        list["flags"].as_array().unwrap().len(),
        1,
        "a dry run changes nothing"
    );

    let (status, body) = s
        .post(
            "/api/v1/flags/apply",
            json!({"document": doc, "dry_run": false}),
        )
        .await;
    assert_eq!(status, 400, "a reason is needed to apply: {body}");
    let (status, done) = s
        .post(
            "/api/v1/flags/apply",
            json!({"document": doc, "reason": "release 12"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["applied"], true);
    assert_eq!(done["changes"], dry["changes"]);
    let (_, again) = s
        .post(
            "/api/v1/flags/apply",
            json!({"document": doc, "reason": "again"}),
        )
        .await;
    assert_eq!(
        again["changes"],
        json!([]),
        "applying twice changes nothing"
    );

    // The segment works in evaluation.
    let a = s
        .ofrep(
            "/ofrep/v1/evaluate/flags/theme",
            r#"{"context": {"targetingKey": "u1", "email": "kim@andon.dev"}}"#,
            None,
        )
        .await;
    assert_eq!(a.body["value"], "#fff", "{}", a.text);
    assert_eq!(a.body["reason"], "TARGETING_MATCH");

    // Invalid documents name the place.
    let (status, body) = s
        .post(
            "/api/v1/flags/apply",
            json!({"document": {"flags": {"x": {"environments": {"production": {"enabled": true, "rules": [{"segments": ["nope"], "serve": "on"}]}}}}}, "reason": "r"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flags.x.environments.production.rules[0].segments"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unleash_documents_import_into_one_environment() {
    let (s, _dir) = start().await;
    s.put_flag(
        "kept",
        json!({"environments": {"staging": {"enabled": true}}}),
    )
    .await;
    let unleash = json!({"version": 2, "features": [
        {"name": "kept", "enabled": true, "strategies": [{"name": "default"}]},
        {"name": "search", "enabled": true, "strategies": [
            {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default", "groupId": "search"}}
        ]}
    ]});
    let (status, body) = s
        .post(
            "/api/v1/flags/import/unleash",
            json!({"document": unleash.to_string(), "environment": "production", "reason": "moving off Unleash"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"], json!(["kept", "search"]));
    let (_, kept) = s.get("/api/v1/flags/kept").await;
    let envs = kept["flag"]["environments"].as_object().unwrap();
    assert!(
        envs.contains_key("staging") && envs.contains_key("production"),
        "{kept}"
    );
    let a = s
        .ofrep(
            "/ofrep/v1/evaluate/flags/search",
            r#"{"context": {"targetingKey": "u1"}}"#,
            None,
        )
        .await;
    assert_eq!(a.body["value"], true, "{}", a.text);
    let (status, _) = s
        .post(
            "/api/v1/flags/import/unleash",
            json!({"document": "{not json", "environment": "production", "reason": "r"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposures_are_events_and_staleness_says_where_flags_were_seen() {
    let (s, _dir) = start().await;
    s.put_flag(
        "done",
        json!({"temporary": true, "environments": {"production": {"enabled": true}}}),
    )
    .await;
    let sdk = s.token("web-sdk", "viewer", Some("production")).await;
    let report = json!({"environment": "production", "counts": {
        "done": {"on": {"evaluations": 120, "errors": 1, "outcomes": 40}}
    }});
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/flags/exposures",
            Some(&sdk),
            Some(report.clone()),
        )
        .await;
    assert_eq!(status, 202);
    let mut other = report.clone();
    other["environment"] = json!("staging");
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/flags/exposures",
            Some(&sdk),
            Some(other),
        )
        .await;
    assert_eq!(status, 403, "an SDK token reports for its environment only");
    let events = s.events_of("flag_exposures").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "web-sdk");
    assert_eq!(events[0]["counts"]["done"]["on"]["evaluations"], 120);

    let (_, stale) = s.get("/api/v1/flags/stale?days=0").await;
    let row = &stale["flags"][0];
    assert_eq!(row["key"], "done", "{stale}");
    assert_eq!(row["variant"], "on");
    assert!(row["last_evaluated_ms"]["production"].as_i64().unwrap() > 0);
    let (_, none) = s.get("/api/v1/flags/stale?days=30").await;
    assert_eq!(none["flags"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_is_per_environment_with_an_etag_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(dir.path()).await;
    s.put_flag("checkout", checkout()).await;
    let sdk = s.token("sdk", "viewer", Some("staging")).await;
    let a = s
        .send(
            s.http
                .get(format!("{}/api/v1/flags/snapshot", s.base))
                .bearer_auth(&sdk),
        )
        .await;
    assert_eq!(a.status, 200);
    let envs = a.body["flags"]["checkout"]["environments"]
        .as_object()
        .unwrap();
    assert_eq!(
        envs.keys().collect::<Vec<_>>(),
        vec!["staging"],
        "{}",
        a.text
    );
    let etag = a.headers["etag"].to_str().unwrap().to_string();
    let b = s
        .send(
            s.http
                .get(format!("{}/api/v1/flags/snapshot", s.base))
                .bearer_auth(&sdk)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(b.status, 304);
    let c = s
        .send(
            s.http
                .get(format!(
                    "{}/api/v1/flags/snapshot?environment=production",
                    s.base
                ))
                .bearer_auth(&sdk),
        )
        .await;
    assert_eq!(c.status, 403);
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let s = start_in(dir.path()).await;
    let again = s
        .send(
            s.http
                .get(format!("{}/api/v1/flags/snapshot", s.base))
                .bearer_auth(&sdk),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.headers["etag"].to_str().unwrap(),
        etag,
        "the version is the log's"
    );
    assert_eq!(again.body, a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_tells_clients_to_refetch() {
    let (s, _dir) = start().await;
    s.put_flag("checkout", checkout()).await;
    let sdk = s.token("sdk", "viewer", Some("production")).await;
    let resp = s
        .http
        .get(format!("{}/ofrep/v1/events", s.base))
        .bearer_auth(&sdk)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.bytes_stream();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.post(
        "/api/v1/flags/checkout/kill",
        json!({"environment": "production", "reason": "stop"}),
    )
    .await;
    let mut text = String::new();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("\n\n") && text.contains("data:") {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "no notification: {text:?}");
    assert!(text.contains("event: message"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["type"], "refetchEvaluation");
    assert!(data["etag"].as_str().unwrap().starts_with("\"v"));
    assert!(data["lastModified"].as_i64().unwrap() > 1_600_000_000);

    // A client that missed a change is told at once when it reconnects.
    let resp = s
        .http
        .get(format!("{}/ofrep/v1/events", s.base))
        .bearer_auth(&sdk)
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
    let chunk = first.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("refetchEvaluation"));

    let (status, _) = s
        .call(reqwest::Method::GET, "/ofrep/v1/events", None, None)
        .await;
    assert_eq!(status, 401);
}

// --- OFREP against the protocol's document ------------------------------

/// The OFREP conformance folder: `ANDON_CONFORMANCE_DIR`, else
/// `shared/conformance` in a parent directory, else `/work/shared/...`.
fn conformance_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ANDON_CONFORMANCE_DIR") {
        return PathBuf::from(d);
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("shared/conformance");
        if candidate.is_dir() {
            return candidate;
        }
        dir = d.parent();
    }
    PathBuf::from("/work/shared/conformance")
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(r) => r.parse::<f64>().map(Value::from).unwrap_or(Value::Null),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

/// The OFREP OpenAPI document, as JSON, with the one correction its
/// schemas need to be usable by a validator: `evaluationSuccess` requires
/// exactly one of six value shapes (`oneOf`), but as written an integer is
/// also a float and `codeDefaultFlag` (any object) matches every answer,
/// so no answer with a value could ever pass. The test tightens those two
/// branches to what the prose says: a float that is not an integer, and
/// "no `value`". The file itself is never changed.
fn ofrep_document() -> Value {
    let path = conformance_dir().join("ofrep/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the OFREP conformance document is missing at {}: {e}",
            path.display()
        )
    });
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let mut doc = yaml_to_json(&docs[0]);
    let schemas = &mut doc["components"]["schemas"];
    schemas["codeDefaultFlag"] = json!({"type": "object", "not": {"required": ["value"]}});
    schemas["floatFlag"]["properties"]["value"] =
        json!({"type": "number", "not": {"type": "integer"}});
    doc
}

/// Validates `body` against the document's schema for that answer.
fn check(doc: &Value, path: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path]["post"]["responses"][status.to_string()];
    let schema = &op["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "the document has no schema for {path} {status}"
    );
    let mut root = doc.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$ref"] = schema["$ref"].clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{path} {status}: {body} does not match: {errors:?}"
    );
}

#[test]
fn the_corrected_document_still_rejects_wrong_answers() {
    let doc = ofrep_document();
    let one = "/ofrep/v1/evaluate/flags/{key}";
    check(
        &doc,
        one,
        200,
        &json!({"key": "a", "value": true, "reason": "STATIC", "variant": "on"}),
    );
    check(
        &doc,
        one,
        200,
        &json!({"key": "a", "value": 1.5, "reason": "STATIC"}),
    );
    check(&doc, one, 200, &json!({"key": "a", "reason": "STATIC"}));
    let wrong = [
        json!({"key": "a", "value": true, "reason": "DEFAULT"}),
        json!({"value": true, "reason": "STATIC"}),
        json!({"key": "a", "value": [1], "reason": "STATIC"}),
    ];
    for body in wrong {
        let r = std::panic::catch_unwind(|| check(&doc, one, 200, &body));
        assert!(r.is_err(), "accepted {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_answers_match_the_protocol_document() {
    let doc = ofrep_document();
    let (s, _dir) = start().await;
    s.put_flag("checkout", checkout()).await;
    s.put_flag(
        "banner",
        json!({"kind": "string", "variants": {"a": "hello", "b": "hi"},
               "environments": {"production": {"enabled": true, "default_variant": "a",
                   "rules": [{"serve": {"split": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}]}}}),
    )
    .await;
    s.put_flag(
        "limit",
        json!({"kind": "number", "variants": {"low": 10, "high": 2.5},
               "environments": {"production": {"enabled": true, "default_variant": "low"}, "staging": {"enabled": true, "default_variant": "high"}}}),
    )
    .await;
    s.put_flag(
        "layout",
        json!({"kind": "json", "variants": {"grid": {"columns": 3}, "none": null},
               "environments": {"production": {"enabled": true, "default_variant": "grid"}, "staging": {"enabled": true, "default_variant": "none"}}}),
    )
    .await;
    let one = "/ofrep/v1/evaluate/flags/{key}";
    let ok = |key: &str, ctx: Value| {
        let s = &s;
        let body = json!({"context": ctx}).to_string();
        let path = format!("/ofrep/v1/evaluate/flags/{key}");
        async move { s.ofrep(&path, &body, None).await }
    };

    // Successes of every type, and reasons.
    let a = ok("checkout", json!({"targetingKey": "u1", "country": "no"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.body,
        json!({"key": "checkout", "value": true, "reason": "TARGETING_MATCH", "variant": "on"})
    );
    check(&doc, one, 200, &a.body);
    let a = ok("checkout", json!({"targetingKey": "u1", "country": "se"})).await;
    assert_eq!(a.body["reason"], "UNKNOWN");
    assert_eq!(a.body["metadata"]["andonReason"], "DEFAULT");
    check(&doc, one, 200, &a.body);
    let a = ok("banner", json!({"targetingKey": "u1"})).await;
    assert_eq!(a.body["reason"], "SPLIT");
    check(&doc, one, 200, &a.body);
    for (env, value) in [("production", json!(10)), ("staging", json!(2.5))] {
        let a = ok("limit", json!({"targetingKey": "u1", "environment": env})).await;
        assert_eq!(a.body["value"], value, "{}", a.text);
        check(&doc, one, 200, &a.body);
    }
    let a = ok("layout", json!({"targetingKey": "u1"})).await;
    assert_eq!(a.body["value"], json!({"columns": 3}));
    check(&doc, one, 200, &a.body);
    let a = ok(
        "layout",
        json!({"targetingKey": "u1", "environment": "staging"}),
    )
    .await;
    assert!(
        a.body.get("value").is_none(),
        "null means the code default: {}",
        a.text
    );
    check(&doc, one, 200, &a.body);
    let a = ok(
        "checkout",
        json!({"targetingKey": "u1", "environment": "qa"}),
    )
    .await;
    assert_eq!(a.body["reason"], "DISABLED", "{}", a.text);
    check(&doc, one, 200, &a.body);

    // Errors.
    let a = ok("nope", json!({"targetingKey": "u1"})).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["errorCode"], "FLAG_NOT_FOUND");
    check(&doc, one, 404, &a.body);
    let a = ok("banner", json!({"country": "no"})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.body["errorCode"], "TARGETING_KEY_MISSING");
    check(&doc, one, 400, &a.body);
    let a = ok("checkout", json!({"targetingKey": 7})).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errorCode"], "INVALID_CONTEXT");
    check(&doc, one, 400, &a.body);
    let a = s
        .ofrep("/ofrep/v1/evaluate/flags/checkout", "{\"context\": ", None)
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errorCode"], "PARSE_ERROR");
    check(&doc, one, 400, &a.body);

    // Auth: 401 without a valid token, 403 for another environment.
    let a = s
        .send(
            s.http
                .post(format!("{}/ofrep/v1/evaluate/flags/checkout", s.base))
                .body("{\"context\":{}}"),
        )
        .await;
    assert_eq!(a.status, 401);
    let a = s
        .ofrep(
            "/ofrep/v1/evaluate/flags/checkout",
            "{\"context\":{}}",
            Some("wrong"),
        )
        .await;
    assert_eq!(a.status, 401);
    let sdk = s.token("sdk", "viewer", Some("staging")).await;
    let a = s
        .ofrep(
            "/ofrep/v1/evaluate/flags/limit",
            r#"{"context": {"targetingKey": "u", "environment": "production"}}"#,
            Some(&sdk),
        )
        .await;
    assert_eq!(a.status, 403);
    let a = s
        .ofrep(
            "/ofrep/v1/evaluate/flags/limit",
            r#"{"context": {"targetingKey": "u"}}"#,
            Some(&sdk),
        )
        .await;
    assert_eq!(a.body["value"], 2.5, "the token's environment: {}", a.text);
    let a = s
        .send(
            s.http
                .post(format!("{}/ofrep/v1/evaluate/flags/limit", s.base))
                .header("x-api-key", &sdk)
                .body(r#"{"context": {"targetingKey": "u"}}"#),
        )
        .await;
    assert_eq!(a.status, 200, "X-API-Key works too");

    // Bulk, its ETag and 304.
    let bulk = "/ofrep/v1/evaluate/flags";
    let ctx = r#"{"context": {"targetingKey": "u1", "country": "no"}}"#;
    let a = s.ofrep(bulk, ctx, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    check(&doc, bulk, 200, &a.body);
    let keys: Vec<&str> = a.body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["banner", "checkout", "layout", "limit"]);
    assert_eq!(a.body["eventStreams"][0]["type"], "sse");
    let etag = a.headers["etag"].to_str().unwrap().to_string();
    let again = s
        .send(
            s.http
                .post(format!("{}{bulk}", s.base))
                .bearer_auth(ADMIN)
                .header("if-none-match", &etag)
                .body(ctx),
        )
        .await;
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    let other = s
        .send(
            s.http
                .post(format!("{}{bulk}", s.base))
                .bearer_auth(ADMIN)
                .header("if-none-match", &etag)
                .body(r#"{"context": {"targetingKey": "u2"}}"#),
        )
        .await;
    assert_eq!(other.status, 200, "another context is another answer");
    s.post("/api/v1/flags/checkout/kill", json!({"reason": "stop"}))
        .await;
    let changed = s
        .send(
            s.http
                .post(format!("{}{bulk}", s.base))
                .bearer_auth(ADMIN)
                .header("if-none-match", &etag)
                .body(ctx),
        )
        .await;
    assert_eq!(changed.status, 200, "a change invalidates the ETag");
    assert_ne!(changed.headers["etag"], etag.as_str());
    check(&doc, bulk, 200, &changed.body);
    let a = s.ofrep(bulk, r#"{"context": "me"}"#, None).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errorCode"], "INVALID_CONTEXT");
    check(&doc, bulk, 400, &a.body);
    // A bulk answer whose flag fails carries the failure as an item.
    let a = s.ofrep(bulk, r#"{"context": {}}"#, None).await;
    assert_eq!(a.status, 200);
    check(&doc, bulk, 200, &a.body);
    assert!(
        a.body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["errorCode"] == "TARGETING_KEY_MISSING"),
        "{}",
        a.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_routes_are_in_the_openapi_document() {
    let (s, _dir) = start().await;
    let (status, doc) = s
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    for (source, prefix) in [
        (include_str!("../src/api/flags.rs"), "/api/v1"),
        (include_str!("../src/api/ofrep.rs"), ""),
    ] {
        let paths: Vec<&str> = source
            .split(".route(")
            .skip(1)
            .map(|rest| rest.split('"').nth(1).unwrap())
            .collect();
        assert!(!paths.is_empty());
        for path in paths {
            let full = format!("{prefix}{path}");
            assert!(
                doc["paths"].get(&full).is_some(),
                "{full} is served but not in openapi.json"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_stops_evaluating_at_once() {
    let (s, _dir) = start().await;
    s.put_flag("checkout", checkout()).await;
    let (_, created) = s
        .post(
            "/api/v1/tokens",
            json!({"name": "sdk", "role": "viewer", "environment": "production"}),
        )
        .await;
    let secret = created["token"].as_str().unwrap();
    let path = "/ofrep/v1/evaluate/flags/checkout";
    let body = r#"{"context": {"targetingKey": "u1"}}"#;
    assert_eq!(s.ofrep(path, body, Some(secret)).await.status, 200);
    assert_eq!(
        s.ofrep(path, body, Some(secret)).await.status,
        200,
        "cached"
    );
    let id = created["id"].as_str().unwrap();
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(s.ofrep(path, body, Some(secret)).await.status, 401);
}
