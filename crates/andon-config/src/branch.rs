//! Branch filters (`when:`) and the pipeline a given branch runs.

use std::collections::{HashMap, HashSet};

use crate::model::{Config, Pipeline, When};

impl When {
    /// Whether a job with this filter runs on `branch`.
    pub fn matches(&self, branch: &str) -> bool {
        let included =
            self.branches.is_empty() || self.branches.iter().any(|g| glob_match(g, branch));
        included && !self.not_branches.iter().any(|g| glob_match(g, branch))
    }
}

impl Config {
    /// The pipeline as it runs on `branch`: jobs whose `when` excludes the
    /// branch are dropped, and stages left without jobs disappear.
    ///
    /// A dropped job is replaced in others' `deps` by its own (kept)
    /// dependencies, so stage order survives: if every `package` job is
    /// skipped, `acceptance` still waits for `commit`. It is simply removed
    /// from `needs`, which keeps the names as written.
    pub fn pipeline_for_branch(&self, branch: &str) -> Pipeline {
        let jobs: HashMap<&str, &crate::model::Job> = self
            .pipeline
            .stages
            .iter()
            .flat_map(|s| s.jobs.iter())
            .map(|j| (j.name.as_str(), j))
            .collect();
        let dropped: HashSet<&str> = jobs
            .values()
            .filter(|j| j.when.as_ref().is_some_and(|w| !w.matches(branch)))
            .map(|j| j.name.as_str())
            .collect();
        let mut memo: HashMap<String, Vec<String>> = HashMap::new();
        let mut stages = Vec::new();
        for stage in &self.pipeline.stages {
            let mut kept = stage.clone();
            kept.jobs.retain(|j| !dropped.contains(j.name.as_str()));
            for job in &mut kept.jobs {
                job.needs.retain(|n| !dropped.contains(n.as_str()));
                let mut deps: Vec<String> = Vec::new();
                for dep in &job.deps {
                    let mut visiting = HashSet::new();
                    for d in kept_deps(dep, &jobs, &dropped, &mut memo, &mut visiting) {
                        if !deps.contains(&d) {
                            deps.push(d);
                        }
                    }
                }
                job.deps = deps;
            }
            if !kept.jobs.is_empty() {
                stages.push(kept);
            }
        }
        Pipeline { stages }
    }
}

/// `name` itself when kept, else the kept jobs it (transitively) waited on.
fn kept_deps(
    name: &str,
    jobs: &HashMap<&str, &crate::model::Job>,
    dropped: &HashSet<&str>,
    memo: &mut HashMap<String, Vec<String>>,
    visiting: &mut HashSet<String>,
) -> Vec<String> {
    if !dropped.contains(name) {
        return vec![name.to_string()];
    }
    if let Some(known) = memo.get(name) {
        return known.clone();
    }
    // A hand-built Config may hold a cycle; do not loop on it.
    if !visiting.insert(name.to_string()) {
        return Vec::new();
    }
    let mut result: Vec<String> = Vec::new();
    if let Some(job) = jobs.get(name) {
        for dep in &job.deps {
            for d in kept_deps(dep, jobs, dropped, memo, visiting) {
                if !result.contains(&d) {
                    result.push(d);
                }
            }
        }
    }
    memo.insert(name.to_string(), result.clone());
    result
}

/// Glob match as GitHub Actions branch filters: `*` matches within one
/// path segment, `**` across `/`, `?` one non-`/` character. Linear-space
/// dynamic programming, so no pattern can make it exponential.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    let mut p = 0;
    while p < pattern.len() {
        let mut next = vec![false; text.len() + 1];
        match pattern[p] {
            '*' if pattern.get(p + 1) == Some(&'*') => {
                for i in 0..=text.len() {
                    next[i] = reach[i] || (i > 0 && next[i - 1]);
                }
                p += 1;
            }
            '*' => {
                for i in 0..=text.len() {
                    next[i] = reach[i] || (i > 0 && next[i - 1] && text[i - 1] != '/');
                }
            }
            '?' => {
                for i in 0..text.len() {
                    next[i + 1] = reach[i] && text[i] != '/';
                }
            }
            c => {
                for i in 0..text.len() {
                    next[i + 1] = reach[i] && text[i] == c;
                }
            }
        }
        reach = next;
        p += 1;
    }
    reach[text.len()]
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("main", "main"));
        assert!(!glob_match("main", "main2"));
        assert!(glob_match("release/*", "release/1.2"));
        assert!(!glob_match("release/*", "release/1/2"));
        assert!(glob_match("release/**", "release/1/2"));
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("feat-?", "feat-x"));
        assert!(!glob_match("feat-?", "feat-xy"));
        assert!(glob_match("*", ""));
        assert!(!glob_match(&"*a".repeat(50), &"a".repeat(49)));
    }
}
