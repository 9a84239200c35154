//! Real HAProxy and Prometheus processes for the tests, each in a temp
//! dir on free loopback ports, killed on drop; and a load client that reads
//! which version answered from the sample service's body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether `program` is installed. Missing under `CI`: a failure (setup.sh
/// installs it); missing elsewhere: the caller skips with a clear line.
pub(crate) fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is not installed (scripts/setup.sh installs it)"
        );
        eprintln!("skipped: {program} not installed (scripts/setup.sh installs it)");
    }
    found
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) on drop.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) struct Haproxy {
    pub(crate) url: String,
    pub(crate) socket: PathBuf,
    _proc: Proc,
}

impl Haproxy {
    /// HAProxy with an admin stats socket, a frontend on a free port and
    /// backend `app` of `slots` empty server slots. No `option redispatch`:
    /// a request sent to a stopped instance fails instead of being saved
    /// by HAProxy, so the tests see the driver's mistakes.
    pub(crate) fn start(dir: &Path, slots: u32) -> Haproxy {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("admin.sock");
        let port = free_port();
        let cfg = format!(
            "global
    stats socket {sock} mode 600 level admin
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
frontend fe
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    server-template s 1-{slots} 127.0.0.1:1 disabled
",
            sock = socket.display()
        );
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, cfg).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
            .spawn()
            .unwrap();
        let h = Haproxy {
            url: format!("http://127.0.0.1:{port}"),
            socket,
            _proc: Proc(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.call("show info").is_err() {
            assert!(Instant::now() < deadline, "HAProxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }

    /// One runtime API command, as a person would type it.
    pub(crate) fn call(&self, command: &str) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket)?;
        s.write_all(format!("{command}\n").as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// (slot, status, weight, addr) of backend `app`.
    pub(crate) fn slots(&self) -> Vec<(String, String, u32, String)> {
        let out = self.call("show stat app 4 -1").unwrap();
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (sv, st, w, a) = (col("svname"), col("status"), col("weight"), col("addr"));
        lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (
                    f[sv].to_string(),
                    f[st].to_string(),
                    f[w].parse().unwrap_or(0),
                    f[a].to_string(),
                )
            })
            .collect()
    }
}

pub(crate) struct Prometheus {
    pub(crate) url: String,
    _proc: Proc,
}

impl Prometheus {
    /// Prometheus scraping `target` (`host:port`, path `/metrics`) every
    /// second with a bearer token.
    pub(crate) fn start(dir: &Path, target: &str, token: &str) -> Prometheus {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let cfg = format!(
            "global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: router
    scrape_interval: 1s
    metrics_path: /metrics
    authorization:
      credentials: {token}
    static_configs:
      - targets: ['{target}']
"
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, cfg).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            _proc: Proc(child),
        }
    }

    /// Until Prometheus is ready and has scraped the target once.
    pub(crate) async fn wait_scraped(&self) {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", "up")])
                .send()
                .await;
            if let Ok(r) = up
                && let Ok(body) = r.text().await
                && body.contains(r#""1"]"#)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the router"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Counts of a load run, by the version named in the answer's body.
#[derive(Debug, Default, Clone)]
pub(crate) struct Load {
    pub(crate) sent: u64,
    /// Connection errors, and 5xx not answered by an allowed version.
    pub(crate) failed: u64,
    /// 5xx answered by an allowed version (its own errors).
    pub(crate) own_errors: u64,
    pub(crate) by_version: BTreeMap<String, u64>,
    pub(crate) first_failures: Vec<String>,
}

fn version_of(body: &str) -> String {
    body.split(r#""version":""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

/// Up to `total` GETs with `workers` clients until `stop` or `within`.
pub(crate) async fn load(
    url: String,
    total: u64,
    workers: usize,
    within: Duration,
    stop: Arc<AtomicBool>,
    errors_allowed_from: &'static [&'static str],
) -> Load {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + within;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, url, sent, stop) = (client.clone(), url.clone(), sent.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut l = Load::default();
            while sent.fetch_add(1, Ordering::Relaxed) < total
                && !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                l.sent += 1;
                match client.get(format!("{url}/x")).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        let v = version_of(&body);
                        if status.is_server_error() {
                            if errors_allowed_from.contains(&v.as_str()) {
                                l.own_errors += 1;
                            } else {
                                l.failed += 1;
                                if l.first_failures.len() < 5 {
                                    l.first_failures.push(format!(
                                        "{status}: {}",
                                        body.chars().take(120).collect::<String>()
                                    ));
                                }
                            }
                        }
                        *l.by_version.entry(v).or_default() += 1;
                    }
                    Err(e) => {
                        l.failed += 1;
                        if l.first_failures.len() < 5 {
                            l.first_failures.push(format!("{e:?}"));
                        }
                    }
                }
            }
            l
        }));
    }
    let mut all = Load::default();
    for t in tasks {
        let l = t.await.unwrap();
        all.sent += l.sent;
        all.failed += l.failed;
        all.own_errors += l.own_errors;
        for (k, v) in l.by_version {
            *all.by_version.entry(k).or_default() += v;
        }
        all.first_failures.extend(l.first_failures);
    }
    all
}
