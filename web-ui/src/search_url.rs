//! The global search page's query, as written in its URL
//! (`/search?q=deadlock&level=ERROR&plugin=shell&status=failed`), and the REST query
//! it becomes (`GET /api/logs/search`).

use protocol::LogLevel;

use crate::view_url::{decode_pairs, encode_pairs};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Text the message contains (a regular expression when `regex`).
    pub text: String,
    pub regex: bool,
    /// This level and above; any when `None`.
    pub level: Option<LogLevel>,
    /// Only tasks of this plugin (empty: any).
    pub plugin: String,
    /// Only tasks with this status (empty: any).
    pub status: String,
}

impl SearchQuery {
    /// Reads the query from a query string (`?` optional); unknown keys are ignored.
    pub fn from_query(query: &str) -> SearchQuery {
        let mut s = SearchQuery::default();
        for (key, value) in decode_pairs(query.trim_start_matches('?')) {
            match key.as_str() {
                "q" => s.text = value,
                "re" => s.regex = value == "1",
                "level" => s.level = value.parse().ok(),
                "plugin" => s.plugin = value,
                "status" => s.status = value,
                _ => {}
            }
        }
        s
    }

    /// The page URL's query string (without `?`); empty parts are left out.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if !self.text.is_empty() {
            pairs.push(("q".into(), self.text.clone()));
            if self.regex {
                pairs.push(("re".into(), "1".into()));
            }
        }
        if let Some(level) = self.level {
            pairs.push(("level".into(), level.to_string()));
        }
        for (key, value) in [("plugin", &self.plugin), ("status", &self.status)] {
            if !value.is_empty() {
                pairs.push((key.into(), value.clone()));
            }
        }
        encode_pairs(&pairs)
    }

    /// Whether there is anything to search for (an empty query would list every
    /// record of every task).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.level.is_none()
    }

    /// `GET /api/logs/search`'s query for a page of `limit` hits from `cursor`.
    pub fn api_query(&self, cursor: Option<&str>, limit: usize) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if !self.text.is_empty() {
            let key = if self.regex { "re" } else { "q" };
            pairs.push((key.into(), self.text.clone()));
        }
        if let Some(level) = self.level {
            pairs.push(("level".into(), level.to_string()));
        }
        for (key, value) in [("plugin", &self.plugin), ("status", &self.status)] {
            if !value.is_empty() {
                pairs.push((key.into(), value.clone()));
            }
        }
        if let Some(cursor) = cursor {
            pairs.push(("cursor".into(), cursor.to_owned()));
        }
        pairs.push(("limit".into(), limit.to_string()));
        encode_pairs(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_url() {
        let s = SearchQuery {
            text: "dead lock & 50%".into(),
            regex: false,
            level: Some(LogLevel::Error),
            plugin: "shell".into(),
            status: "failed".into(),
        };
        let query = s.to_query();
        assert_eq!(
            query,
            "q=dead%20lock%20%26%2050%25&level=ERROR&plugin=shell&status=failed"
        );
        assert_eq!(SearchQuery::from_query(&format!("?{query}")), s);
        assert_eq!(SearchQuery::from_query(""), SearchQuery::default());
        assert!(SearchQuery::default().is_empty());
        assert_eq!(SearchQuery::from_query("level=loud&x=1").level, None);
    }

    #[test]
    fn api_queries_carry_the_regex_and_the_cursor() {
        let s = SearchQuery::from_query("q=t%5Cd%2B&re=1&level=WARNING");
        assert_eq!(
            s.api_query(Some("1.ab.3"), 100),
            "re=t%5Cd%2B&level=WARNING&cursor=1.ab.3&limit=100"
        );
        assert_eq!(
            SearchQuery::from_query("q=x").api_query(None, 5),
            "q=x&limit=5"
        );
    }
}
