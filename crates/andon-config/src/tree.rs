//! Step one: YAML text → a tree of nodes that remember where they were written.
//!
//! Built directly on `yaml-rust2`'s event parser instead of a ready-made
//! loader so that (a) duplicate keys are reported without stopping, (b)
//! anchors, aliases and `<<` merge keys work as GitLab CI users expect, and
//! (c) nothing here can panic or recurse without bound on hostile input.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deeper nesting than this is certainly a mistake (or an attack on the
/// recursive conversion and drop of the tree).
const MAX_DEPTH: usize = 64;
/// Bound on nodes created by alias expansion ("billion laughs").
const MAX_NODES: usize = 200_000;

/// A location in the source: 1-based line and column (in characters), and
/// how many characters a caret underline should cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) len: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) pos: Pos,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `plain` is false for quoted and block scalars: `"true"` is a string.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_pos: Pos,
    pub(crate) value: Node,
}

impl Node {
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// How the node reads in "expected X, got Y" messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".to_string(),
            Kind::Map(_) => "a mapping".to_string(),
            Kind::Scalar { .. } if self.is_null() => "nothing (null)".to_string(),
            Kind::Scalar { text, plain } => {
                let shown = shorten(text);
                if *plain && matches!(text.as_str(), "true" | "false" | "True" | "False") {
                    format!("the boolean `{shown}`")
                } else if *plain && text.parse::<f64>().is_ok() {
                    format!("the number `{shown}`")
                } else {
                    format!("the string `{shown}`")
                }
            }
        }
    }
}

pub(crate) fn shorten(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or("");
    if first_line.chars().count() > 40 || first_line.len() != text.trim_end().len() {
        let cut: String = first_line.chars().take(40).collect();
        format!("{cut}…")
    } else {
        first_line.to_string()
    }
}

/// The source split into lines, to quote them in diagnostics and to size
/// caret underlines (the parser gives only where a node starts).
pub(crate) struct Source<'s> {
    lines: Vec<Line<'s>>,
}

struct Line<'s> {
    text: &'s str,
    /// Byte offset of each character, kept only for non-ASCII lines so that
    /// column lookups stay O(1) even on a megabyte-long line.
    char_starts: Option<Vec<usize>>,
}

/// Underlines never need to look further than this into a line; bounding
/// it keeps sizing linear on hostile one-line files.
const LOOKAHEAD: usize = 256;

impl<'s> Source<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        let lines = text
            .lines()
            .map(|text| Line {
                text,
                char_starts: (!text.is_ascii())
                    .then(|| text.char_indices().map(|(i, _)| i).collect()),
            })
            .collect();
        Self { lines }
    }

    pub(crate) fn line(&self, line: usize) -> &'s str {
        line.checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .map_or("", |l| l.text)
    }

    /// The line from `col` (1-based) on, at most [`LOOKAHEAD`] bytes.
    fn rest(&self, line: usize, col: usize) -> &'s str {
        let Some(l) = line.checked_sub(1).and_then(|i| self.lines.get(i)) else {
            return "";
        };
        let index = col.saturating_sub(1);
        let start = match &l.char_starts {
            None => index.min(l.text.len()),
            Some(starts) => starts.get(index).copied().unwrap_or(l.text.len()),
        };
        let rest = &l.text[start..];
        let mut end = rest.len().min(LOOKAHEAD);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        &rest[..end]
    }

    /// Length of the rest of the line, without a trailing comment or blanks.
    fn rest_len(&self, line: usize, col: usize) -> usize {
        let rest = self.rest(line, col);
        let end = rest.find(" #").unwrap_or(rest.len());
        rest[..end].trim_end().chars().count().max(1)
    }

    fn scalar_len(&self, line: usize, col: usize, text: &str, style: TScalarStyle) -> usize {
        let rest = self.rest(line, col);
        match style {
            TScalarStyle::DoubleQuoted | TScalarStyle::SingleQuoted => {
                let quote = if style == TScalarStyle::DoubleQuoted {
                    '"'
                } else {
                    '\''
                };
                let mut chars = rest.chars().enumerate().skip(1);
                while let Some((i, c)) = chars.next() {
                    if c == '\\' && quote == '"' {
                        chars.next();
                    } else if c == quote {
                        return i + 1;
                    }
                }
                rest.chars().count().max(1)
            }
            TScalarStyle::Plain if !text.is_empty() && rest.starts_with(text) => {
                text.chars().count()
            }
            TScalarStyle::Plain => self.rest_len(line, col),
            TScalarStyle::Literal | TScalarStyle::Folded => self.rest_len(line, col),
        }
    }
}

