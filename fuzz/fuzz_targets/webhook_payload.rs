//! Forge webhooks, end to end through the server's real HTTP application
//! (`Server::app`, in-process, no socket): any body, with a correct, wrong
//! or missing signature, for any forge, must be answered without a panic,
//! never with a 5xx, and always with a JSON body (errors in the contract's
//! `{"error": {"code", "message"}}` shape).
//!
//! Input: byte 0 picks the request shape, the rest is the raw body.
//! - bits 0-1: forge `github`, `gitlab`, `gitea`, or an unknown one;
//! - bit 2: sign the body with the project's secret (else a wrong or no signature);
//! - bit 3: a `ping` event (else `push`);
//! - bits 4-5: no `?project=`, `?project=shop`, `?project=ghost`, or a raw one from the body;
//! - bit 6: Gitea signs with `X-Hub-Signature-256` instead of `X-Gitea-Signature`;
//! - bit 7: no signature header at all (with bit 2 clear).
//!
//! One server is started per process, on a temporary data directory, with
//! project `shop` watching a local repository whose commits are fixed
//! (fixed author, dates and contents), so seeds can name real commits.
#![no_main]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token";
const SECRET: &str = "fuzz-webhook-secret";

struct Harness {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    // Kept for the life of the process (and reachable, so LeakSanitizer is
    // quiet): the server owns the run queue's receiver, so queued runs do
    // not fail on a closed channel; the directory holds its data and the
    // repository.
    _server: std::sync::Mutex<andon_server::Server>,
    _root: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Fuzz")
        .env("GIT_AUTHOR_EMAIL", "fuzz@example.com")
        .env("GIT_COMMITTER_NAME", "Fuzz")
        .env("GIT_COMMITTER_EMAIL", "fuzz@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit(dir: &Path, contents: &str, message: &str) -> String {
    std::fs::write(dir.join("andon.yaml"), contents).expect("write andon.yaml");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "--quiet", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let root = tempfile::tempdir().expect("tempdir");
        let repo = root.path().join("repo");
        std::fs::create_dir_all(&repo).expect("repo dir");
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        let yaml = "pipeline:\n  stages:\n    - name: commit\n      jobs:\n        - name: unit\n          run: \"true\"\n";
        let first = commit(&repo, yaml, "first");
        let second = commit(&repo, &format!("{yaml}# second\n"), "second");
        git(&repo, &["branch", "feature", &first]);
        eprintln!("webhook_payload: main {second} (parent {first}), feature {first}");

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(andon_server::Server::start(andon_server::ServerConfig {
                data_dir: root.path().join("data"),
                store_url: None,
                admin_token: Some(ADMIN.into()),
                parallelism: 1,
                router: None,
            }))
            .expect("server starts");
        let app = server.app();
        let body = serde_json::json!({
            "name": "shop",
            "repo": repo.display().to_string(),
            "poll": "0s",
            "webhook_secret": SECRET,
        });
        let req = Request::post("/api/v1/projects")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = rt.block_on(app.clone().oneshot(req)).expect("infallible");
        assert_eq!(resp.status(), StatusCode::CREATED, "project added");
        Harness {
            rt,
            app,
            _server: std::sync::Mutex::new(server),
            _root: root,
        }
    })
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn percent_encode(s: &[u8]) -> String {
    s.iter().map(|b| format!("%{b:02X}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let forge = ["github", "gitlab", "gitea", "bitbucket"][usize::from(shape & 3)];
    let sign = shape & 4 != 0;
    let event = if shape & 8 != 0 { "ping" } else { "push" };
    let query = match (shape >> 4) & 3 {
        0 => String::new(),
        1 => "?project=shop".into(),
        2 => "?project=ghost".into(),
        _ => format!("?project={}", percent_encode(&body[..body.len().min(16)])),
    };
    let mut req = Request::post(format!("/api/v1/webhooks/{forge}{query}"))
        .header(header::CONTENT_TYPE, "application/json");
    let hmac = if sign {
        hmac_hex(body)
    } else {
        hmac_hex(b"not the body")
    };
    if sign || shape & 0x80 == 0 {
        req = match forge {
            "gitlab" => req.header("x-gitlab-token", if sign { SECRET } else { "wrong" }),
            "gitea" if shape & 0x40 == 0 => req.header("x-gitea-signature", hmac),
            _ => req.header("x-hub-signature-256", format!("sha256={hmac}")),
        };
    }
    let req = req
        .header("x-github-event", event)
        .header("x-gitlab-event", event)
        .header("x-gitea-event", event)
        .body(Body::from(body.to_vec()))
        .expect("request");
    let (status, content_type, answer) = h.rt.block_on(async {
        let resp = h.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ct, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{status}: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        content_type.starts_with("application/json"),
        "{status} with content type {content_type:?}"
    );
    let json: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON body");
    if !status.is_success() {
        assert!(
            json["error"]["code"].is_string() && json["error"]["message"].is_string(),
            "{status}: error body {json}"
        );
    }
});
