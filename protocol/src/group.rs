//! Groups: foldable sections of a task's log.
//!
//! A record whose message is `::group::NAME` opens a group and `::endgroup::` closes
//! the innermost open one (the convention of CI logs, so a shell script, `tasklens
//! exec` and workers in any language mark sections by printing lines). Both stay
//! records with their text, so exports and searches keep them. Where the records
//! are numbered, [`Groups::place`] tells each record the group it is in: `group`
//! is the seq of the record that opened the innermost group around it (for an
//! `open` record the group around that one, for a `close` record the group it
//! closes), and a `close` record carries the most severe level inside its group,
//! so a reader lists groups with their size, duration and worst level from the
//! marks alone.

use serde::{Deserialize, Serialize};

use crate::{LogEntry, LogLevel};

/// What opens a group: the rest of the message is its name.
pub const OPEN_PREFIX: &str = "::group::";
/// What closes the innermost open group.
pub const CLOSE_LINE: &str = "::endgroup::";
/// Groups open at once, at most. A deeper `::group::` (and its `::endgroup::`)
/// stays a plain line, so a runaway script cannot grow the state without bound.
pub const MAX_DEPTH: usize = 32;

/// How a record delimits a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GroupMark {
    Open,
    Close,
}

impl GroupMark {
    pub fn as_i16(self) -> i16 {
        match self {
            GroupMark::Open => 1,
            GroupMark::Close => 2,
        }
    }

    pub fn from_i16(value: i16) -> Option<GroupMark> {
        match value {
            1 => Some(GroupMark::Open),
            2 => Some(GroupMark::Close),
            _ => None,
        }
    }
}

/// The mark a message asks for, by its text.
pub fn marker(message: &str) -> Option<GroupMark> {
    if message.starts_with(OPEN_PREFIX) {
        Some(GroupMark::Open)
    } else if message.trim_end() == CLOSE_LINE {
        Some(GroupMark::Close)
    } else {
        None
    }
}

/// The name of the group a message opens (`::group::` and surrounding blanks cut).
pub fn group_name(message: &str) -> &str {
    message.strip_prefix(OPEN_PREFIX).unwrap_or(message).trim()
}

/// The groups open in one task's log, as its records are numbered.
#[derive(Debug, Default, Clone)]
pub struct Groups {
    /// Seq of each open group's `open` record and the worst level inside it so far,
    /// outermost first.
    open: Vec<(u64, Option<LogLevel>)>,
    /// `::group::` lines past [`MAX_DEPTH`] still waiting for their `::endgroup::`.
    too_deep: usize,
}

impl Groups {
    /// Sets the record's `group`, `mark` and `worst` from its text and the groups
    /// open before it (whatever the record said of them: the numbering side decides).
    pub fn place(&mut self, entry: &mut LogEntry) {
        entry.mark = None;
        entry.worst = None;
        let mark = marker(entry.message());
        match mark {
            Some(GroupMark::Close) if self.too_deep == 0 => {
                if let Some((seq, worst)) = self.open.pop() {
                    entry.group = Some(seq);
                    entry.mark = Some(GroupMark::Close);
                    entry.worst = worst;
                    if let Some(parent) = self.open.last_mut() {
                        parent.1 = parent.1.max(worst);
                    }
                    return;
                }
            }
            Some(GroupMark::Close) => self.too_deep -= 1,
            Some(GroupMark::Open) if self.open.len() >= MAX_DEPTH => self.too_deep += 1,
            _ => {}
        }
        entry.group = self.innermost();
        if let Some(inner) = self.open.last_mut() {
            inner.1 = inner.1.max(Some(entry.level));
        }
        if mark == Some(GroupMark::Open) && self.too_deep == 0 && self.open.len() < MAX_DEPTH {
            entry.mark = Some(GroupMark::Open);
            self.open.push((entry.seq, None));
        }
    }

    /// Seq of the innermost open group's `open` record.
    pub fn innermost(&self) -> Option<u64> {
        self.open.last().map(|(seq, _)| *seq)
    }

