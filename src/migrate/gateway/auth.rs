//! Authentication to etcd: the `--user` and password (`Credentials`, never printed), asking
//! `/v3/auth/authenticate` for a token, and what etcd's answer to that means for the run.
//! Sending, failover and retries stay in `failover`; the token travels with each request there.

use super::messages::{decode, AuthenticateRequest, AuthenticateResponse};
use super::{EtcdError, Gateway};

/// `--user U --password-env VAR`: the password is never printed, logged or formatted.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl Credentials {
    pub fn new(user: String, password: String) -> Credentials {
        Credentials { user, password }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Authenticate when asked to; otherwise nothing (the first request shows whether etcd
    /// wants a user).
    pub fn login(&mut self) -> Result<(), EtcdError> {
        if self.credentials.is_some() {
            self.authenticate()?;
        }
        Ok(())
    }

    /// A fresh token for the credentials, if any; drops them (with a note) when etcd has
    /// authentication off.
    pub(super) fn authenticate(&mut self) -> Result<(), EtcdError> {
        let Some(c) = self.credentials.clone() else {
            return Ok(());
        };
        self.token = None;
        let req = AuthenticateRequest {
            name: &c.user,
            password: &c.password,
        };
        match self.call_raw("/v3/auth/authenticate", &req, false) {
            Ok(resp) => {
                let resp: AuthenticateResponse = decode(&resp).map_err(EtcdError::Refused)?;
                self.token = Some(resp.token);
                Ok(())
            }
            Err(EtcdError::Refused(why)) if why.contains("authentication is not enabled") => {
                self.notes.push(format!(
                    "etcd has authentication off: --user {} is not needed",
                    c.user
                ));
                self.credentials = None;
                Ok(())
            }
            Err(EtcdError::Refused(why)) if why.contains("authentication failed") => {
                Err(EtcdError::Refused(format!(
                    "etcd refused user {:?}: wrong user name or password",
                    c.user
                )))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_the_password() {
        let c = Credentials::new("app".into(), "s3cret-password".into());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
