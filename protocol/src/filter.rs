//! Log filters. [`FilterSpec`] is what a client sends (REST query or WebSocket
//! `filter`); [`LogFilter`] (feature `matcher`) is the validated form, and its
//! [`LogFilter::matches`] is the one definition of what a filter selects:
//!
//! - `level`: this level and above;
//! - `sources`: any of these sources (empty = all);
//! - `q`: the message contains this text, ASCII letters compared without case;
//! - `re`: the message matches this regular expression (Rust `regex` syntax, linear time);
//! - `meta`: for every `key = value`, the record's metadata has a value at `key` and
//!   that value written as text (strings without quotes, numbers, booleans, arrays
//!   and objects as compact JSON) equals `value`. A key names a path through nested
//!   objects with dots, so `http.status` finds `{"http": {"status": 500}}` as well as
//!   the top-level key `"http.status"` (see [`meta_pairs`]);
//! - `since` ≤ timestamp < `until`.
//!
//! All conditions combine with AND. Storage narrows its SQL with the same conditions
//! and then applies `matches`, so REST pages and live WebSocket frames agree exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{LogLevel, Timestamp};

/// A filter as a client writes it. Every field is optional; the empty spec selects all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

impl FilterSpec {
    /// The REST query parameters that express this filter (`level`, `source`, `q`,
    /// `re`, `meta.KEY`, `since`, `until`), unencoded; callers URL-encode them.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(level) = self.level {
            pairs.push(("level".into(), level.to_string()));
        }
        if !self.sources.is_empty() {
            pairs.push(("source".into(), self.sources.join(",")));
        }
        if let Some(q) = &self.q {
            pairs.push(("q".into(), q.clone()));
        }
        if let Some(re) = &self.re {
            pairs.push(("re".into(), re.clone()));
        }
        for (k, v) in &self.meta {
            pairs.push((format!("meta.{k}"), v.clone()));
        }
        if let Some(since) = self.since {
            pairs.push(("since".into(), since.to_string()));
        }
        if let Some(until) = self.until {
            pairs.push(("until".into(), until.to_string()));
        }
        pairs
    }
}

/// Metadata values may be sent as JSON strings, numbers or booleans; all compare as text.
fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            serde_json::Value::Number(n) => Ok((key, n.to_string())),
            serde_json::Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "meta.{key} must be a string, number or boolean, not {other}"
            ))),
        })
        .collect()
}

/// A metadata value written as text, the form `meta` conditions compare against:
/// strings without quotes, null as nothing, everything else as compact JSON.
pub fn meta_value_text(value: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        other => Some(std::borrow::Cow::Owned(other.to_string())),
    }
}

