//! Delivers notifications to the webhooks a project's trunk `andon.yaml`
//! subscribes (`notify:`), signed and retried, each attempt an event.
//!
//! The task follows the event bus, so a slow subscriber never slows an
//! append. Subscriptions are read from the trunk config when a notable
//! event arrives (they change with the code, like everything in
//! `andon.yaml`). Payloads come from `andon_flow::notify`; the signature
//! header is `X-Andon-Signature: sha256=<hex HMAC of the body>` keyed with
//! the value of the secret the subscription names.

use std::sync::Arc;
use std::time::Duration;

use andon_core::{Envelope, Event};
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// Attempts per notification, and the backoff between them (doubling).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The project a notable event is about, or `None` for events nobody is
/// notified of.
fn notable(event: &Event) -> Option<&str> {
    match event {
        Event::LineStopped { project, .. }
        | Event::LineReleased { project, .. }
        | Event::IncidentOpened { project, .. }
        | Event::DeployFinished { project, .. }
        | Event::AlertFired { project, .. }
        | Event::DeployRefused { project, .. } => Some(project),
        _ => None,
    }
}

/// Follows the bus until the server stops.
pub(crate) async fn run(state: Arc<AppState>) {
    let mut rx = state.bus.subscribe();
    let Ok(client) = reqwest::Client::builder().timeout(TIMEOUT).build() else {
        tracing::error!("could not build the notification HTTP client");
        return;
    };
    loop {
        let env = match rx.recv().await {
            Ok(env) => env,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "notifications fell behind the event log");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(project) = notable(&env.event).map(str::to_string) else {
            continue;
        };
        let state = state.clone();
        let client = client.clone();
        tokio::spawn(async move { notify(&state, &client, &project, &env).await });
    }
}

async fn notify(state: &Arc<AppState>, client: &reqwest::Client, project: &str, env: &Envelope) {
    let Ok(cfg) = crate::flow::trunk_config(state, project).await else {
        return;
    };
    let secrets = state
        .store
        .secrets(&format!("project:{project}"))
        .unwrap_or_default();
    for (i, sub) in cfg
        .notify
        .iter()
        .enumerate()
        .filter(|(_, s)| andon_flow::notify::wants(&s.events, &env.event))
    {
        let body = andon_flow::notify::payload(sub.format, env).to_string();
        let signature = sub
            .secret
            .as_ref()
            .and_then(|name| secrets.get(name))
            .map(|value| andon_flow::sign(value.as_bytes(), body.as_bytes()));
        let state = state.clone();
        let client = client.clone();
        let (project, url, seq) = (project.to_string(), sub.url.clone(), env.seq);
        let target = Target {
            label: label(i, &url),
            url,
        };
        tokio::spawn(async move {
            deliver(
                &state,
                &client,
                &project,
                &target,
                seq,
                &body,
                signature.as_deref(),
            )
            .await;
        });
    }
}

struct Target {
    url: String,
    /// What the log names the subscription by: its position and host,
    /// never the URL, whose path is often a credential (Slack).
    label: String,
}

fn label(index: usize, url: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    format!("notify[{index}] {host}")
}

/// Posts until a 2xx or [`ATTEMPTS`] tries, recording each attempt.
async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    project: &str,
    target: &Target,
    about_seq: u64,
    body: &str,
    signature: Option<&str>,
) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let mut req = client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("x-andon-event-seq", about_seq.to_string())
            .body(body.to_string());
        if let Some(sig) = signature {
            req = req.header("x-andon-signature", sig);
        }
        let (ok, detail) = match req.send().await {
            Ok(resp) if resp.status().is_success() => (true, resp.status().to_string()),
            Ok(resp) => (false, resp.status().to_string()),
            Err(e) => (false, e.to_string()),
        };
        let recorded = state.append(
            "notify",
            vec![Event::NotificationAttempted {
                project: project.to_string(),
                subscription: target.label.clone(),
                about_seq,
                attempt,
                ok,
                detail,
            }],
        );
        if let Err(e) = recorded {
            tracing::error!(error = %e, "could not record a notification attempt");
        }
        if ok {
            return;
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
