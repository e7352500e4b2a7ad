//! Tokens: generation (getrandom), constant-time comparison, and what a token may do.
//! No I/O, no HTTP: callers hand in the presented secret and the project's tokens.

use serde::{Deserialize, Serialize};

/// What a project token allows on its own project's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// Where a token (or a project) was declared: config.json owns its own, the API owns the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
        }
    }
}

/// A project token. `secret` never leaves the server except once, in the answer that creates it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub label: String,
    pub access: Access,
    pub secret: String,
    pub source: Source,
    /// A scoped token reads and writes only keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl std::fmt::Debug for Token {
    // Derived Debug would print the secret into any log or panic message that formats a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("access", &self.access)
            .field("source", &self.source)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// 128 random bits as `pykv_` + 32 lowercase hex digits.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!("pykv_{}", hex(&bytes)))
}

/// A random token id: 64 bits as 16 hex digits (ids are public; they only need to be unique).
pub fn generate_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A token's label: 1 to 64 characters (characters, not bytes: a label is for people, and the
/// API document can only count characters).
pub fn label_ok(label: &str) -> bool {
    (1..=64).contains(&label.chars().count())
}

/// Secrets set by hand (config.json, env) must be long enough to guess at no better than chance,
/// and made of characters that survive a shell, a URL and an HTTP header unquoted.
pub fn validate_secret(s: &str) -> Result<(), String> {
    if s.len() < 16 || s.len() > 256 {
        return Err("a secret must be 16 to 256 characters long".into());
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b));
    if !ok {
        return Err("a secret may use only letters, digits and . _ ~ + / = -".into());
    }
    Ok(())
}

/// Compare without an early exit, so the time taken says nothing about where a guess went wrong.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the loop back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// The token among `tokens` whose secret is `presented`, compared in constant time each.
pub fn find_token<'a>(tokens: &'a [Token], presented: &str) -> Option<&'a Token> {
    let mut found = None;
    for t in tokens {
        if constant_time_eq(t.secret.as_bytes(), presented.as_bytes()) {
            found = Some(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 5 + 32);
        assert!(s.starts_with("pykv_"));
        assert!(s[5..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(s, generate_secret().unwrap());
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let t = Token {
            id: "1".into(),
            label: "l".into(),
            access: Access::Read,
            secret: "pykv_secret_value".into(),
            source: Source::Api,
            prefix: None,
        };
        assert!(!format!("{t:?}").contains("secret_value"));
    }
}
