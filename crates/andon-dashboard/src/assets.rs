//! The dashboard's files, embedded at compile time.
//!
//! Each file is listed by hand with its content type: a file left out of
//! [`ASSETS`] is not served, and the `every_file_is_listed` test fails, so a
//! new module cannot be forgotten silently. ETags are hashes of the bytes
//! computed at compile time, so they change exactly when a file does.

/// One embedded file.
pub(crate) struct Asset {
    /// Path below `/assets/`.
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
    /// FNV-1a of `body`: cheap, stable across builds, and enough to tell
    /// versions of one file apart (an ETag needs no collision resistance).
    pub(crate) hash: u64,
}

impl Asset {
    /// The quoted strong validator for the `ETag` header.
    pub(crate) fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($path:literal, $ctype:expr) => {
        Asset {
            path: $path,
            content_type: $ctype,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
            hash: {
                const H: u64 = fnv1a(include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/assets/",
                    $path
                )));
                H
            },
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// `index.html`, served at `/`.
pub(crate) static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Everything served under `/assets/`.
pub(crate) static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/api.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/dag.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/events.js", JS),
    asset!("js/format.js", JS),
    asset!("js/main.js", JS),
    asset!("js/sse.js", JS),
    asset!("js/trend.js", JS),
    asset!("js/ui.js", JS),
    asset!("js/pages/board.js", JS),
    asset!("js/pages/deploy.js", JS),
    asset!("js/pages/envs.js", JS),
    asset!("js/pages/flag.js", JS),
    asset!("js/pages/flags.js", JS),
    asset!("js/pages/incident.js", JS),
    asset!("js/pages/incidents.js", JS),
    asset!("js/pages/login.js", JS),
    asset!("js/pages/metrics.js", JS),
    asset!("js/pages/projects.js", JS),
    asset!("js/pages/run.js", JS),
    asset!("js/pages/runs.js", JS),
    asset!("js/pages/stream.js", JS),
];

/// The file at `path` below `/assets/`, if it is one of ours.
pub(crate) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_under(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                files_under(&p, base, out);
            } else {
                out.push(
                    p.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }

    #[test]
    fn every_file_is_listed() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut found = Vec::new();
        files_under(&base, &base, &mut found);
        for f in found {
            if f == "index.html" {
                continue;
            }
            assert!(find(&f).is_some(), "assets/{f} exists but is not in ASSETS");
        }
    }

    #[test]
    fn etags_differ_when_bytes_differ() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        let mut tags: Vec<String> = ASSETS.iter().map(Asset::etag).collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    /// The CSP forbids inline code; a stray `<script>` body, `style=` or
    /// `onclick=` would be blocked by the browser, so refuse it here first.
    #[test]
    fn html_has_no_inline_code() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for bad in [" style=", " onclick=", " onload=", "javascript:"] {
            assert!(!html.contains(bad), "index.html contains `{bad}`");
        }
        for (i, _) in html.match_indices("<script") {
            let tag_end = html[i..].find('>').unwrap() + i;
            assert!(
                html[i..tag_end].contains("src="),
                "inline <script> in index.html"
            );
            assert!(
                html[tag_end + 1..].starts_with("</script>"),
                "script with a body"
            );
        }
        assert!(!html.contains("<style"), "inline <style> in index.html");
    }

    /// Every relative `import ... from "./x.js"` names an embedded module:
    /// a typo would otherwise only show up as a 404 in a browser.
    #[test]
    fn js_imports_resolve() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            let dir = Path::new(a.path).parent().unwrap();
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let Some(start) = line.find(['"', '\'']) else {
                    continue;
                };
                let rest = &line[start + 1..];
                let spec = &rest[..rest.find(['"', '\'']).unwrap()];
                let mut parts: Vec<String> = dir
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s.to_string()),
                    }
                }
                let target = parts.join("/");
                assert!(
                    find(&target).is_some(),
                    "{} imports {spec}: not embedded",
                    a.path
                );
            }
        }
    }
}