/// A YAML syntax problem; fatal ones stop the tree from being built.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub(crate) pos: Pos,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Option<Pos>,
        anchor: usize,
        entries: Vec<Entry>,
        /// Key → line of its first occurrence, for duplicate detection
        /// without a quadratic scan.
        seen: HashMap<String, usize>,
        key: Option<(String, Pos)>,
    },
}

/// Parses one YAML document into a tree. Returns the tree (if the YAML was
/// well-formed) and the non-fatal problems found on the way (duplicate keys,
/// tags), or the fatal syntax error.
pub(crate) fn build(
    source: &Source<'_>,
    text: &str,
) -> Result<(Node, Vec<SyntaxError>), SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        warnings: Vec::new(),
        nodes: 0,
        root: None,
        documents: 0,
    };
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| builder.locate(syntax_error(source, e.marker(), e.info())))?;
        if event == Event::StreamEnd {
            break;
        }
        builder.event(event, mark)?;
    }
    let root = builder.root.unwrap_or(Node {
        pos: Pos {
            line: 1,
            col: 1,
            len: 1,
        },
        kind: Kind::Map(Vec::new()),
    });
    Ok((root, builder.warnings))
}

fn syntax_error(source: &Source<'_>, mark: &Marker, info: &str) -> SyntaxError {
    let pos = Pos {
        line: mark.line().max(1),
        col: mark.col() + 1,
        len: 1,
    };
    let hint = if info.contains("tab") {
        "YAML indents with spaces only; replace the tabs at the start of this line with spaces"
    } else if info.contains("mapping values are not allowed") {
        "a value containing `: ` must be quoted, e.g. `run: \"echo a: b\"`; otherwise check the indentation"
    } else if info.contains("expected ',' or ']'") || info.contains("expected ',' or '}'") {
        "a `[` or `{` opened earlier is not closed"
    } else if info.contains("quoted scalar") {
        "a quote opened here is not closed"
    } else if info.contains("unknown anchor") {
        "define the anchor (`&name`) before using the alias (`*name`)"
    } else {
        "check the indentation and quoting on this line and the one before it"
    };
    // The scanner reports a bad tab where the indentation ends; the tab
    // itself is the thing to fix.
    let pos = match source.line(pos.line).find('\t') {
        Some(byte) if info.contains("tab") => Pos {
            col: source.line(pos.line)[..byte].chars().count() + 1,
            ..pos
        },
        _ => pos,
    };
    SyntaxError {
        pos,
        message: format!("invalid YAML: {info}"),
        hint: Some(hint.to_string()),
    }
}

struct Builder<'a, 's> {
    source: &'a Source<'s>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    warnings: Vec<SyntaxError>,
    nodes: usize,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_, '_> {
    /// An unclosed `[` or `{` is detected where the file ends, often far
    /// below; point at the bracket instead.
    fn locate(&self, error: SyntaxError) -> SyntaxError {
        let (kind, bracket) = if error.message.contains("flow sequence") {
            ("flow sequence", '[')
        } else if error.message.contains("flow mapping") {
            ("flow mapping", '{')
        } else {
            return error;
        };
        let opened = self.stack.iter().rev().find_map(|frame| {
            let pos = match frame {
                Frame::Seq { pos, .. } => Some(*pos),
                Frame::Map { pos, .. } => *pos,
            }?;
            self.source
                .rest(pos.line, pos.col)
                .starts_with(bracket)
                .then_some(pos)
        });
        match opened {
            Some(pos) if pos.line < error.pos.line => SyntaxError {
                pos: Pos { len: 1, ..pos },
                message: format!(
                    "invalid YAML: this `{bracket}` is never closed (while parsing a {kind})"
                ),
                hint: Some(format!(
                    "close it with `{}`, or write the items as an indented block instead",
                    if bracket == '[' { ']' } else { '}' }
                )),
            },
            _ => error,
        }
    }

