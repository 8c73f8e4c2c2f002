//! Strict query-string parsing: every parameter is validated with a message that
//! names it, and an unknown parameter (a typo such as `levle=`) is a 400 rather
//! than silently ignored.

use std::future::{ready, Ready};
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::error::ApiError;

/// The parameters of one request, consumed one by one.
pub struct Params {
    pairs: Vec<(String, String)>,
    allowed: &'static [&'static str],
}

impl Params {
    /// Parses the query string; `allowed` names every accepted key (a trailing `.`
    /// accepts any key with that prefix, as in `meta.`).
    pub fn parse(query: &str, allowed: &'static [&'static str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
        for (key, _) in &pairs {
            let known = allowed.iter().any(|a| {
                if a.ends_with('.') {
                    key.starts_with(a) && key.len() > a.len()
                } else {
                    key == a
                }
            });
            if !known && allowed.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {key:?}; this endpoint takes no query parameters"
                )));
            }
            if !known {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {key:?}; accepted: {}",
                    allowed
                        .iter()
                        .map(|a| if a.ends_with('.') {
                            format!("{a}KEY")
                        } else {
                            a.to_string()
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(Params { pairs, allowed })
    }

    /// The last value given for `key` (empty values count as absent).
    pub fn text(&self, key: &str) -> Option<&str> {
        debug_assert!(self.allowed.contains(&key));
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, comma lists split, empty items dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Every value of the comma list `key`, each parsed with `FromStr`, at most
    /// `max` of them (`what` names them in the refusal: "plugins").
    pub fn list_of<T>(&self, key: &str, max: usize, what: &str) -> Result<Vec<T>, ApiError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let values = self.list(key);
        if values.len() > max {
            return Err(ApiError::bad_request(format!(
                "{key} names at most {max} {what}, not {}",
                values.len()
            )));
        }
        values
            .iter()
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
            })
            .collect()
    }

    /// Two times, `since` ≤ t < `until`, each optional; an empty range is refused.
    pub fn time_range<T>(
        &self,
        since: &str,
        until: &str,
    ) -> Result<(Option<T>, Option<T>), ApiError>
    where
        T: FromStr + PartialOrd,
        T::Err: std::fmt::Display,
    {
        let range = (self.parsed::<T>(since)?, self.parsed::<T>(until)?);
        if let (Some(from), Some(to)) = &range {
            if from >= to {
                return Err(ApiError::bad_request(format!(
                    "{since} must be before {until}"
                )));
            }
        }
        Ok(range)
    }

    /// `(suffix, value)` of every key starting with `prefix`.
    pub fn prefixed(&self, prefix: &str) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_owned(), v.clone())))
            .collect()
    }

    /// `key` parsed with `FromStr`, with the parse error in the message.
    pub fn parsed<T>(&self, key: &str) -> Result<Option<T>, ApiError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.text(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
            })
            .transpose()
    }

    /// A whole number in `min..=max`.
    pub fn number(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        self.text(key)
            .map(|v| match v.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "{key} must be a whole number from {min} to {max}, not {v:?}"
                ))),
            })
            .transpose()
    }
}

/// An extractor for endpoints that take no query parameters: any given is refused
/// like an unknown one, as everywhere else in the API.
pub struct NoQuery;

impl FromRequest for NoQuery {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Params::parse(req.query_string(), &[]).map(|_| NoQuery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[&str] = &["level", "source", "limit", "meta."];

    #[test]
    fn known_keys_lists_and_prefixes() {
        let p = Params::parse(
            "level=warn&source=a,b&source=c&meta.k=v&meta.x=1&limit=",
            ALLOWED,
        )
        .unwrap();
        assert_eq!(p.text("level"), Some("warn"));
        assert_eq!(p.list("source"), ["a", "b", "c"]);
        assert_eq!(
            p.prefixed("meta."),
            [("k".into(), "v".into()), ("x".into(), "1".into())]
        );
        assert_eq!(p.number("limit", 1, 10).unwrap(), None);
    }

    #[test]
    fn unknown_and_bad_values_are_errors() {
        let err = Params::parse("levle=INFO", ALLOWED).err().unwrap();
        assert!(err.message().contains("unknown parameter \"levle\""));
        assert!(err.message().contains("meta.KEY"));
        assert!(Params::parse("meta.=1", ALLOWED).is_err());
        let p = Params::parse("limit=0", ALLOWED).unwrap();
        assert!(p.number("limit", 1, 10).is_err());
        let p = Params::parse("limit=abc", ALLOWED).unwrap();
        assert!(p
            .number("limit", 1, 10)
            .unwrap_err()
            .message()
            .contains("limit must be"));
    }
}
