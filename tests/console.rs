//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over W3C WebDriver, against the real server binary.
//!
//! Needs the built console: `TASKLENS_TEST_UI_DIR` (set by the README's test command,
//! which builds it). Without it these tests are skipped, unless
//! `TASKLENS_TEST_REQUIRE_BROWSER=1`, when that is a failure.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{stdout, wait_done, Server, ADMIN};
use serde_json::{json, Value};
use testkit::{free_port, FreshDb};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn ui_dir() -> Option<PathBuf> {
    match std::env::var("TASKLENS_TEST_UI_DIR") {
        Ok(dir) if PathBuf::from(&dir).join("index.html").is_file() => Some(PathBuf::from(dir)),
        _ if std::env::var("TASKLENS_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("TASKLENS_TEST_REQUIRE_BROWSER=1 but TASKLENS_TEST_UI_DIR has no built console")
        }
        _ => {
            eprintln!("note: TASKLENS_TEST_UI_DIR is not set; browser tests are skipped (the README's test command sets it)");
            None
        }
    }
}

/// One HTTP/1.1 exchange with chromedriver (it speaks plain HTTP on loopback).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open; read the headers, then Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the headers ended".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let headers = String::from_utf8_lossy(&raw[..header_end]).to_ascii_lowercase();
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no Content-Length")?;
    while raw.len() < header_end + length {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[header_end..]).into_owned();
    let start = body
        .find('{')
        .ok_or_else(|| format!("no JSON in {body:?}"))?;
    let end = body.rfind('}').ok_or("no JSON end")?;
    serde_json::from_str(&body[start..=end]).map_err(|e| format!("{e}: {body}"))
}

