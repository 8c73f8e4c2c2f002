//! What the view asks the server for over REST (through [`crate::api::Api`]): the
//! index of a view, pages of records, counts, the first error, downloads; and what
//! it does with the answers. Every answer carries the view's generation, and one for
//! a view since replaced is dropped.

use protocol::{FilterSpec, LogEntry, LogLevel, SourceCount, TaskId};
use wasm_bindgen::JsCast;
use yew::prelude::*;

use super::model::PAGE;
use super::{LiveState, LogPanel, Msg};
use crate::api::ApiError;
use crate::components::log_row::Matcher;

impl LogPanel {
    /// Starts over for the current filter: new index, new socket, empty cache.
    pub(super) fn reload(&mut self, ctx: &Context<Self>) {
        self.generation += 1;
        let old = std::mem::take(&mut self.model);
        self.model.outline.keep_choices(&old.outline);
        // A view that has not shown its rows yet leaves the one before on screen.
        if old.index_loaded && old.total() > 0 {
            self.previous = Some((old, self.scroll_top));
        }
        self.error_jump = None;
        self.arriving = None;
        self.errors_requested = false;
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
        let (api, task, generation) = (
            ctx.props().api.clone(),
            ctx.props().task_id,
            self.generation,
        );
        ctx.link().send_future(async move {
            match api.log_groups(task).await {
                Ok(listed) => Msg::GroupsLoaded {
                    generation,
                    groups: listed.groups,
                },
                // Without its groups the view still shows every line, unfolded.
                Err(ApiError::Unauthorized) => Msg::Failed {
                    generation,
                    error: ApiError::Unauthorized,
                },
                Err(_) => Msg::GroupsLoaded {
                    generation,
                    groups: Vec::new(),
                },
            }
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
    pub(super) fn fetch_seqs(
        &self,
        ctx: &Context<Self>,
        spec: &FilterSpec,
        done: fn(u64, Vec<u32>) -> Msg,
    ) {
        let generation = self.generation;
        let (api, task, spec) = (ctx.props().api.clone(), ctx.props().task_id, spec.clone());
        ctx.link().send_future(async move {
            match api.log_index(task, &spec).await {
                Ok(seqs) => done(generation, seqs),
                Err(error) => Msg::Failed { generation, error },
            }
        });
    }

    pub(super) fn index_loaded(
        &mut self,
        ctx: &Context<Self>,
        generation: u64,
        seqs: Vec<u32>,
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        self.model.index = seqs;
        self.model.index_arrived = true;
        self.show_rows(ctx)
    }

    pub(super) fn groups_loaded(
        &mut self,
        ctx: &Context<Self>,
        generation: u64,
        groups: Vec<protocol::LogGroup>,
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        self.model.outline.groups = groups;
        self.model.groups_arrived = true;
        self.show_rows(ctx)
    }

    /// Once both the index and the groups are there: lays out the rows and shows
    /// them where the view should be.
    fn show_rows(&mut self, ctx: &Context<Self>) -> bool {
        if !(self.model.index_arrived && self.model.groups_arrived) || self.model.index_loaded {
            return false;
        }
        let groups = std::mem::take(&mut self.model.outline.groups);
        self.model.set_groups(groups);
        self.model.index_loaded = true;
        if let Some(seq) = self.pending_jump.take() {
            let row = self.model.reveal_row(seq);
            self.follow = false;
            self.center_on(row);
        } else if self.follow {
            self.scroll_to = Some(f64::MAX);
            // Fetch the bottom first: that is where the view will be.
            let (area, _) = self.geometry().area_and_scale();
            self.scroll_top = (area - self.viewport_height).max(0.0);
        }
        self.open_live(ctx);
        self.fetch_visible_pages(ctx);
        self.settle();
        true
    }

    /// Drops the previous view once every row of the new one in sight is there.
    pub(super) fn settle(&mut self) {
        if self.previous.is_none() || !self.model.index_loaded {
            return;
        }
        let (start, end, _) = self.geometry().window();
        if self
            .model
            .outline
            .lines_in(start..end)
            .into_iter()
            .all(|pos| self.model.entry(pos).is_some())
        {
            self.previous = None;
        }
    }

    pub(super) fn errors_loaded(
        &mut self,
        ctx: &Context<Self>,
        generation: u64,
        seqs: Vec<u32>,
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        // Live ERROR lines may already have arrived.
        let live = self.model.errors.take().unwrap_or_default();
        self.model.errors = Some(super::model::LogModel::merge(seqs, live));
        if let Some(forward) = self.error_jump.take() {
            self.jump_to_error(ctx, forward);
        }
        true
    }

    /// Fetches the pages in (and around) the viewport that are not cached.
    pub(super) fn fetch_visible_pages(&mut self, ctx: &Context<Self>) {
        if !self.model.index_loaded {
            return;
        }
        let (start, end, _) = self.geometry().window();
        self.fetch_pages(ctx, start..end);
    }

    /// Fetches the pages of the lines in `rows` that are neither cached nor on their
    /// way; whether any of those lines is not there yet.
    pub(super) fn fetch_pages(
        &mut self,
        ctx: &Context<Self>,
        rows: std::ops::Range<usize>,
    ) -> bool {
        let lines = self.model.outline.lines_in(rows);
        let waiting = !self.model.holds(&lines);
        for page in self.model.missing_pages(&lines) {
            self.fetch_page(ctx, page);
        }
        waiting
    }

    /// Fetches the page `page` of the index (it is neither held nor on its way).
    pub(super) fn fetch_page(&mut self, ctx: &Context<Self>, page: usize) {
        self.model.loading.insert(page);
        let generation = self.generation;
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        let page_start = page * PAGE;
        let want = (page_start + PAGE).min(self.model.total()) - page_start;
        let after = u64::from(self.model.index[page_start]) - 1;
        let spec = self.filter.view_spec();
        ctx.link().send_future(async move {
            let mut entries = Vec::with_capacity(want);
            let mut after = after;
            loop {
                match api.log_page(task, &spec, after, want - entries.len()).await {
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

    /// Asks for the source and level counts again, until they are final.
    pub(super) fn refresh_counts(&mut self, ctx: &Context<Self>) -> bool {
        // A task's status is final only once all its records are stored, so counts
        // read after the final status was seen are the stored ones. Until such a read
        // has landed, keep reading.
        if self.counts_final {
            return false;
        }
        self.counts_sent += 1;
        let (ticket, settled) = (self.counts_sent, !self.task_running);
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        let generation = self.generation;
        ctx.link().send_future(async move {
            match api.source_counts(task).await {
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

    pub(super) fn counts_loaded(
        &mut self,
        ctx: &Context<Self>,
        task: TaskId,
        (ticket, settled): (u64, bool),
        counts: Vec<SourceCount>,
    ) -> bool {
        if task != ctx.props().task_id || ticket <= self.counts_shown {
            return false;
        }
        self.counts_shown = ticket;
        self.counts = counts;
        self.counts_final = settled;
        self.ask_first_error(ctx);
        true
    }

    /// Asks for the task's first ERROR once the counts show one.
    fn ask_first_error(&mut self, ctx: &Context<Self>) {
        if self.first_error_asked || self.task_level_total(LogLevel::Error) == 0 {
            return;
        }
        self.first_error_asked = true;
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        let errors = FilterSpec {
            level: Some(LogLevel::Error),
            ..FilterSpec::default()
        };
        ctx.link().send_future(async move {
            match api.log_page(task, &errors, 0, 1).await {
                Ok(page) => Msg::FirstErrorLoaded {
                    task,
                    entry: page.logs.into_iter().next(),
                },
                Err(_) => Msg::FirstErrorLoaded { task, entry: None },
            }
        });
    }

    pub(super) fn first_error_loaded(
        &mut self,
        ctx: &Context<Self>,
        task: TaskId,
        entry: Option<LogEntry>,
    ) -> bool {
        if task != ctx.props().task_id {
            return false;
        }
        match entry {
            Some(entry) => self.first_error = Some((entry.seq, entry.body.into_message())),
            // Not found after all (deleted meanwhile, or the request failed): ask
            // again at the next counts.
            None => self.first_error_asked = false,
        }
        true
    }

    pub(super) fn handle_error(&mut self, ctx: &Context<Self>, error: ApiError) {
        if error == ApiError::Unauthorized {
            ctx.props().on_unauthorized.emit(());
        }
        self.error = Some(error.to_string());
    }

    /// Downloads every line of the view as `format` (`text` or `ndjson`).
    pub(super) fn download(&self, ctx: &Context<Self>, format: &'static str) {
        let (api, task) = (ctx.props().api.clone(), ctx.props().task_id);
        let spec = self.filter.view_spec();
        let extension = if format == "text" { "log" } else { "ndjson" };
        ctx.link().send_future(async move {
            let body = match api.export(task, &spec, format).await {
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
