//! Groups as the view folds them: which rows the grid shows, in order, over the
//! view's index. A row is a line (an index position) or a group's header; a folded
//! group's lines have no row, and the line that opens a group is shown as its
//! header while the line that closes it never is. A group gets a header only once
//! the view has a line inside it, so a filtered view lists the groups that hold
//! its lines. Plain data, unit-tested natively.
//!
//! Rows are laid out by one walk over the index that can go on where it stopped,
//! so live lines are appended without laying out the rest again. The walk steps
//! line by line only where a group starts or ends; the lines between two such
//! places all go the same way, so they are laid out at once (a fold of 1,000,000
//! lines in 1,000 groups is some 2,000 steps, not 1,000,000).

use std::collections::HashMap;

use protocol::{GroupMark, LogEntry, LogGroup, LogLevel};

/// One row of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// The line at this index position.
    Line(usize),
    /// The header of the group at this place in [`Outline::groups`].
    Header(usize),
}

/// A group the walk is inside.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Open {
    group: usize,
    /// Its header's row, once the view had a line inside it (when folded inside
    /// another group: that group's header row).
    header: Option<u32>,
    /// Whether its lines get rows (it and every group around it unfolded).
    shows_lines: bool,
}

#[derive(Default, Clone, Debug, PartialEq)]
struct Walk {
    next_group: usize,
    stack: Vec<Open>,
}

#[derive(Default)]
pub struct Outline {
    /// The task's groups in seq order.
    pub groups: Vec<LogGroup>,
    by_seq: HashMap<u64, usize>,
    /// Groups the user folded (false) or unfolded (true); the others are unfolded
    /// only when they hold an ERROR.
    chosen: HashMap<u64, bool>,
    /// The rows and their depth; empty without groups, when row `r` is line `r`.
    rows: Vec<(Row, u8)>,
    /// Each index position's row; a line without one maps to the header that
    /// stands for it.
    row_of: Vec<u32>,
    walk: Walk,
    /// Bumped by every layout: row numbers measured before it no longer hold.
    layouts: u64,
}

impl Outline {
    /// The user's choices of another outline (the same task's, before a reload).
    pub fn keep_choices(&mut self, other: &Outline) {
        self.chosen = other.chosen.clone();
    }

    /// Forgets the user's choices (another task's view).
    pub fn forget_choices(&mut self) {
        self.chosen.clear();
    }

    /// The outline of `groups` over `index`, with the user's choices kept.
    pub fn set_groups(&mut self, groups: Vec<LogGroup>, index: &[u32]) {
        self.by_seq = groups.iter().enumerate().map(|(i, g)| (g.seq, i)).collect();
        self.groups = groups;
        self.lay_out(index);
    }

    pub fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Whether group `i`'s lines are shown.
    pub fn is_open(&self, i: usize) -> bool {
        let group = &self.groups[i];
        self.chosen
            .get(&group.seq)
            .copied()
            .unwrap_or(group.worst == Some(LogLevel::Error))
    }

    /// Rows in all, given the index's length.
    pub fn row_count(&self, lines: usize) -> usize {
        if self.has_groups() {
            self.rows.len()
        } else {
            lines
        }
    }

    /// Row `r` and its depth (0 outside any group).
    pub fn row(&self, r: usize) -> Option<(Row, u8)> {
        if self.has_groups() {
            self.rows.get(r).copied()
        } else {
            Some((Row::Line(r), 0))
        }
    }

    /// The row that shows index position `pos` (or stands for it, folded).
    pub fn row_of(&self, pos: usize) -> usize {
        if self.has_groups() {
            self.row_of
                .get(pos)
                .map_or(self.rows.len(), |r| *r as usize)
        } else {
            pos
        }
    }

    /// The index positions of the lines in `rows`, ascending (folded lines between
    /// them are not: a window of headers must not fetch the lines they hide).
    pub fn lines_in(&self, rows: std::ops::Range<usize>) -> Vec<usize> {
        if !self.has_groups() {
            return rows.collect();
        }
        self.rows[rows.start.min(self.rows.len())..rows.end.min(self.rows.len())]
            .iter()
            .filter_map(|(row, _)| match row {
                Row::Line(pos) => Some(*pos),
                Row::Header(_) => None,
            })
            .collect()
    }

