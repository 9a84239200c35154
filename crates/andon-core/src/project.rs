//! Projects as a projection: which repositories the server watches, and the
//! last commit it saw per branch (so a restart does not re-run old commits).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{Envelope, Event};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectView {
    pub name: String,
    pub repo: String,
    pub trunk: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_s: Option<u64>,
    pub added_at_ms: i64,
    /// Branch → last commit seen.
    pub heads: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Projects {
    projects: BTreeMap<String, ProjectView>,
}

impl Projects {
    pub fn apply(&mut self, env: &Envelope) {
        match &env.event {
            Event::ProjectAdded {
                project,
                repo,
                trunk,
                poll_s,
            } => {
                self.projects.insert(
                    project.clone(),
                    ProjectView {
                        name: project.clone(),
                        repo: repo.clone(),
                        trunk: trunk.clone(),
                        poll_s: *poll_s,
                        added_at_ms: env.at_ms,
                        heads: BTreeMap::new(),
                    },
                );
            }
            Event::ProjectRemoved { project } => {
                self.projects.remove(project);
            }
            Event::CommitSeen {
                project,
                branch,
                commit,
                ..
            } => {
                if let Some(p) = self.projects.get_mut(project) {
                    p.heads.insert(branch.clone(), commit.clone());
                }
            }
            _ => {}
        }
    }

    pub fn get(&self, name: &str) -> Option<&ProjectView> {
        self.projects.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &ProjectView> {
        self.projects.values()
    }
}
