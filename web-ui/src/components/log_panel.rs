//! The log panel of a task.
//!
//! It scrolls over an *index*: the seqs of every line the view shows, fetched from
//! `GET /logs/index` (position `i` of the view is record `index[i]`). Only the rows in
//! sight, plus a margin, are in the DOM; they are fetched a page of 200 positions at a
//! time and cached. New lines arrive over a WebSocket subscribed with the same filter
//! from the last indexed seq, so nothing is missed between the index and the stream,
//! and after a dropped connection the stream resumes from the last seq shown.
//!
//! A struct component: the index, page cache, socket and scroll state change together
//! in response to many messages, which reads best as one `update`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use protocol::{
    ClientMessage, FilterSpec, LogEntry, LogLevel, LogPage, ServerMessage, SourceCount, TaskId,
    TaskInfo, Timestamp,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use super::error_strip::ErrorStrip;
use super::log_row::{line_text, message_html, row, Matcher, RowEvents, RowState, ROW_HEIGHT};
use super::shortcuts::Shortcuts;
use crate::api::{Api, ApiError};
use crate::format::clock;
use crate::live::{Live, LiveEvent};
use crate::view_prefs::{offset, utc_clock, TimeMode, ViewPrefs};
use crate::view_url::{line_from_hash, rest_query, ViewFilter};

const PAGE: usize = 200;
const MARGIN_ROWS: usize = 30;
/// Tallest scroll area used; longer logs scroll proportionally (browsers cap heights).
const MAX_SCROLL_PX: f64 = 8_000_000.0;
const SEARCH_DEBOUNCE_MS: u32 = 250;
/// Live records kept by seq to fill pages with (about four pages' worth).
const LIVE_ROWS_KEPT: usize = 4 * PAGE;

#[derive(Properties, PartialEq)]
pub struct LogPanelProps {
    pub task_id: TaskId,
    pub api: Api,
    /// The task's status changed (from the stream).
    pub on_task: Callback<TaskInfo>,
    /// When the task started, for the time column's "since start" mode.
    #[prop_or_default]
    pub started_at: Option<Timestamp>,
    pub on_unauthorized: Callback<()>,
}

pub enum Msg {
    IndexLoaded {
        generation: u64,
        seqs: Vec<u32>,
    },
    MatchesLoaded {
        generation: u64,
        seqs: Vec<u32>,
    },
    /// The ERROR lines of the view, for `e` / `Shift+E`.
    ErrorsLoaded {
        generation: u64,
        seqs: Vec<u32>,
    },
    /// The task's first ERROR line, for the error strip.
    FirstErrorLoaded {
        task: TaskId,
        entry: Option<LogEntry>,
    },
    /// Go to the next (true) or previous ERROR line of the view.
    NextError(bool),
    /// Go to a line, widening the view to show it if its filter hides it.
    JumpToLine(u64),
    /// Select the line this many positions below (or above) the selected one.
    MoveSelection(i64),
    SetTimeMode(TimeMode),
    ToggleMeta,
    ToggleHelp,
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
    MetaApply,
    ClearFilters,
    ToggleFollow,
    JumpToEnd,
    NextMatch,
    PrevMatch,
    Select(u64),
    /// The page's `#L…` changed (typed, or Back/Forward between permalinks).
    HashChanged,
    CloseDetail,
    Copy(u64),
    Download(&'static str),
    DownloadDone(Option<String>),
    RefreshCounts,
    GlobalKey(KeyboardEvent),
}

#[derive(Clone, Copy, PartialEq)]
enum LiveState {
    Connecting,
    Live,
    Reconnecting,
}

pub struct LogPanel {
    filter: ViewFilter,
    search_text: String,
    meta_key: String,
    meta_value: String,
    matcher: Matcher,
    matcher_error: Option<String>,
    generation: u64,
    index: Vec<u32>,
    index_loaded: bool,
    matches: Vec<u32>,
    match_cursor: Option<usize>,
    pages: HashMap<usize, Vec<Rc<LogEntry>>>,
    /// The latest live records by seq: rows of a page whose fetch was in flight when
    /// they arrived (or that are not stored yet) are shown from here.
    live_rows: BTreeMap<u64, Rc<LogEntry>>,
    loading: HashSet<usize>,
    counts: Vec<SourceCount>,
    /// Counts requests sent, and the newest one whose answer is shown.
    counts_sent: u64,
    counts_shown: u64,
    /// The counts shown were read after the task ended: they are the stored ones.
    counts_final: bool,
    live: Option<Live>,
    live_state: LiveState,
    reconnects: u32,
    follow: bool,
    scroll_top: f64,
    viewport_height: f64,
    /// A scroll position to apply after the next render.
    scroll_to: Option<f64>,
    /// A position to keep centred (a permalink or a match) until the user scrolls: a
    /// layout change (the task header appearing) must not push it out of view.
    anchor: Option<usize>,
    /// The last position this panel scrolled to itself: the scroll event that follows
    /// (asynchronously, maybe after new rows arrived) is not the user's.
    own_scroll: Option<f64>,
    selected: Option<u64>,
    /// A line to bring into view once the index is known (permalink).
    pending_jump: Option<u64>,
    error: Option<String>,
    task_running: bool,
    viewport: NodeRef,
    search_input: NodeRef,
    debounce: Option<Timeout>,
    _counts_timer: Interval,
    _keys: Option<Closure<dyn FnMut(KeyboardEvent)>>,
    _resize: Option<Closure<dyn FnMut()>>,
    _hash: Option<Closure<dyn FnMut()>>,
    events: RowEvents,
    flash: Option<String>,
    /// How lines are shown (remembered per browser).
    prefs: ViewPrefs,
    /// The task's first ERROR line, once the counts show one.
    first_error: Option<(u64, String)>,
    first_error_asked: bool,
    /// The view's ERROR seqs, loaded at the first `e`; a jump waiting for them.
    errors: Option<Vec<u32>>,
    error_jump: Option<bool>,
    show_help: bool,
}

fn location() -> web_sys::Location {
    web_sys::window().expect("a window").location()
}

impl LogPanel {
    fn view_query(&self) -> String {
        rest_query(&self.filter.view_spec())
    }

    fn total(&self) -> usize {
        self.index.len()
    }

