//! JUnit XML: the de-facto format every test runner can write.
//!
//! Only what Andon shows is read: each `<testcase>`, and whether it holds a
//! `<failure>`, `<error>` or `<skipped>`. Suites nest freely; the counts
//! attributes on suites are ignored because runners disagree on them.

use std::collections::BTreeMap;
use std::path::Path;

use andon_core::TestCounts;
use quick_xml::events::{BytesStart, Event};

/// Files bigger than this are not read: a report is not worth running the
/// server out of memory.
const MAX_REPORT_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaseResult {
    Passed,
    Failed,
    Skipped,
}

/// Results of one attempt, by test name (`classname.name`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Results {
    pub(crate) cases: BTreeMap<String, CaseResult>,
}

impl Results {
    pub(crate) fn counts(&self) -> TestCounts {
        let mut c = TestCounts::default();
        for r in self.cases.values() {
            match r {
                CaseResult::Passed => c.passed += 1,
                CaseResult::Failed => c.failed += 1,
                CaseResult::Skipped => c.skipped += 1,
            }
        }
        c
    }

    pub(crate) fn failed(&self) -> Vec<String> {
        self.with(CaseResult::Failed)
    }

    pub(crate) fn with(&self, wanted: CaseResult) -> Vec<String> {
        self.cases
            .iter()
            .filter(|(_, r)| **r == wanted)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Adds a report's cases. A name seen twice keeps the worst result.
    fn merge(&mut self, name: String, result: CaseResult) {
        let slot = self.cases.entry(name).or_insert(result);
        if result == CaseResult::Failed {
            *slot = CaseResult::Failed;
        }
    }
}

/// Parses `path` into `into`; false if it is not a JUnit report (other XML,
/// malformed, unreadable, too big), which is not an error: jobs write all
/// kinds of XML.
pub(crate) fn parse_file(path: &Path, into: &mut Results) -> bool {
    let ok_size = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_REPORT_BYTES);
    if !ok_size {
        return false;
    }
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes, into),
        Err(_) => false,
    }
}

pub(crate) fn parse(xml: &[u8], into: &mut Results) -> bool {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut found = Results::default();
    let mut seen_root = false;
    // The test case being read, if inside a <testcase>.
    let mut current: Option<(String, CaseResult)> = None;
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            Err(_) => return false,
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                let tag = local.as_ref();
                if !seen_root {
                    if tag != b"testsuites" && tag != b"testsuite" {
                        return false;
                    }
                    seen_root = true;
                }
                match tag {
                    b"testcase" => {
                        let name = case_name(e);
                        if empty {
                            found.merge(name, CaseResult::Passed);
                        } else {
                            current = Some((name, CaseResult::Passed));
                        }
                    }
                    b"failure" | b"error" => {
                        if let Some((_, r)) = current.as_mut() {
                            *r = CaseResult::Failed;
                        }
                    }
                    b"skipped" => {
                        if let Some((_, r)) = current.as_mut()
                            && *r != CaseResult::Failed
                        {
                            *r = CaseResult::Skipped;
                        }
                    }
                    _ => {}
                }
            }
            Event::End(ref e) if e.local_name().as_ref() == b"testcase" => {
                if let Some((name, r)) = current.take() {
                    found.merge(name, r);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !seen_root {
        return false;
    }
    for (name, r) in found.cases {
        into.merge(name, r);
    }
    true
}

fn case_name(e: &BytesStart<'_>) -> String {
    let attr = |key: &str| {
        e.try_get_attribute(key)
            .ok()
            .flatten()
            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
            .filter(|v| !v.is_empty())
    };
    match (attr("classname"), attr("name")) {
        (Some(c), Some(n)) => format!("{c}.{n}"),
        (None, Some(n)) => n,
        (Some(c), None) => c,
        (None, None) => "(unnamed)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cases_in_nested_suites() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="a" tests="4">
    <testcase classname="a" name="ok"/>
    <testcase classname="a" name="ok2"><system-out>hi</system-out></testcase>
    <testcase classname="a" name="bad"><failure message="boom">trace</failure></testcase>
    <testcase classname="a" name="err"><error/></testcase>
  </testsuite>
  <testsuite name="b"><testcase name="later &amp; skipped"><skipped/></testcase></testsuite>
</testsuites>"#;
        let mut r = Results::default();
        assert!(parse(xml, &mut r));
        assert_eq!(
            r.counts(),
            TestCounts {
                passed: 2,
                failed: 2,
                skipped: 1
            }
        );
        assert_eq!(r.failed(), vec!["a.bad", "a.err"]);
        assert_eq!(r.with(CaseResult::Skipped), vec!["later & skipped"]);
    }

    #[test]
    fn other_xml_and_garbage_are_not_reports() {
        let mut r = Results::default();
        assert!(!parse(b"<project><testcase name='x'/></project>", &mut r));
        assert!(!parse(b"not xml at all <<<", &mut r));
        assert!(!parse(b"", &mut r));
        assert!(r.cases.is_empty());
        assert!(parse(
            b"<testsuite name='s'><testcase name='x'/></testsuite>",
            &mut r
        ));
        assert_eq!(r.counts().passed, 1);
    }
}
