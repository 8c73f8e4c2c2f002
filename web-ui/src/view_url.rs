//! What the log view shows, and how it is written in the page URL so a filtered view
//! can be shared and survives a reload:
//! `/tasks/{id}?level=WARNING&source=a,b&q=timeout&re=1&only=1&meta.dashboard_id=7&meta.db=db-1&since=…&until=…#L1234`.

use std::collections::BTreeMap;

use protocol::{FilterSpec, LogLevel, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFilter {
    pub level: LogLevel,
    pub sources: Vec<String>,
    /// Search text (a regular expression when `regex`).
    pub q: String,
    pub regex: bool,
    /// Show only lines that match the search (otherwise matches are highlighted).
    pub only_matching: bool,
    /// Every `meta.KEY=VALUE` condition (all must hold).
    pub meta: BTreeMap<String, String>,
    /// Lines at or after this time.
    pub since: Option<Timestamp>,
    /// Lines before this time.
    pub until: Option<Timestamp>,
}

impl Default for ViewFilter {
    fn default() -> Self {
        ViewFilter {
            level: LogLevel::Info,
            sources: Vec::new(),
            q: String::new(),
            regex: false,
            only_matching: false,
            meta: BTreeMap::new(),
            since: None,
            until: None,
        }
    }
}

impl ViewFilter {
    /// Reads the filter from a query string (`?` optional); unknown keys are ignored.
    pub fn from_query(query: &str) -> ViewFilter {
        let mut f = ViewFilter::default();
        for (key, value) in decode_pairs(query.trim_start_matches('?')) {
            match key.as_str() {
                "level" => f.level = value.parse().unwrap_or(LogLevel::Info),
                "source" => f.sources.extend(
                    value
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                ),
                "q" => f.q = value,
                "re" => f.regex = value == "1",
                "only" => f.only_matching = value == "1",
                "since" => f.since = value.parse().ok(),
                "until" => f.until = value.parse().ok(),
                k => {
                    if let Some(meta) = k.strip_prefix("meta.").filter(|m| !m.is_empty()) {
                        f.meta.insert(meta.to_owned(), value);
                    }
                }
            }
        }
        f
    }

    /// The query string for the page URL (without `?`); defaults are left out.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if self.level != LogLevel::Info {
            pairs.push(("level".into(), self.level.to_string()));
        }
        if !self.sources.is_empty() {
            pairs.push(("source".into(), self.sources.join(",")));
        }
        if !self.q.is_empty() {
            pairs.push(("q".into(), self.q.clone()));
            if self.regex {
                pairs.push(("re".into(), "1".into()));
            }
            if self.only_matching {
                pairs.push(("only".into(), "1".into()));
            }
        }
        for (k, v) in &self.meta {
            pairs.push((format!("meta.{k}"), v.clone()));
        }
        for (key, time) in [("since", self.since), ("until", self.until)] {
            if let Some(time) = time {
                pairs.push((key.into(), short_time(time)));
            }
        }
        encode_pairs(&pairs)
    }

    fn search(&self, spec: &mut FilterSpec) {
        if self.regex {
            spec.re = Some(self.q.clone());
        } else {
            spec.q = Some(self.q.clone());
        }
    }

    /// Level, sources and metadata: what every line shown passes.
    pub fn base_spec(&self) -> FilterSpec {
        FilterSpec {
            level: Some(self.level),
            sources: self.sources.clone(),
            meta: self.meta.clone(),
            since: self.since,
            until: self.until,
            ..FilterSpec::default()
        }
    }

    /// The lines shown: the base filter, plus the search when only matches are shown.
    pub fn view_spec(&self) -> FilterSpec {
        let mut spec = self.base_spec();
        if self.only_matching && !self.q.is_empty() {
            self.search(&mut spec);
        }
        spec
    }

    /// The lines to highlight and step through, when the search only highlights.
    pub fn find_spec(&self) -> Option<FilterSpec> {
        if self.q.is_empty() || self.only_matching {
            return None;
        }
        let mut spec = self.base_spec();
        self.search(&mut spec);
        Some(spec)
    }
}

