//! Which commits a deploy carries.
//!
//! A deploy names one commit, but it ships every trunk commit up to it that
//! was not in that environment before. Andon never reads the repository
//! here (the crate does no IO), so trunk's history is the order in which
//! `commit_seen` events arrived for the trunk branch: the watcher appends
//! them oldest first.

use std::collections::{BTreeMap, HashMap};

/// One project's trunk, as seen, and how far each environment has got.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrunkLog {
    /// Commit id and commit time, oldest first.
    order: Vec<(String, i64)>,
    pos: HashMap<String, usize>,
    /// Commits seen on other branches: a deploy from a branch carries just
    /// its own commit.
    others: HashMap<String, i64>,
    /// Environment → number of trunk commits (from the start) it contains.
    shipped: BTreeMap<String, usize>,
}

impl TrunkLog {
    pub(crate) fn seen(&mut self, on_trunk: bool, commit: &str, committed_at_ms: i64) {
        if on_trunk {
            if !self.pos.contains_key(commit) {
                self.pos.insert(commit.to_string(), self.order.len());
                self.order.push((commit.to_string(), committed_at_ms));
            }
        } else if !self.pos.contains_key(commit) {
            self.others
                .entry(commit.to_string())
                .or_insert(committed_at_ms);
        }
    }

    /// Position of a trunk commit, oldest 0.
    pub(crate) fn position(&self, commit: &str) -> Option<usize> {
        self.pos.get(commit).copied()
    }

    /// The commits (id, commit time) a successful deploy of `commit` to
    /// `env` would bring there for the first time.
    pub(crate) fn carried(&self, env: &str, commit: &str) -> Vec<(String, i64)> {
        let done = self.shipped.get(env).copied().unwrap_or(0);
        match self.pos.get(commit) {
            Some(&p) if p >= done => self
                .order
                .get(done..=p)
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
            Some(_) => Vec::new(),
            None => self
                .others
                .get(commit)
                .map(|at| vec![(commit.to_string(), *at)])
                .unwrap_or_default(),
        }
    }

    /// Records that `commit` now runs in `env` (a deploy of it succeeded).
    pub(crate) fn shipped(&mut self, env: &str, commit: &str) {
        if let Some(&p) = self.pos.get(commit) {
            let done = self.shipped.entry(env.to_string()).or_insert(0);
            *done = (*done).max(p + 1);
        } else {
            // A branch commit counts once.
            self.others.remove(commit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_carries_the_undeployed_trunk_commits_up_to_its_own() {
        let mut t = TrunkLog::default();
        for (i, c) in ["a", "b", "c", "d"].iter().enumerate() {
            t.seen(true, c, i as i64);
        }
        t.seen(false, "x", 9);
        assert_eq!(
            t.carried("prod", "b"),
            vec![("a".to_string(), 0), ("b".to_string(), 1)]
        );
        t.shipped("prod", "b");
        assert_eq!(t.carried("prod", "d").len(), 2);
        assert!(
            t.carried("prod", "a").is_empty(),
            "an older commit brings nothing new"
        );
        assert_eq!(
            t.carried("staging", "a").len(),
            1,
            "environments are independent"
        );
        assert_eq!(t.carried("prod", "x"), vec![("x".to_string(), 9)]);
        t.shipped("prod", "x");
        assert!(t.carried("prod", "x").is_empty());
        assert!(t.carried("prod", "unknown").is_empty());
    }
}
