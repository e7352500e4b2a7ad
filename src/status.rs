//! What the server knows about itself that clients may ask for: the problems `/health` reports,
//! the counters `/metrics` renders, and log lines from code that has no log of its own (the
//! disk). Plain data: the server and the commit write it, handlers read it.

use std::collections::BTreeMap;

use crate::metrics::Metrics;

/// What went wrong with a project's files, until it goes right again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trouble {
    /// Appending to or syncing its journal failed.
    Journal,
    /// Writing a fresh snapshot (compaction) failed.
    Compaction,
    /// Removing files of a deleted project (or one switched to memory) failed.
    Cleanup,
}

#[derive(Debug, Default)]
pub struct Status {
    pub metrics: Metrics,
    problems: BTreeMap<(String, Trouble), String>,
    /// Lines for the server's log, taken once per loop turn.
    pub log: Vec<String>,
}

impl Status {
    pub fn problem(&mut self, project: &str, trouble: Trouble, message: String) {
        self.problems
            .insert((project.to_string(), trouble), message);
    }

    pub fn solved(&mut self, project: &str, trouble: Trouble) {
        self.problems.remove(&(project.to_string(), trouble));
    }

    /// A project is gone: its problems go with it (but for files left behind).
    pub fn forget(&mut self, project: &str) {
        self.problems
            .retain(|(p, t), _| p != project || *t == Trouble::Cleanup);
        self.metrics.forget_project(project);
    }

    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// Each problem as one line: `project demo: …`.
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        self.problems
            .iter()
            .map(|((project, _), why)| format!("project {project}: {why}"))
    }
}