    fn pos(&self, mark: Marker, len: usize) -> Pos {
        Pos {
            line: mark.line().max(1),
            col: mark.col() + 1,
            len: len.max(1),
        }
    }

    fn event(&mut self, event: Event, mark: Marker) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError {
                        pos: self.pos(mark, 3),
                        message: "a second YAML document (`---`) in the file".to_string(),
                        hint: Some("andon.yaml holds one document; remove this `---` and what follows, or merge it into the first document".to_string()),
                    });
                }
            }
            Event::SequenceStart(anchor, tag) => {
                let pos = self.pos(mark, 1);
                self.check_tag(tag.as_ref(), pos);
                self.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                })?;
            }
            Event::MappingStart(anchor, tag) => {
                // A block mapping's start mark is unreliable; its first key's
                // position is used instead. A flow mapping starts at its `{`.
                let pos = self.pos(mark, 1);
                let flow = self.source.rest(pos.line, pos.col).starts_with('{');
                self.check_tag(tag.as_ref(), pos);
                self.push(Frame::Map {
                    pos: flow.then(|| Pos {
                        len: self.source.rest_len(pos.line, pos.col),
                        ..pos
                    }),
                    anchor,
                    entries: Vec::new(),
                    seen: HashMap::new(),
                    key: None,
                })?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { pos, anchor, items }) = self.stack.pop() {
                    self.finish(
                        Node {
                            pos,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    )?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let pos = pos
                        .or_else(|| {
                            entries.first().map(|e| Pos {
                                len: self.source.rest_len(e.key_pos.line, e.key_pos.col),
                                ..e.key_pos
                            })
                        })
                        .unwrap_or_else(|| self.pos(mark, 1));
                    let entries = self.merge_keys(entries);
                    self.finish(
                        Node {
                            pos,
                            kind: Kind::Map(entries),
                        },
                        anchor,
                    )?;
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let col = mark.col() + 1;
                let len = self.source.scalar_len(mark.line(), col, &text, style);
                let pos = self.pos(mark, len);
                self.check_tag(tag.as_ref(), pos);
                let plain = style == TScalarStyle::Plain;
                self.finish(
                    Node {
                        pos,
                        kind: Kind::Scalar { text, plain },
                    },
                    anchor,
                )?;
            }
            Event::Alias(id) => {
                let pos = self.pos(mark, 1);
                let Some(node) = self.anchors.get(&id).cloned() else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".to_string(),
                        hint: Some(
                            "define the anchor (`&name`) before using the alias (`*name`)"
                                .to_string(),
                        ),
                    });
                };
                self.nodes += count(&node);
                if self.nodes > MAX_NODES {
                    return Err(SyntaxError {
                        pos,
                        message: "aliases expand to too many nodes".to_string(),
                        hint: Some(format!(
                            "the expanded document may hold at most {MAX_NODES} values"
                        )),
                    });
                }
                self.finish(node, 0)?;
            }
            Event::StreamStart | Event::DocumentEnd | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn check_tag(&mut self, tag: Option<&yaml_rust2::parser::Tag>, pos: Pos) {
        // Standard tags (`!!str`) change nothing we care about; custom ones
        // (`!reference`) would mean a feature we do not have.
        if let Some(tag) = tag
            && tag.handle != "!!"
        {
            self.warnings.push(SyntaxError {
                pos,
                message: format!("unsupported YAML tag `{}{}`", tag.handle, tag.suffix),
                hint: Some("remove the tag; andon.yaml does not use custom tags (use anchors `&a` and aliases `*a` to reuse values)".to_string()),
            });
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            let pos = match &frame {
                Frame::Seq { pos, .. } => *pos,
                Frame::Map { pos, .. } => pos.unwrap_or(Pos {
                    line: 1,
                    col: 1,
                    len: 1,
                }),
            };
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                hint: Some(
                    "andon.yaml never needs this much nesting; check for unbalanced brackets"
                        .to_string(),
                ),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Hands a complete node to its parent (or makes it the root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, seen, key, ..
            }) => {
                match key.take() {
                    None => match node.kind {
                        Kind::Scalar { text, .. } => *key = Some((text, node.pos)),
                        _ => {
                            return Err(SyntaxError {
                            pos: node.pos,
                            message: "a mapping key must be a plain string".to_string(),
                            hint: Some("write keys as `name: value`; lists and mappings cannot be keys".to_string()),
                        });
                        }
                    },
                    Some((name, key_pos)) => match seen.get(&name) {
                        Some(&first_line) if name != "<<" => {
                            let shown = shorten(&name);
                            self.warnings.push(SyntaxError {
                                    pos: key_pos,
                                    message: format!("duplicate key `{shown}`"),
                                    hint: Some(format!("`{shown}` is already set on line {first_line}; remove one of them")),
                                });
                        }
                        _ => {
                            seen.insert(name.clone(), key_pos.line);
                            entries.push(Entry {
                                key: name,
                                key_pos,
                                value: node,
                            });
                        }
                    },
                }
            }
        }
        Ok(())
    }

    /// Applies YAML merge keys (`<<: *defaults`): keys written in the mapping
    /// win over merged ones, and earlier merged mappings win over later ones.
    fn merge_keys(&mut self, entries: Vec<Entry>) -> Vec<Entry> {
        if !entries.iter().any(|e| e.key == "<<") {
            return entries;
        }
        let (merges, mut own): (Vec<Entry>, Vec<Entry>) =
            entries.into_iter().partition(|e| e.key == "<<");
        let mut present: std::collections::HashSet<String> =
            own.iter().map(|e| e.key.clone()).collect();
        for merge in merges {
            let sources = match merge.value.kind {
                Kind::Map(_) => vec![merge.value],
                Kind::Seq(items) => items,
                Kind::Scalar { .. } => vec![merge.value],
            };
            for source in sources {
                match source.kind {
                    Kind::Map(merged) => {
                        for entry in merged {
                            if present.insert(entry.key.clone()) {
                                own.push(entry);
                            }
                        }
                    }
                    _ => self.warnings.push(SyntaxError {
                        pos: source.pos,
                        message: format!(
                            "`<<` merges mappings, got {}",
                            Node {
                                pos: source.pos,
                                kind: source.kind
                            }
                            .describe()
                        ),
                        hint: Some(
                            "write `<<: *anchor` where `&anchor` names a mapping".to_string(),
                        ),
                    }),
                }
            }
        }
        own
    }
}

