//! Whole numbers as clients write them in JSON: `7`, or `7.0` (JSON Schema's `integer` allows
//! both, and some languages only have floats). Anything fractional, negative or past 2^53 (where
//! a float stops being exact) is refused with serde's usual error. For `#[serde(with)]`-style
//! use: `#[serde(deserialize_with = "wholenum::opt")]`.

use serde::de::{self, Deserializer, Visitor};

/// `what` says what the number counts, for the error: "a whole number of bytes".
struct Whole {
    what: &'static str,
}

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        const EXACT: f64 = (1u64 << 53) as f64;
        if v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
            Ok(v as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

/// A whole number.
pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    described(d, "a whole number")
}

/// A whole number, said in errors as `what` ("a whole number of bytes").
pub fn described<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<u64, D::Error> {
    d.deserialize_any(Whole { what })
}

/// A whole number or null.
pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Maybe;
    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            one(d).map(Some)
        }
    }
    d.deserialize_option(Maybe)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct T {
        #[serde(deserialize_with = "super::one")]
        n: u64,
        #[serde(default, deserialize_with = "super::opt")]
        m: Option<u64>,
    }

    fn parse(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        assert_eq!(parse(r#"{"n": 7, "m": 7.0}"#), Ok(T { n: 7, m: Some(7) }));
        assert_eq!(
            parse(r#"{"n": 274.0, "m": null}"#),
            Ok(T { n: 274, m: None })
        );
        assert_eq!(parse(r#"{"n": 1}"#), Ok(T { n: 1, m: None }));
    }

    #[test]
    fn fractions_negatives_and_strings_are_refused() {
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": "5"}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
