//! Notification payloads and their signature. Building them is pure; the
//! server delivers them (with retries) and records each attempt.
//!
//! Two formats: a generic JSON document carrying the whole event, and a
//! Slack-compatible `{"text", "blocks"}` message (also understood by
//! Mattermost and Rocket.Chat incoming webhooks).

use andon_config::NotifyFormat;
use andon_core::{Envelope, Event, RunStatus};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::refusal::short_commit;
use crate::time::format_minute;

/// Whether a subscription wants `event`: its `events` list names the
/// event's type, or is empty (everything).
pub fn wants(events: &[String], event: &Event) -> bool {
    events.is_empty() || events.iter().any(|e| e == event.kind())
}

/// The body for a subscription's format.
pub fn payload(format: NotifyFormat, env: &Envelope) -> Value {
    match format {
        NotifyFormat::Json => json_payload(env),
        NotifyFormat::Slack => slack_payload(env),
    }
}

/// `{"event", "seq", "at_ms", "actor", "project", "summary", "data"}`,
/// where `data` is the event exactly as the log stores it.
pub fn json_payload(env: &Envelope) -> Value {
    json!({
        "event": env.event.kind(),
        "seq": env.seq,
        "at_ms": env.at_ms,
        "actor": env.actor,
        "project": project_of(&env.event),
        "summary": summary(&env.event),
        "data": serde_json::to_value(env).unwrap_or(Value::Null),
    })
}

/// A Slack incoming-webhook message: `text` is the fallback shown in
/// notifications, `blocks` the formatted message.
pub fn slack_payload(env: &Envelope) -> Value {
    let text = summary(&env.event);
    let context = format!(
        "andon · {} · event #{} · {}",
        env.event.kind(),
        env.seq,
        format_minute(env.at_ms, 0)
    );
    json!({
        "text": slack_escape(&text),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("{} {}", icon(&env.event), slack_escape(&text))}
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": slack_escape(&context)}]
            }
        ]
    })
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` with `secret`, the form GitHub's
/// `X-Hub-Signature-256` uses, so receivers can reuse their verifier.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256=");
    for b in hmac_sha256(secret, body) {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` is fallible only
    // because the trait also serves fixed-size-key MACs.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// Slack's three control characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn icon(event: &Event) -> &'static str {
    match event {
        Event::LineStopped { .. } | Event::IncidentOpened { .. } | Event::AlertFired { .. } => {
            ":rotating_light:"
        }
        Event::LineReleased { .. } | Event::IncidentResolved { .. } => ":white_check_mark:",
        Event::DeployFinished {
            outcome: andon_core::DeployOutcome::Succeeded,
            ..
        } => ":rocket:",
        Event::DeployFinished { .. }
        | Event::DeployRefused { .. }
        | Event::LineOverridden { .. } => ":warning:",
        Event::RunFinished {
            status: RunStatus::Failed,
            ..
        } => ":x:",
        _ => ":information_source:",
    }
}

/// The project an event is about, when it names one.
fn project_of(event: &Event) -> Option<&str> {
    match event {
        Event::ProjectAdded { project, .. }
        | Event::ProjectRemoved { project }
        | Event::SecretSet { project, .. }
        | Event::CommitSeen { project, .. }
        | Event::RunQueued { project, .. }
        | Event::DeployRequested { project, .. }
        | Event::DeployRefused { project, .. }
        | Event::DeployFinished { project, .. }
        | Event::IncidentOpened { project, .. }
        | Event::LineStopped { project, .. }
        | Event::LineReleased { project, .. }
        | Event::LineOverridden { project, .. }
        | Event::AlertFired { project, .. }
        | Event::NotificationAttempted { project, .. }
        | Event::CardCreated { project, .. }
        | Event::CardMoved { project, .. }
        | Event::FlagChanged { project, .. }
        | Event::SegmentChanged { project, .. } => Some(project),
        _ => None,
    }
}

