//! What the log view knows, apart from the page around it: the index of the lines
//! it shows (position `i` is record `index[i]`), the groups that fold them into
//! rows ([`Outline`]), the pages of records fetched so far, the latest live
//! records, and the seqs of the search's matches and of the view's ERROR lines.
//! Plain data and arithmetic, unit-tested natively.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use protocol::{LogEntry, LogLevel};

use super::geometry::{RowHeights, UNIFORM};
use super::outline::{Outline, Row};

/// Positions per fetched page.
pub const PAGE: usize = 200;
/// Live records kept by seq to fill pages with (about four pages' worth).
const LIVE_ROWS_KEPT: usize = 4 * PAGE;

#[derive(Default)]
pub struct LogModel {
    pub index: Vec<u32>,
    /// The index and the groups are both there: the view shows its rows.
    pub index_loaded: bool,
    /// The index arrived (the groups may not have yet).
    pub index_arrived: bool,
    /// The groups arrived.
    pub groups_arrived: bool,
    pub outline: Outline,
    /// Rows measured taller than one line (wrapped), for the current layout.
    pub heights: RowHeights,
    /// Page number → its records, in position order (a prefix while incomplete).
    pub pages: HashMap<usize, Vec<Rc<LogEntry>>>,
    /// The latest live records by seq: rows of a page whose fetch was in flight when
    /// they arrived (or that are not stored yet) are shown from here.
    pub live_rows: BTreeMap<u64, Rc<LogEntry>>,
    /// Pages being fetched.
    pub loading: HashSet<usize>,
    /// Seqs of the search's matches, ascending, and the one last jumped to.
    pub matches: Vec<u32>,
    pub match_cursor: Option<usize>,
    /// The view's ERROR seqs, once asked for (the first `e`).
    pub errors: Option<Vec<u32>>,
}

impl LogModel {
    pub fn total(&self) -> usize {
        self.index.len()
    }

    /// Rows of the grid: lines and group headers, folded lines left out.
    pub fn rows(&self) -> usize {
        self.outline.row_count(self.index.len())
    }

    /// The measured heights of the rows as they are laid out now.
    pub fn heights(&self) -> &RowHeights {
        if self.heights.holds_for(self.outline.layout()) {
            &self.heights
        } else {
            &UNIFORM
        }
    }

    /// The row of line `seq` (or of the first line after it the view shows), with
    /// the groups around it unfolded.
    pub fn reveal_row(&mut self, seq: u64) -> usize {
        self.outline.reveal(seq, &self.index);
        let pos = self.position_of(seq).min(self.total().saturating_sub(1));
        self.outline.row_of(pos).min(self.rows().saturating_sub(1))
    }

    /// The row that shows line `seq`, or the header of the folded group that hides
    /// it (nothing is unfolded).
    pub fn row_of_seq(&self, seq: u64) -> usize {
        let pos = self.position_of(seq).min(self.total().saturating_sub(1));
        self.outline.row_of(pos).min(self.rows().saturating_sub(1))
    }

    /// The seq row `r` stands for: its line, or the line that opened its group.
    pub fn seq_at_row(&self, r: usize) -> Option<u64> {
        match self.outline.row(r)?.0 {
            Row::Line(pos) => self.index.get(pos).map(|s| u64::from(*s)),
            Row::Header(g) => self.outline.groups.get(g).map(|g| g.seq),
        }
    }

    /// The group line `seq` opens, or else the innermost one around it.
    pub fn group_at(&self, seq: u64) -> Option<usize> {
        self.outline.group_at(seq)
    }

    /// Folds or unfolds group `g`.
    pub fn toggle_group(&mut self, g: usize) {
        self.outline.toggle(g, &self.index);
    }

    /// Unfolds (or folds) every group.
    pub fn fold_all(&mut self, open: bool) {
        self.outline.set_all(open, &self.index);
    }

    /// Lays the index out in rows with the task's groups.
    pub fn set_groups(&mut self, groups: Vec<protocol::LogGroup>) {
        self.outline.set_groups(groups, &self.index);
    }

