//! Percent-decoding of path segments and query strings, and typed query parameters.
//! Unknown or repeated parameters are errors: a typo must not be silently ignored.

use crate::error::{ApiError, Code};

/// Decode `%XX` escapes. `plus_is_space` for query strings (form encoding), not for paths.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The query's parameters, each named in `allowed`, at most once, decoded to UTF-8.
pub fn parse(q: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Some(q) = q else {
        return Ok(out);
    };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_utf8(k)?;
        if !allowed.contains(&name.as_str()) {
            let known = if allowed.is_empty() {
                "this route takes no query parameters".to_string()
            } else {
                format!("this route takes {}", allowed.join(", "))
            };
            return Err(ApiError::new(
                Code::UnknownParameter,
                format!("unknown query parameter {name:?}: {known}"),
            ));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(invalid(format!("query parameter {name:?} is given twice")));
        }
        out.push((name, decode_utf8(v)?));
    }
    Ok(out)
}

/// A route that takes no query parameters.
pub fn none(q: Option<&str>) -> Result<(), ApiError> {
    parse(q, &[]).map(|_| ())
}

pub fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub fn invalid(message: String) -> ApiError {
    ApiError::new(Code::InvalidParameter, message)
}

fn decode_utf8(s: &str) -> Result<String, ApiError> {
    let bytes = percent_decode(s, true)
        .ok_or_else(|| invalid(format!("bad percent-escape in query {s:?}")))?;
    String::from_utf8(bytes).map_err(|_| invalid(format!("query {s:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_bad_ones_fail() {
        assert_eq!(percent_decode("a%2Fb%20c+d", false).unwrap(), b"a/b c+d");
        assert_eq!(percent_decode("a+b", true).unwrap(), b"a b");
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert_eq!(
            parse(Some("x=1"), &["limit"]).unwrap_err().code,
            Code::UnknownParameter
        );
        assert_eq!(
            parse(Some("limit=1&limit=2"), &["limit"]).unwrap_err().code,
            Code::InvalidParameter
        );
        let p = parse(Some("prefix=a%20b&limit=3"), &["prefix", "limit"]).unwrap();
        assert_eq!(get(&p, "prefix"), Some("a b"));
    }
}
