//! A private Podman for one test: its own storage (vfs, in a temporary
//! directory), its own Docker-compatible API socket, a busybox image
//! imported from Debian's busybox-static (no registry is reachable here).
//!
//! Podman only works here with runc, cgroupfs and host networking (see
//! docs/containers.md); Andon (runner and controller) sets ulimits and host
//! networking itself. Shared by the runner's and the controller's tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Podman {
    dir: tempfile::TempDir,
    service: Child,
    /// `unix://…/api.sock`, for `DOCKER_HOST` / `RunSpec::docker_host`.
    pub(crate) host: String,
}

/// None (with a note) when Podman or busybox-static is missing and CI is
/// not set; under CI a missing component fails the test.
pub(crate) fn start() -> Option<Podman> {
    let missing: Vec<&str> = [("podman", "podman"), ("runc", "/usr/sbin/runc")]
        .into_iter()
        .filter(|(_, bin)| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .map(|(name, _)| name)
        .chain((!busybox().exists()).then_some("busybox-static"))
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "{} not installed (bash scripts/setup.sh)",
            missing.join(", ")
        );
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipped: {msg}");
        return None;
    }
    // Short path: conmon's socket paths must fit in 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("andon-pm-")
        .tempdir_in("/tmp")
        .unwrap();
    let sock = dir.path().join("api.sock");
    let host = format!("unix://{}", sock.display());
    let mut pm = Podman {
        service: podman_cmd(dir.path())
            .args(["system", "service", "--time=0"])
            .arg(&host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("service.log")).unwrap())
            .spawn()
            .unwrap(),
        dir,
        host,
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(
            Instant::now() < until,
            "podman service did not create {}: {}",
            sock.display(),
            pm.service_log()
        );
        if let Ok(Some(status)) = pm.service.try_wait() {
            panic!("podman service exited ({status}): {}", pm.service_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(pm)
}

fn busybox() -> PathBuf {
    PathBuf::from("/bin/busybox")
}

/// `podman` with this machine's working runtime flags and private storage.
fn podman_cmd(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--tmpdir")
        .arg(dir.join("tmp"))
        .args([
            "--storage-driver",
            "vfs",
            "--runtime",
            "/usr/sbin/runc",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ]);
    c
}

impl Podman {
    pub(crate) fn cli(&self) -> Command {
        podman_cmd(self.dir.path())
    }

    fn service_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// Imports a busybox rootfs (every applet linked in /bin) plus `files`
    /// (path, content) as `name`, with `cmd` as its command; returns the
    /// image id (`sha256:…`).
    pub(crate) fn import(&self, name: &str, files: &[(&str, &str)], cmd: &str) -> String {
        let rootfs = self
            .dir
            .path()
            .join(format!("rootfs-{}", name.replace(['/', ':'], "_")));
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
        let list = Command::new(busybox()).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        for (path, content) in files {
            let p = rootfs.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let tar = rootfs.with_extension("tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(ok.success());
        let out = self
            .cli()
            .args(["import", "--quiet", "--change", "ENV PATH=/bin", "--change"])
            .arg(format!("CMD {cmd}"))
            .arg(&tar)
            .arg(name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Ids of the containers (any state) carrying `label` (`KEY=VALUE`).
    pub(crate) fn containers_with(&self, label: &str) -> Vec<String> {
        let out = self
            .cli()
            .args(["ps", "-a", "-q", "--filter"])
            .arg(format!("label={label}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cli()
            .args(["rm", "-a", "-f", "-t", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}
