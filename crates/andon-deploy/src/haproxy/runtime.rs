//! HAProxy's runtime API over its stats socket: one command per
//! connection, so each answer is read alone and a refusal is never
//! mistaken for the next command's output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::DeployError;

/// Longest wait for one command: HAProxy answers from memory.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers larger than this are cut (a `show stat` of a few hundred servers
/// is well below it).
const MAX_ANSWER: u64 = 8 << 20;

/// One server (slot) of a backend as `show stat` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) name: String,
    /// `ip:port` as configured (meaningless while in maintenance).
    pub(crate) addr: String,
    /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, ...
    pub(crate) status: String,
    /// Requests queued for this server and sessions on it: in flight.
    pub(crate) qcur: u64,
    pub(crate) scur: u64,
    /// Sessions (one per HTTP request in `mode http`) since start.
    pub(crate) stot: u64,
    /// Connection errors, response errors, 5xx answers since start.
    pub(crate) econ: u64,
    pub(crate) eresp: u64,
    pub(crate) hrsp_5xx: u64,
    /// Average response and total times of the last 1024 requests, ms.
    pub(crate) rtime: u64,
    pub(crate) ttime: u64,
}

impl Row {
    pub(crate) fn in_maint(&self) -> bool {
        self.status.starts_with("MAINT")
    }

    pub(crate) fn draining(&self) -> bool {
        self.status.starts_with("DRAIN")
    }

    pub(crate) fn inflight(&self) -> u64 {
        self.qcur + self.scur
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    socket: PathBuf,
}

impl Runtime {
    pub(crate) fn new(socket: &Path) -> Self {
        Runtime {
            socket: socket.to_path_buf(),
        }
    }

    pub(crate) fn err(&self, message: impl std::fmt::Display) -> DeployError {
        DeployError::Haproxy {
            socket: self.socket.clone(),
            message: message.to_string(),
        }
    }

    /// Sends one command and reads the whole answer.
    pub(crate) async fn call(&self, command: &str) -> Result<String, DeployError> {
        let exchange = async {
            let mut s = tokio::net::UnixStream::connect(&self.socket).await?;
            s.write_all(command.as_bytes()).await?;
            s.write_all(b"\n").await?;
            let mut out = Vec::new();
            (&mut s).take(MAX_ANSWER).read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.err(format!("`{command}`: {e}"))),
            Err(_) => Err(self.err(format!("`{command}`: no answer within {CALL_TIMEOUT:?}"))),
        }
    }

    /// A `set server ...` command; HAProxy answers nothing, or a note that
    /// an address changed, when it did what was asked.
    pub(crate) async fn set(&self, command: &str) -> Result<(), DeployError> {
        let answer = self.call(command).await?;
        let text = answer.trim();
        if text.is_empty()
            || text.contains(" changed from ")
            || text.starts_with("no need to change")
        {
            return Ok(());
        }
        Err(self.err(format!("`{command}` was refused: {text}")))
    }

    /// Every server of `backend` (`show stat BACKEND 4 -1`).
    pub(crate) async fn servers(&self, backend: &str) -> Result<Vec<Row>, DeployError> {
        let answer = self.call(&format!("show stat {backend} 4 -1")).await?;
        parse_stat(&answer).map_err(|why| self.err(format!("show stat {backend}: {why}")))
    }
}

/// The CSV of `show stat`, read by column name (the column set grows
/// between HAProxy versions).
pub(crate) fn parse_stat(answer: &str) -> Result<Vec<Row>, String> {
    let mut lines = answer.lines();
    let header = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .ok_or_else(|| answer.trim().chars().take(200).collect::<String>())?;
    let index: HashMap<&str, usize> = header
        .split(',')
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let text = |name: &str| {
            index
                .get(name)
                .and_then(|i| fields.get(*i))
                .map_or(String::new(), |s| (*s).to_string())
        };
        let num = |name: &str| text(name).parse::<u64>().unwrap_or(0);
        let svname = text("svname");
        if svname == "BACKEND" || svname == "FRONTEND" {
            continue;
        }
        rows.push(Row {
            name: svname,
            addr: text("addr"),
            status: text("status"),
            qcur: num("qcur"),
            scur: num("scur"),
            stot: num("stot"),
            econ: num("econ"),
            eresp: num("eresp"),
            hrsp_5xx: num("hrsp_5xx"),
            rtime: num("rtime"),
            ttime: num("ttime"),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_stat_is_read_by_column_name() {
        let answer = "# pxname,svname,qcur,scur,stot,econ,eresp,status,hrsp_5xx,rtime,ttime,addr,\n\
            app,s1,0,2,120,1,0,UP,3,4,9,127.0.0.1:4001,\n\
            app,s2,0,0,0,0,0,MAINT,0,0,0,127.0.0.1:1,\n\
            app,BACKEND,0,2,120,1,0,UP,3,4,9,,\n\n";
        let rows = parse_stat(answer).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "s1");
        assert_eq!(rows[0].addr, "127.0.0.1:4001");
        assert_eq!(
            (rows[0].stot, rows[0].hrsp_5xx, rows[0].inflight()),
            (120, 3, 2)
        );
        assert!(rows[1].in_maint() && !rows[0].in_maint());
        assert!(parse_stat("No such proxy.\n\n").is_err());
    }
}
