//! One log line: seq (a permalink), time, level, source, message (ANSI colours
//! rendered, search matches marked), metadata, and a copy button. Rows are one line
//! tall, so the panel places them by arithmetic, unless long lines wrap (then the
//! panel measures the taller ones); the full record opens below.

use std::rc::Rc;

use protocol::LogEntry;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::ansi;

/// Row height in CSS pixels; `.log-row` in style.css must agree.
pub const ROW_HEIGHT: f64 = 20.0;

/// What the search marks in a message.
#[derive(Clone)]
pub enum Matcher {
    None,
    /// Case-insensitive for ASCII letters, as the server's `q`.
    Plain(String),
    Regex(js_sys::RegExp),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Matcher::None, Matcher::None) => true,
            (Matcher::Plain(a), Matcher::Plain(b)) => a == b,
            (Matcher::Regex(a), Matcher::Regex(b)) => {
                a.source() == b.source() && a.flags() == b.flags()
            }
            _ => false,
        }
    }
}

impl Matcher {
    /// Builds the matcher for a search; `Err` when the regular expression is invalid.
    pub fn new(q: &str, regex: bool) -> Result<Matcher, String> {
        if q.is_empty() {
            return Ok(Matcher::None);
        }
        if !regex {
            return Ok(Matcher::Plain(q.to_owned()));
        }
        // The server uses Rust regex syntax; JavaScript's is close enough to mark
        // matches. A leading (?i) becomes the i flag.
        let (pattern, flags) = match q.strip_prefix("(?i)") {
            Some(rest) => (rest, "gui"),
            None => (q, "gu"),
        };
        let ctor = js_sys::Reflect::get(&js_sys::global(), &"RegExp".into())
            .map_err(|_| "no RegExp".to_string())?;
        let args = js_sys::Array::of2(&pattern.into(), &flags.into());
        let ctor: &js_sys::Function = ctor.unchecked_ref();
        js_sys::Reflect::construct(ctor, &args)
            .map(|re| Matcher::Regex(re.unchecked_into()))
            .map_err(|e| {
                e.as_string()
                    .unwrap_or_else(|| "invalid regular expression".into())
            })
    }

    /// Byte ranges of the matches in `text`.
    pub fn ranges(&self, text: &str) -> Vec<(usize, usize)> {
        match self {
            Matcher::None => Vec::new(),
            Matcher::Plain(q) => ansi::find_plain(text, q),
            Matcher::Regex(re) => {
                // JavaScript indexes UTF-16 units; map them back to bytes.
                let mut utf16_to_byte = Vec::with_capacity(text.len() + 1);
                for (byte, ch) in text.char_indices() {
                    for _ in 0..ch.len_utf16() {
                        utf16_to_byte.push(byte);
                    }
                }
                utf16_to_byte.push(text.len());
                re.set_last_index(0);
                let mut out = Vec::new();
                while let Some(m) = re.exec(text) {
                    let start = js_sys::Reflect::get(&m, &"index".into())
                        .ok()
                        .and_then(|v| v.as_f64())
                        .unwrap_or(0.0) as usize;
                    let len = String::from(m.get(0)).encode_utf16().count();
                    if len == 0 {
                        re.set_last_index(re.last_index() + 1);
                        if start >= utf16_to_byte.len() - 1 {
                            break;
                        }
                        continue;
                    }
                    let (a, b) = (
                        utf16_to_byte[start.min(utf16_to_byte.len() - 1)],
                        utf16_to_byte[(start + len).min(utf16_to_byte.len() - 1)],
                    );
                    out.push((a, b));
                    if out.len() > 1000 {
                        break;
                    }
                }
                out
            }
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Matcher::None => false,
            _ => !self.ranges(text).is_empty(),
        }
    }
}

/// The message's first line, rendered, with matches marked.
pub fn message_html(text: &str, matcher: &Matcher) -> Html {
    let segments = ansi::parse(text);
    let plain: String = segments.iter().map(|s| s.text.as_str()).collect();
    let ranges = matcher.ranges(&plain);
    ansi::mark(&segments, &ranges)
        .into_iter()
        .map(|(seg, marked)| {
            let style = (!seg.style.is_plain()).then(|| seg.style.css());
            if marked {
                html! { <mark {style}>{ seg.text }</mark> }
            } else if style.is_some() {
                html! { <span {style}>{ seg.text }</span> }
            } else {
                html! { { seg.text } }
            }
        })
        .collect()
}

/// Callbacks a row raises.
#[derive(Clone, PartialEq)]
pub struct RowEvents {
    /// A click on the row: its seq, and whether Shift was held (extend the selection
    /// to it).
    pub select: Callback<(u64, bool)>,
    pub copy: Callback<u64>,
}

/// How one row is shown, beyond its record.
pub struct RowState {
    /// Row in the view (0-based), for `aria-rowindex`.
    pub pos: usize,
    /// Groups around it, for its indent.
    pub depth: u8,
    /// The time column's text, in the view's time mode.
    pub time: String,
    pub selected: bool,
    /// The current search match.
    pub current: bool,
}

/// Renders one row of the log grid.
pub fn row(entry: &Rc<LogEntry>, matcher: &Matcher, state: RowState, events: &RowEvents) -> Html {
    let RowState {
        pos,
        depth,
        time,
        selected,
        current,
    } = state;
    let seq = entry.seq;
    let level = entry.level.as_str();
    let first_line = entry.message().lines().next().unwrap_or("");
    let multi_line = entry.message().contains('\n');
    let select = {
        let cb = events.select.clone();
        Callback::from(move |e: MouseEvent| {
            e.prevent_default();
            cb.emit((seq, e.shift_key()))
        })
    };
    let copy = {
        let cb = events.copy.clone();
        Callback::from(move |e: MouseEvent| {
            e.stop_propagation();
            cb.emit(seq)
        })
    };
    let meta = entry.metadata().map(str::to_owned);
    html! {
        <div key={seq.to_string()} id={format!("row-{seq}")} role="row" aria-rowindex={(pos + 1).to_string()} aria-selected={selected.to_string()}
             class={classes!("log-row", format!("lvl-{level}"), selected.then_some("selected"), current.then_some("current"))}
             style={(depth > 0).then(|| format!("--depth: {depth}"))}
             data-testid="log-row" data-seq={seq.to_string()} data-level={level} data-source={entry.source.to_string()}
             onclick={select.clone()}>
            <a class="ln" role="gridcell" href={format!("#L{seq}")} onclick={select} title="permalink to this line">{ seq }</a>
            <span class="ts" role="gridcell" title={entry.timestamp.to_string()}>{ time }</span>
            <span class="lvl" role="gridcell">{ level }</span>
            <span class="src" role="gridcell" title={entry.source.to_string()}>{ entry.source.to_string() }</span>
            <span class="msg" role="gridcell">{ message_html(first_line, matcher) }{ if multi_line { html! { <span class="more" title="more lines: click the row">{ " ⏎…" }</span> } } else { html! {} } }</span>
            if let Some(meta) = meta {
                <span class="meta" role="gridcell">{ meta }</span>
            }
            <button class="copy" title="copy this line" aria-label={format!("copy line {seq}")} onclick={copy} data-testid="copy-line">{ "⧉" }</button>
        </div>
    }
}

/// The whole line as text (for copying), as the export and the CLI write it.
pub fn line_text(entry: &LogEntry) -> String {
    protocol::line::text_line(entry)
}