/// Every `(path, value text)` a `meta` condition can select in `metadata`: each
/// member at every depth of nested objects, its path the keys on the way joined
/// with dots, its value as [`meta_value_text`] writes it (an object too, as well
/// as its members). Null members have no pair. This is the one definition that
/// `meta` conditions and storage's metadata index share.
pub fn meta_pairs(metadata: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    fn walk(
        prefix: &str,
        object: &serde_json::Map<String, serde_json::Value>,
        out: &mut Vec<(String, String)>,
    ) {
        for (key, value) in object {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if let Some(text) = meta_value_text(value) {
                out.push((path.clone(), text.into_owned()));
            }
            if let serde_json::Value::Object(inner) = value {
                walk(&path, inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", metadata, &mut out);
    out
}

/// The value at `path` in `metadata`, where a path's dots may separate nested keys
/// or belong to a key: every reading is tried, as [`meta_pairs`] would list it.
#[cfg(feature = "matcher")]
fn meta_values_at<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    path: &str,
    out: &mut Vec<&'a serde_json::Value>,
) {
    if let Some(value) = object.get(path) {
        out.push(value);
    }
    for (dot, _) in path.match_indices('.') {
        if let Some(serde_json::Value::Object(inner)) = object.get(&path[..dot]) {
            meta_values_at(inner, &path[dot + 1..], out);
        }
    }
}

#[cfg(feature = "matcher")]
pub use matcher::{FilterError, LogFilter, MetaCondition, RecordParts, MAX_META_KEY_CHARS};

#[cfg(feature = "matcher")]
mod matcher {
    use super::*;
    use crate::LogEntry;
    use regex::{Regex, RegexBuilder};

    pub const MAX_SOURCES: usize = 100;
    pub const MAX_QUERY_CHARS: usize = 1000;
    pub const MAX_META_CONDITIONS: usize = 16;
    pub const MAX_META_KEY_CHARS: usize = 128;

    /// Why a filter spec was refused. The message is meant for the person who wrote it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum FilterError {
        TooManySources(usize),
        EmptySource,
        QueryTooLong(&'static str),
        BadRegex(String),
        TooManyMeta(usize),
        BadMetaKey(String),
        EmptyRange,
    }

    impl std::fmt::Display for FilterError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                FilterError::TooManySources(n) => {
                    write!(f, "{n} sources given; at most {MAX_SOURCES} are allowed")
                }
                FilterError::EmptySource => f.write_str("a source name in the filter is empty"),
                FilterError::QueryTooLong(which) => {
                    write!(f, "{which} is longer than {MAX_QUERY_CHARS} characters")
                }
                FilterError::BadRegex(why) => write!(f, "re is not a valid regular expression: {why}"),
                FilterError::TooManyMeta(n) => write!(
                    f,
                    "{n} metadata conditions given; at most {MAX_META_CONDITIONS} are allowed"
                ),
                FilterError::BadMetaKey(key) => write!(
                    f,
                    "metadata key {key:?} is not allowed: use 1 to {MAX_META_KEY_CHARS} characters without quotes or control characters"
                ),
                FilterError::EmptyRange => f.write_str("since must be earlier than until"),
            }
        }
    }

    impl std::error::Error for FilterError {}

    /// One `meta.KEY=VALUE` condition.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MetaCondition {
        pub key: String,
        pub value: String,
        /// Substrings of which at least one occurs in the serialised metadata of every
        /// record that matches (`"key":"value"` or `"key":value`; for a dotted key,
        /// from its last part on, since the member may be nested). Storage uses them
        /// to narrow its scan cheaply; they never exclude a match, because metadata
        /// is always stored as compact `serde_json` output.
        pub needles: Vec<String>,
    }

    impl MetaCondition {
        pub fn new(key: String, value: String) -> Self {
            let key_json = serde_json::to_string(&key).expect("strings serialise");
            // The member's own key is the whole path or a part after one of its dots:
            // either way its JSON ends like the path's last part and its quote.
            let key_json = match key.rfind('.') {
                Some(dot) => serde_json::to_string(&key[dot + 1..])
                    .expect("strings serialise")
                    .split_off(1),
                None => key_json,
            };
            let mut needles = vec![format!(
                "{key_json}:{}",
                serde_json::to_string(&value).expect("strings serialise")
            )];
            // A value that is itself canonical JSON (5, true, 2.5, [1,2], {"a":1})
            // may be stored unquoted.
            if let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&value) {
                let canonical = serde_json::to_string(&parsed).ok();
                if !parsed.is_string() && canonical.as_deref() == Some(value.as_str()) {
                    needles.push(format!("{key_json}:{value}"));
                }
            }
            MetaCondition {
                key,
                value,
                needles,
            }
        }

        fn matches_raw(&self, raw: &str) -> bool {
            if !self.needles.iter().any(|n| raw.contains(n.as_str())) {
                return false;
            }
            let Ok(object) =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw)
            else {
                return false;
            };
            let mut values = Vec::new();
            meta_values_at(&object, &self.key, &mut values);
            values
                .into_iter()
                .filter_map(meta_value_text)
                .any(|text| text == self.value)
        }
    }

    /// A validated filter. Build it with [`LogFilter::parse`]; the default selects all.
    #[derive(Debug, Clone, Default)]
    pub struct LogFilter {
        pub min_level: Option<LogLevel>,
        pub sources: Vec<String>,
        pub q: Option<String>,
        pub re: Option<Regex>,
        pub meta: Vec<MetaCondition>,
        pub since: Option<Timestamp>,
        pub until: Option<Timestamp>,
    }

    /// What a filter looks at in a record, borrowed from wherever the record is.
    #[derive(Debug, Clone, Copy)]
    pub struct RecordParts<'a> {
        pub level: LogLevel,
        pub timestamp: Timestamp,
        pub source: &'a str,
        pub message: &'a str,
        /// The metadata's JSON text.
        pub metadata: Option<&'a str>,
    }

    impl LogFilter {
        /// Validates a spec. Empty strings for `q` and `re` mean "no condition".
        ///
        /// # Errors
        /// A [`FilterError`] saying what is wrong with the spec.
        pub fn parse(spec: &FilterSpec) -> Result<Self, FilterError> {
            if spec.sources.len() > MAX_SOURCES {
                return Err(FilterError::TooManySources(spec.sources.len()));
            }
            let mut sources = Vec::with_capacity(spec.sources.len());
            for source in &spec.sources {
                let source = source.trim();
                if source.is_empty() {
                    return Err(FilterError::EmptySource);
                }
                if !sources.iter().any(|s: &String| s == source) {
                    sources.push(source.to_owned());
                }
            }
            let q = spec.q.as_deref().filter(|q| !q.is_empty());
            if q.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
                return Err(FilterError::QueryTooLong("q"));
            }
            let re = match spec.re.as_deref().filter(|re| !re.is_empty()) {
                None => None,
                Some(pattern) if pattern.chars().count() > MAX_QUERY_CHARS => {
                    return Err(FilterError::QueryTooLong("re"))
                }
                Some(pattern) => Some(
                    RegexBuilder::new(pattern)
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20)
                        .build()
                        .map_err(|e| FilterError::BadRegex(e.to_string()))?,
                ),
            };
            if spec.meta.len() > MAX_META_CONDITIONS {
                return Err(FilterError::TooManyMeta(spec.meta.len()));
            }
            let mut meta = Vec::with_capacity(spec.meta.len());
            for (key, value) in &spec.meta {
                let bad = key.is_empty()
                    || key.chars().count() > MAX_META_KEY_CHARS
                    || key.chars().any(|c| c == '"' || c == '\\' || c.is_control());
                if bad {
                    return Err(FilterError::BadMetaKey(key.clone()));
                }
                meta.push(MetaCondition::new(key.clone(), value.clone()));
            }
            if let (Some(since), Some(until)) = (spec.since, spec.until) {
                if since >= until {
                    return Err(FilterError::EmptyRange);
                }
            }
            Ok(LogFilter {
                min_level: spec.level.filter(|level| *level > LogLevel::Debug),
                sources,
                q: q.map(str::to_owned),
                re,
                meta,
                since: spec.since,
                until: spec.until,
            })
        }

        /// True when the filter selects every record.
        pub fn is_empty(&self) -> bool {
            self.min_level.is_none()
                && self.sources.is_empty()
                && self.q.is_none()
                && self.re.is_none()
                && self.meta.is_empty()
                && self.since.is_none()
                && self.until.is_none()
        }

        /// Does `entry` pass every condition?
        pub fn matches(&self, entry: &LogEntry) -> bool {
            self.matches_parts(&RecordParts {
                level: entry.level,
                timestamp: entry.timestamp,
                source: &entry.source,
                message: entry.message(),
                metadata: entry.metadata(),
            })
        }

        /// As [`LogFilter::matches`], on a record's parts: storage checks rows
        /// before it builds records of the ones that pass.
        pub fn matches_parts(&self, record: &RecordParts<'_>) -> bool {
            if self.min_level.is_some_and(|min| record.level < min) {
                return false;
            }
            if !self.sources.is_empty() && !self.sources.iter().any(|s| **s == *record.source) {
                return false;
            }
            if self.since.is_some_and(|since| record.timestamp < since)
                || self.until.is_some_and(|until| record.timestamp >= until)
            {
                return false;
            }
            if let Some(q) = &self.q {
                if !contains_ignore_ascii_case(record.message, q) {
                    return false;
                }
            }
            if let Some(re) = &self.re {
                if !re.is_match(record.message) {
                    return false;
                }
            }
            if !self.meta.is_empty() {
                let Some(raw) = record.metadata else {
                    return false;
                };
                if !self.meta.iter().all(|cond| cond.matches_raw(raw)) {
                    return false;
                }
            }
            true
        }

        /// Texts every matching record's message contains, up to case: `q` and the
        /// literals `re` requires, each of at least
        /// [`MIN_LITERAL_CHARS`](crate::literals::MIN_LITERAL_CHARS) characters.
        /// Storage finds candidates through its text index with them; empty means
        /// the index cannot narrow this filter.
        pub fn required_texts(&self) -> Vec<String> {
            let mut texts = self.q.iter().cloned().collect::<Vec<_>>();
            if let Some(re) = &self.re {
                texts.extend(crate::literals::required_literals(re.as_str()));
            }
            storable_pieces(texts, crate::literals::MIN_LITERAL_CHARS)
        }

        /// `q` as texts a database can look for, down to one character (see
        /// [`storable_pieces`]).
        pub fn q_texts(&self) -> Vec<String> {
            storable_pieces(self.q.iter().cloned(), 1)
        }

        /// The literals every match of `re` contains, up to case, down to
        /// [`PREFILTER_CHARS`](crate::literals::PREFILTER_CHARS) characters: too short
        /// for the text index, but a database can skip the rows without them.
        pub fn regex_literals(&self) -> Vec<String> {
            let literals = self.re.as_ref().map_or_else(Vec::new, |re| {
                crate::literals::required_literals_of(re.as_str(), crate::literals::PREFILTER_CHARS)
            });
            storable_pieces(literals, crate::literals::PREFILTER_CHARS)
        }

        /// The spec this filter was built from (regex as its source text).
        pub fn to_spec(&self) -> FilterSpec {
            FilterSpec {
                level: self.min_level,
                sources: self.sources.clone(),
                q: self.q.clone(),
                re: self.re.as_ref().map(|re| re.as_str().to_owned()),
                meta: self
                    .meta
                    .iter()
                    .map(|c| (c.key.clone(), c.value.clone()))
                    .collect(),
                since: self.since,
                until: self.until,
            }
        }
    }

    /// The parts of `texts` between NUL characters, those of at least `min_chars`:
    /// what a database can be asked for. PostgreSQL refuses a NUL in any text
    /// parameter, and no stored message holds one (`storable_text`), so a text with
    /// one narrows by its pieces (which every match contains too) and `matches`
    /// decides the rest.
    fn storable_pieces(texts: impl IntoIterator<Item = String>, min_chars: usize) -> Vec<String> {
        texts
            .into_iter()
            .flat_map(|text| text.split('\0').map(str::to_owned).collect::<Vec<_>>())
            .filter(|piece| piece.chars().count() >= min_chars.max(1))
            .collect()
    }

    /// Substring search with ASCII letters compared without case; other characters
    /// compare exactly. This is what SQLite's `LIKE` does, so SQL and Rust agree.
    pub fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
        let (hay, needle) = (haystack.as_bytes(), needle.as_bytes());
        if needle.is_empty() {
            return true;
        }
        if needle.len() > hay.len() {
            return false;
        }
        let first = needle[0].to_ascii_lowercase();
        (0..=hay.len() - needle.len()).any(|start| {
            hay[start].to_ascii_lowercase() == first
                && hay[start..start + needle.len()].eq_ignore_ascii_case(needle)
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::entry::encode_metadata;
        use crate::Body;
        use std::sync::Arc;

        fn entry(
            level: LogLevel,
            source: &str,
            message: &str,
            meta: serde_json::Value,
        ) -> LogEntry {
            LogEntry {
                seq: 1,
                timestamp: Timestamp(1_000_000),
                level,
                source: Arc::from(source),
                body: Body::new(message.into(), encode_metadata(meta).as_deref()),
                group: None,
                mark: None,
                worst: None,
            }
        }

        fn filter(json: serde_json::Value) -> LogFilter {
            LogFilter::parse(&serde_json::from_value(json).unwrap()).unwrap()
        }

        #[test]
        fn empty_filter_selects_everything() {
            let f = LogFilter::default();
            assert!(f.is_empty());
            assert!(f.matches(&entry(LogLevel::Debug, "x", "", serde_json::Value::Null)));
        }

        #[test]
        fn level_means_this_level_and_above() {
            let f = filter(serde_json::json!({"level": "WARN"}));
            assert!(!f.matches(&entry(LogLevel::Info, "p", "m", serde_json::Value::Null)));
            assert!(f.matches(&entry(LogLevel::Warning, "p", "m", serde_json::Value::Null)));
            assert!(f.matches(&entry(LogLevel::Error, "p", "m", serde_json::Value::Null)));
        }

        #[test]
        fn sources_are_alternatives() {
            let f = filter(serde_json::json!({"sources": ["api", "system"]}));
            assert!(f.matches(&entry(LogLevel::Info, "api", "m", serde_json::Value::Null)));
            assert!(f.matches(&entry(
                LogLevel::Info,
                "system",
                "m",
                serde_json::Value::Null
            )));
            assert!(!f.matches(&entry(
                LogLevel::Info,
                "plugin",
                "m",
                serde_json::Value::Null
            )));
        }

        #[test]
        fn q_ignores_ascii_case_only() {
            let f = filter(serde_json::json!({"q": "TimeOut"}));
            assert!(f.matches(&entry(
                LogLevel::Info,
                "p",
                "request timeout after 3s",
                serde_json::Value::Null
            )));
            assert!(!f.matches(&entry(
                LogLevel::Info,
                "p",
                "time out",
                serde_json::Value::Null
            )));
            let f = filter(serde_json::json!({"q": "ä"}));
            assert!(!f.matches(&entry(LogLevel::Info, "p", "Ä", serde_json::Value::Null)));
            assert!(contains_ignore_ascii_case("abc", ""));
            assert!(!contains_ignore_ascii_case("ab", "abc"));
        }

        #[test]
        fn regex_matches_and_bad_regex_is_refused() {
            let f = filter(serde_json::json!({"re": "^synthetic record \\d+5$"}));
            assert!(f.matches(&entry(
                LogLevel::Info,
                "p",
                "synthetic record 15",
                serde_json::Value::Null
            )));
            assert!(!f.matches(&entry(
                LogLevel::Info,
                "p",
                "synthetic record 16",
                serde_json::Value::Null
            )));
            let err = LogFilter::parse(&FilterSpec {
                re: Some("(".into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(matches!(err, FilterError::BadRegex(_)));
            assert!(err
                .to_string()
                .starts_with("re is not a valid regular expression"));
        }

        #[test]
        fn meta_compares_values_as_text() {
            let f = filter(serde_json::json!({"meta": {"dashboard_id": "5"}}));
            assert!(f.matches(&entry(
                LogLevel::Info,
                "p",
                "m",
                serde_json::json!({"dashboard_id": 5})
            )));
            assert!(f.matches(&entry(
                LogLevel::Info,
                "p",
                "m",
                serde_json::json!({"dashboard_id": "5"})
            )));
            assert!(!f.matches(&entry(
                LogLevel::Info,
                "p",
                "m",
                serde_json::json!({"dashboard_id": 55})
            )));
            assert!(!f.matches(&entry(
                LogLevel::Info,
                "p",
                "m",
                serde_json::json!({"other": {"dashboard_id": 5}})
            )));
            assert!(!f.matches(&entry(LogLevel::Info, "p", "m", serde_json::Value::Null)));
            let f = filter(serde_json::json!({"meta": {"ok": true, "db": "a\"b"}}));
            assert!(f.matches(&entry(
                LogLevel::Info,
                "p",
                "m",
                serde_json::json!({"ok": true, "db": "a\"b"})
            )));
            assert!(!f.matches(&entry(
                LogLevel::Info,
                "p",
                "m",
                serde_json::json!({"ok": false, "db": "a\"b"})
            )));
        }

        #[test]
        fn meta_keys_reach_nested_members_through_dots() {
            let with = |meta: serde_json::Value| entry(LogLevel::Info, "p", "m", meta);
            let f = filter(serde_json::json!({"meta": {"http.status": "500"}}));
            assert!(f.matches(&with(serde_json::json!({"http": {"status": 500}}))));
            assert!(f.matches(&with(serde_json::json!({"http.status": 500}))));
            assert!(f.matches(&with(
                serde_json::json!({"http": {"x": 1, "status": "500"}})
            )));
            assert!(!f.matches(&with(serde_json::json!({"http": {"status": 501}}))));
            assert!(!f.matches(&with(serde_json::json!({"status": 500}))));
            assert!(!f.matches(&with(serde_json::json!({"http": [{"status": 500}]}))));
            // Every reading of the dots: a.b.c as a → b.c, a.b → c and a → b → c.
            let f = filter(serde_json::json!({"meta": {"a.b.c": "x"}}));
            for meta in [
                serde_json::json!({"a": {"b.c": "x"}}),
                serde_json::json!({"a.b": {"c": "x"}}),
                serde_json::json!({"a": {"b": {"c": "x"}}}),
                serde_json::json!({"a": {"b": 1}, "a.b": {"c": "x"}}),
            ] {
                assert!(f.matches(&with(meta.clone())), "{meta}");
            }
            assert!(!f.matches(&with(serde_json::json!({"a": {"b": {"c": "y"}}}))));
            // An object compares as its compact JSON, like any other value.
            let f = filter(serde_json::json!({"meta": {"http": "{\"status\":500}"}}));
            assert!(f.matches(&with(serde_json::json!({"http": {"status": 500}}))));
        }

        #[test]
        fn meta_pairs_list_what_conditions_select() {
            let object = serde_json::json!({"a": {"b": 1, "c": null}, "a.b": "2", "t": [1, "x"]});
            let serde_json::Value::Object(object) = object else {
                unreachable!()
            };
            let mut pairs = crate::filter::meta_pairs(&object);
            pairs.sort();
            let want: Vec<(String, String)> = [
                ("a", r#"{"b":1,"c":null}"#),
                ("a.b", "1"),
                ("a.b", "2"),
                ("t", r#"[1,"x"]"#),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            assert_eq!(pairs, want);
        }

        #[test]
        fn time_range_is_half_open() {
            let f = LogFilter::parse(&FilterSpec {
                since: Some(Timestamp(1_000_000)),
                until: Some(Timestamp(2_000_000)),
                ..Default::default()
            })
            .unwrap();
            let mut e = entry(LogLevel::Info, "p", "m", serde_json::Value::Null);
            assert!(f.matches(&e));
            e.timestamp = Timestamp(2_000_000);
            assert!(!f.matches(&e));
            e.timestamp = Timestamp(999_999);
            assert!(!f.matches(&e));
        }

        #[test]
        fn bad_specs_are_refused_with_reasons() {
            let bad = |json: serde_json::Value| {
                LogFilter::parse(&serde_json::from_value::<FilterSpec>(json).unwrap()).unwrap_err()
            };
            assert_eq!(
                bad(serde_json::json!({"sources": [" "]})),
                FilterError::EmptySource
            );
            assert!(matches!(
                bad(serde_json::json!({"meta": {"a\"b": "1"}})),
                FilterError::BadMetaKey(_)
            ));
            assert_eq!(
                bad(
                    serde_json::json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
                ),
                FilterError::EmptyRange
            );
            assert!(matches!(
                bad(serde_json::json!({"q": "x".repeat(1001)})),
                FilterError::QueryTooLong("q")
            ));
            assert!(
                serde_json::from_value::<FilterSpec>(serde_json::json!({"level": "LOUD"})).is_err()
            );
            assert!(
                serde_json::from_value::<FilterSpec>(serde_json::json!({"colour": "red"})).is_err()
            );
            assert!(
                serde_json::from_value::<FilterSpec>(serde_json::json!({"meta": {"k": [1]}}))
                    .is_err()
            );
        }

        #[test]
        fn query_pairs_name_every_condition() {
            let spec: FilterSpec = serde_json::from_value(serde_json::json!({
                "level": "WARN", "sources": ["a", "b"], "q": "x y", "re": "^z", "meta": {"k": 1},
                "since": "2026-01-01T00:00:00Z"
            }))
            .unwrap();
            let pairs = spec.query_pairs();
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["level", "source", "q", "re", "meta.k", "since"]);
            assert_eq!(pairs[0].1, "WARNING");
            assert_eq!(pairs[1].1, "a,b");
            assert_eq!(pairs[4].1, "1");
            assert!(FilterSpec::default().query_pairs().is_empty());
        }

        #[test]
        fn needles_cover_every_stored_form() {
            let cond = MetaCondition::new("dashboard_id".into(), "5".into());
            assert_eq!(
                cond.needles,
                vec![r#""dashboard_id":"5""#, r#""dashboard_id":5"#]
            );
            let cond = MetaCondition::new("name".into(), "05".into());
            assert_eq!(cond.needles, vec![r#""name":"05""#]);
        }
    }
}