/// RFC 3339 UTC without the fraction when there is none: `2026-12-01T10:00:00Z`.
pub fn short_time(time: Timestamp) -> String {
    let text = time.to_string();
    match text.strip_suffix(".000000Z") {
        Some(whole) => format!("{whole}Z"),
        None => text,
    }
}

/// The REST query string of a filter spec (`level=…&source=…&q=…&re=…&meta.k=v`).
pub fn rest_query(spec: &FilterSpec) -> String {
    encode_pairs(&spec.query_pairs())
}

/// The lines a permalink names: `#L1234` → (1234, 1234), `#L120-L180` → (120, 180)
/// (either order).
pub fn lines_from_hash(hash: &str) -> Option<(u64, u64)> {
    let rest = hash.trim_start_matches('#');
    let line = |part: &str| -> Option<u64> { part.strip_prefix('L')?.parse().ok() };
    let (first, last) = match rest.split_once('-') {
        Some((a, b)) => (line(a)?, line(b)?),
        None => (line(rest)?, line(rest)?),
    };
    Some((first.min(last), first.max(last)))
}

/// The permalink of lines `first..=last`: `#L120` or `#L120-L180`.
pub fn lines_hash(first: u64, last: u64) -> String {
    if first == last {
        format!("#L{first}")
    } else {
        format!("#L{first}-L{last}")
    }
}

pub(crate) fn encode_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn decode_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_url() {
        let mut f = ViewFilter {
            level: LogLevel::Warning,
            sources: vec!["superset_api".into(), "system".into()],
            q: "time out & 50%".into(),
            regex: false,
            only_matching: true,
            meta: BTreeMap::new(),
            since: Some(Timestamp(1_796_083_200_000_000)),
            until: Some(Timestamp(1_796_083_200_500_000)),
        };
        f.meta.insert("dashboard_id".into(), "7".into());
        f.meta.insert("http.status".into(), "5 00".into());
        let query = f.to_query();
        assert_eq!(query, "level=WARNING&source=superset_api,system&q=time%20out%20%26%2050%25&only=1&meta.dashboard_id=7&meta.http.status=5%2000&since=2026-12-01T00%3A00%3A00Z&until=2026-12-01T00%3A00%3A00.500000Z");
        assert_eq!(f.base_spec().since, f.since);
        assert_eq!(f.base_spec().meta.len(), 2);
        assert_eq!(ViewFilter::from_query("since=yesterday").since, None);
        assert_eq!(ViewFilter::from_query(&format!("?{query}")), f);
        assert_eq!(ViewFilter::from_query(""), ViewFilter::default());
        assert_eq!(ViewFilter::default().to_query(), "");
        assert_eq!(
            ViewFilter::from_query("level=bogus&x=1&meta.=2").level,
            LogLevel::Info
        );
    }

    #[test]
    fn specs_split_search_between_view_and_find() {
        let f = ViewFilter::from_query("q=err&re=1");
        assert_eq!(f.view_spec().re, None);
        assert_eq!(f.find_spec().unwrap().re.as_deref(), Some("err"));
        let f = ViewFilter::from_query("q=err&only=1");
        assert_eq!(f.view_spec().q.as_deref(), Some("err"));
        assert!(f.find_spec().is_none());
        assert_eq!(rest_query(&f.view_spec()), "level=INFO&q=err");
    }

    #[test]
    fn permalinks_and_bad_escapes() {
        assert_eq!(lines_from_hash("#L1234"), Some((1234, 1234)));
        assert_eq!(lines_from_hash("#L120-L180"), Some((120, 180)));
        assert_eq!(lines_from_hash("#L180-L120"), Some((120, 180)));
        for bad in ["#x", "#L", "#L12-", "#L12-13", "#L-L3", "#L1-L2-L3", "#Lx"] {
            assert_eq!(lines_from_hash(bad), None, "{bad}");
        }
        assert_eq!(lines_hash(7, 7), "#L7");
        assert_eq!(lines_hash(120, 180), "#L120-L180");
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("a+b%41"), "a bA");
    }
}
