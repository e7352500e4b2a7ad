//! serde_json's errors said for people: the field at fault (the path serde_path_to_error kept),
//! what it wanted first, then what came: `ops[0].ttl: expected a whole number, got the string
//! "5"`. Used for config.json and for request bodies; builds messages, touches nothing else.

use serde::Deserialize;

/// Why a JSON text did not parse into the wanted type.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError {
    /// The field at fault (`limits.max_value_bytes`, `ops[0].ttl`); empty for the text as a
    /// whole (not JSON at all, or an unknown field of the top object).
    pub field: String,
    pub message: String,
    /// Where parsing stopped, from 1.
    pub line: usize,
    pub column: usize,
    /// The text is JSON, but a value in it is not what the field takes.
    pub is_data: bool,
}

impl JsonError {
    /// What is wrong, without where in the text (for callers that say where themselves).
    pub fn what(&self) -> String {
        if self.is_data && !self.field.is_empty() {
            format!("{}: {}", self.field, self.message)
        } else {
            self.message.clone()
        }
    }
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.is_data, self.field.is_empty()) {
            (true, false) => write!(f, "{}: {}", self.field, self.message),
            (true, true) => f.write_str(&self.message),
            (false, _) => write!(
                f,
                "line {} column {}: {}",
                self.line, self.column, self.message
            ),
        }
    }
}

/// `text` as a `T`, the whole of it (trailing text is an error like any other). Parsed as
/// plain serde_json first (request bodies are on the hot path); only a text that fails is parsed
/// again with its path tracked, to name the field.
pub fn parse<'de, T: Deserialize<'de>>(text: &'de [u8]) -> Result<T, JsonError> {
    if let Ok(value) = serde_json::from_slice(text) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        explain(field, e.into_inner())
    })?;
    de.end().map_err(|e| explain(String::new(), e))?;
    Ok(value)
}

fn explain(field: String, e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&tail).unwrap_or(&text);
    let is_data = e.is_data();
    // serde_path_to_error names the top level "."; an unknown field's path ends in the field,
    // which its message names anyway: say the object it was found in.
    let field = match field.as_str() {
        "." => String::new(),
        f if message.starts_with("unknown field") => f
            .rsplit_once('.')
            .map_or("", |(parent, _)| parent)
            .to_string(),
        _ => field,
    };
    JsonError {
        field,
        message: if is_data {
            reword(message)
        } else {
            message.to_string()
        },
        line: e.line(),
        column: e.column(),
        is_data,
    }
}

/// serde's "invalid type: string \"big\", expected a whole number of bytes" as "expected a whole
/// number of bytes, got the string \"big\"": what the field wants first, then what it got.
fn reword(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(lead) {
            if let Some((got, expected)) = rest.rsplit_once(", expected ") {
                return format!("expected {expected}, got {}", unexpected(got));
            }
        }
    }
    message.replace('`', "\"")
}

/// serde's name for what it found, in plain words.
fn unexpected(got: &str) -> String {
    let plain = got.replace('`', "");
    if let Some(s) = got.strip_prefix("string ") {
        format!("the string {s}")
    } else if let Some(n) = plain
        .strip_prefix("integer ")
        .or_else(|| plain.strip_prefix("floating point "))
    {
        format!("the number {n}")
    } else if let Some(b) = plain.strip_prefix("boolean ") {
        b.to_string()
    } else {
        match got {
            "map" => "an object".into(),
            "sequence" => "an array".into(),
            "unit value" | "null" => "null".into(),
            _ => plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_say_what_was_wanted_then_what_came() {
        assert_eq!(
            reword("invalid type: string \"big\", expected a whole number of bytes"),
            "expected a whole number of bytes, got the string \"big\""
        );
        assert_eq!(
            reword("invalid type: boolean `true`, expected a string"),
            "expected a string, got true"
        );
        assert_eq!(
            reword("invalid type: map, expected a sequence"),
            "expected a sequence, got an object"
        );
        assert_eq!(
            reword("invalid value: integer `-1`, expected a whole number"),
            "expected a whole number, got the number -1"
        );
        assert_eq!(
            reword("unknown variant `fast`, expected one of `sync`, `interval`, `memory`"),
            "unknown variant \"fast\", expected one of \"sync\", \"interval\", \"memory\""
        );
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        ops: Vec<Op>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Op {
        #[serde(default, deserialize_with = "crate::wholenum::opt")]
        ttl: Option<u64>,
    }

    #[test]
    fn an_error_names_the_path_to_its_field() {
        let e = parse::<Body>(br#"{"ops": [{}, {"ttl": "5"}]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ops[1].ttl: expected a whole number, got the string \"5\""
        );
        let e = parse::<Body>(br#"{"ops": [], "x": 1}"#).unwrap_err();
        assert_eq!(e.to_string(), "unknown field \"x\", expected \"ops\"");
        let e = parse::<Body>(br#"{"ops": [{"y": 1}]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ops[0]: unknown field \"y\", expected \"ttl\""
        );
        let e = parse::<Body>(br#"{"ops": []} {}"#).unwrap_err();
        assert_eq!(e.to_string(), "line 1 column 13: trailing characters");
        let e = parse::<Body>(b"{\"ops\": [").unwrap_err();
        assert_eq!(e.to_string(), "line 1 column 9: EOF while parsing a list");
    }
}
