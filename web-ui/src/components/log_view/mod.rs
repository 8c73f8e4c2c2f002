//! The log view of a task.
//!
//! It scrolls over an *index*: the seqs of every line the view shows, fetched from
//! `GET /logs/index` (position `i` of the view is record `index[i]`). Only the rows in
//! sight, plus a margin, are in the DOM; they are fetched a page of 200 positions at a
//! time and cached. New lines arrive over a WebSocket subscribed with the same filter
//! from the last indexed seq, so nothing is missed between the index and the stream,
//! and after a dropped connection the stream resumes from the last seq shown.
//!
//! Groups fold the index into *rows* ([`outline`]): the grid scrolls over rows, a
//! folded group's lines have none, and a jump to a line unfolds the groups around
//! it first.
//!
//! One struct component, its parts in modules by what they own: [`model`] (index,
//! pages, live rows, matches: plain data, unit-tested natively), [`outline`] (the
//! groups' rows), [`geometry`] (row arithmetic), [`fetch`] (REST), [`stream`] (the WebSocket and its reconnect),
//! [`navigation`] (scrolling, selection, jumps), [`filter_bar`], [`rows`] (the grid
//! and the detail pane) and [`keys`]. `update` only dispatches.

mod conditions;
mod fetch;
mod filter_bar;
mod geometry;
mod keys;
mod listeners;
mod model;
mod msg;
mod navigation;
mod outline;
mod rows;
mod stream;

use gloo_timers::callback::{Interval, Timeout};
use protocol::{LogLevel, SourceCount, TaskId, TaskInfo, Timestamp};
use web_sys::HtmlElement;
use yew::prelude::*;

use super::error_strip::ErrorStrip;
use super::log_row::{Matcher, RowEvents};
use super::shortcuts::Shortcuts;
use crate::api::Api;
use crate::live::Live;
use crate::view_prefs::ViewPrefs;
use crate::view_url::{lines_from_hash, short_time, ViewFilter};
use listeners::{ViewportObserver, WindowListeners};
use model::LogModel;
pub use msg::Msg;

#[derive(Properties, PartialEq)]
pub struct LogPanelProps {
    pub task_id: TaskId,
    pub api: Api,
    /// The task's status changed (from the stream).
    pub on_task: Callback<TaskInfo>,
    pub on_unauthorized: Callback<()>,
    /// When the task started, for the time column's "since start" mode.
    #[prop_or_default]
    pub started_at: Option<Timestamp>,
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
    /// The key of the pair being typed, already in the filter (its chip replaced as
    /// the value changes, kept once Enter commits it), and the value of the chip it
    /// stands in for, if it took an existing key's place.
    meta_draft: Option<(String, Option<String>)>,
    /// The time range's inputs, as typed.
    range_from: String,
    range_to: String,
    range_error: Option<String>,
    matcher: Matcher,
    matcher_error: Option<String>,
    /// Bumped by every reload: answers for an older view are dropped.
    generation: u64,
    model: LogModel,
    /// The previous view's model and where it was scrolled, shown (marked stale)
    /// after a filter change until the new view's rows in sight are there, so the
    /// grid never goes blank while a large index loads.
    previous: Option<(LogModel, f64)>,
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
    /// The position, viewport height and following the grid was last drawn with: a
    /// scroll that changes none of them needs no new draw.
    drawn: (f64, f64, bool),
    /// A scroll position to apply after the next render.
    scroll_to: Option<f64>,
    /// A position to keep centred (a permalink or a match) until the user scrolls: a
    /// layout change (the task header appearing) must not push it out of view.
    anchor: Option<usize>,
    /// The last position this panel scrolled to itself: the scroll event that follows
    /// (asynchronously, maybe after new rows arrived) is not the user's.
    own_scroll: Option<f64>,
    selected: Option<u64>,
    /// The other end of a selected range of lines (Shift-click, `#L120-L180`).
    selected_to: Option<u64>,
    /// A line to bring into view once the index is known (permalink).
    pending_jump: Option<u64>,
    /// A jump waiting for the rows around its line (and the line the selection
    /// runs to), while the grid keeps showing the rows it shows.
    arriving: Option<(u64, Option<u64>)>,
    /// A jump to an ERROR line waiting for the server (forward or not).
    error_jump: Option<bool>,
    /// The view's ERROR seqs are on their way.
    errors_requested: bool,
    error: Option<String>,
    task_running: bool,
    viewport: NodeRef,
    search_input: NodeRef,
    debounce: Option<Timeout>,
    _counts_timer: Interval,
    _listeners: Option<WindowListeners>,
    _viewport_size: Option<ViewportObserver>,
    events: RowEvents,
    flash: Option<String>,
    /// How lines are shown (remembered per browser).
    prefs: ViewPrefs,
    /// The viewport's width when its rows were measured (wrapped lines).
    measured_width: i32,
    /// The task's first ERROR line, once the counts show one.
    first_error: Option<(u64, String)>,
    first_error_asked: bool,
    show_help: bool,
}