    /// The position of `seq`, or of the first line after it when the view does not
    /// show it.
    pub fn position_of(&self, seq: u64) -> usize {
        self.index.partition_point(|s| u64::from(*s) < seq)
    }

    /// Whether the view shows line `seq`.
    pub fn shows(&self, seq: u64) -> bool {
        u32::try_from(seq).is_ok_and(|seq| self.index.binary_search(&seq).is_ok())
    }

    pub fn entry(&self, pos: usize) -> Option<&Rc<LogEntry>> {
        self.pages
            .get(&(pos / PAGE))
            .and_then(|p| p.get(pos % PAGE))
    }

    pub fn entry_by_seq(&self, seq: u64) -> Option<&Rc<LogEntry>> {
        self.entry(self.position_of(seq)).filter(|e| e.seq == seq)
    }

    /// Digits of the largest seq this view can show, so that the seq column keeps
    /// one width for the whole task (6 at least).
    pub fn seq_digits(&self) -> usize {
        let largest = self
            .index
            .last()
            .map_or(0, |seq| u64::from(*seq))
            .max(self.live_rows.keys().next_back().copied().unwrap_or(0));
        largest.to_string().len().max(6)
    }

    /// Pages holding any of `positions` (ascending) neither held whole nor being
    /// fetched.
    pub fn missing_pages(&self, positions: &[usize]) -> Vec<usize> {
        let mut pages: Vec<usize> = positions.iter().map(|pos| pos / PAGE).collect();
        pages.dedup();
        pages
            .into_iter()
            .filter(|page| !self.holds_page(*page) && !self.loading.contains(page))
            .collect()
    }

    /// Whether every page holding any of `positions` is held whole.
    pub fn holds(&self, positions: &[usize]) -> bool {
        positions.iter().all(|pos| self.holds_page(pos / PAGE))
    }

    fn holds_page(&self, page: usize) -> bool {
        let want = (page * PAGE + PAGE)
            .min(self.total())
            .saturating_sub(page * PAGE);
        self.pages.get(&page).map_or(0, Vec::len) >= want
    }

    /// Files a fetched page: the records that continue the page's positions, then
    /// live records for the rest; a page already longer (live rows that arrived
    /// meanwhile) is kept.
    pub fn page_loaded(&mut self, page: usize, entries: Vec<LogEntry>) {
        self.loading.remove(&page);
        let start = page * PAGE;
        let expected = &self.index[start.min(self.total())..(start + PAGE).min(self.total())];
        let mut by_seq: HashMap<u64, LogEntry> = entries.into_iter().map(|e| (e.seq, e)).collect();
        let mut rows: Vec<Rc<LogEntry>> = Vec::with_capacity(expected.len());
        for seq in expected {
            match by_seq.remove(&u64::from(*seq)) {
                Some(entry) => rows.push(Rc::new(entry)),
                None => break,
            }
        }
        let old = self.pages.remove(&page).unwrap_or_default();
        if old.len() > rows.len() {
            rows = old;
        }
        while let Some(seq) = expected.get(rows.len()) {
            match self.live_rows.get(&u64::from(*seq)) {
                Some(entry) => rows.push(entry.clone()),
                None => break,
            }
        }
        self.pages.insert(page, rows);
    }

    /// Appends records that arrived live (the view's filter already applied), past
    /// the last indexed seq; `is_match` says which are search matches.
    pub fn apply_live(&mut self, entries: Vec<LogEntry>, is_match: impl Fn(&LogEntry) -> bool) {
        for entry in entries {
            let last = self.index.last().map_or(0, |s| u64::from(*s));
            if entry.seq <= last {
                continue;
            }
            let (pos, seq) = (self.index.len(), entry.seq);
            self.index.push(seq as u32);
            self.outline.live(&entry, Some(pos), &self.index);
            if self.matches.last().is_none_or(|m| u64::from(*m) < seq) && is_match(&entry) {
                self.matches.push(seq as u32);
            }
            if entry.level == LogLevel::Error {
                if let Some(errors) = &mut self.errors {
                    errors.push(seq as u32);
                }
            }
            let entry = Rc::new(entry);
            let page = self.pages.entry(pos / PAGE).or_default();
            if page.len() == pos % PAGE {
                page.push(entry.clone());
            }
            self.live_rows.insert(seq, entry);
            while self.live_rows.len() > LIVE_ROWS_KEPT {
                self.live_rows.pop_first();
            }
        }
    }