    /// Folds or unfolds group `i` (as chosen by the user).
    pub fn toggle(&mut self, i: usize, index: &[u32]) {
        let open = !self.is_open(i);
        self.chosen.insert(self.groups[i].seq, open);
        self.lay_out(index);
    }

    /// Unfolds (or folds) every group.
    pub fn set_all(&mut self, open: bool, index: &[u32]) {
        self.chosen = self.groups.iter().map(|g| (g.seq, open)).collect();
        self.lay_out(index);
    }

    /// The group `seq` opens, or else the innermost one around it.
    pub fn group_at(&self, seq: u64) -> Option<usize> {
        let mut at = self.groups.partition_point(|g| g.seq <= seq).checked_sub(1);
        while let Some(i) = at {
            let group = &self.groups[i];
            if group.end_seq.is_none_or(|end| seq <= end) {
                return Some(i);
            }
            at = group.parent.and_then(|p| self.by_seq.get(&p).copied());
        }
        None
    }

    /// Unfolds the groups around line `seq`, so that it has a row. Whether any was
    /// folded.
    pub fn reveal(&mut self, seq: u64, index: &[u32]) -> bool {
        let mut unfolded = false;
        let mut at = self.groups.partition_point(|g| g.seq < seq).checked_sub(1);
        // The last group opened before `seq`, then the groups around it: those that
        // have not closed by `seq` hold it.
        while let Some(i) = at {
            let group = &self.groups[i];
            if group.end_seq.is_none_or(|end| seq < end) && !self.is_open(i) {
                self.chosen.insert(group.seq, true);
                unfolded = true;
            }
            at = group.parent.and_then(|p| self.by_seq.get(&p).copied());
        }
        if unfolded {
            self.lay_out(index);
        }
        unfolded
    }

    /// Takes in a live record that the view will show at position `pos` (`shown`),
    /// or that it does not show but may open, close or grow a group. Returns whether
    /// the rows must be laid out again (a folded group took an ERROR and opens by
    /// itself); otherwise its row is appended.
    pub fn live(&mut self, entry: &LogEntry, shown: Option<usize>, index: &[u32]) -> bool {
        // The first group: the lines before it had no rows of their own.
        let mut relayout = !self.has_groups() && entry.mark == Some(GroupMark::Open);
        match entry.mark {
            Some(GroupMark::Open) => {
                self.by_seq.insert(entry.seq, self.groups.len());
                self.groups.push(LogGroup {
                    seq: entry.seq,
                    parent: entry.group,
                    name: protocol::group::group_name(entry.message()).to_owned(),
                    started: entry.timestamp,
                    end_seq: None,
                    ended: None,
                    lines: 0,
                    worst: None,
                });
                self.count_line(entry, &mut relayout);
            }
            Some(GroupMark::Close) => {
                if let Some(group) = entry
                    .group
                    .and_then(|g| self.by_seq.get(&g))
                    .map(|i| &mut self.groups[*i])
                {
                    group.end_seq = Some(entry.seq);
                    group.ended = Some(entry.timestamp);
                }
            }
            None => self.count_line(entry, &mut relayout),
        }
        if relayout {
            self.lay_out(index);
        } else if let (Some(pos), true) = (shown, self.has_groups()) {
            self.push(pos, entry.seq);
        }
        relayout
    }

    /// Counts a line in every group around it; a folded group that takes its first
    /// ERROR (and was not folded by the user) needs a new layout.
    fn count_line(&mut self, entry: &LogEntry, relayout: &mut bool) {
        let mut at = entry.group.and_then(|g| self.by_seq.get(&g).copied());
        for _ in 0..=protocol::group::MAX_DEPTH {
            let Some(i) = at else { break };
            let was_open = self.is_open(i);
            let group = &mut self.groups[i];
            group.lines += 1;
            group.worst = group.worst.max(Some(entry.level));
            if !was_open && self.is_open(i) {
                *relayout = true;
            }
            at = self.groups[i]
                .parent
                .and_then(|p| self.by_seq.get(&p).copied());
        }
    }

    /// Which layout the rows are: another one moves rows.
    pub fn layout(&self) -> u64 {
        self.layouts
    }

