//! Exposure and outcome counts: which variant each flag served, and how
//! the requests of users on it ended. Counted in memory, sent in batches
//! (one report per interval, whatever the traffic), kept and merged back
//! when a send fails.

use std::collections::HashMap;

use serde::Serialize;

/// What the server's `FlagExposures` event holds per variant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub(crate) evaluations: u64,
    pub(crate) errors: u64,
    pub(crate) outcomes: u64,
}

/// The server refuses reports above these (see its exposures endpoint);
/// beyond them new names are dropped, counts for known ones still add up.
const MAX_FLAGS: usize = 1000;
const MAX_VARIANTS: usize = 100;

/// Variant name for an evaluation that served none (an error, or a flag
/// without a value here).
pub(crate) const NO_VARIANT: &str = "(none)";

#[derive(Default)]
pub(crate) struct Tally {
    by_flag: HashMap<String, HashMap<String, Counts>>,
}

impl Tally {
    fn entry(&mut self, flag: &str, variant: &str) -> Option<&mut Counts> {
        if !self.by_flag.contains_key(flag) {
            if self.by_flag.len() >= MAX_FLAGS {
                return None;
            }
            self.by_flag.insert(flag.to_owned(), HashMap::new());
        }
        let variants = self.by_flag.get_mut(flag)?;
        if !variants.contains_key(variant) {
            if variants.len() >= MAX_VARIANTS {
                return None;
            }
            variants.insert(variant.to_owned(), Counts::default());
        }
        variants.get_mut(variant)
    }

    pub(crate) fn evaluated(&mut self, flag: &str, variant: &str) {
        if let Some(c) = self.entry(flag, variant) {
            c.evaluations += 1;
        }
    }

    pub(crate) fn outcome(&mut self, flag: &str, variant: &str, ok: bool) {
        if let Some(c) = self.entry(flag, variant) {
            c.outcomes += 1;
            if !ok {
                c.errors += 1;
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_flag.is_empty()
    }

    pub(crate) fn take(&mut self) -> HashMap<String, HashMap<String, Counts>> {
        std::mem::take(&mut self.by_flag)
    }

    /// Puts back a batch that could not be sent.
    pub(crate) fn merge(&mut self, batch: HashMap<String, HashMap<String, Counts>>) {
        for (flag, variants) in batch {
            for (variant, c) in variants {
                if let Some(mine) = self.entry(&flag, &variant) {
                    mine.evaluations += c.evaluations;
                    mine.errors += c.errors;
                    mine.outcomes += c.outcomes;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_and_merge_back() {
        let mut t = Tally::default();
        t.evaluated("f", "on");
        t.evaluated("f", "on");
        t.outcome("f", "on", false);
        t.outcome("f", "on", true);
        let batch = t.take();
        assert!(t.is_empty());
        assert_eq!(
            batch["f"]["on"],
            Counts {
                evaluations: 2,
                errors: 1,
                outcomes: 2
            }
        );
        t.evaluated("f", "on");
        t.merge(batch);
        assert_eq!(t.take()["f"]["on"].evaluations, 3);
    }

    #[test]
    fn bounded() {
        let mut t = Tally::default();
        for i in 0..(MAX_FLAGS + 10) {
            t.evaluated(&format!("f{i}"), "on");
        }
        assert_eq!(t.take().len(), MAX_FLAGS);
    }
}
