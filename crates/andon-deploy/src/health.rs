//! Readiness: an instance gets traffic only once its health check answers.

use std::net::SocketAddr;
use std::time::Duration;

/// One probe: `GET http://ADDR/PATH` answering 2xx, or, without a health
/// path, a TCP connection that opens.
pub(crate) async fn probe(http: &reqwest::Client, addr: SocketAddr, health: Option<&str>) -> bool {
    match health {
        Some(path) => {
            let sep = if path.starts_with('/') { "" } else { "/" };
            http.get(format!("http://{addr}{sep}{path}"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
        None => tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await
            .is_ok_and(|r| r.is_ok()),
    }
}

/// Probes until the instance answers. Every 50ms at first: readiness is on
/// the critical path of every release and of a rollback that needs fresh
/// instances; then every 250ms so a slow starter is not hammered.
pub(crate) async fn until_ready(http: &reqwest::Client, addr: SocketAddr, health: Option<&str>) {
    let mut attempts = 0u32;
    loop {
        if probe(http, addr, health).await {
            return;
        }
        attempts += 1;
        let pause = if attempts < 100 { 50 } else { 250 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