    /// How many groups are open.
    pub fn depth(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Body, Timestamp};

    fn record(seq: u64, level: LogLevel, message: &str) -> LogEntry {
        LogEntry {
            seq,
            timestamp: Timestamp(seq as i64),
            level,
            source: Arc::from("stdout"),
            body: Body::new(message.into(), None),
            group: None,
            mark: None,
            worst: None,
        }
    }

    /// Places `lines` (level, text) numbered from 1 and gives (group, mark, worst).
    fn placed(
        lines: &[(LogLevel, &str)],
    ) -> Vec<(Option<u64>, Option<GroupMark>, Option<LogLevel>)> {
        let mut groups = Groups::default();
        lines
            .iter()
            .enumerate()
            .map(|(i, (level, text))| {
                let mut entry = record(i as u64 + 1, *level, text);
                groups.place(&mut entry);
                (entry.group, entry.mark, entry.worst)
            })
            .collect()
    }

    use GroupMark::{Close, Open};
    use LogLevel::{Error, Info, Warning};

    #[test]
    fn nested_groups_carry_their_worst_level_outwards() {
        let got = placed(&[
            (Info, "before"),
            (Info, "::group::build"),
            (Info, "compiling"),
            (Info, "::group::tests"),
            (Error, "test failed"),
            (Info, "::endgroup::"),
            (Warning, "slow"),
            (Info, "::endgroup::  "),
            (Info, "after"),
        ]);
        assert_eq!(
            got,
            vec![
                (None, None, None),
                (None, Some(Open), None),
                (Some(2), None, None),
                (Some(2), Some(Open), None),
                (Some(4), None, None),
                (Some(4), Some(Close), Some(Error)),
                (Some(2), None, None),
                (Some(2), Some(Close), Some(Error)),
                (None, None, None),
            ]
        );
    }

    #[test]
    fn a_stray_close_and_an_empty_group_stay_sound() {
        let got = placed(&[
            (Info, "::endgroup::"),
            (Info, "::group::"),
            (Info, "::endgroup::"),
        ]);
        assert_eq!(
            got,
            vec![
                (None, None, None),
                (None, Some(Open), None),
                (Some(2), Some(Close), None)
            ]
        );
        assert_eq!(group_name("::group::  Install deps "), "Install deps");
        assert_eq!(marker("::group"), None);
        assert_eq!(marker(" ::endgroup::"), None);
    }

    #[test]
    fn groups_past_the_depth_limit_are_plain_lines_with_their_closes() {
        let mut lines = vec![(Info, "::group::g"); MAX_DEPTH + 2];
        lines.push((Warning, "deep"));
        lines.extend(vec![(Info, "::endgroup::"); MAX_DEPTH + 2]);
        let got = placed(&lines);
        let innermost = MAX_DEPTH as u64;
        assert_eq!(got[MAX_DEPTH - 1], (Some(innermost - 1), Some(Open), None));
        assert_eq!(got[MAX_DEPTH], (Some(innermost), None, None));
        assert_eq!(got[MAX_DEPTH + 2], (Some(innermost), None, None));
        // The first two closes pair with the plain opens, then the real groups close.
        assert_eq!(got[MAX_DEPTH + 3], (Some(innermost), None, None));
        assert_eq!(got[MAX_DEPTH + 4], (Some(innermost), None, None));
        assert_eq!(
            got[MAX_DEPTH + 5],
            (Some(innermost), Some(Close), Some(Warning))
        );
        assert_eq!(got.last().unwrap(), &(Some(1), Some(Close), Some(Warning)));
    }

    #[test]
    fn what_a_record_claims_is_replaced() {
        let mut groups = Groups::default();
        let mut forged = record(1, Info, "plain");
        forged.group = Some(99);
        forged.mark = Some(Close);
        forged.worst = Some(Error);
        groups.place(&mut forged);
        assert_eq!(
            (forged.group, forged.mark, forged.worst),
            (None, None, None)
        );
    }
}