fn location() -> web_sys::Location {
    web_sys::window().expect("a window").location()
}

impl Component for LogPanel {
    type Message = Msg;
    type Properties = LogPanelProps;

    fn create(ctx: &Context<Self>) -> Self {
        let filter = ViewFilter::from_query(&location().search().unwrap_or_default());
        let lines = lines_from_hash(&location().hash().unwrap_or_default());
        let selected = lines.map(|(first, _)| first);
        let selected_to = lines.and_then(|(first, last)| (last != first).then_some(last));
        let counts_timer = {
            let link = ctx.link().clone();
            Interval::new(1500, move || link.send_message(Msg::RefreshCounts))
        };
        let mut panel = LogPanel {
            search_text: filter.q.clone(),
            meta_key: String::new(),
            meta_value: String::new(),
            meta_draft: None,
            range_from: filter.since.map(short_time).unwrap_or_default(),
            range_to: filter.until.map(short_time).unwrap_or_default(),
            range_error: None,
            filter,
            matcher: Matcher::None,
            matcher_error: None,
            generation: 0,
            model: LogModel::default(),
            previous: None,
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
            drawn: (f64::NAN, f64::NAN, false),
            scroll_to: None,
            anchor: None,
            own_scroll: None,
            selected,
            selected_to,
            pending_jump: selected,
            arriving: None,
            error_jump: None,
            errors_requested: false,
            error: None,
            task_running: true,
            viewport: NodeRef::default(),
            search_input: NodeRef::default(),
            debounce: None,
            _counts_timer: counts_timer,
            _listeners: WindowListeners::add(ctx.link()),
            _viewport_size: None,
            events: RowEvents {
                select: ctx
                    .link()
                    .callback(|(seq, extend)| Msg::Select { seq, extend }),
                copy: ctx.link().callback(Msg::Copy),
            },
            flash: None,
            prefs: ViewPrefs::load(),
            measured_width: 0,
            first_error: None,
            first_error_asked: false,
            show_help: false,
        };
        ctx.link().send_message(Msg::RefreshCounts);
        panel.reload(ctx);
        panel
    }