    fn lay_out(&mut self, index: &[u32]) {
        self.layouts += 1;
        self.rows.clear();
        self.row_of.clear();
        self.walk = Walk::default();
        if !self.has_groups() {
            return;
        }
        self.rows.reserve(index.len());
        self.row_of.reserve(index.len());
        let mut pos = 0;
        while pos < index.len() {
            self.push(pos, u64::from(index[pos]));
            pos = self.push_run(pos + 1, index);
        }
    }

    /// Lays out the lines from index position `pos` on that neither start nor end a
    /// group, all at once, as [`Outline::push`] would one by one: each gets a row
    /// when the innermost group around it shows lines, else stands for its header.
    /// Returns the position after them.
    fn push_run(&mut self, pos: usize, index: &[u32]) -> usize {
        let next_start = self
            .groups
            .get(self.walk.next_group)
            .map_or(u64::MAX, |g| g.seq);
        let first_end = self
            .walk
            .stack
            .iter()
            .filter_map(|open| self.groups[open.group].end_seq)
            .min()
            .unwrap_or(u64::MAX);
        let bound = next_start.min(first_end);
        let end = pos + index[pos..].partition_point(|seq| u64::from(*seq) < bound);
        debug_assert_eq!(self.row_of.len(), pos, "the walk is at `pos`");
        match self.walk.stack.last() {
            Some(inner) if !inner.shows_lines => {
                self.row_of.resize(end, inner.header.unwrap_or(0));
            }
            _ => {
                let depth = self.walk.stack.len() as u8;
                let first = self.rows.len() as u32;
                self.rows.extend((pos..end).map(|p| (Row::Line(p), depth)));
                self.row_of.extend(first..first + (end - pos) as u32);
            }
        }
        end
    }

