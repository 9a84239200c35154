//! What can go wrong talking to the server. Evaluation itself never fails:
//! it answers from the last snapshot, or with the caller's default.

/// A request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("could not reach the flag server at {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the flag server answered {status} to {url}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the flag snapshot from {url} is not a flag set")]
    Snapshot {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no snapshot after {0:?}")]
    NotReady(std::time::Duration),
}
