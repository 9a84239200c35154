//! The sample service as a process: answers, settings from the environment, graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Service {
    child: Child,
    addr: String,
}

impl Service {
    fn start(env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sample-service"));
        cmd.env("PORT", "0").stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
        Service { child, addr }
    }

    /// (status, body) of a GET over a fresh connection.
    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
        (status, body)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn answers_its_version_and_health() {
    let s = Service::start(&[("VERSION", "v9")]);
    assert_eq!(s.get("/"), (200, r#"{"version":"v9","ok":true}"#.into()));
    assert_eq!(
        s.get("/any/path"),
        (200, r#"{"version":"v9","ok":true}"#.into())
    );
    assert_eq!(s.get("/healthz"), (200, r#"{"ok":true}"#.into()));
}

#[test]
fn error_rate_and_unhealthy_are_honoured() {
    let s = Service::start(&[("VERSION", "bad"), ("ERROR_RATE", "1"), ("UNHEALTHY", "1")]);
    assert_eq!(s.get("/"), (500, r#"{"version":"bad","ok":false}"#.into()));
    assert_eq!(s.get("/healthz").0, 503);

    let s = Service::start(&[("ERROR_RATE", "0.5"), ("SEED", "7")]);
    let errors = (0..100).filter(|_| s.get("/").0 == 500).count();
    assert!((25..=75).contains(&errors), "{errors}");
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let mut s = Service::start(&[("LATENCY_MS", "400")]);
    let addr = s.addr.clone();
    let slow = std::thread::spawn(move || {
        let probe = Service {
            child: Command::new("true").spawn().unwrap(),
            addr,
        };
        probe.get("/")
    });
    std::thread::sleep(Duration::from_millis(100));
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(slow.join().unwrap().0, 200);
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_settings_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_sample-service"))
        .env("ERROR_RATE", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERROR_RATE"));
}