    /// Digits of the largest seq this view can show, so that the seq column keeps
    /// one width for the whole task (6 at least, as before).
    fn seq_digits(&self) -> usize {
        let largest = self
            .index
            .last()
            .map_or(0, |seq| u64::from(*seq))
            .max(self.live_rows.keys().next_back().copied().unwrap_or(0));
        largest.to_string().len().max(6)
    }

    /// Starts over for the current filter: new index, new socket, empty cache.
    fn reload(&mut self, ctx: &Context<Self>) {
        self.generation += 1;
        self.index.clear();
        self.index_loaded = false;
        self.matches.clear();
        self.match_cursor = None;
        self.errors = None;
        self.error_jump = None;
        self.pages.clear();
        self.live_rows.clear();
        self.loading.clear();
        self.live = None;
        self.live_state = LiveState::Connecting;
        self.error = None;
        self.matcher = match Matcher::new(&self.filter.q, self.filter.regex) {
            Ok(m) => {
                self.matcher_error = None;
                m
            }
            Err(e) => {
                self.matcher_error = Some(e);
                Matcher::None
            }
        };
        self.write_url();
        self.fetch_seqs(ctx, &self.filter.view_spec(), |generation, seqs| {
            Msg::IndexLoaded { generation, seqs }
        });
        if let Some(spec) = self.filter.find_spec() {
            self.fetch_seqs(ctx, &spec, |generation, seqs| Msg::MatchesLoaded {
                generation,
                seqs,
            });
        }
    }

    /// Fetches the seqs of the lines `spec` selects (`GET /logs/index`) for this
    /// generation of the view; `done` makes the message that carries them.
    fn fetch_seqs(&self, ctx: &Context<Self>, spec: &FilterSpec, done: fn(u64, Vec<u32>) -> Msg) {
        let generation = self.generation;
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        let path = format!("/api/tasks/{task}/logs/index?{}", rest_query(spec));
        ctx.link().send_future(async move {
            match api.get_bytes(&path).await {
                Ok(bytes) => done(generation, decode_index(&bytes)),
                Err(error) => Msg::Failed { generation, error },
            }
        });
    }

    fn open_live(&mut self, ctx: &Context<Self>) {
        let generation = self.generation;
        let after_seq = self.index.last().map_or(0, |s| u64::from(*s));
        let subscribe = ClientMessage::Subscribe {
            task_id: ctx.props().task_id,
            filter: self.filter.view_spec(),
            after_seq,
        };
        let on_event = ctx
            .link()
            .callback(move |event| Msg::Live { generation, event });
        match Live::open(ctx.props().api.token(), vec![subscribe], on_event) {
            Ok(live) => self.live = Some(live),
            Err(e) => self.error = Some(format!("live updates unavailable: {e}")),
        }
    }

    fn write_url(&self) {
        let query = self.filter.to_query();
        let hash = self.selected.map(|s| format!("#L{s}")).unwrap_or_default();
        let path = location().pathname().unwrap_or_default();
        let url = if query.is_empty() {
            format!("{path}{hash}")
        } else {
            format!("{path}?{query}{hash}")
        };
        if let Ok(history) = web_sys::window().expect("a window").history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
        }
    }

    /// Scroll geometry: (height of the scroll area, scale from scroll px to row px).
    fn geometry(&self) -> (f64, f64) {
        let content = self.total() as f64 * ROW_HEIGHT;
        let area = content.min(MAX_SCROLL_PX);
        let view = self.viewport_height.max(ROW_HEIGHT);
        let scale = if content > area && area > view {
            (content - view) / (area - view)
        } else {
            1.0
        };
        (area, scale)
    }

    /// First and one-past-last positions to render.
    fn window(&self) -> (usize, usize, f64) {
        let (_, scale) = self.geometry();
        let virtual_top = self.scroll_top * scale;
        let first = (virtual_top / ROW_HEIGHT).floor().max(0.0) as usize;
        let visible = (self.viewport_height / ROW_HEIGHT).ceil() as usize + 1;
        let start = first.saturating_sub(MARGIN_ROWS).min(self.total());
        let end = (first + visible + MARGIN_ROWS).min(self.total());
        // Where the layer must sit so that position `first` is at the top edge.
        let layer_top = self.scroll_top
            - (virtual_top - first as f64 * ROW_HEIGHT)
            - (first - start) as f64 * ROW_HEIGHT;
        (start, end, layer_top)
    }

    fn fetch_visible_pages(&mut self, ctx: &Context<Self>) {
        if !self.index_loaded {
            return;
        }
        let (start, end, _) = self.window();
        if start >= end {
            return;
        }
        for page in start / PAGE..=(end - 1) / PAGE {
            let page_start = page * PAGE;
            let page_end = (page_start + PAGE).min(self.total());
            let have = self.pages.get(&page).map_or(0, Vec::len);
            if have >= page_end - page_start || self.loading.contains(&page) {
                continue;
            }
            self.loading.insert(page);
            let generation = self.generation;
            let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
            let after = u64::from(self.index[page_start]) - 1;
            let want = page_end - page_start;
            let query = self.view_query();
            ctx.link().send_future(async move {
                let mut entries = Vec::with_capacity(want);
                let mut after = after;
                loop {
                    let path = format!(
                        "/api/tasks/{task}/logs?{query}&after_seq={after}&limit={}",
                        want - entries.len()
                    );
                    match api.get::<LogPage>(&path).await {
                        Ok(page) => {
                            entries.extend(page.logs);
                            if entries.len() >= want || !page.has_more {
                                break;
                            }
                            after = page.next_after_seq;
                        }
                        Err(error) => return Msg::Failed { generation, error },
                    }
                }
                Msg::PageLoaded {
                    generation,
                    page,
                    entries,
                }
            });
        }
    }

    fn position_of(&self, seq: u64) -> usize {
        self.index.partition_point(|s| u64::from(*s) < seq)
    }

    /// Scrolls so that position `pos` is in the middle of the viewport.
    fn center_on(&mut self, pos: usize) {
        self.anchor = Some(pos);
        let (_, scale) = self.geometry();
        let target =
            (pos as f64 * ROW_HEIGHT - self.viewport_height / 2.0 + ROW_HEIGHT / 2.0).max(0.0);
        self.scroll_to = Some(target / scale);
        self.scroll_top = target / scale;
    }