/// One sentence about an event, for people.
pub fn summary(event: &Event) -> String {
    let minutes = |ms: u64| ms.div_ceil(60_000);
    match event {
        Event::LineStopped {
            project,
            run_id,
            commit,
        } => format!(
            "{project}: the line is stopped — trunk run #{run_id} failed on {}; production deploys are refused until trunk is green",
            short_commit(commit)
        ),
        Event::LineReleased {
            project,
            run_id,
            red_for_ms,
        } => format!(
            "{project}: the line is released — trunk is green again (run #{run_id}) after {} min",
            minutes(*red_for_ms)
        ),
        Event::LineOverridden {
            project,
            environment,
            reason,
        } => format!("{project}: stopped line overridden for a deploy to {environment}: {reason}"),
        Event::RunFinished {
            run_id,
            status,
            reason,
        } => match reason {
            Some(r) => format!("run #{run_id} {status}: {r}"),
            None => format!("run #{run_id} {status}"),
        },
        Event::DeployRequested {
            project,
            environment,
            deploy_id,
            version,
            ..
        } => format!("{project}: deploy #{deploy_id} of {version} to {environment} started"),
        Event::DeployFinished {
            project,
            environment,
            deploy_id,
            outcome,
            reason,
        } => {
            let base = format!(
                "{project}: deploy #{deploy_id} to {environment} {}",
                outcome.as_str().replace('_', " ")
            );
            match reason {
                Some(r) => format!("{base}: {r}"),
                None => base,
            }
        }
        Event::DeployRefused {
            project,
            environment,
            reason,
            ..
        } => format!("{project}: deploy to {environment} refused: {reason}"),
        Event::JudgeVerdict {
            environment,
            deploy_id,
            outcome,
            sentence,
        } => format!("{environment}: judge says {outcome} for deploy #{deploy_id}: {sentence}"),
        Event::IncidentOpened {
            project,
            incident_id,
            title,
            ..
        } => format!("{project}: incident #{incident_id} opened: {title}"),
        Event::IncidentResolved { incident_id, note } if !note.trim().is_empty() => {
            format!("incident #{incident_id} resolved: {note}")
        }
        Event::IncidentResolved { incident_id, .. } => format!("incident #{incident_id} resolved"),
        Event::AlertFired {
            project,
            environment,
            rule,
            sentence,
        } => format!("{project}/{environment}: alert `{rule}`: {sentence}"),
        Event::PostmortemWritten {
            incident_id,
            action_items,
            ..
        } => format!(
            "postmortem written for incident #{incident_id} ({} action items)",
            action_items.len()
        ),
        Event::CardMoved {
            project,
            card_id,
            from,
            to,
            ..
        } => format!("{project}: card #{card_id} moved from {from} to {to}"),
        other => match project_of(other) {
            Some(p) => format!("{p}: {}", other.kind().replace('_', " ")),
            None => other.kind().replace('_', " "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block size.
        assert_eq!(
            sign(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert!(sign(b"", b"").starts_with("sha256="));
    }

    fn stopped() -> Envelope {
        Envelope {
            seq: 12,
            at_ms: 0,
            actor: "system".into(),
            event: Event::LineStopped {
                project: "shop".into(),
                run_id: 7,
                commit: "abcdef0123".into(),
            },
        }
    }

    #[test]
    fn slack_payload_has_text_and_blocks() {
        let v = slack_payload(&stopped());
        assert_eq!(
            v["text"],
            "shop: the line is stopped — trunk run #7 failed on abcdef0; production deploys are refused until trunk is green"
        );
        assert_eq!(v["blocks"][0]["type"], "section");
        assert_eq!(
            v["blocks"][1]["elements"][0]["text"],
            "andon · line_stopped · event #12 · Thu 1970-01-01 00:00 UTC"
        );
    }

    #[test]
    fn slack_text_is_escaped() {
        let mut env = stopped();
        env.event = Event::LineOverridden {
            project: "shop".into(),
            environment: "production".into(),
            reason: "<!channel> & fix".into(),
        };
        let v = slack_payload(&env);
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .contains("&lt;!channel&gt; &amp; fix")
        );
    }

    #[test]
    fn json_payload_carries_the_event() {
        let v = payload(NotifyFormat::Json, &stopped());
        assert_eq!(v["event"], "line_stopped");
        assert_eq!(v["project"], "shop");
        assert_eq!(v["data"]["run_id"], 7);
        assert_eq!(v["seq"], 12);
    }

    #[test]
    fn subscriptions_filter_by_type() {
        let e = stopped().event;
        assert!(wants(&[], &e));
        assert!(wants(&["line_stopped".to_string()], &e));
        assert!(!wants(&["deploy_finished".to_string()], &e));
    }
}