    /// Merges fetched seqs with those that arrived live meanwhile: each once, in order.
    pub fn merge(fetched: Vec<u32>, live: Vec<u32>) -> Vec<u32> {
        let mut merged = fetched;
        merged.extend(live);
        merged.sort_unstable();
        merged.dedup();
        merged
    }

    /// The match to go to next: from the cursor, round the end, or without one, the
    /// first match at or after `top_seq` (the last before it going back).
    pub fn next_match(&self, top_seq: u64, forward: bool) -> Option<usize> {
        let n = self.matches.len();
        if n == 0 {
            return None;
        }
        Some(match (self.match_cursor, forward) {
            (None, _) => {
                let i = self.matches.partition_point(|s| u64::from(*s) < top_seq);
                if forward {
                    i.min(n - 1)
                } else {
                    i.saturating_sub(1)
                }
            }
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        })
    }

    /// The ERROR line after (or before) seq `from`, round the end; `None` while the
    /// view's errors are not loaded or when it has none.
    pub fn next_error(&self, from: u64, forward: bool) -> Option<u64> {
        let errors = self.errors.as_ref()?;
        let next = if forward {
            let after = errors.partition_point(|s| u64::from(*s) <= from);
            errors.get(after).or(errors.first())
        } else {
            let before = errors.partition_point(|s| u64::from(*s) < from);
            before.checked_sub(1).map(|i| &errors[i]).or(errors.last())
        };
        next.map(|s| u64::from(*s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Body, Timestamp};
    use std::sync::Arc;

    fn record(seq: u64, level: LogLevel) -> LogEntry {
        LogEntry {
            seq,
            timestamp: Timestamp(seq as i64),
            level,
            source: Arc::from("s"),
            body: Body::new(format!("line {seq}"), None),
            group: None,
            mark: None,
            worst: None,
        }
    }

    fn model(index: &[u32]) -> LogModel {
        LogModel {
            index: index.to_vec(),
            index_loaded: true,
            ..LogModel::default()
        }
    }

    #[test]
    fn positions_and_what_the_view_shows() {
        let m = model(&[2, 4, 9]);
        assert_eq!(
            (m.position_of(4), m.position_of(5), m.position_of(99)),
            (1, 2, 3)
        );
        assert!(m.shows(9) && !m.shows(5) && !m.shows(u64::MAX));
        assert_eq!(m.seq_digits(), 6);
        assert_eq!(model(&[1_000_000]).seq_digits(), 7);
    }

    #[test]
    fn rows_of_folded_lines_are_their_headers_until_revealed() {
        // Line 2 opens a group that holds 3 and 4 and closes at 5.
        let mut m = model(&[1, 2, 3, 4, 5, 6]);
        m.set_groups(vec![protocol::LogGroup {
            seq: 2,
            parent: None,
            name: "g".into(),
            started: protocol::Timestamp(0),
            end_seq: Some(5),
            ended: Some(protocol::Timestamp(1)),
            lines: 2,
            worst: None,
        }]);
        assert_eq!(m.rows(), 3, "1, the header, 6");
        assert_eq!(
            (m.row_of_seq(4), m.seq_at_row(1), m.group_at(4)),
            (1, Some(2), Some(0))
        );
        assert_eq!(m.reveal_row(4), 3);
        assert_eq!((m.rows(), m.row_of_seq(4)), (5, 3));
        m.toggle_group(0);
        assert_eq!(m.rows(), 3);
        m.fold_all(true);
        assert_eq!(m.rows(), 5);
    }

    #[test]
    fn pages_fill_from_fetches_and_live_records() {
        let mut m = model(&(1..=450).collect::<Vec<u32>>());
        assert_eq!(
            m.missing_pages(&(190..420).collect::<Vec<_>>()),
            vec![0, 1, 2]
        );
        m.loading.insert(1);
        assert_eq!(m.missing_pages(&(190..420).collect::<Vec<_>>()), vec![0, 2]);
        // A fetch that stops short: the rest comes from the live records.
        m.live_rows
            .insert(201 + 150, Rc::new(record(351, LogLevel::Info)));
        let fetched: Vec<LogEntry> = (201..=350).map(|s| record(s, LogLevel::Info)).collect();
        m.page_loaded(1, fetched);
        assert!(!m.loading.contains(&1));
        assert_eq!(m.pages[&1].len(), 151);
        assert_eq!(m.entry_by_seq(351).unwrap().seq, 351);
        assert!(m.entry_by_seq(352).is_none());
        // The last page is short: 50 positions.
        m.page_loaded(2, (401..=450).map(|s| record(s, LogLevel::Info)).collect());
        assert_eq!(
            m.missing_pages(&(400..450).collect::<Vec<_>>()),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn live_records_extend_the_index_matches_and_errors() {
        let mut m = model(&[1, 2]);
        m.errors = Some(vec![2]);
        let live = vec![
            record(2, LogLevel::Error),
            record(3, LogLevel::Info),
            record(4, LogLevel::Error),
        ];
        m.apply_live(live, |e| e.seq == 4);
        assert_eq!(m.index, [1, 2, 3, 4]);
        assert_eq!(m.matches, [4]);
        assert_eq!(m.errors, Some(vec![2, 4]));
        // Page 0 was not fetched: the live records wait in `live_rows` until it is.
        assert!(m.entry(3).is_none());
        m.page_loaded(
            0,
            vec![record(1, LogLevel::Info), record(2, LogLevel::Error)],
        );
        assert_eq!(m.entry(3).unwrap().seq, 4);
        // Errors not asked for stay unasked.
        let mut m = model(&[]);
        m.apply_live(vec![record(1, LogLevel::Error)], |_| false);
        assert_eq!(m.errors, None);
        assert_eq!(LogModel::merge(vec![1, 5], vec![5, 3]), [1, 3, 5]);
    }

    #[test]
    fn a_page_is_held_once_whole_and_fetched_only_once() {
        let mut m = LogModel {
            index: (1..=450).collect(),
            ..LogModel::default()
        };
        assert!(!m.holds(&[10]));
        assert_eq!(m.missing_pages(&[10, 199, 200, 449]), [0, 1, 2]);
        m.loading.insert(1);
        assert_eq!(m.missing_pages(&[10, 200]), [0], "page 1 is on its way");
        assert!(!m.holds(&[200]), "on its way is not held");
        m.page_loaded(0, (1..=150).map(|s| record(s, LogLevel::Info)).collect());
        assert!(!m.holds(&[10]), "a page held in part is not held");
        m.page_loaded(0, (1..=200).map(|s| record(s, LogLevel::Info)).collect());
        m.page_loaded(2, (401..=450).map(|s| record(s, LogLevel::Info)).collect());
        assert!(m.holds(&[10, 199, 449]), "the last page is shorter");
        assert!(m.holds(&[]));
    }

    #[test]
    fn matches_and_errors_go_round_the_end() {
        let mut m = model(&[1, 2, 3, 4, 5, 6]);
        m.matches = vec![2, 5];
        assert_eq!(m.next_match(3, true), Some(1));
        assert_eq!(m.next_match(3, false), Some(0));
        m.match_cursor = Some(1);
        assert_eq!(m.next_match(0, true), Some(0));
        assert_eq!(m.next_error(3, true), None);
        m.errors = Some(vec![2, 5]);
        assert_eq!(m.next_error(2, true), Some(5));
        assert_eq!(m.next_error(5, true), Some(2));
        assert_eq!(m.next_error(2, false), Some(5));
        assert_eq!(m.next_error(4, false), Some(2));
        m.errors = Some(Vec::new());
        assert_eq!(m.next_error(4, false), None);
    }
}
