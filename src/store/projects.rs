//! Projects and their tokens: create, delete, change settings, add and revoke tokens, and find
//! what a presented token may do. Each change comes back as a `Change` (how to undo it).

use super::change::Undo;
use super::project::Project;
use super::{Change, Persistence, Quota, Store, StoreError};
use crate::auth::{self, Access, Source, Token};

impl Store {
    pub fn create_project(
        &mut self,
        name: &str,
        persistence: Persistence,
        tokens: Vec<Token>,
    ) -> Result<Change, StoreError> {
        if self.projects.contains_key(name) {
            return Err(StoreError::ProjectExists(name.to_string()));
        }
        self.projects.insert(
            name.to_string(),
            Project::new(persistence, Source::Api, tokens),
        );
        Ok(Change::new(name, vec![Undo::Created]))
    }

    pub fn delete_project(&mut self, name: &str) -> Result<Change, StoreError> {
        let p = self
            .projects
            .remove(name)
            .ok_or_else(|| StoreError::ProjectNotFound(name.to_string()))?;
        // Its keys leave the expiry index: a new project of the same name must not inherit them.
        self.forget_expiries(name, &p);
        Ok(Change::new(name, vec![Undo::Deleted(Box::new(p))]))
    }

    /// Change a project's settings or tokens through `f`, keeping how to undo it.
    fn change_meta<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Project) -> Result<T, StoreError>,
    ) -> Result<(T, Change), StoreError> {
        let p = self
            .projects
            .get_mut(name)
            .ok_or_else(|| StoreError::ProjectNotFound(name.to_string()))?;
        let before = Undo::Meta {
            persistence: p.persistence,
            quota: p.quota,
            tokens: p.tokens.clone(),
        };
        let out = f(p)?;
        Ok((out, Change::new(name, vec![before])))
    }

    /// Set a project's persistence and quota (as given, changed or not) in one change.
    pub fn set_settings(
        &mut self,
        name: &str,
        mode: Persistence,
        quota: Quota,
    ) -> Result<Change, StoreError> {
        self.change_meta(name, |p| {
            p.persistence = mode;
            p.quota = quota;
            Ok(())
        })
        .map(|((), c)| c)
    }

    pub fn add_token(&mut self, name: &str, token: Token) -> Result<Change, StoreError> {
        self.change_meta(name, |p| {
            p.tokens.push(token);
            Ok(())
        })
        .map(|((), c)| c)
    }

    /// Remove an API token; config tokens are the caller's to refuse before calling this.
    pub fn revoke_token(&mut self, name: &str, id: &str) -> Result<(Token, Change), StoreError> {
        self.change_meta(name, |p| {
            let i = p.tokens.iter().position(|t| t.id == id).ok_or_else(|| {
                StoreError::TokenNotFound {
                    project: name.to_string(),
                    id: id.to_string(),
                }
            })?;
            Ok(p.tokens.remove(i))
        })
    }

    /// The access (and any key prefix) a token has on `project`, compared in constant time
    /// against each of its tokens.
    pub fn token_access(&self, project: &str, presented: &str) -> Option<(Access, Option<String>)> {
        let p = self.projects.get(project)?;
        auth::find_token(&p.tokens, presented).map(|t| (t.access, t.prefix.clone()))
    }

    /// Whether `presented` is any project's token (to tell 403 from 401 off the hot path).
    pub fn is_known_token(&self, presented: &str) -> bool {
        let mut known = false;
        for p in self.projects.values() {
            known |= auth::find_token(&p.tokens, presented).is_some();
        }
        known
    }
}