    fn jump_to_match(&mut self, ctx: &Context<Self>, forward: bool) {
        if self.matches.is_empty() {
            return;
        }
        let next = match (self.match_cursor, forward) {
            (None, _) => {
                // From what is in view: the first match at or after the top row.
                let (_, scale) = self.geometry();
                let top_pos = (self.scroll_top * scale / ROW_HEIGHT) as usize;
                let top_seq = self.index.get(top_pos).map_or(0, |s| u64::from(*s));
                let i = self.matches.partition_point(|s| u64::from(*s) < top_seq);
                if forward {
                    i.min(self.matches.len() - 1)
                } else {
                    i.saturating_sub(1)
                }
            }
            (Some(i), true) => (i + 1) % self.matches.len(),
            (Some(i), false) => (i + self.matches.len() - 1) % self.matches.len(),
        };
        self.match_cursor = Some(next);
        self.follow = false;
        let pos = self.position_of(u64::from(self.matches[next]));
        self.center_on(pos);
        self.fetch_visible_pages(ctx);
    }

    /// Selects line `seq` of the view and brings it into the middle of the viewport.
    fn go_to(&mut self, ctx: &Context<Self>, seq: u64) {
        self.selected = Some(seq);
        self.follow = false;
        self.write_url();
        if self.index_loaded {
            let pos = self.position_of(seq).min(self.total().saturating_sub(1));
            self.center_on(pos);
            self.fetch_visible_pages(ctx);
        } else {
            self.pending_jump = Some(seq);
        }
    }

    /// Whether the view shows line `seq` (as far as its index is known).
    fn shows(&self, seq: u64) -> bool {
        self.index
            .binary_search(&(seq.min(u64::from(u32::MAX)) as u32))
            .is_ok()
    }

    /// How many records of `level` the task has, whatever the view's sources.
    fn task_level_total(&self, level: LogLevel) -> u64 {
        self.counts
            .iter()
            .filter_map(|c| c.levels.get(&level))
            .sum()
    }

    /// Asks for the task's first ERROR once the counts show one.
    fn ask_first_error(&mut self, ctx: &Context<Self>) {
        if self.first_error_asked || self.task_level_total(LogLevel::Error) == 0 {
            return;
        }
        self.first_error_asked = true;
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        ctx.link().send_future(async move {
            let path = format!("/api/tasks/{task}/logs?level=ERROR&limit=1");
            match api.get::<LogPage>(&path).await {
                Ok(page) => Msg::FirstErrorLoaded {
                    task,
                    entry: page.logs.into_iter().next(),
                },
                Err(_) => Msg::FirstErrorLoaded { task, entry: None },
            }
        });
    }

    /// Goes to the next or previous ERROR of the view from the selected line (or the
    /// top of the viewport), round the end; loads the view's ERROR seqs first.
    fn jump_to_error(&mut self, ctx: &Context<Self>, forward: bool) {
        let Some(errors) = &self.errors else {
            if self.error_jump.replace(forward).is_none() {
                let mut spec = self.filter.view_spec();
                spec.level = Some(LogLevel::Error);
                self.fetch_seqs(ctx, &spec, |generation, seqs| Msg::ErrorsLoaded {
                    generation,
                    seqs,
                });
            }
            return;
        };
        if errors.is_empty() {
            self.flash = Some("No ERROR lines in this view".into());
            return;
        }
        let from = self.selected.unwrap_or_else(|| {
            let (_, scale) = self.geometry();
            let top = (self.scroll_top * scale / ROW_HEIGHT) as usize;
            // Just above the top row, so that `e` can land on it.
            self.index
                .get(top)
                .map_or(0, |s| u64::from(*s).saturating_sub(1))
        });
        let after = errors.partition_point(|s| u64::from(*s) <= from);
        let before = errors.partition_point(|s| u64::from(*s) < from);
        let next = if forward {
            errors.get(after).or(errors.first())
        } else {
            before.checked_sub(1).map(|i| &errors[i]).or(errors.last())
        };
        if let Some(seq) = next.map(|s| u64::from(*s)) {
            self.go_to(ctx, seq);
        }
    }

    /// The time column's text for the row at `pos`, in the view's time mode.
    fn time_text(&self, ctx: &Context<Self>, pos: usize, entry: &LogEntry) -> String {
        match self.prefs.time {
            TimeMode::Local => clock(entry.timestamp),
            TimeMode::Utc => utc_clock(entry.timestamp),
            TimeMode::SinceStart => match ctx.props().started_at {
                Some(start) => offset(entry.timestamp.as_micros() - start.as_micros()),
                None => clock(entry.timestamp),
            },
            // The line above in the view; blank until it is loaded.
            TimeMode::SincePrevious => match pos.checked_sub(1).and_then(|p| self.entry(p)) {
                Some(previous) => {
                    offset(entry.timestamp.as_micros() - previous.timestamp.as_micros())
                }
                None if pos == 0 => offset(0),
                None => String::new(),
            },
        }
    }

    fn entry(&self, pos: usize) -> Option<&Rc<LogEntry>> {
        self.pages
            .get(&(pos / PAGE))
            .and_then(|p| p.get(pos % PAGE))
    }

    fn entry_by_seq(&self, seq: u64) -> Option<&Rc<LogEntry>> {
        let pos = self.position_of(seq);
        self.entry(pos).filter(|e| e.seq == seq)
    }

