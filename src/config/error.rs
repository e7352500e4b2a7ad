//! What can be wrong with a config file, said so a person can fix it: the field at fault and
//! what it should hold, or where the JSON breaks and why. Builds messages; reads no files.

use std::fmt;
use std::path::PathBuf;

use crate::jsonerr::JsonError;

/// Why there is no usable configuration.
#[derive(Debug)]
pub enum ConfigError {
    /// No config file in any of the places looked (each shown as it was looked for).
    NotFound { looked: Vec<String> },
    /// The file is there but could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not JSON (at `line`:`column`, both from 1).
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A field holds something it cannot (`field` as a path: `limits.max_value_bytes`).
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotFound { looked } => write!(
                f,
                "no config file: looked for {}; say which with --config PATH \
                 (or PYKV_CONFIG=PATH)",
                looked.join(", then ")
            ),
            ConfigError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            ConfigError::Syntax {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "{}: line {line} column {column}: {message}",
                path.display()
            ),
            ConfigError::Field {
                path,
                field,
                message,
            } => write!(f, "{}: {field}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A field's error before the file's path is known: what `validate` returns.
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

/// `Invalid` for `field`, saying `message`.
pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A JSON error from reading `text`, as a `ConfigError`: a type error names its field and says
/// what was expected and what was found; a syntax error says where, and, for the usual slips (a
/// comment, single quotes), what JSON wants instead.
pub fn from_json(path: PathBuf, text: &[u8], e: JsonError) -> ConfigError {
    if e.is_data {
        return ConfigError::Field {
            path,
            field: if e.field.is_empty() {
                "config".into()
            } else {
                e.field
            },
            message: e.message,
        };
    }
    let message = match slip_at(text, e.line, e.column) {
        Some(slip) => slip.into(),
        None => e.message,
    };
    ConfigError::Syntax {
        path,
        line: e.line,
        column: e.column,
        message,
    }
}

/// What JSON wants instead, when the byte where parsing stopped starts a comment or a single
/// quoted string (the slips people make writing config by hand).
fn slip_at(text: &[u8], line: usize, column: usize) -> Option<&'static str> {
    let start = text
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum::<usize>();
    // serde_json's column is the byte it stopped at (from 1), or the one after it: look at both
    // (the byte before was accepted, so it cannot be a stray / # or ' outside a string).
    let around = text.get(start + column.saturating_sub(2)..)?;
    let near: Vec<u8> = around.iter().take(2).copied().collect();
    if near.contains(&b'/') || near.contains(&b'#') {
        Some("JSON has no comments: remove the // or /* */ or # text (README: Configuration)")
    } else if near.contains(&b'\'') {
        Some("JSON strings and field names take double quotes (\"), not single quotes (')")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_single_quotes_are_named() {
        let slip = |text: &str, line, column| slip_at(text.as_bytes(), line, column);
        assert!(slip("{\n  // port\n}", 2, 3)
            .unwrap()
            .starts_with("JSON has no comments"));
        assert!(slip("{ # port\n}", 1, 3)
            .unwrap()
            .starts_with("JSON has no comments"));
        assert!(slip("{'listen': 1}", 1, 2)
            .unwrap()
            .contains("not single quotes"));
        assert_eq!(slip("{\"a\" 1}", 1, 6), None);
    }
}
