//! Everything that happens to the log view: answers from the server, events on the
//! socket, the user's clicks and keys.

use protocol::{LogEntry, SourceCount, TaskId};
use web_sys::KeyboardEvent;

use crate::api::ApiError;
use crate::live::LiveEvent;
use crate::view_prefs::TimeMode;

pub enum Msg {
    IndexLoaded {
        generation: u64,
        seqs: Vec<u32>,
    },
    /// The task's groups, to fold the view's lines with.
    GroupsLoaded {
        generation: u64,
        groups: Vec<protocol::LogGroup>,
    },
    /// Fold or unfold the group at this place in the outline.
    ToggleGroup(usize),
    /// Unfold (true) or fold every group.
    FoldAll(bool),
    MatchesLoaded {
        generation: u64,
        seqs: Vec<u32>,
    },
    /// The ERROR lines of the view, for `e` / `Shift+E`.
    ErrorsLoaded {
        generation: u64,
        seqs: Vec<u32>,
    },
    /// The next (or previous) ERROR of the view, for a first `e` / `Shift+E`.
    ErrorFound {
        generation: u64,
        seq: Option<u64>,
    },
    /// The task's first ERROR line, for the error strip.
    FirstErrorLoaded {
        task: TaskId,
        entry: Option<LogEntry>,
    },
    PageLoaded {
        generation: u64,
        page: usize,
        entries: Vec<LogEntry>,
    },
    CountsLoaded {
        task: TaskId,
        /// Which request this answers: an answer older than the one shown is dropped.
        ticket: u64,
        /// Requested after the task was seen final, when the counts can no longer
        /// change: no more requests are needed.
        settled: bool,
        counts: Vec<SourceCount>,
    },
    Failed {
        generation: u64,
        error: ApiError,
    },
    Live {
        generation: u64,
        event: LiveEvent,
    },
    Reconnect {
        generation: u64,
    },
    Scrolled,
    SetLevel(String),
    ToggleSource(String),
    ClearSources,
    SearchTyped(String),
    SearchApply,
    ToggleRegex,
    ToggleOnly,
    MetaKey(String),
    MetaValue(String),
    /// The typed pair, applied as a draft (a pause in typing, or leaving the field).
    MetaApply,
    /// Enter: the typed pair becomes a chip and the inputs clear for the next one.
    MetaCommit,
    MetaRemove(String),
    RangeFrom(String),
    RangeTo(String),
    RangeApply,
    RangeClear,
    ClearFilters,
    ToggleFollow,
    JumpToEnd,
    NextMatch,
    PrevMatch,
    /// Go to the next (true) or previous ERROR line of the view.
    NextError(bool),
    /// Go to a line, widening the view to show it if its filter hides it.
    JumpToLine(u64),
    /// Select the line this many positions below (or above) the selected one.
    MoveSelection(i64),
    /// A line clicked; with Shift, the selection is extended to it.
    Select {
        seq: u64,
        extend: bool,
    },
    /// Copy the selected lines as text (false) or as Markdown (true).
    CopyRange(bool),
    RangeCopied(Result<usize, String>),
    /// The page's `#L…` changed (typed, or Back/Forward between permalinks).
    HashChanged,
    CloseDetail,
    Copy(u64),
    Download(&'static str),
    DownloadDone(Option<String>),
    RefreshCounts,
    GlobalKey(KeyboardEvent),
    SetTimeMode(TimeMode),
    ToggleMeta,
    /// Wrap long lines, or not.
    ToggleWrap,
    /// Rows measured another height than assumed: draw them again.
    Measured,
    ToggleHelp,
}