    fn apply_live(&mut self, entries: Vec<LogEntry>) {
        for entry in entries {
            let last = self.index.last().map_or(0, |s| u64::from(*s));
            if entry.seq <= last {
                continue;
            }
            let pos = self.index.len();
            self.index.push(entry.seq as u32);
            let seq = entry.seq;
            if self.filter.find_spec().is_some()
                && self
                    .matches
                    .last()
                    .is_none_or(|last| u64::from(*last) < seq)
                && self.matcher.is_match(&crate::ansi::strip(&entry.message))
            {
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

    fn level_counts(&self) -> BTreeMap<LogLevel, u64> {
        let mut out = BTreeMap::new();
        for source in &self.counts {
            if !self.filter.sources.is_empty() && !self.filter.sources.contains(&source.source) {
                continue;
            }
            for (level, n) in &source.levels {
                *out.entry(*level).or_insert(0) += n;
            }
        }
        out
    }

    fn handle_error(&mut self, ctx: &Context<Self>, error: ApiError) {
        if error == ApiError::Unauthorized {
            ctx.props().on_unauthorized.emit(());
        }
        self.error = Some(error.to_string());
    }

    fn download(&self, ctx: &Context<Self>, format: &'static str) {
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        let path = format!(
            "/api/tasks/{task}/logs/export?{}&format={format}",
            self.view_query()
        );
        let extension = if format == "text" { "log" } else { "ndjson" };
        ctx.link().send_future(async move {
            let body = match api.get_text(&path).await {
                Ok(body) => body,
                Err(e) => return Msg::DownloadDone(Some(e.to_string())),
            };
            let parts = js_sys::Array::of1(&body.into());
            let Ok(blob) = web_sys::Blob::new_with_str_sequence(&parts) else {
                return Msg::DownloadDone(Some("the browser refused to build the file".into()));
            };
            let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
                return Msg::DownloadDone(Some("the browser refused to build the file".into()));
            };
            let document = web_sys::window()
                .and_then(|w| w.document())
                .expect("a document");
            if let Ok(a) = document.create_element("a") {
                let a: web_sys::HtmlAnchorElement = a.unchecked_into();
                a.set_href(&url);
                a.set_download(&format!("task-{task}.{extension}"));
                a.click();
            }
            let _ = web_sys::Url::revoke_object_url(&url);
            Msg::DownloadDone(None)
        });
    }
}

fn decode_index(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Component for LogPanel {
    type Message = Msg;
    type Properties = LogPanelProps;

    fn create(ctx: &Context<Self>) -> Self {
        let filter = ViewFilter::from_query(&location().search().unwrap_or_default());
        let selected = line_from_hash(&location().hash().unwrap_or_default()).map(u64::from);
        let keys = {
            let link = ctx.link().clone();
            Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
                link.send_message(Msg::GlobalKey(e))
            })
        };
        let resize = {
            let link = ctx.link().clone();
            Closure::<dyn FnMut()>::new(move || link.send_message(Msg::Scrolled))
        };
        let hash = {
            let link = ctx.link().clone();
            Closure::<dyn FnMut()>::new(move || link.send_message(Msg::HashChanged))
        };
        if let Some(window) = web_sys::window() {
            let _ =
                window.add_event_listener_with_callback("keydown", keys.as_ref().unchecked_ref());
            let _ =
                window.add_event_listener_with_callback("resize", resize.as_ref().unchecked_ref());
            let _ = window
                .add_event_listener_with_callback("hashchange", hash.as_ref().unchecked_ref());
        }
        let counts_timer = {
            let link = ctx.link().clone();
            Interval::new(1500, move || link.send_message(Msg::RefreshCounts))
        };
        let events = RowEvents {
            select: ctx.link().callback(Msg::Select),
            copy: ctx.link().callback(Msg::Copy),
        };
        let mut panel = LogPanel {
            search_text: filter.q.clone(),
            meta_key: filter.meta.keys().next().cloned().unwrap_or_default(),
            meta_value: filter.meta.values().next().cloned().unwrap_or_default(),
            filter,
            matcher: Matcher::None,
            matcher_error: None,
            generation: 0,
            index: Vec::new(),
            index_loaded: false,
            matches: Vec::new(),
            match_cursor: None,
            pages: HashMap::new(),
            live_rows: BTreeMap::new(),
            loading: HashSet::new(),
            counts: Vec::new(),
            counts_sent: 0,
            counts_shown: 0,
            counts_final: false,
            live: None,
            live_state: LiveState::Connecting,
            reconnects: 0,
            follow: selected.is_none(),
            scroll_top: 0.0,
            viewport_height: 600.0,
            scroll_to: None,
            anchor: None,
            own_scroll: None,
            selected,
            pending_jump: selected,
            error: None,
            task_running: true,
            viewport: NodeRef::default(),
            search_input: NodeRef::default(),
            debounce: None,
            _counts_timer: counts_timer,
            _keys: Some(keys),
            _resize: Some(resize),
            _hash: Some(hash),
            events,
            flash: None,
            prefs: ViewPrefs::load(),
            first_error: None,
            first_error_asked: false,
            errors: None,
            error_jump: None,
            show_help: false,
        };
        ctx.link().send_message(Msg::RefreshCounts);
        panel.reload(ctx);
        panel
    }

    fn changed(&mut self, ctx: &Context<Self>, old: &Self::Properties) -> bool {
        if old.task_id != ctx.props().task_id {
            self.selected = None;
            self.pending_jump = None;
            self.follow = true;
            self.counts.clear();
            self.counts_final = false;
            self.first_error = None;
            self.first_error_asked = false;
            self.counts_shown = self.counts_sent;
            // Until its status arrives, the new task may still be running.
            self.task_running = true;
            ctx.link().send_message(Msg::RefreshCounts);
            self.reload(ctx);
        }
        true
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::IndexLoaded { generation, seqs } => {
                if generation != self.generation {
                    return false;
                }
                self.index = seqs;
                self.index_loaded = true;
                if let Some(seq) = self.pending_jump.take() {
                    let pos = self.position_of(seq).min(self.total().saturating_sub(1));
                    self.follow = false;
                    self.center_on(pos);
                } else if self.follow {
                    self.scroll_to = Some(f64::MAX);
                }
                self.open_live(ctx);
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::MatchesLoaded { generation, seqs } => {
                if generation != self.generation {
                    return false;
                }
                // Live matches may already have arrived; keep each seq once, in order.
                let mut merged = seqs;
                merged.append(&mut self.matches);
                merged.sort_unstable();
                merged.dedup();
                self.matches = merged;
                true
            }
            Msg::PageLoaded {
                generation,
                page,
                entries,
            } => {
                if generation != self.generation {
                    return false;
                }
                self.loading.remove(&page);
                let start = page * PAGE;
                let expected: Vec<u64> = self.index[start..(start + PAGE).min(self.total())]
                    .iter()
                    .map(|s| u64::from(*s))
                    .collect();
                let expected_len = expected.len();
                let mut rows: Vec<Rc<LogEntry>> = Vec::with_capacity(expected.len());
                let mut by_seq: HashMap<u64, LogEntry> =
                    entries.into_iter().map(|e| (e.seq, e)).collect();
                for seq in expected {
                    match by_seq.remove(&seq) {
                        Some(entry) => rows.push(Rc::new(entry)),
                        None => break,
                    }
                }
                // Rows the fetch did not return (not stored yet) come from the live
                // records, when they are there.
                let old = self.pages.remove(&page).unwrap_or_default();
                if old.len() > rows.len() {
                    rows = old;
                }
                while rows.len() < expected_len {
                    let seq = u64::from(self.index[start + rows.len()]);
                    match self.live_rows.get(&seq) {
                        Some(entry) => rows.push(entry.clone()),
                        None => break,
                    }
                }
                self.pages.insert(page, rows);
                true
            }
            Msg::CountsLoaded {
                task,
                ticket,
                settled,
                counts,
            } => {
                if task != ctx.props().task_id || ticket <= self.counts_shown {
                    return false;
                }
                self.counts_shown = ticket;
                self.counts = counts;
                self.counts_final = settled;
                self.ask_first_error(ctx);
                true
            }
            Msg::FirstErrorLoaded { task, entry } => {
                if task != ctx.props().task_id {
                    return false;
                }
                match entry {
                    Some(entry) => self.first_error = Some((entry.seq, entry.message)),
                    // Not found after all (deleted meanwhile, or the request failed):
                    // ask again at the next counts.
                    None => self.first_error_asked = false,
                }
                true
            }
            Msg::ErrorsLoaded { generation, seqs } => {
                if generation != self.generation {
                    return false;
                }
                // Live ERROR lines may already have arrived; keep each seq once, in order.
                let mut merged = seqs;
                merged.extend(self.errors.take().unwrap_or_default());
                merged.sort_unstable();
                merged.dedup();
                self.errors = Some(merged);
                if let Some(forward) = self.error_jump.take() {
                    self.jump_to_error(ctx, forward);
                }
                true
            }
            Msg::NextError(forward) => {
                self.jump_to_error(ctx, forward);
                true
            }
            Msg::JumpToLine(seq) => {
                if self.index_loaded && !self.shows(seq) {
                    // The view hides it: show the whole log at the same level (an
                    // ERROR passes every level), then go to it.
                    self.filter = ViewFilter {
                        level: self.filter.level,
                        ..ViewFilter::default()
                    };
                    self.search_text.clear();
                    self.meta_key.clear();
                    self.meta_value.clear();
                    self.selected = Some(seq);
                    self.pending_jump = Some(seq);
                    self.follow = false;
                    self.reload(ctx);
                } else {
                    self.go_to(ctx, seq);
                }
                true
            }
            Msg::MoveSelection(delta) => {
                if !self.index_loaded || self.index.is_empty() {
                    return false;
                }
                let from = match self.selected {
                    Some(seq) => self.position_of(seq) as i64,
                    None => {
                        let (_, scale) = self.geometry();
                        (self.scroll_top * scale / ROW_HEIGHT) as i64 - delta.signum()
                    }
                };
                let to = (from + delta).clamp(0, self.total() as i64 - 1) as usize;
                let seq = u64::from(self.index[to]);
                self.selected = Some(seq);
                self.follow = false;
                self.write_url();
                // Scroll only when the line leaves the viewport, as a list does.
                let (_, scale) = self.geometry();
                let top = self.scroll_top * scale;
                let y = to as f64 * ROW_HEIGHT;
                if y < top || y + ROW_HEIGHT > top + self.viewport_height {
                    self.center_on(to);
                }
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::SetTimeMode(mode) => {
                self.prefs.time = mode;
                self.prefs.save();
                true
            }
            Msg::ToggleMeta => {
                self.prefs.show_meta = !self.prefs.show_meta;
                self.prefs.save();
                true
            }
            Msg::ToggleHelp => {
                self.show_help = !self.show_help;
                true
            }
            Msg::Failed { generation, error } => {
                if generation == self.generation {
                    self.loading.clear();
                    self.handle_error(ctx, error);
                }
                true
            }
            Msg::Live { generation, event } => {
                if generation != self.generation {
                    return false;
                }
                match event {
                    LiveEvent::Message(msg) => match *msg {
                        ServerMessage::Logs { entries, .. } => {
                            self.reconnects = 0;
                            self.apply_live(entries);
                            if self.follow {
                                self.scroll_to = Some(f64::MAX);
                            }
                            self.fetch_visible_pages(ctx);
                        }
                        ServerMessage::CaughtUp { .. } => self.live_state = LiveState::Live,
                        ServerMessage::Task { task } => {
                            self.task_running = !task.status.is_terminal();
                            ctx.props().on_task.emit(task);
                            ctx.link().send_message(Msg::RefreshCounts);
                        }
                        ServerMessage::Error { message, .. } => self.error = Some(message),
                        // The panel never asks for a live search over all tasks.
                        ServerMessage::Matched { .. } => {}
                    },
                    LiveEvent::Closed(reason) => {
                        self.live = None;
                        if reason.contains("authenticat") {
                            ctx.props().on_unauthorized.emit(());
                            return true;
                        }
                        self.live_state = LiveState::Reconnecting;
                        self.reconnects += 1;
                        let delay = 500 * self.reconnects.min(10);
                        let link = ctx.link().clone();
                        Timeout::new(delay, move || {
                            link.send_message(Msg::Reconnect { generation })
                        })
                        .forget();
                    }
                }
                true
            }
            Msg::Reconnect { generation } => {
                if generation == self.generation && self.live.is_none() {
                    self.open_live(ctx);
                }
                false
            }
            Msg::Scrolled => {
                if let Some(el) = self.viewport.cast::<HtmlElement>() {
                    let (top, height, full) = (
                        el.scroll_top() as f64,
                        el.client_height() as f64,
                        el.scroll_height() as f64,
                    );
                    self.viewport_height = height;
                    let at_bottom = top + height >= full - ROW_HEIGHT;
                    // Ours while the position is still the one this panel set (the
                    // panel's own Scrolled message and the browser's scroll event both
                    // report it); any other position is the user's doing.
                    let ours = self.own_scroll.is_some_and(|own| (own - top).abs() < 1.0);
                    if !ours {
                        self.own_scroll = None;
                    }
                    if !ours && self.scroll_to.is_none() {
                        self.anchor = None;
                    }
                    if !ours && self.scroll_to.is_none() && self.index_loaded {
                        // Following pauses when the user scrolls up and resumes at the bottom.
                        self.follow = at_bottom;
                    }
                    self.scroll_top = top;
                }
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::SetLevel(level) => {
                if let Ok(level) = level.parse() {
                    self.filter.level = level;
                    self.reload(ctx);
                }
                true
            }
            Msg::ToggleSource(source) => {
                match self.filter.sources.iter().position(|s| *s == source) {
                    Some(i) => {
                        self.filter.sources.remove(i);
                    }
                    None => self.filter.sources.push(source),
                }
                self.reload(ctx);
                true
            }
            Msg::ClearSources => {
                self.filter.sources.clear();
                self.reload(ctx);
                true
            }
            Msg::SearchTyped(text) => {
                self.search_text = text;
                let link = ctx.link().clone();
                self.debounce = Some(Timeout::new(SEARCH_DEBOUNCE_MS, move || {
                    link.send_message(Msg::SearchApply)
                }));
                true
            }
            Msg::SearchApply => {
                self.debounce = None;
                if self.search_text != self.filter.q {
                    self.filter.q = self.search_text.clone();
                    self.reload(ctx);
                }
                true
            }
            Msg::ToggleRegex => {
                self.filter.regex = !self.filter.regex;
                if !self.filter.q.is_empty() {
                    self.reload(ctx);
                }
                true
            }
            Msg::ToggleOnly => {
                self.filter.only_matching = !self.filter.only_matching;
                if !self.filter.q.is_empty() {
                    self.reload(ctx);
                }
                true
            }
            Msg::MetaKey(k) => {
                self.meta_key = k;
                true
            }
            Msg::MetaValue(v) => {
                self.meta_value = v;
                let link = ctx.link().clone();
                self.debounce = Some(Timeout::new(SEARCH_DEBOUNCE_MS, move || {
                    link.send_message(Msg::MetaApply)
                }));
                true
            }
            Msg::MetaApply => {
                let mut meta = BTreeMap::new();
                let key = self.meta_key.trim();
                if !key.is_empty() && !self.meta_value.is_empty() {
                    meta.insert(key.to_owned(), self.meta_value.clone());
                }
                if meta != self.filter.meta {
                    self.filter.meta = meta;
                    self.reload(ctx);
                }
                true
            }
            Msg::ClearFilters => {
                self.filter = ViewFilter::default();
                self.search_text.clear();
                self.meta_key.clear();
                self.meta_value.clear();
                self.reload(ctx);
                true
            }
            Msg::ToggleFollow => {
                self.follow = !self.follow;
                if self.follow {
                    self.scroll_to = Some(f64::MAX);
                }
                true
            }
            Msg::JumpToEnd => {
                self.follow = true;
                self.scroll_to = Some(f64::MAX);
                true
            }
            Msg::NextMatch => {
                self.jump_to_match(ctx, true);
                true
            }
            Msg::PrevMatch => {
                self.jump_to_match(ctx, false);
                true
            }
            Msg::Select(seq) => {
                self.selected = if self.selected == Some(seq) {
                    None
                } else {
                    Some(seq)
                };
                self.follow = false;
                self.write_url();
                true
            }
            Msg::HashChanged => {
                let Some(seq) =
                    line_from_hash(&location().hash().unwrap_or_default()).map(u64::from)
                else {
                    return false;
                };
                if self.selected == Some(seq) {
                    return false;
                }
                self.go_to(ctx, seq);
                true
            }
            Msg::CloseDetail => {
                self.selected = None;
                self.write_url();
                true
            }
            Msg::Copy(seq) => {
                if let Some(entry) = self.entry_by_seq(seq) {
                    let text = line_text(entry);
                    if let Some(window) = web_sys::window() {
                        let _ = window.navigator().clipboard().write_text(&text);
                    }
                    self.flash = Some(format!("Line {seq} copied"));
                    let link = ctx.link().clone();
                    Timeout::new(1500, move || link.send_message(Msg::DownloadDone(None))).forget();
                }
                true
            }
            Msg::Download(format) => {
                self.flash = Some("Preparing the download…".into());
                self.download(ctx, format);
                true
            }
            Msg::DownloadDone(problem) => {
                self.flash = problem;
                true
            }
            Msg::RefreshCounts => {
                // A task's status is final only once all its records are stored, so
                // counts read after the final status was seen are the stored ones.
                // Until such a read has landed, keep reading.
                if self.counts_final {
                    return false;
                }
                self.counts_sent += 1;
                let (ticket, settled) = (self.counts_sent, !self.task_running);
                let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
                let generation = self.generation;
                ctx.link().send_future(async move {
                    match api
                        .get::<Vec<SourceCount>>(&format!("/api/tasks/{task}/logs/sources"))
                        .await
                    {
                        Ok(counts) => Msg::CountsLoaded {
                            task,
                            ticket,
                            settled,
                            counts,
                        },
                        Err(error) => Msg::Failed { generation, error },
                    }
                });
                false
            }
            Msg::GlobalKey(e) => {
                let typing = e
                    .target()
                    .and_then(|t| t.dyn_into::<HtmlElement>().ok())
                    .is_some_and(|el| {
                        matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                    });
                if (typing && e.key() != "Escape") || e.ctrl_key() || e.meta_key() || e.alt_key() {
                    return false;
                }
                // The arrows move the selection only while the log grid has focus;
                // elsewhere they scroll the page as usual.
                let in_grid = self.viewport.cast::<HtmlElement>().is_some_and(|grid| {
                    e.target()
                        .and_then(|t| t.dyn_into::<web_sys::Node>().ok())
                        .is_some_and(|node| grid.contains(Some(&node)))
                });
                let msg = match e.key().as_str() {
                    "/" => {
                        if let Some(input) = self.search_input.cast::<HtmlInputElement>() {
                            let _ = input.focus();
                            input.select();
                        }
                        None
                    }
                    "End" => Some(Msg::JumpToEnd),
                    "Escape" if self.show_help => Some(Msg::ToggleHelp),
                    "Escape" if self.selected.is_some() => Some(Msg::CloseDetail),
                    "?" => Some(Msg::ToggleHelp),
                    "e" => Some(Msg::NextError(true)),
                    "E" => Some(Msg::NextError(false)),
                    "t" => Some(Msg::SetTimeMode(self.prefs.time.next())),
                    "m" => Some(Msg::ToggleMeta),
                    "j" => Some(Msg::MoveSelection(1)),
                    "k" => Some(Msg::MoveSelection(-1)),
                    "ArrowDown" if in_grid => Some(Msg::MoveSelection(1)),
                    "ArrowUp" if in_grid => Some(Msg::MoveSelection(-1)),
                    _ => return false,
                };
                e.prevent_default();
                if let Some(msg) = msg {
                    ctx.link().send_message(msg);
                }
                false
            }
        }
    }

    fn rendered(&mut self, ctx: &Context<Self>, _first: bool) {
        let Some(el) = self.viewport.cast::<HtmlElement>() else {
            return;
        };
        let height = el.client_height() as f64;
        if (height - self.viewport_height).abs() > 1.0 {
            self.viewport_height = height;
            if let Some(pos) = self.anchor {
                self.center_on(pos);
            }
            ctx.link().send_message(Msg::Scrolled);
        }
        if let Some(target) = self.scroll_to.take() {
            let max = (el.scroll_height() - el.client_height()).max(0) as f64;
            let top = target.min(max);
            el.set_scroll_top(top as i32);
            self.scroll_top = el.scroll_top() as f64;
            self.own_scroll = Some(self.scroll_top);
            ctx.link().send_message(Msg::Scrolled);
        }
    }

    fn destroy(&mut self, _: &Context<Self>) {
        if let Some(window) = web_sys::window() {
            if let Some(keys) = &self._keys {
                let _ = window
                    .remove_event_listener_with_callback("keydown", keys.as_ref().unchecked_ref());
            }
            if let Some(resize) = &self._resize {
                let _ = window
                    .remove_event_listener_with_callback("resize", resize.as_ref().unchecked_ref());
            }
            if let Some(hash) = &self._hash {
                let _ = window.remove_event_listener_with_callback(
                    "hashchange",
                    hash.as_ref().unchecked_ref(),
                );
            }
        }
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        html! {
            <section class="log-panel">
                { self.toolbar(ctx) }
                <ErrorStrip errors={self.task_level_total(LogLevel::Error)} warnings={self.task_level_total(LogLevel::Warning)}
                            first_error={self.first_error.clone()} on_jump={link.callback(Msg::JumpToLine)} />
                if let Some(error) = &self.error {
                    <p class="error" role="alert">{ error.clone() }<button class="link" onclick={link.callback(|_| Msg::ClearFilters)}>{ "Reset the view" }</button></p>
                }
                { self.viewport(ctx) }
                { self.detail(ctx) }
                if self.show_help {
                    <Shortcuts on_close={link.callback(|_| Msg::ToggleHelp)} />
                }
            </section>
        }
    }
}

impl LogPanel {
    fn toolbar(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let levels = self.level_counts();
        let level_options: Html = LogLevel::ALL
            .iter()
            .map(|level| {
                let n: u64 = levels.range(*level..).map(|(_, n)| n).sum();
                html! { <option value={level.as_str()} selected={*level == self.filter.level}>{ format!("{} and above ({n})", level.as_str()) }</option> }
            })
            .collect();
        let chips: Html = self
            .counts
            .iter()
            .map(|c| {
                let n: u64 = c.levels.range(self.filter.level..).map(|(_, n)| n).sum();
                let on = self.filter.sources.contains(&c.source);
                let name = c.source.clone();
                html! {
                    <button type="button" class={classes!("chip", on.then_some("on"))} data-source={c.source.clone()} aria-pressed={on.to_string()}
                            onclick={link.callback(move |_| Msg::ToggleSource(name.clone()))}>
                        { c.source.clone() }<span class="count">{ n }</span>
                    </button>
                }
            })
            .collect();
        let time_options: Html = TimeMode::ALL
            .iter()
            .map(|mode| html! { <option value={mode.as_str()} selected={*mode == self.prefs.time}>{ mode.label() }</option> })
            .collect();
        let find = self.filter.find_spec().is_some();
        let match_info = if find {
            let at = self
                .match_cursor
                .map(|i| (i + 1).to_string())
                .unwrap_or_else(|| "–".into());
            html! {
                <span class="matches" data-testid="match-count">
                    { format!("{at} / {} matches", self.matches.len()) }
                    <button type="button" title="previous match (Shift+Enter)" onclick={link.callback(|_| Msg::PrevMatch)} data-testid="match-prev">{ "↑" }</button>
                    <button type="button" title="next match (Enter)" onclick={link.callback(|_| Msg::NextMatch)} data-testid="match-next">{ "↓" }</button>
                </span>
            }
        } else {
            html! {}
        };
        let on_search_key =
            link.batch_callback(|e: KeyboardEvent| match (e.key().as_str(), e.shift_key()) {
                ("Enter", false) => Some(Msg::NextMatch),
                ("Enter", true) => Some(Msg::PrevMatch),
                _ => None,
            });
        let live = match (self.task_running, self.live_state) {
            (false, _) => html! { <span class="live done">{ "finished" }</span> },
            (true, LiveState::Live) => {
                html! { <span class="live on" title="new lines appear as they are written">{ "● live" }</span> }
            }
            (true, LiveState::Connecting) => html! { <span class="live">{ "connecting…" }</span> },
            (true, LiveState::Reconnecting) => {
                html! { <span class="live off" title="the connection dropped; resuming from the last line shown">{ "reconnecting…" }</span> }
            }
        };
        html! {
            <div class="toolbar">
                <div class="filters">
                    <label class="field">{ "Level" }
                        <select data-testid="filter-level" onchange={link.callback(|e: Event| Msg::SetLevel(e.target_unchecked_into::<web_sys::HtmlSelectElement>().value()))}>{ level_options }</select>
                    </label>
                    <div class="search">
                        <input ref={self.search_input.clone()} type="search" placeholder="Search ( / )" data-testid="filter-search"
                               value={self.search_text.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::SearchTyped(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onkeydown={on_search_key} />
                        <label class="toggle" title="regular expression (Rust regex syntax)"><input type="checkbox" data-testid="filter-regex" checked={self.filter.regex} onchange={link.callback(|_| Msg::ToggleRegex)} />{ ".*" }</label>
                        <label class="toggle" title="show only matching lines"><input type="checkbox" data-testid="filter-only" checked={self.filter.only_matching} onchange={link.callback(|_| Msg::ToggleOnly)} />{ "only matches" }</label>
                        { match_info }
                        if let Some(e) = &self.matcher_error {
                            <span class="error small">{ format!("regex: {e}") }</span>
                        }
                    </div>
                    <div class="meta-filter">
                        <input placeholder="metadata key" data-testid="filter-meta-key" value={self.meta_key.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::MetaKey(e.target_unchecked_into::<HtmlInputElement>().value()))}
                               onchange={link.callback(|_| Msg::MetaApply)} />
                        <span>{ "=" }</span>
                        <input placeholder="value" data-testid="filter-meta-value" value={self.meta_value.clone()}
                               oninput={link.callback(|e: InputEvent| Msg::MetaValue(e.target_unchecked_into::<HtmlInputElement>().value()))} />
                    </div>
                </div>
                <div class="sources" data-testid="filter-source">
                    { chips }
                    if !self.filter.sources.is_empty() {
                        <button type="button" class="link" onclick={link.callback(|_| Msg::ClearSources)}>{ "all sources" }</button>
                    }
                </div>
                <div class="status-line">
                    <span data-testid="log-count" class="count" aria-busy={(!self.index_loaded).to_string()}>
                        { if self.index_loaded { format!("{} lines", self.total()) } else { "loading…".to_owned() } }
                    </span>
                    { live }
                    <button type="button" class={classes!("follow", self.follow.then_some("on"))} aria-pressed={self.follow.to_string()} data-testid="follow-toggle"
                            title="keep the newest line in view" onclick={link.callback(|_| Msg::ToggleFollow)}>{ if self.follow { "Following" } else { "Follow" } }</button>
                    <label class="field">{ "Time" }
                        <select data-testid="time-mode" onchange={link.callback(|e: Event| {
                            let value = e.target_unchecked_into::<web_sys::HtmlSelectElement>().value();
                            Msg::SetTimeMode(TimeMode::parse(&value).unwrap_or_default())
                        })}>{ time_options }</select>
                    </label>
                    <label class="toggle" title="show metadata in the rows (m)"><input type="checkbox" data-testid="show-meta" checked={self.prefs.show_meta} onchange={link.callback(|_| Msg::ToggleMeta)} />{ "metadata" }</label>
                    <button type="button" class="secondary" onclick={link.callback(|_| Msg::ToggleHelp)} data-testid="shortcuts-button" title="keyboard shortcuts (?)" aria-label="keyboard shortcuts">{ "?" }</button>
                    <button type="button" class="secondary" onclick={link.callback(|_| Msg::Download("ndjson"))} data-testid="download-ndjson" title="all lines of this view, as JSON lines">{ "⇩ NDJSON" }</button>
                    <button type="button" class="secondary" onclick={link.callback(|_| Msg::Download("text"))} data-testid="download-text" title="all lines of this view, as text">{ "⇩ Text" }</button>
                    if let Some(flash) = &self.flash {
                        <span class="flash" role="status">{ flash.clone() }</span>
                    }
                </div>
            </div>
        }
    }

    fn viewport(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let (area, _) = self.geometry();
        let (start, end, layer_top) = self.window();
        let current = self
            .match_cursor
            .and_then(|i| self.matches.get(i))
            .map(|s| u64::from(*s));
        let rows: Html = (start..end)
            .map(|pos| match self.entry(pos) {
                Some(entry) => row(
                    entry,
                    &self.matcher,
                    RowState {
                        pos,
                        time: self.time_text(ctx, pos, entry),
                        selected: self.selected == Some(entry.seq),
                        current: current == Some(entry.seq),
                    },
                    &self.events,
                ),
                None => {
                    html! { <div key={format!("p{pos}")} class="log-row placeholder">{ "…" }</div> }
                }
            })
            .collect();
        let empty = if !self.index_loaded {
            html! { <p class="empty-state">{ "Loading lines…" }</p> }
        } else if self.index.is_empty() {
            let filtered = self.filter != ViewFilter::default();
            html! {
                <div class="empty-state">
                    if filtered {
                        <p>{ "No lines match this view." }</p>
                        <button class="secondary" onclick={link.callback(|_| Msg::ClearFilters)}>{ "Clear filters" }</button>
                    } else if self.task_running {
                        <p>{ "No lines yet. They appear here as the task writes them." }</p>
                    } else {
                        <p>{ "This task wrote no lines at or above the task log level." }</p>
                    }
                </div>
            }
        } else {
            html! {}
        };
        html! {
            <div class={classes!("viewport", (!self.prefs.show_meta).then_some("hide-meta"))} ref={self.viewport.clone()} onscroll={link.callback(|_: Event| Msg::Scrolled)}
                 data-testid="log-viewport" tabindex="0" role="grid" aria-label="log lines" aria-rowcount={self.total().to_string()}
                 aria-activedescendant={self.selected.map(|seq| format!("row-{seq}"))}
                 style={format!("--seq-digits: {}", self.seq_digits())}>
                <div class="spacer" style={format!("height:{area}px")}></div>
                <div class="rows" style={format!("top:{layer_top}px")}>{ rows }</div>
                { empty }
            </div>
        }
    }

    fn detail(&self, ctx: &Context<Self>) -> Html {
        let Some(seq) = self.selected else {
            return html! {};
        };
        let Some(entry) = self.entry_by_seq(seq) else {
            return html! {};
        };
        let meta = entry
            .metadata_value()
            .map(|m| serde_json::to_string_pretty(&m).unwrap_or_default());
        let link = ctx.link();
        let copy = link.callback(move |_| Msg::Copy(seq));
        html! {
            <aside class="detail" data-testid="log-detail">
                <header>
                    <strong>{ format!("Line {seq}") }</strong>
                    <span class={format!("lvl lvl-{}", entry.level.as_str())}>{ entry.level.as_str() }</span>
                    <span class="src">{ entry.source.to_string() }</span>
                    <span class="ts">{ entry.timestamp.to_string() }</span>
                    <button class="secondary" onclick={copy}>{ "Copy line" }</button>
                    <button class="link" onclick={link.callback(|_| Msg::CloseDetail)} title="close (Esc)">{ "×" }</button>
                </header>
                <pre class="message">{ message_html(&entry.message, &self.matcher) }</pre>
                if let Some(meta) = meta {
                    <pre class="metadata">{ meta }</pre>
                }
            </aside>
        }
    }
}