fn count(node: &Node) -> usize {
    // Iterative: the tree depth is bounded, but width is not.
    let mut total = 0;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        total += 1;
        match &n.kind {
            Kind::Scalar { .. } => {}
            Kind::Seq(items) => todo.extend(items.iter()),
            Kind::Map(entries) => todo.extend(entries.iter().map(|e| &e.value)),
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Result<(Node, Vec<SyntaxError>), SyntaxError> {
        build(&Source::new(text), text)
    }

    #[test]
    fn positions_are_one_based_and_sized() {
        let (root, _) = tree("a: 1\njobs:\n  - name: x\n    run: 'y z'\n").unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        assert_eq!(
            entries[1].key_pos,
            Pos {
                line: 2,
                col: 1,
                len: 4
            }
        );
        let Kind::Seq(items) = &entries[1].value.kind else {
            panic!()
        };
        assert_eq!(
            items[0].pos,
            Pos {
                line: 3,
                col: 5,
                len: 7
            }
        );
        let Kind::Map(job) = &items[0].kind else {
            panic!()
        };
        assert_eq!(
            job[1].value.pos,
            Pos {
                line: 4,
                col: 10,
                len: 5
            }
        );
    }

    #[test]
    fn duplicate_keys_are_reported_and_parsing_goes_on() {
        let (_, warnings) = tree("a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].pos.line, 3);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let (root, warnings) = tree("d: &d {x: 1, y: 2}\ne:\n  <<: *d\n  y: 3\n").unwrap();
        assert!(warnings.is_empty());
        let Kind::Map(entries) = &root.kind else {
            panic!()
        };
        let Kind::Map(e) = &entries[1].value.kind else {
            panic!()
        };
        let keys: Vec<_> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["y", "x"]);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        assert!(tree(&"[".repeat(10_000)).is_err());
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        assert!(tree(laughs).is_err());
        assert!(tree("a: 1\n---\nb: 2\n").is_err());
    }
}
