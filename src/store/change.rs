//! What one store call changed, and how to take it back. The store hands a `Change` out and
//! keeps nothing of it: the commit holds it until the change is durable (then drops it) or gives
//! it back to `Store::undo` when the write failed. Pure data, no I/O.

use super::{Persistence, Project, Quota, Record};
use crate::auth::Token;

/// How to take back one step of a change.
#[derive(Debug)]
pub(super) enum Undo {
    /// A key was written or removed; `old` is what it held before, `new` a copy of what it
    /// held after (None: absent).
    Key {
        key: Box<str>,
        old: Option<Record>,
        new: Option<Record>,
    },
    /// Settings or tokens changed; these were the values before.
    Meta {
        persistence: Persistence,
        quota: Quota,
        tokens: Vec<Token>,
    },
    /// The project was created.
    Created,
    /// The project was deleted; here it is, whole.
    Deleted(Box<Project>),
}

/// The steps one call took on one project, oldest first.
#[derive(Debug)]
#[must_use = "a change must reach the commit (or be undone), or it is never written"]
pub struct Change {
    pub(super) project: String,
    pub(super) steps: Vec<Undo>,
}

impl Change {
    pub(super) fn new(project: &str, steps: Vec<Undo>) -> Change {
        Change {
            project: project.to_string(),
            steps,
        }
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// Nothing changed (a batch of checks only, an empty import).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The keys written or removed, in the order they changed (a key may repeat).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match s {
            Undo::Key { key, .. } => Some(&**key),
            _ => None,
        })
    }

    /// Each key written or removed, with what it held right after this change (None: absent),
    /// in order: what the journal records of the change.
    pub fn written(&self) -> impl Iterator<Item = (&str, Option<&Record>)> {
        self.steps.iter().filter_map(|s| match s {
            Undo::Key { key, new, .. } => Some((&**key, new.as_ref())),
            _ => None,
        })
    }

    /// Whether settings or tokens changed (they are saved at once in every mode but memory).
    pub fn touches_meta(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Undo::Meta { .. }))
    }

    /// Whether the project was created or deleted by this change.
    pub fn creates_or_deletes(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Undo::Created | Undo::Deleted(_)))
    }

    /// Append `later`'s steps (same project) after this change's.
    pub fn merge(&mut self, later: Change) {
        debug_assert_eq!(self.project, later.project);
        self.steps.extend(later.steps);
    }
}