    /// Continues the walk with the line at index position `pos`.
    fn push(&mut self, pos: usize, seq: u64) {
        let mut walk = std::mem::take(&mut self.walk);
        let ended = |groups: &[LogGroup], open: &Open, at: u64| {
            groups[open.group].end_seq.is_some_and(|end| end < at)
        };
        while walk
            .stack
            .last()
            .is_some_and(|top| ended(&self.groups, top, seq))
        {
            walk.stack.pop();
        }
        while let Some(group) = self.groups.get(walk.next_group).filter(|g| g.seq <= seq) {
            let at = group.seq;
            while walk
                .stack
                .last()
                .is_some_and(|top| ended(&self.groups, top, at))
            {
                walk.stack.pop();
            }
            let parent_shows = walk.stack.last().is_none_or(|p| p.shows_lines);
            walk.stack.push(Open {
                group: walk.next_group,
                header: None,
                shows_lines: parent_shows && self.is_open(walk.next_group),
            });
            walk.next_group += 1;
        }
        // Groups the view reaches for the first time get their headers.
        for depth in 0..walk.stack.len() {
            if walk.stack[depth].header.is_some() {
                continue;
            }
            let header = match depth.checked_sub(1).map(|d| walk.stack[d]) {
                Some(parent) if !parent.shows_lines => parent.header.unwrap_or(0),
                _ => {
                    self.rows
                        .push((Row::Header(walk.stack[depth].group), depth as u8));
                    (self.rows.len() - 1) as u32
                }
            };
            walk.stack[depth].header = Some(header);
        }
        let row = match walk.stack.last() {
            Some(inner) => {
                let group = &self.groups[inner.group];
                let marks = group.seq == seq || group.end_seq == Some(seq);
                if marks || !inner.shows_lines {
                    inner.header.unwrap_or(0)
                } else {
                    self.rows.push((Row::Line(pos), walk.stack.len() as u8));
                    (self.rows.len() - 1) as u32
                }
            }
            None => {
                self.rows.push((Row::Line(pos), 0));
                (self.rows.len() - 1) as u32
            }
        };
        if self.row_of.len() <= pos {
            self.row_of.resize(pos + 1, row);
        }
        self.row_of[pos] = row;
        self.walk = walk;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use protocol::{Body, LogLevel, Timestamp};

    use super::*;

    fn group(seq: u64, parent: Option<u64>, end: Option<u64>, worst: Option<LogLevel>) -> LogGroup {
        LogGroup {
            seq,
            parent,
            name: format!("g{seq}"),
            started: Timestamp(0),
            end_seq: end,
            ended: end.map(|_| Timestamp(1)),
            lines: 0,
            worst,
        }
    }

    /// Rows as text: `L<seq>` for a line, `H<seq>` for a header, indented by depth.
    fn shown(outline: &Outline, index: &[u32]) -> Vec<String> {
        (0..outline.row_count(index.len()))
            .map(|r| {
                let (row, depth) = outline.row(r).unwrap();
                let text = match row {
                    Row::Line(pos) => format!("L{}", index[pos]),
                    Row::Header(g) => format!("H{}", outline.groups[g].seq),
                };
                format!("{}{text}", " ".repeat(depth as usize))
            })
            .collect()
    }

    /// 1 plain, 2 opens A, 3, 4 opens B (nested), 5 ERROR, 6 closes B, 7, 8 closes A,
    /// 9 plain, 10 opens C (never closed), 11.
    fn task() -> (Vec<LogGroup>, Vec<u32>) {
        (
            vec![
                group(2, None, Some(8), Some(LogLevel::Error)),
                group(4, Some(2), Some(6), Some(LogLevel::Error)),
                group(10, None, None, Some(LogLevel::Info)),
            ],
            (1..=11).collect(),
        )
    }

    #[test]
    fn groups_fold_unless_they_hold_an_error_and_closes_are_never_rows() {
        let (groups, index) = task();
        let mut outline = Outline::default();
        outline.set_groups(groups, &index);
        assert_eq!(
            shown(&outline, &index),
            ["L1", "H2", " L3", " H4", "  L5", " L7", "L9", "H10"]
        );
        // Hidden lines stand for a header: 6 closes B, 11 is folded into C.
        assert_eq!(outline.row_of(5), 3);
        assert_eq!(outline.row_of(10), 7);
        assert_eq!(outline.lines_in(1..4), [2]);
        let at = |seq| outline.group_at(seq).map(|g| outline.groups[g].seq);
        assert_eq!(
            [at(1), at(4), at(5), at(6), at(7), at(9), at(11)],
            [None, Some(4), Some(4), Some(4), Some(2), None, Some(10)]
        );

        outline.toggle(0, &index);
        assert_eq!(shown(&outline, &index), ["L1", "H2", "L9", "H10"]);
        assert_eq!(outline.row_of(4), 1, "line 5 is behind A's header");
        assert!(outline.reveal(5, &index));
        assert_eq!(outline.row_of(4), 4);
        assert!(!outline.reveal(5, &index));

        outline.set_all(false, &index);
        assert_eq!(shown(&outline, &index), ["L1", "H2", "L9", "H10"]);
        outline.set_all(true, &index);
        assert_eq!(
            shown(&outline, &index),
            ["L1", "H2", " L3", " H4", "  L5", " L7", "L9", "H10", " L11"]
        );
    }

    #[test]
    fn a_filtered_view_lists_only_the_groups_holding_its_lines() {
        let (groups, _) = task();
        let index = vec![5, 9, 11];
        let mut outline = Outline::default();
        outline.set_groups(groups, &index);
        assert_eq!(shown(&outline, &index), ["H2", " H4", "  L5", "L9", "H10"]);
        assert_eq!(outline.lines_in(0..5), [0, 1]);
    }

    /// The walk one line at a time, as live lines take it: what laying out runs at
    /// once must equal.
    fn line_by_line(outline: &Outline, index: &[u32]) -> (Vec<(Row, u8)>, Vec<u32>, Walk) {
        let mut slow = Outline {
            groups: outline.groups.clone(),
            by_seq: outline.by_seq.clone(),
            chosen: outline.chosen.clone(),
            ..Outline::default()
        };
        // Without groups there are no rows to lay out: row `r` is line `r`.
        if slow.has_groups() {
            for (pos, seq) in index.iter().enumerate() {
                slow.push(pos, u64::from(*seq));
            }
        }
        (slow.rows, slow.row_of, slow.walk)
    }

    /// A small deterministic generator (xorshift), for many random cases without a
    /// dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn laying_out_runs_at_once_equals_the_walk_line_by_line() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..500 {
            // A task of up to 300 records: groups open, nest up to 5 deep and
            // close at random; some are left open.
            let records = 1 + rng.below(300);
            let (mut groups, mut stack) = (Vec::<LogGroup>::new(), Vec::<usize>::new());
            for seq in 1..=records {
                match rng.below(10) {
                    0 | 1 if stack.len() < 5 => {
                        let parent = stack.last().map(|g: &usize| groups[*g].seq);
                        let worst = [None, Some(LogLevel::Info), Some(LogLevel::Error)]
                            [rng.below(3) as usize];
                        stack.push(groups.len());
                        groups.push(group(seq, parent, None, worst));
                    }
                    2 if !stack.is_empty() => {
                        let g = stack.pop().unwrap();
                        groups[g].end_seq = Some(seq);
                    }
                    _ => {}
                }
            }
            // The whole log, or a filtered view of it.
            let keep = 1 + rng.below(4);
            let index: Vec<u32> = (1..=records as u32)
                .filter(|_| keep == 1 || rng.below(keep) == 0)
                .collect();
            let mut outline = Outline::default();
            outline.set_groups(groups, &index);
            let check = |outline: &Outline, what: &str| {
                let (rows, row_of, walk) = line_by_line(outline, &index);
                assert_eq!(outline.rows, rows, "case {case}, {what}: rows");
                assert_eq!(outline.row_of, row_of, "case {case}, {what}: row_of");
                assert_eq!(outline.walk, walk, "case {case}, {what}: walk");
            };
            check(&outline, "as it opens");
            for _ in 0..3 {
                if outline.groups.is_empty() {
                    break;
                }
                let g = rng.below(outline.groups.len() as u64) as usize;
                outline.toggle(g, &index);
                check(&outline, "after a fold");
            }
            outline.set_all(true, &index);
            check(&outline, "all unfolded");
            outline.set_all(false, &index);
            check(&outline, "all folded");
        }
    }

    #[test]
    fn without_groups_rows_are_lines() {
        let mut outline = Outline::default();
        outline.set_groups(Vec::new(), &[1, 2, 3]);
        assert_eq!(outline.row_count(3), 3);
        assert_eq!(
            (outline.row(2), outline.row_of(2)),
            (Some((Row::Line(2), 0)), 2)
        );
        assert_eq!(outline.lines_in(1..3), [1, 2]);
    }

    fn live(
        seq: u64,
        level: LogLevel,
        message: &str,
        group: Option<u64>,
        mark: Option<GroupMark>,
    ) -> LogEntry {
        LogEntry {
            seq,
            timestamp: Timestamp(seq as i64),
            level,
            source: Arc::from("stdout"),
            body: Body::new(message.into(), None),
            group,
            mark,
            worst: None,
        }
    }

    #[test]
    fn live_lines_open_grow_and_close_groups_and_an_error_unfolds_one() {
        let (groups, mut index) = task();
        let mut outline = Outline::default();
        outline.set_groups(groups, &index);
        let mut arrive = |outline: &mut Outline, entry: LogEntry| {
            index.push(entry.seq as u32);
            outline.live(&entry, Some(index.len() - 1), &index);
            index.clone()
        };
        arrive(
            &mut outline,
            live(12, LogLevel::Info, "more", Some(10), None),
        );
        let index = arrive(
            &mut outline,
            live(
                13,
                LogLevel::Info,
                "::group::D",
                Some(10),
                Some(GroupMark::Open),
            ),
        );
        assert_eq!(outline.groups[3].parent, Some(10));
        assert_eq!(outline.groups[2].lines, 2);
        assert_eq!(
            shown(&outline, &index),
            ["L1", "H2", " L3", " H4", "  L5", " L7", "L9", "H10"]
        );
        let mut index = index;
        index.push(14);
        assert!(outline.live(
            &live(14, LogLevel::Error, "failed", Some(13), None),
            Some(13),
            &index
        ));
        assert_eq!(
            shown(&outline, &index),
            [
                "L1", "H2", " L3", " H4", "  L5", " L7", "L9", "H10", " L11", " L12", " H13",
                "  L14"
            ]
        );
        index.push(15);
        outline.live(
            &live(
                15,
                LogLevel::Info,
                "::endgroup::",
                Some(13),
                Some(GroupMark::Close),
            ),
            Some(14),
            &index,
        );
        index.push(16);
        outline.live(
            &live(16, LogLevel::Info, "back in C", Some(10), None),
            Some(15),
            &index,
        );
        assert_eq!(outline.groups[3].end_seq, Some(15));
        assert_eq!(shown(&outline, &index).last().unwrap(), " L16");
        assert_eq!(outline.row_of(14), 10, "the close stands for D's header");
    }
}