struct Browser {
    port: u16,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(port, "GET", "/status", None).map(|v| v["value"]["ready"] == true) != Ok(true) {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--window-size=1400,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let created = http(
            port,
            "POST",
            "/session",
            Some(&json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})),
        )
        .expect("a browser session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            port,
            session,
            driver,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
        .unwrap();
        if let Some(error) = answer["value"].get("error") {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` (a function body returning a value) until it is truthy.
    fn wait(&self, script: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.js(script);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} (last: {value})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = http(
                self.port,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({"using": "css selector", "value": css})),
            )
            .unwrap();
            if let Some(id) = answer["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Replaces an input's text the way a person does (select all, delete, type), so
    /// the page sees input events.
    fn replace_text(&self, css: &str, text: &str) {
        let id = self.find(css);
        let keys = format!("\u{E009}a\u{E000}\u{E003}{text}");
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": keys})),
        );
    }

    fn screenshot(&self, path: &std::path::Path) {
        use std::io::Write as _;
        let b64 = self.call("GET", "/screenshot", None);
        let bytes = decode_base64(b64.as_str().unwrap());
        std::fs::File::create(path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }

    fn login(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/tasks"));
        self.wait(
            "return location.pathname === '/login'",
            "the login redirect",
        );
        self.type_into("[data-testid=login-token]", token);
        self.click("[data-testid=login-submit]");
        self.wait(
            "return location.pathname === '/tasks'",
            "the task list after login",
        );
    }

    /// `[seq, level, source]` of every rendered row.
    fn rows(&self) -> Vec<(u64, String, String)> {
        let rows = self.js("return [...document.querySelectorAll('[data-testid=log-row]')].map(r => [Number(r.dataset.seq), r.dataset.level, r.dataset.source])");
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[0].as_u64().unwrap(),
                    r[1].as_str().unwrap().to_owned(),
                    r[2].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn count(&self) -> u64 {
        let text = self.js("return document.querySelector('[data-testid=log-count]').textContent");
        text.as_str()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

fn run(server: &Server, plugin: &str, params: &[&str]) -> String {
    let mut args = vec!["run", plugin];
    for p in params {
        args.extend(["-p", p]);
    }
    stdout(&server.cli(&args)).trim().to_owned()
}

/// US1: a task logging from `plugin` and `superset_api`, started from the run form;
/// choosing the `superset_api` chip shows only those rows, new matching lines appear
/// live, and the filter is in the URL.
#[test]
fn filtering_by_source_shows_only_those_rows_and_new_ones_arrive_live() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);

    browser.click("[data-testid=run-plugin] option[value=synthetic]");
    browser.replace_text(
        "[data-testid=run-params]",
        r#"{"count": 100000, "rate": 20, "sources": ["plugin", "superset_api"]}"#,
    );
    browser.click("[data-testid=run-submit]");
    browser.wait(
        "return location.pathname.startsWith('/tasks/')",
        "the task page",
    );
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row][data-source=plugin]').length > 0",
        "rows from plugin",
    );

    browser.click("[data-testid=filter-source] [data-source=superset_api]");
    browser.wait(
        "return location.search.includes('source=superset_api')",
        "the filter in the URL",
    );
    browser.wait(
        "const r = [...document.querySelectorAll('[data-testid=log-row]')]; return r.length > 0 && r.every(x => x.dataset.source === 'superset_api')",
        "only superset_api rows",
    );
    let before = browser.rows().iter().map(|r| r.0).max().unwrap();
    let newest = browser.wait(
        &format!("const s = [...document.querySelectorAll('[data-testid=log-row]')].map(r => Number(r.dataset.seq)); return Math.max(...s) > {before} && Math.max(...s)"),
        "a new superset_api line, live",
    );
    assert!(newest.as_u64().unwrap() > before);
    assert!(browser
        .rows()
        .iter()
        .all(|(_, _, source)| source == "superset_api"));

    // The filtered view survives a reload.
    browser.js("location.reload()");
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row]').length > 0",
        "rows after reload",
    );
    assert!(browser
        .rows()
        .iter()
        .all(|(_, _, source)| source == "superset_api"));
    let pressed = browser.js("return document.querySelector('[data-testid=filter-source] [data-source=superset_api]').getAttribute('aria-pressed')");
    assert_eq!(pressed, "true");
}

/// US2: after a server restart the task page shows all of the task's lines.
#[test]
fn after_a_restart_the_task_page_shows_every_line() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let port = free_port();
    let server = Server::start_on(&fresh.url, port, Some(&ui));
    let id = run(&server, "synthetic", &["count=400"]);
    wait_done(&server, &id);
    server.terminate();
    let server = Server::start_on(&fresh.url, port, Some(&ui));
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    browser.wait("const c = document.querySelector('[data-testid=log-count]'); return c && c.textContent.startsWith('300 ')", "300 lines");
    assert_eq!(browser.count(), 300);
    // Following shows the end; the first line is one scroll to the top away.
    browser.wait(
        "return document.querySelector('[data-testid=log-row][data-seq=\"300\"]')",
        "the last line",
    );
    browser.js("document.querySelector('[data-testid=log-viewport]').scrollTop = 0");
    browser.wait(
        "return document.querySelector('[data-testid=log-row][data-seq=\"1\"]')",
        "the first line",
    );
}

/// US4 and FR-010: the settings page has the three controls; DEBUG rows are hidden by
/// default; task log level DEBUG keeps belief_scope records; WARNING keeps only
/// WARNING and ERROR.
#[test]
fn settings_change_what_new_tasks_keep_and_debug_is_hidden_by_default() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let base = server.url();

    browser.goto(&format!("{base}/admin/settings/logging"));
    for control in [
        "settings-app-level",
        "settings-task-level",
        "settings-belief-scope",
        "settings-save",
    ] {
        browser.find(&format!("[data-testid={control}]"));
    }
    browser.click("[data-testid=settings-task-level] option[value=DEBUG]");
    browser.click("[data-testid=settings-save]");
    browser.wait("const s = document.querySelector('[data-testid=settings-status]'); return s && s.textContent.includes('applied')", "the saved notice");
    assert!(stdout(&server.cli(&["settings"])).contains("task_log_level       DEBUG"));

    let id = run(&server, "demo_sync", &["dashboards=3", "delay_ms=0"]);
    wait_done(&server, &id);
    browser.goto(&format!("{base}/tasks/{id}"));
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row]').length > 0",
        "rows",
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=filter-level]').value"),
        "INFO"
    );
    assert!(
        browser.rows().iter().all(|(_, level, _)| level != "DEBUG"),
        "DEBUG rows are hidden by default"
    );
    browser.click("[data-testid=filter-level] option[value=DEBUG]");
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row][data-level=DEBUG]').length > 0",
        "DEBUG rows",
    );
    let entries = browser.js("return [...document.querySelectorAll('[data-testid=log-row][data-level=DEBUG] .msg')].map(m => m.textContent)");
    let messages: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        messages.iter().filter(|m| **m == "Entry").count(),
        3,
        "{messages:?}"
    );
    assert_eq!(messages.iter().filter(|m| **m == "Coherence:OK").count(), 3);

    browser.goto(&format!("{base}/admin/settings/logging"));
    browser.click("[data-testid=settings-task-level] option[value=WARNING]");
    browser.click("[data-testid=settings-save]");
    browser.wait("const s = document.querySelector('[data-testid=settings-status]'); return s && s.textContent.includes('applied')", "the saved notice");
    let id = run(&server, "synthetic", &["count=200"]);
    wait_done(&server, &id);
    browser.goto(&format!("{base}/tasks/{id}?level=DEBUG"));
    browser.wait("const c = document.querySelector('[data-testid=log-count]'); return c && c.textContent.startsWith('100 ')", "100 lines");
    assert!(browser
        .rows()
        .iter()
        .all(|(_, level, _)| level == "WARNING" || level == "ERROR"));
}

/// With 50,000 matching lines only a few hundred rows are in the DOM; the end of the
/// log is one keypress away, and a permalink opens at its line.
#[test]
fn fifty_thousand_lines_scroll_virtually_and_permalinks_open_at_their_line() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let id = run(&server, "synthetic", &["count=66667"]);
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let base = server.url();

    browser.goto(&format!("{base}/tasks/{id}#L1234"));
    browser.wait("const r = document.querySelector('[data-testid=log-row][data-seq=\"1234\"]'); return r && r.classList.contains('selected')", "line 1234 highlighted");
    assert_eq!(browser.count(), 50_000);
    let in_dom = browser.rows().len();
    assert!(in_dom > 10 && in_dom <= 300, "{in_dom} rows in the DOM");
    let visible = browser.js("const v = document.querySelector('[data-testid=log-viewport]').getBoundingClientRect(); const r = document.querySelector('[data-testid=log-row][data-seq=\"1234\"]').getBoundingClientRect(); return r.top >= v.top && r.bottom <= v.bottom");
    assert_eq!(visible, true, "the permalinked line is in view");

    browser.click("[data-testid=log-viewport]");
    let viewport = browser.find("[data-testid=log-viewport]");
    browser.call(
        "POST",
        &format!("/element/{viewport}/value"),
        Some(json!({"text": "\u{E010}"})),
    );
    browser.wait(
        "return document.querySelector('[data-testid=log-row][data-seq=\"50000\"]')",
        "the last line after End",
    );
    let last_visible = browser.js("const v = document.querySelector('[data-testid=log-viewport]').getBoundingClientRect(); const r = document.querySelector('[data-testid=log-row][data-seq=\"50000\"]').getBoundingClientRect(); return r.bottom <= v.bottom + 1 && r.top >= v.top");
    assert_eq!(last_visible, true, "the last line is in view");
    assert!(browser.rows().len() <= 300);

    if let Ok(dir) = std::env::var("TASKLENS_SCREENSHOT_DIR") {
        browser.screenshot(&PathBuf::from(dir).join("task-page.png"));
    }
}

/// Search marks matches and steps through them; a metadata filter narrows the view.
#[test]
fn search_highlights_matches_and_metadata_filters_narrow_the_view() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let id = run(&server, "synthetic", &["count=2000"]);
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row]').length > 0",
        "rows",
    );

    browser.type_into("[data-testid=filter-search]", "record 19");
    browser.wait("const m = document.querySelector('[data-testid=match-count]'); return m && m.textContent.includes('/ ')", "the match counter");
    // Matches of "record 19" among INFO+ records: 19, 190..199, 1900..1999, minus DEBUG ones.
    let want = [19u64]
        .into_iter()
        .chain(190..200)
        .chain(1900..2000)
        .filter(|i| i % 4 != 0)
        .count();
    browser.wait(&format!("return document.querySelector('[data-testid=match-count]').textContent.includes('/ {want} matches')"), "the number of matches");
    browser.click("[data-testid=match-next]");
    browser.wait(
        "return document.querySelector('.log-row.current mark')",
        "the current match marked",
    );
    assert_eq!(browser.count(), 1500, "find mode still shows every line");

    browser.click("[data-testid=filter-only]");
    browser.wait(&format!("return document.querySelector('[data-testid=log-count]').textContent.startsWith('{want} ')"), "only matching lines");
    browser.replace_text("[data-testid=filter-search]", "");
    browser.wait(
        "return document.querySelector('[data-testid=log-count]').textContent.startsWith('1500 ')",
        "the search cleared",
    );
    browser.type_into("[data-testid=filter-meta-key]", "dashboard_id");
    browser.type_into("[data-testid=filter-meta-value]", "7");
    // dashboard_id 7 means i ≡ 7 (mod 10): odd, so never a DEBUG record (i ≡ 0 mod 4).
    browser.wait(
        "return document.querySelector('[data-testid=log-count]').textContent.startsWith('200 ')",
        "the metadata filter",
    );
    browser.wait(
        "return location.search.includes('meta.dashboard_id=7')",
        "the metadata filter in the URL",
    );
}