    fn changed(&mut self, ctx: &Context<Self>, old: &Self::Properties) -> bool {
        if old.task_id != ctx.props().task_id {
            self.selected = None;
            self.selected_to = None;
            self.pending_jump = None;
            self.follow = true;
            self.counts.clear();
            self.counts_final = false;
            self.counts_shown = self.counts_sent;
            self.first_error = None;
            self.first_error_asked = false;
            // Until its status arrives, the new task may still be running.
            self.task_running = true;
            ctx.link().send_message(Msg::RefreshCounts);
            self.reload(ctx);
            self.model.outline.forget_choices();
        }
        true
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::IndexLoaded { generation, seqs } => self.index_loaded(ctx, generation, seqs),
            Msg::GroupsLoaded { generation, groups } => self.groups_loaded(ctx, generation, groups),
            Msg::ToggleGroup(g) => {
                self.model.toggle_group(g);
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::FoldAll(open) => {
                self.model.fold_all(open);
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::MatchesLoaded { generation, seqs } => {
                generation == self.generation && {
                    let live = std::mem::take(&mut self.model.matches);
                    self.model.matches = LogModel::merge(seqs, live);
                    true
                }
            }
            Msg::ErrorsLoaded { generation, seqs } => self.errors_loaded(ctx, generation, seqs),
            Msg::ErrorFound { generation, seq } => self.error_found(ctx, generation, seq),
            Msg::FirstErrorLoaded { task, entry } => self.first_error_loaded(ctx, task, entry),
            Msg::PageLoaded {
                generation,
                page,
                entries,
            } => {
                generation == self.generation && {
                    self.model.page_loaded(page, entries);
                    self.settle();
                    self.arrive(ctx, false);
                    true
                }
            }
            Msg::CountsLoaded {
                task,
                ticket,
                settled,
                counts,
            } => self.counts_loaded(ctx, task, (ticket, settled), counts),
            Msg::Failed { generation, error } => {
                if generation == self.generation {
                    self.model.loading.clear();
                    self.previous = None;
                    // The view's ERROR seqs may be what failed: the next `e` asks again.
                    if self.model.errors.is_none() {
                        self.errors_requested = false;
                    }
                    self.arrive(ctx, true);
                    self.handle_error(ctx, error);
                }
                true
            }
            Msg::Live { generation, event } => self.on_live(ctx, generation, event),
            Msg::Reconnect { generation } => {
                if generation == self.generation && self.live.is_none() {
                    self.open_live(ctx);
                }
                false
            }
            Msg::Scrolled => self.on_scrolled(ctx),
            Msg::SetLevel(_)
            | Msg::ToggleSource(_)
            | Msg::ClearSources
            | Msg::SearchTyped(_)
            | Msg::SearchApply
            | Msg::ToggleRegex
            | Msg::ToggleOnly
            | Msg::ClearFilters => self.on_filter(ctx, msg),
            Msg::MetaKey(_)
            | Msg::MetaValue(_)
            | Msg::MetaApply
            | Msg::MetaCommit
            | Msg::MetaRemove(_)
            | Msg::RangeFrom(_)
            | Msg::RangeTo(_)
            | Msg::RangeApply
            | Msg::RangeClear => self.on_condition(ctx, msg),
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
            Msg::NextMatch => self.jump_to_match(ctx, true),
            Msg::PrevMatch => self.jump_to_match(ctx, false),
            Msg::NextError(forward) => self.jump_to_error(ctx, forward),
            Msg::JumpToLine(seq) => self.jump_to_line(ctx, seq),
            Msg::MoveSelection(delta) => self.move_selection(ctx, delta),
            Msg::Select { seq, extend } => self.select(seq, extend),
            Msg::CopyRange(markdown) => {
                self.copy_range(ctx, markdown);
                false
            }
            Msg::RangeCopied(result) => {
                self.flash = Some(match result {
                    Ok(n) => format!("{n} lines copied"),
                    Err(why) => why,
                });
                true
            }
            Msg::HashChanged => self.hash_changed(ctx),
            Msg::CloseDetail => {
                self.selected = None;
                self.selected_to = None;
                self.write_url();
                true
            }
            Msg::Copy(seq) => self.copy(ctx, seq),
            Msg::Download(format) => {
                self.flash = Some("Preparing the download…".into());
                self.download(ctx, format);
                true
            }
            Msg::DownloadDone(problem) => {
                self.flash = problem;
                true
            }
            Msg::RefreshCounts => self.refresh_counts(ctx),
            Msg::GlobalKey(e) => self.on_key(ctx, e),
            Msg::SetTimeMode(mode) => {
                self.prefs.time = mode;
                self.prefs_changed();
                true
            }
            Msg::ToggleMeta => {
                self.prefs.show_meta = !self.prefs.show_meta;
                self.prefs_changed();
                true
            }
            Msg::ToggleWrap => {
                let (row, _) = self.geometry().top_and_offset();
                self.prefs.wrap = !self.prefs.wrap;
                self.prefs_changed();
                self.keep_in_place(row, 0.0);
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::Measured => {
                self.fetch_visible_pages(ctx);
                true
            }
            Msg::ToggleHelp => {
                self.show_help = !self.show_help;
                true
            }
        }
    }

    fn rendered(&mut self, ctx: &Context<Self>, _first: bool) {
        let Some(el) = self.viewport.cast::<HtmlElement>() else {
            return;
        };
        self.drawn = (self.scroll_top, self.viewport_height, self.follow);
        if self._viewport_size.is_none() {
            self._viewport_size = ViewportObserver::watch(ctx.link(), &el);
        }
        if self.measure_rows(ctx, &el) {
            // Drawn again with the new heights; scrolling waits for that.
            return;
        }
        let height = el.client_height() as f64;
        if (height - self.viewport_height).abs() > 1.0 {
            self.viewport_height = height;
            self.keep_after_resize();
            ctx.link().send_message(Msg::Scrolled);
        }
        // The new view's position waits until its rows replace the previous ones.
        if let Some(target) = self.scroll_to.take_if(|_| self.previous.is_none()) {
            let max = (el.scroll_height() - el.client_height()).max(0) as f64;
            let top = target.min(max);
            el.set_scroll_top(top as i32);
            // Left as drawn: the Scrolled message draws again only if the browser
            // put the grid elsewhere (at the end, say) than it was drawn for.
            self.own_scroll = Some(el.scroll_top() as f64);
            ctx.link().send_message(Msg::Scrolled);
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
