//! `parse` must never panic, whatever it is given: random bytes, YAML-ish
//! noise, and valid files with random edits.

use proptest::prelude::*;

const CONTRACT: &str = include_str!("fixtures/contract.yaml");
const EXAMPLE: &str = include_str!("../../../examples/andon.yaml");

/// Characters that matter to YAML's grammar, to reach deeper than bytes do.
const YAML_CHARS: &[char] = &[
    ' ', ' ', ' ', '\n', '\n', '\t', ':', '-', '[', ']', '{', '}', ',', '#', '&', '*', '!', '|',
    '>', '\'', '"', '%', '@', '`', '?', '<', '\\', '.', 'a', 'b', 'n', 'e', '0', '1', '~', '\r',
    'é', '\u{feff}',
];

fn parse_any(text: &str) {
    if let Err(diagnostics) = andon_config::parse("andon.yaml", text) {
        // Rendering must not panic either, and must have located errors.
        let rendered = diagnostics.to_string();
        assert!(!diagnostics.0.is_empty());
        assert!(rendered.starts_with("andon.yaml:"));
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match edit {
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(chars.len());
                if at < end {
                    chars.drain(at..end);
                }
            }
            Edit::Insert(at, s) => {
                let at = (at % len).min(chars.len());
                for (i, c) in s.chars().enumerate() {
                    chars.insert(at + i, c);
                }
            }
            Edit::Replace(at, c) => {
                if let Some(slot) = chars.get_mut(at % len) {
                    *slot = *c;
                }
            }
            Edit::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(chars.len());
                let copy: Vec<char> = chars.get(at..end).map(<[char]>::to_vec).unwrap_or_default();
                for (i, c) in copy.into_iter().enumerate() {
                    chars.insert(end + i, c);
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    let yaml_char = proptest::sample::select(YAML_CHARS);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (
            any::<usize>(),
            proptest::collection::vec(yaml_char.clone(), 1..8)
        )
            .prop_map(|(a, s)| Edit::Insert(a, s.into_iter().collect())),
        (any::<usize>(), yaml_char).prop_map(|(a, c)| Edit::Replace(a, c)),
        (any::<usize>(), 1usize..200).prop_map(|(a, n)| Edit::Duplicate(a, n)),
    ]
}

proptest! {
    // PROPTEST_CASES=100000 for a longer hunt; 512 keeps CI quick.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_any(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_noise(chars in proptest::collection::vec(proptest::sample::select(YAML_CHARS), 0..400)) {
        parse_any(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn mutated_contract(edits in proptest::collection::vec(edit(), 1..6)) {
        parse_any(&apply(CONTRACT, &edits));
    }

    #[test]
    fn mutated_example(edits in proptest::collection::vec(edit(), 1..6)) {
        parse_any(&apply(EXAMPLE, &edits));
    }
}

/// Large inputs shaped to hit quadratic paths (long lines, wide mappings,
/// many jobs, many errors). Nothing is timed here; a quadratic path would
/// make this test take minutes instead of seconds.
#[test]
fn large_inputs_stay_linear() {
    let flow_line = format!("flags: [{}]\n", "abc, ".repeat(40_000));
    let flow_maps = format!("flags: [{}]\n", "{a: 1}, ".repeat(20_000));
    let unicode_line = format!("flags: [{}]\n", "é, ".repeat(40_000));
    let wide_map: String = (0..20_000).map(|i| format!("k{i}: v\n")).collect();
    let duplicate_keys = "a: 1\n".repeat(20_000);
    let many_jobs = format!(
        "pipeline:\n  stages:\n    - name: a\n      jobs:\n{}    - name: b\n      jobs:\n{}",
        (0..1_500)
            .map(|i| format!("        - {{ name: a{i}, run: x }}\n"))
            .collect::<String>(),
        (0..1_500)
            .map(|i| format!("        - {{ name: b{i}, run: x, needs: [nope{i}] }}\n"))
            .collect::<String>(),
    );
    let many_stages = format!(
        "pipeline:\n  stages:\n{}",
        (0..1_000)
            .map(|i| format!("    - {{ name: s{i}, jobs: [ {{ name: j{i}, run: x }} ] }}\n"))
            .collect::<String>()
    );
    for text in [
        &flow_line,
        &flow_maps,
        &unicode_line,
        &wide_map,
        &duplicate_keys,
        &many_jobs,
    ] {
        let diagnostics = andon_config::parse("andon.yaml", text).unwrap_err();
        assert!(diagnostics.0.len() <= 201);
    }
    let config = andon_config::parse("andon.yaml", &many_stages).unwrap();
    assert_eq!(config.pipeline.stages.len(), 1_000);
}

/// Regression inputs: each once crashed or hung a YAML loader somewhere.
#[test]
fn known_hostile_inputs() {
    let deep = "[".repeat(100_000);
    let deep_map = "a: {".repeat(10_000);
    let long_line = format!("project: {}", "x".repeat(1_000_000));
    for text in [
        "",
        "\u{feff}",
        "---",
        "...",
        "--- !!map\n",
        "*a",
        "&a [*a]",
        "? [a]\n: b",
        "a: !custom x",
        "a:\n\t- b",
        "\r\r\r",
        "a: \"\\u",
        "%YAML 1.2\n%YAML 1.2\n---\n",
        "a: &x 1\nb: *x\n<<: *x\n",
        "<<: [1, 2]\n",
        deep.as_str(),
        deep_map.as_str(),
        long_line.as_str(),
    ] {
        parse_any(text);
    }
}
