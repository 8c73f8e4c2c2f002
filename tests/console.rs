//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over W3C WebDriver, against the real server binary.
//!
//! Needs the built console: `TASKLENS_TEST_UI_DIR` (set by the README's test command,
//! which builds it). Without it these tests are skipped, unless
//! `TASKLENS_TEST_REQUIRE_BROWSER=1`, when that is a failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::{stdout, wait_done, Server, ADMIN};
use serde_json::json;
use testkit::browser::Browser;
use testkit::{free_port, FreshDb};

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
    browser.click("[data-testid=run-mode-json]");
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
    browser.wait(
        "const v = document.querySelector('[data-testid=log-viewport]').getBoundingClientRect(); const r = document.querySelector('[data-testid=log-row][data-seq=\"1234\"]')?.getBoundingClientRect(); return r && r.top >= v.top && r.bottom <= v.bottom",
        "the permalinked line in view",
    );

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

/// The run form reports bad JSON and refused parameters in place; an admin deletes a
/// task after confirming; a viewer sees the settings read-only; a token that stops
/// working brings the login page back.
#[test]
fn forms_roles_deletion_and_expired_tokens() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let base = server.url();
    let browser = Browser::start();
    browser.login(&base, ADMIN);

    browser.click("[data-testid=run-plugin] option[value=synthetic]");
    browser.click("[data-testid=run-mode-json]");
    browser.replace_text("[data-testid=run-params]", "{not json");
    browser.click("[data-testid=run-submit]");
    browser.wait("return document.querySelector('[data-testid=run-error]')?.textContent.includes('not valid JSON')", "the JSON error");
    browser.replace_text("[data-testid=run-params]", r#"{"count": "many"}"#);
    browser.click("[data-testid=run-submit]");
    browser.wait("return document.querySelector('[data-testid=run-error]')?.textContent.includes('count: invalid type')", "the server's refusal");
    assert_eq!(
        browser.js("return location.pathname"),
        "/tasks",
        "no task page for a refused task"
    );

    let id = run(&server, "synthetic", &["count=5"]);
    wait_done(&server, &id);
    browser.goto(&format!("{base}/tasks"));
    let delete = format!("[data-task-id=\"{id}\"] [data-testid=task-delete]");
    browser.click(&delete);
    browser.call("POST", "/alert/accept", Some(json!({})));
    browser.wait(
        &format!("return !document.querySelector('[data-task-id=\"{id}\"]')"),
        "the row gone",
    );
    assert_eq!(
        server.cli(&["task", &id]).status.code(),
        Some(2),
        "deleted on the server"
    );

    // The nodes page: this server, alive, of role all.
    browser.click("nav a[href='/admin/nodes']");
    browser.wait(
        "return document.querySelector('[data-testid=nodes] tbody tr [data-testid=node-alive]')?.textContent === 'alive'",
        "this node, alive",
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=nodes] tbody tr [data-testid=node-role]').textContent"),
        "all"
    );

    let viewer = stdout(&server.cli(&["tokens", "create", "reader", "--role", "viewer"]))
        .trim()
        .to_owned();
    browser.click("[data-testid=logout]");
    browser.login(&base, &viewer);
    browser.goto(&format!("{base}/admin/settings/logging"));
    browser.wait(
        "return document.querySelector('[data-testid=settings-task-level]')",
        "the settings",
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=settings-task-level]').disabled"),
        true
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=settings-belief-scope]').disabled"),
        true
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=settings-save]') === null"),
        true
    );
    assert_eq!(
        browser.js("return document.querySelector(\"nav a[href='/admin/nodes']\") === null"),
        true,
        "no link to the nodes page for a viewer"
    );
    browser.goto(&format!("{base}/admin/nodes"));
    browser.wait(
        "return document.querySelector('[data-testid=nodes-error]')?.textContent.includes('(403)')",
        "the server's refusal, shown",
    );

    stdout(&server.cli(&["tokens", "delete", "reader"]));
    browser.goto(&format!("{base}/tasks"));
    browser.wait(
        "return location.pathname === '/login'",
        "the login page after the token was deleted",
    );
}

/// ANSI colours in shell output are rendered, not shown as escape codes.
#[test]
fn ansi_colours_in_shell_output_are_rendered() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let id = run(
        &server,
        "shell",
        &[r#"argv=["printf", "\u001b[31mred\u001b[0m plain\n"]"#],
    );
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    browser.wait(
        "return document.querySelector('[data-testid=log-row][data-source=stdout]')",
        "the stdout line",
    );
    let text = browser.js("return document.querySelector('[data-testid=log-row][data-source=stdout] .msg').textContent");
    assert_eq!(text, "red plain");
    let coloured = browser.js("return document.querySelector('[data-testid=log-row][data-source=stdout] .msg span').getAttribute('style')");
    assert!(
        coloured.as_str().unwrap().contains("color:var(--ansi-1)"),
        "{coloured}"
    );
}

/// The level menu's numbers and the source chips end at the stored counts once the
/// task is final, even when the page was open while it ran.
#[test]
fn level_and_source_counts_are_the_stored_ones_once_the_task_is_final() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let id = run(&server, "synthetic", &["count=4000", "rate=500"]);
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    // Counts read while the task ran (the usual case, unless the page was slower
    // than the whole task) are the ones that used to stay.
    browser.wait(
        "const h = document.querySelector('[data-testid=task-header]'); const c = document.querySelector('[data-testid=filter-source] .chip .count'); return h && (h.dataset.status === 'success' || (h.dataset.status === 'running' && c && Number(c.textContent) > 0))",
        "the task page with counts",
    );
    wait_done(&server, &id);

    // What is stored, read back through the CLI.
    let mut levels: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in stdout(&server.cli(&["logs", &id, "--json"])).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            entry["source"].as_str().unwrap().to_owned(),
            entry["level"].as_str().unwrap().to_owned(),
        );
        *levels.entry(key).or_default() += 1;
    }
    assert_eq!(
        levels.values().sum::<u64>(),
        3_000,
        "INFO and above of 4,000"
    );
    let order = ["DEBUG", "INFO", "WARNING", "ERROR"];
    let at_or_above = |from: &str, source: Option<&str>| -> u64 {
        let rank = |l: &str| order.iter().position(|o| *o == l).unwrap();
        levels
            .iter()
            .filter(|((s, l), _)| source.is_none_or(|w| w == s) && rank(l) >= rank(from))
            .map(|(_, n)| n)
            .sum()
    };
    let options: Vec<String> = order
        .iter()
        .map(|l| format!("{l} and above ({})", at_or_above(l, None)))
        .collect();
    assert_eq!(options[3], "ERROR and above (1000)");
    let sources: Vec<&String> = levels
        .keys()
        .map(|(s, _)| s)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let chips: Vec<(String, u64)> = sources
        .iter()
        .map(|s| ((*s).clone(), at_or_above("INFO", Some(s))))
        .collect();
    let want = json!({ "options": options, "chips": chips });
    let shown = || {
        browser.js(
            "const options = [...document.querySelectorAll('[data-testid=filter-level] option')].map(o => o.textContent); \
             const chips = [...document.querySelectorAll('[data-testid=filter-source] .chip')].map(c => [c.dataset.source, Number(c.querySelector('.count').textContent)]).sort(); \
             return {options, chips}",
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while shown() != want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        shown(),
        want,
        "the level menu and the chips show the stored counts"
    );
    browser.wait(
        "return document.querySelector('.log-panel .live.done')",
        "the panel knows the task is finished",
    );
}

/// After login, `next` leads only to a path on this site: `/\\host` (read by
/// browsers like `//host`) and other tricks land on the task list instead. The
/// console also works under its Content-Security-Policy with content-hashed assets.
#[test]
fn login_never_redirects_off_site_and_the_console_runs_under_its_csp() {
    let Some(ui) = ui_dir() else { return };
    let index = std::fs::read_to_string(ui.join("index.html")).unwrap();
    let boot = index
        .split('"')
        .find(|s| s.starts_with("/boot."))
        .expect("index.html loads a hashed boot script");
    assert!(boot.len() == "/boot.0123456789abcdef.js".len(), "{boot}");
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let browser = Browser::start();
    let base = server.url();
    browser.goto(&format!("{base}/login"));
    for next in [
        "/%5Cevil.example",
        "//evil.example",
        "/%09/evil.example",
        "https://evil.example/",
    ] {
        browser.js("sessionStorage.clear()");
        browser.goto(&format!("{base}/login?next={next}"));
        browser.type_into("[data-testid=login-token]", ADMIN);
        browser.click("[data-testid=login-submit]");
        let at = browser.wait(
            "return location.pathname === '/tasks' && location.origin",
            "the task list after login",
        );
        assert_eq!(at.as_str(), Some(base.as_str()), "next={next}");
    }
    // A path on this site is followed.
    browser.js("sessionStorage.clear()");
    browser.goto(&format!("{base}/login?next=/admin/settings/logging"));
    browser.type_into("[data-testid=login-token]", ADMIN);
    browser.click("[data-testid=login-submit]");
    browser.wait(
        "return location.pathname === '/admin/settings/logging'",
        "the page asked for",
    );
}

/// docs/deployment.md's gateway and two engines, on loopback: each engine runs a
/// task, and the gateway's console follows both live and lists the nodes.
#[test]
fn a_gateways_console_follows_tasks_running_on_two_engines() {
    let Some(ui) = ui_dir() else { return };
    if std::env::var_os("TASKLENS_TEST_PG_URL").is_none() {
        eprintln!("skipped: no PostgreSQL for tests (TASKLENS_TEST_PG_URL)");
        return;
    }
    let fresh = FreshDb::new("postgres");
    let node = |id: &str, role: &str, ui: Option<&std::path::Path>| {
        let env = [
            ("TASKLENS_NODE_ID", id),
            ("TASKLENS_ROLE", role),
            // One task each, so that two tasks go to two engines.
            ("TASKLENS_MAX_CONCURRENT_TASKS", "1"),
        ];
        Server::launch_with(&fresh.url, free_port(), ui, &env)
    };
    let gateway = node("g1", "gateway", Some(&ui));
    let _engines = [node("e1", "engine", None), node("e2", "engine", None)];
    let tasks = [
        run(&gateway, "synthetic", &["count=1000000", "rate=200"]),
        run(&gateway, "synthetic", &["count=1000000", "rate=200"]),
    ];
    let mut ran_on = BTreeSet::new();
    for task in &tasks {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let node = loop {
            let info: protocol::TaskInfo =
                serde_json::from_str(&stdout(&gateway.cli(&["task", task]))).unwrap();
            if let (protocol::TaskStatus::Running, Some(node)) = (info.status, info.node) {
                break node;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "task {task} never ran"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        ran_on.insert(node);
    }
    assert_eq!(ran_on, BTreeSet::from(["e1".to_owned(), "e2".to_owned()]));
    let listed = stdout(&gateway.cli(&["tasks"]));
    assert!(
        listed.lines().next().is_some_and(|h| h.contains("NODE"))
            && listed.contains("  e1  ")
            && listed.contains("  e2  "),
        "{listed}"
    );

    let browser = Browser::start();
    browser.login(&gateway.url(), ADMIN);
    for task in &tasks {
        browser.goto(&format!("{}/tasks/{task}", gateway.url()));
        let first = browser.wait(
            "const s = [...document.querySelectorAll('[data-testid=log-row]')].map(r => Number(r.dataset.seq)); return s.length > 0 && Math.max(...s)",
            "the task's rows",
        );
        let first = first.as_u64().unwrap();
        browser.wait(
            &format!("const s = [...document.querySelectorAll('[data-testid=log-row]')].map(r => Number(r.dataset.seq)); return Math.max(...s) > {first}"),
            "a newer row, live from the engine",
        );
    }
    browser.goto(&format!("{}/admin/nodes", gateway.url()));
    // Running counts come with heartbeats, which the page picks up as it refreshes.
    browser.wait(
        "const r = [...document.querySelectorAll('[data-testid=nodes] tbody tr')]; return r.map(x => x.querySelector('[data-testid=node-role]').textContent + ':' + x.querySelector('[data-testid=node-running]').textContent).sort().join(',') === 'engine:1,engine:1,gateway:0'",
        "three nodes: two engines running one task each, and the gateway",
    );
}

/// The top bar's search box finds a line in another task: the search page lists it
/// with its task, and following it opens that task at the line.
#[test]
fn global_search_finds_a_line_in_another_task_and_opens_it_at_its_line() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let here = run(&server, "synthetic", &["count=300"]);
    let there = run(
        &server,
        "shell",
        &[
            r#"argv=["sh", "-c", "echo starting; echo 'ERROR: deadlock detected on orders'; echo done"]"#,
        ],
    );
    wait_done(&server, &here);
    wait_done(&server, &there);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{here}", server.url()));
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row]').length > 0",
        "the first task's rows",
    );

    browser.type_into("[data-testid=global-search]", "DEADLOCK detected\u{E007}");
    browser.wait(
        "return location.pathname === '/search' && new URLSearchParams(location.search).get('q') === 'DEADLOCK detected'",
        "the search page with the text in its URL",
    );
    browser.wait(
        "return document.querySelectorAll('[data-testid=search-hit]').length === 1",
        "one hit",
    );
    let hit = browser.js("const h = document.querySelector('[data-testid=search-hit]'); return [h.dataset.task, h.dataset.seq, h.textContent]");
    assert_eq!(hit[0], there.as_str(), "{hit}");
    assert!(
        hit[2]
            .as_str()
            .unwrap()
            .contains("ERROR: deadlock detected on orders"),
        "{hit}"
    );
    let marked =
        browser.js("return document.querySelector('[data-testid=search-hit] mark').textContent");
    assert_eq!(
        marked, "deadlock detected",
        "the match is marked, in the line's own case"
    );
    let seq = hit[1].as_str().unwrap().to_owned();

    // A text every synthetic line has: hits of the one task, latest line first.
    browser.replace_text("[data-testid=search-text]", "synthetic record 29");
    browser.click("[data-testid=search-submit]");
    browser.wait(
        "const h = [...document.querySelectorAll('[data-testid=search-hit]')]; return h.length > 0 && h.every(r => r.textContent.includes('synthetic record 29'))",
        "the synthetic task's hits",
    );
    let seqs = browser.js("return [...document.querySelectorAll('[data-testid=search-hit]')].map(r => Number(r.dataset.seq))");
    let seqs: Vec<u64> = serde_json::from_value(seqs).unwrap();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "latest first: {seqs:?}"
    );
    browser.js("history.back()");
    browser.wait(
        "return document.querySelectorAll('[data-testid=search-hit]').length === 1",
        "back to the first search",
    );

    browser.click("[data-testid=search-hit] a");
    browser.wait(
        &format!("return location.pathname === '/tasks/{there}' && location.hash === '#L{seq}'"),
        "the task page at the line",
    );
    browser.wait(
        &format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]'); return r && r.classList.contains('selected') && r.textContent.includes('deadlock detected')"),
        "the line highlighted",
    );

    if let Ok(dir) = std::env::var("TASKLENS_SCREENSHOT_DIR") {
        browser.goto(&format!("{}/search?q=record%2029", server.url()));
        browser.wait(
            "return document.querySelectorAll('[data-testid=search-hit]').length > 0",
            "hits",
        );
        browser.screenshot(&PathBuf::from(dir).join("global-search.png"));
    }
}

/// Past seq 1,000,000 the seq column keeps the width it has at the top of the task
/// (sized for the task's largest seq), so no row shifts; a permalink changed on the
/// open page moves the view to its line; the count reads the task's lines once its
/// index is in.
#[test]
fn the_seq_column_is_as_wide_as_the_largest_seq() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    assert!(server
        .cli(&["settings", "set", "--task-level", "DEBUG"])
        .status
        .success());
    let id = run(&server, "synthetic", &["count=1000020"]);
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{id}#L3", server.url()));
    // Each permalink on the open page: a hash change moves the view to its line.
    let message_left = |seq: u64| {
        browser.js(&format!("location.hash = '#L{seq}'"));
        browser.wait(
            &format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]'); return r && r.classList.contains('selected') && r.querySelector('.msg')"),
            &format!("line {seq}, selected"),
        );
        browser.js(&format!("return document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"] .msg').getBoundingClientRect().left"))
    };
    // Within a pixel (sub-pixel layout); a character is about 7.5.
    let top = message_left(3).as_f64().unwrap();
    for seq in [999_999, 1_000_010] {
        let left = message_left(seq).as_f64().unwrap();
        assert!(
            (left - top).abs() < 1.0,
            "seq {seq}: {left} against {top} at the top"
        );
    }
    let count = browser.js("return document.querySelector('[data-testid=log-count]').textContent");
    // DEBUG lines are stored (seqs run to 1,000,020) and hidden at the default INFO.
    assert_eq!(count, "750015 lines");
}

/// `offset()` of the console's time column, for runs shorter than a minute.
fn short_offset(micros: i64) -> String {
    let ms = micros / 1000;
    format!("+{}.{:03}s", ms / 1000, ms % 1000)
}

/// Errors first: the strip counts the task's errors and warnings and opens its first
/// error even when the view's filter hides it; `e` / `Shift+E` walk the view's ERROR
/// lines. The time column's modes and the metadata toggle are remembered across a
/// reload; `?` lists the shortcuts; the grid has ARIA roles and arrow keys move the
/// selection while it has focus.
#[test]
fn errors_first_time_modes_and_shortcuts() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    // Levels cycle DEBUG, INFO, WARNING, ERROR; DEBUG is not kept.
    let id = run(&server, "synthetic", &["count=400", "rate=4000"]);
    let task = wait_done(&server, &id);
    let stored = common::entries(&stdout(&server.cli(&["logs", &id, "--json"])));
    let errors: Vec<u64> = stored
        .iter()
        .filter(|e| e.level == protocol::LogLevel::Error)
        .map(|e| e.seq)
        .collect();
    assert_eq!(errors.len(), 100);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let key = |key: &str| {
        browser.js(&format!(
            "document.body.dispatchEvent(new KeyboardEvent('keydown', {{key: '{key}', bubbles: true}}))"
        ));
    };
    let selected = |seq: u64, what: &str| {
        browser.wait(
            &format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]'); return r && r.classList.contains('selected') && location.hash === '#L{seq}'"),
            what,
        );
    };

    // A view that hides every error: the strip still counts them and opens the first.
    browser.goto(&format!(
        "{}/tasks/{id}?source=nothing-logs-here",
        server.url()
    ));
    browser.wait(
        "const s = document.querySelector('[data-testid=first-error]'); return s && s.textContent",
        "the first error in the strip",
    );
    let strip =
        browser.js("return document.querySelector('[data-testid=error-strip]').textContent");
    let first = &stored[errors[0] as usize - 1];
    assert!(strip.as_str().unwrap().contains("100 errors"), "{strip}");
    assert!(strip.as_str().unwrap().contains("100 warnings"), "{strip}");
    assert!(
        strip
            .as_str()
            .unwrap()
            .contains(&format!("line {}: {}", first.seq, first.message())),
        "{strip}"
    );
    browser.wait(
        "return document.querySelector('[data-testid=log-count]').textContent === '0 lines'",
        "an empty view",
    );
    browser.click("[data-testid=first-error]");
    selected(errors[0], "the first error, selected, in the widened view");
    assert!(!browser
        .js("return location.search")
        .as_str()
        .unwrap()
        .contains("source="));
    if let Ok(dir) = std::env::var("TASKLENS_SCREENSHOT_DIR") {
        browser.screenshot(&PathBuf::from(dir).join("error-strip.png"));
    }

    // e and Shift+E walk the errors, round the end.
    key("e");
    selected(errors[1], "the second error");
    key("e");
    selected(errors[2], "the third error");
    key("E");
    selected(errors[1], "back to the second error");
    key("E");
    key("E");
    selected(errors[99], "round to the last error");
    // An INFO line selected: e goes to the first error after it.
    let info = stored
        .iter()
        .find(|e| e.seq > errors[40] && e.level == protocol::LogLevel::Info)
        .unwrap()
        .seq;
    browser.js(&format!("location.hash = '#L{info}'"));
    selected(info, "an INFO line");
    key("e");
    selected(errors[41], "the error after the INFO line");
    // On a page just opened, the first press asks the server for that one line
    // (while the view's ERROR lines load): backwards and forwards.
    let info = stored
        .iter()
        .find(|e| e.seq > errors[60] && e.level == protocol::LogLevel::Info)
        .unwrap()
        .seq;
    for (press, want) in [("E", errors[60]), ("e", errors[61])] {
        browser.js(&format!("location.hash = '#L{info}'; location.reload()"));
        selected(info, "a permalinked INFO line, freshly opened");
        key(press);
        selected(want, "the nearest error that way, at the first press");
    }
    browser.js(&format!("location.hash = '#L{}'", errors[41]));
    selected(errors[41], "the error after the INFO line, again");

    // The grid: roles, and arrows move the selection while it has focus.
    let grid = browser.js("const g = document.querySelector('[data-testid=log-viewport]'); return [g.getAttribute('role'), g.getAttribute('aria-rowcount'), document.querySelector('[data-testid=log-row]').getAttribute('role')]");
    assert_eq!(grid, json!(["grid", "300", "row"]));
    browser.js("document.querySelector('[data-testid=log-viewport]').focus()");
    browser.js("document.querySelector('[data-testid=log-viewport]').dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}))");
    selected(errors[41] + 1, "the line below, by ArrowDown");
    let index = browser.js(&format!("return document.querySelector('[data-testid=log-row][data-seq=\"{}\"]').getAttribute('aria-rowindex')", errors[41] + 1));
    assert_eq!(index, json!((errors[41] + 1).to_string()));

    // Time modes, in the row of the first error.
    let ts_text = |seq: u64| {
        browser
            .js(&format!("const t = document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"] .ts'); return t && t.textContent"))
    };
    browser.js(&format!("location.hash = '#L{}'", errors[0]));
    selected(errors[0], "the first error again");
    let utc = first.timestamp.to_string();
    browser.js("const s = document.querySelector('[data-testid=time-mode]'); s.value = 'utc'; s.dispatchEvent(new Event('change'))");
    browser.wait(
        &format!("const t = document.querySelector('[data-testid=log-row][data-seq=\"{}\"] .ts'); return t && t.textContent === '{}'", first.seq, &utc[11..23]),
        "UTC time",
    );
    let started = task.started_at.unwrap().as_micros();
    key("t");
    assert_eq!(
        ts_text(first.seq),
        json!(short_offset(first.timestamp.as_micros() - started))
    );
    key("t");
    let previous = &stored[first.seq as usize - 2];
    assert_eq!(
        ts_text(first.seq),
        json!(short_offset(
            first.timestamp.as_micros() - previous.timestamp.as_micros()
        ))
    );
    // Metadata hidden; both choices survive a reload.
    let meta_shown = "const m = document.querySelector('[data-testid=log-row] .meta'); return m && getComputedStyle(m).display !== 'none'";
    assert_eq!(browser.js(meta_shown), json!(true));
    key("m");
    assert_eq!(browser.js(meta_shown), json!(false));
    browser.js("location.reload()");
    selected(first.seq, "the first error after a reload");
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=time-mode]').value"),
        json!("delta")
    );
    assert_eq!(
        ts_text(first.seq),
        json!(short_offset(
            first.timestamp.as_micros() - previous.timestamp.as_micros()
        ))
    );
    assert_eq!(browser.js(meta_shown), json!(false));
    key("m");
    assert_eq!(browser.js(meta_shown), json!(true));

    // ? lists every shortcut; Esc closes the list.
    key("?");
    let listed = browser.wait(
        "const s = document.querySelector('[data-testid=shortcuts]'); return s && [...s.querySelectorAll('kbd')].map(k => k.textContent)",
        "the shortcut list",
    );
    for keys in ["?", "/", "e / Shift+E", "t", "m", "End", "Esc"] {
        assert!(
            listed.as_array().unwrap().iter().any(|k| k == keys),
            "{keys} in {listed}"
        );
    }
    key("Escape");
    browser.wait(
        "return !document.querySelector('[data-testid=shortcuts]')",
        "the list closed",
    );

    // The first `e`'s requests for the ERROR lines fail (the network drops them):
    // the view says so, and the next `e` asks again and goes to an ERROR.
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    browser.wait(
        "return document.querySelector('[data-testid=first-error]') && document.querySelectorAll('[data-testid=log-row]').length > 10",
        "the page and its error strip",
    );
    browser.js("window.dropped = 0; const fetch = window.fetch; window.fetch = function (r, o) { const url = typeof r === 'string' ? r : r.url; if (url.includes('level=ERROR') && window.dropped < 2) { window.dropped++; return Promise.reject(new TypeError('Failed to fetch')); } return fetch.call(this, r, o); }");
    key("e");
    browser.wait(
        "return window.dropped === 2 && document.querySelector('.log-panel [role=alert]')",
        "the failed requests reported",
    );
    assert!(browser
        .js("return document.querySelector('[data-testid=log-row][aria-selected=true]')")
        .is_null());
    key("e");
    browser.wait(
        "const r = document.querySelector('[data-testid=log-row][aria-selected=true][data-level=ERROR]'); return r && location.hash === '#L' + r.dataset.seq",
        "an ERROR selected after the failed attempt",
    );
}

/// Text in the task page meets WCAG AA contrast (4.5:1) against what is behind it,
/// in the light and the dark theme: rows of every level, the selected row, search
/// marks, the error strip, the toolbar and the detail pane.
#[test]
fn text_contrast_holds_in_both_themes() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    assert!(server
        .cli(&["settings", "set", "--task-level", "DEBUG"])
        .status
        .success());
    let id = run(&server, "synthetic", &["count=200", "rate=4000"]);
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!(
        "{}/tasks/{id}?level=DEBUG&q=record%201#L12",
        server.url()
    ));
    browser.wait(
        "return document.querySelector('[data-testid=log-row].selected') && document.querySelector('[data-testid=log-row] mark') && document.querySelector('[data-testid=first-error]') && document.querySelector('[data-testid=log-detail]')",
        "rows, a mark, the strip and the detail pane",
    );
    let check = r#"
        const parse = c => (c.match(/[\d.]+/g) || []).map(Number);
        const lum = c => {
            const [r, g, b] = parse(c).slice(0, 3).map(v => {
                v /= 255;
                return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const behind = el => {
            for (; el; el = el.parentElement) {
                const c = getComputedStyle(el).backgroundColor;
                const p = parse(c);
                if (p.length === 3 || (p.length === 4 && p[3] > 0.5)) return c;
            }
            return getComputedStyle(document.documentElement).backgroundColor;
        };
        const root = document.querySelector('.task-page');
        const failures = [];
        let checked = 0;
        for (const el of root.querySelectorAll('*')) {
            const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
            if (!text || el.offsetParent === null || el.closest('option')) continue;
            const fg = getComputedStyle(el).color, bg = behind(el);
            const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
            const ratio = (a + 0.05) / (b + 0.05);
            checked++;
            if (ratio < 4.5) failures.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${fg} on ${bg} = ${ratio.toFixed(2)}`);
        }
        return {checked, failures: [...new Set(failures)].slice(0, 20)};
    "#;
    for theme in ["light", "dark"] {
        browser.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": [{"name": "prefers-color-scheme", "value": theme}]}})),
        );
        let dark = browser.js("return matchMedia('(prefers-color-scheme: dark)').matches");
        assert_eq!(dark, json!(theme == "dark"));
        let result = browser.js(check);
        assert!(
            result["checked"].as_u64().unwrap() > 50,
            "{theme}: {result}"
        );
        assert_eq!(result["failures"], json!([]), "{theme}");
    }
}

/// Shift-click selects a range of lines: `#L…-L…` in the address, every line of the
/// range marked, the same after a reload; copied as text or as Markdown, it holds
/// exactly the view's lines of the range, as the export writes them.
#[test]
fn a_range_of_lines_is_selected_linked_and_copied() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let id = run(&server, "synthetic", &["count=400", "rate=4000"]);
    wait_done(&server, &id);
    // The view: WARNING and above.
    let view: Vec<protocol::LogEntry> =
        common::entries(&stdout(&server.cli(&["logs", &id, "--json"])))
            .into_iter()
            .filter(|e| e.level >= protocol::LogLevel::Warning)
            .collect();
    let (first, last) = (view[9].seq, view[19].seq);
    let in_range: Vec<&protocol::LogEntry> = view
        .iter()
        .filter(|e| (first..=last).contains(&e.seq))
        .collect();
    assert_eq!(in_range.len(), 11);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.call(
        "POST",
        "/goog/cdp/execute",
        Some(json!({"cmd": "Browser.grantPermissions", "params": {
            "origin": server.url(),
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]
        }})),
    );
    let page = format!("{}/tasks/{id}?level=WARNING", server.url());
    // Opened at the first line of the range, which is then selected.
    browser.goto(&format!("{page}#L{first}"));
    let click = |seq: u64, shift: bool| {
        browser.wait(
            &format!("return document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]')"),
            &format!("line {seq}"),
        );
        browser.js(&format!("document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]').dispatchEvent(new MouseEvent('click', {{bubbles: true, shiftKey: {shift}}}))"));
    };
    let selected = || {
        browser.js("return [...document.querySelectorAll('[data-testid=log-row].selected')].map(r => Number(r.dataset.seq))")
    };
    let want: Vec<u64> = in_range.iter().map(|e| e.seq).collect();
    click(last, true);
    browser.wait(
        &format!("return location.hash === '#L{first}-L{last}'"),
        "the range in the address",
    );
    assert_eq!(selected(), json!(want));
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=range-count]').textContent"),
        json!("11 lines in this view")
    );

    // The address opens the same range.
    browser.js("location.reload()");
    browser.wait(
        &format!("return document.querySelectorAll('[data-testid=log-row].selected').length === 11 && location.hash === '#L{first}-L{last}'"),
        "the range after a reload",
    );
    assert_eq!(selected(), json!(want));

    let clipboard = || {
        browser.call(
            "POST",
            "/execute/async",
            Some(json!({"script": "navigator.clipboard.readText().then(arguments[0], e => arguments[0]('error: ' + e))", "args": []})),
        )
    };
    let lines: String = in_range
        .iter()
        .map(|e| protocol::line::text_line(e) + "\n")
        .collect();
    // The clipboard holds what the page copied last: wait for each copy to land.
    let copied = |button: &str, want: &str| {
        browser.click(&format!("[data-testid={button}]"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let now = clipboard();
            if now == json!(want) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{button}: {now}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    copied("copy-range-text", &lines);
    copied(
        "copy-range-markdown",
        &format!(
            "[Lines {first}–{last} of task {id}]({page}#L{first}-L{last})\n\n```text\n{lines}```\n"
        ),
    );
    assert_eq!(
        browser.js("return document.querySelector('.flash').textContent"),
        json!("11 lines copied")
    );

    // A plain click selects one line again.
    click(first, false);
    browser.wait(
        &format!("return location.hash === '#L{first}'"),
        "one line selected",
    );
    assert_eq!(selected(), json!([first]));
}

/// A filter change on a long task keeps the old rows on screen, marked stale, until
/// the new view's rows are there: the grid never goes blank in between.
#[test]
fn a_filter_change_keeps_the_old_rows_until_the_new_ones_arrive() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let id = run(&server, "synthetic", &["count=200000"]);
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    browser.wait(
        "const c = document.querySelector('[data-testid=log-count]'); return c && c.textContent === '150000 lines' && document.querySelectorAll('[data-testid=log-row]').length > 10",
        "the whole log's rows",
    );
    // Every state the grid passes through, from here on.
    browser.js(
        "window.fewestRows = Infinity; window.sawStale = false;
         new MutationObserver(() => {
             const rows = document.querySelectorAll('[data-testid=log-row]').length;
             window.fewestRows = Math.min(window.fewestRows, rows);
             window.sawStale ||= !!document.querySelector('.rows.stale');
         }).observe(document.querySelector('[data-testid=log-viewport]'), {childList: true, subtree: true, attributes: true});",
    );
    browser.js("const s = document.querySelector('[data-testid=filter-level]'); s.value = 'WARNING'; s.dispatchEvent(new Event('change'))");
    browser.wait(
        "const rows = [...document.querySelectorAll('[data-testid=log-row]')]; const c = document.querySelector('[data-testid=log-count]'); return c && c.textContent === '100000 lines' && !document.querySelector('.rows.stale') && rows.length > 10 && rows.every(r => r.dataset.level === 'WARNING' || r.dataset.level === 'ERROR')",
        "the WARNING view's rows",
    );
    let seen = browser.js("return [window.fewestRows, window.sawStale]");
    assert!(
        seen[0].as_u64().unwrap() > 10,
        "the grid went blank: {seen}"
    );
    assert_eq!(seen[1], json!(true), "the old rows were not shown as stale");
    // Still following: the newest line is in view.
    let last = browser.js("return Math.max(...[...document.querySelectorAll('[data-testid=log-row]')].map(r => Number(r.dataset.seq)))");
    // The last record (i = 199,999, an ERROR) is line 150,000: DEBUG lines are not kept.
    assert_eq!(last, json!(150_000));
}

/// The task ids listed, top to bottom.
fn task_rows(browser: &Browser) -> Vec<String> {
    let listed = browser.js(
        "return [...document.querySelectorAll('[data-testid=task-row]')].map(r => r.dataset.taskId)",
    );
    serde_json::from_value(listed).unwrap()
}

/// Issue 15 item 6: the task list filters by status, plugin, who started it and
/// text, all in the URL; pages past the first 100 under a filter; stays live under
/// a filter; and after a server restart reconnects and reads what changed meanwhile.
#[test]
fn the_task_list_filters_pages_and_reconnects_after_a_restart() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let port = free_port();
    let server = Server::start_on(&fresh.url, port, Some(&ui));
    let base = server.url();
    let tagged = run(
        &server,
        "synthetic",
        &["count=1", r#"sources=["Nightly_Orders"]"#],
    );
    let plain: Vec<String> = (0..101)
        .map(|_| run(&server, "synthetic", &["count=1"]))
        .collect();
    let other = run(&server, "demo_sync", &[]);
    let viewer = stdout(&server.cli(&["tokens", "create", "reader", "--role", "viewer"]))
        .trim()
        .to_owned();
    let by_viewer = stdout(&server.cli_as(&viewer, &["run", "synthetic", "-p", "count=1"]))
        .trim()
        .to_owned();
    for id in plain.iter().chain([&tagged, &other, &by_viewer]) {
        wait_done(&server, id);
    }

    let browser = Browser::start();
    browser.login(&base, ADMIN);
    browser.goto(&format!("{base}/tasks?plugin=synthetic"));
    browser.wait(
        "return document.querySelectorAll('[data-testid=task-row]').length === 100",
        "the first 100 synthetic tasks",
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=task-filter-plugin]').value"),
        "synthetic"
    );
    browser.click("[data-testid=tasks-more]");
    browser.wait(
        "return document.querySelectorAll('[data-testid=task-row]').length === 103",
        "the older page",
    );
    let expected: Vec<String> = [by_viewer.clone()]
        .into_iter()
        .chain(plain.iter().rev().cloned())
        .chain([tagged.clone()])
        .collect();
    assert_eq!(
        task_rows(&browser),
        expected,
        "newest first, no gap or double"
    );
    assert!(!task_rows(&browser).contains(&other));

    // Text: a params search, then an id prefix.
    browser.type_into("[data-testid=task-filter-text]", "nightly_ORDERS");
    browser.wait(
        "return location.search.includes('q=nightly_ORDERS') && document.querySelectorAll('[data-testid=task-row]').length === 1",
        "the tagged task alone",
    );
    assert_eq!(task_rows(&browser), [tagged.as_str()]);
    browser.replace_text("[data-testid=task-filter-text]", &other[..13]);
    browser.wait(
        &format!("return location.search.includes('q={}')", &other[..13]),
        "the id prefix in the URL",
    );
    browser.wait(
        "return document.querySelector('[data-testid=tasks-none]')",
        "nothing: the prefix is of a demo_sync task and the plugin says synthetic",
    );
    browser.click("[data-testid=task-filter-plugin] option[value='']");
    browser.wait(
        &format!("const r = [...document.querySelectorAll('[data-testid=task-row]')]; return r.length > 0 && r.some(x => x.dataset.taskId === '{other}')"),
        "the demo_sync task by its id prefix",
    );
    browser.click("[data-testid=task-filter-clear]");
    browser.wait(
        "return location.search === '' && document.querySelectorAll('[data-testid=task-row]').length === 100",
        "every task again",
    );

    // Who started it, and a status, survive a reload.
    browser.replace_text("[data-testid=task-filter-by]", "reader");
    browser.wait(
        "return location.search.includes('by=reader') && document.querySelectorAll('[data-testid=task-row]').length === 1",
        "the viewer's task",
    );
    assert_eq!(task_rows(&browser), [by_viewer.as_str()]);
    browser.click("[data-testid=task-filter-status] [data-status=failed]");
    browser.wait(
        "return location.search.includes('status=failed') && document.querySelector('[data-testid=tasks-none]')",
        "no failed task of the viewer",
    );
    browser.js("location.reload()");
    browser.wait(
        "return document.querySelector('[data-testid=tasks-none]') && document.querySelector('[data-testid=task-filter-status] [data-status=failed]')?.getAttribute('aria-pressed') === 'true' && document.querySelector('[data-testid=task-filter-by]')?.value === 'reader'",
        "the filter after a reload",
    );

    // Live under a filter: a running task appears, and goes when it stops running.
    browser.goto(&format!("{base}/tasks?status=running"));
    browser.wait(
        "return document.querySelector('[data-testid=tasks-live]')?.dataset.state === 'live' && document.querySelector('[data-testid=tasks-none]')",
        "an empty live list",
    );
    let long = run(&server, "synthetic", &["count=1000000", "rate=10"]);
    browser.wait(
        &format!("return document.querySelector('[data-task-id=\"{long}\"][data-status=running]')"),
        "the running task, live",
    );

    // The server dies (killed: no last task frames go out). The list says so, and
    // once the server is back reads that the task was interrupted meanwhile (it
    // drops out of `running`), then follows new ones.
    drop(server);
    browser.wait(
        "return document.querySelector('[data-testid=tasks-live]')?.dataset.state === 'reconnecting'",
        "reconnecting",
    );
    let server = Server::start_on(&fresh.url, port, Some(&ui));
    browser.wait(
        &format!("return document.querySelector('[data-testid=tasks-live]')?.dataset.state === 'live' && !document.querySelector('[data-task-id=\"{long}\"]')"),
        "live again, without the interrupted task",
    );
    let again = run(&server, "synthetic", &["count=1000000", "rate=10"]);
    browser.wait(
        &format!(
            "return document.querySelector('[data-task-id=\"{again}\"][data-status=running]')"
        ),
        "a task started after the restart, live",
    );
}

/// Issue 15 item 4: several `meta.KEY=VALUE` chips and a time range narrow the
/// view together, are in the URL, survive a reload, and bad times are refused in
/// place.
#[test]
fn metadata_chips_and_a_time_range_narrow_the_view_and_survive_a_reload() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    // 400 records over about two seconds: their times tell them apart.
    let id = run(&server, "synthetic", &["count=400", "rate=200"]);
    wait_done(&server, &id);
    let stored = common::entries(&stdout(&server.cli(&["logs", &id, "--json"])));
    assert_eq!(stored.len(), 300, "DEBUG records are not kept by default");
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    browser.goto(&format!("{}/tasks/{id}", server.url()));
    let count_is = |n: usize, what: &str| {
        browser.wait(
            &format!("return document.querySelector('[data-testid=log-count]')?.textContent === '{n} lines'"),
            what,
        );
    };
    count_is(300, "every kept line");

    // Two metadata conditions, each committed with Enter.
    browser.type_into("[data-testid=filter-meta-key]", "dashboard_id");
    browser.type_into("[data-testid=filter-meta-value]", "7\u{E007}");
    count_is(40, "dashboard_id = 7");
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=filter-meta-key]').value"),
        "",
        "the inputs clear for the next pair"
    );
    // Typing a key that has a chip stands in for it, and gives it back when the
    // value is cleared.
    browser.type_into("[data-testid=filter-meta-key]", "dashboard_id");
    browser.type_into("[data-testid=filter-meta-value]", "3");
    browser.wait(
        "return location.search.includes('meta.dashboard_id=3')",
        "the typed value in place of the chip's",
    );
    browser.replace_text("[data-testid=filter-meta-value]", "");
    browser.wait(
        "return location.search.includes('meta.dashboard_id=7')",
        "the chip's value back",
    );
    browser.replace_text("[data-testid=filter-meta-key]", "");
    count_is(40, "dashboard_id = 7 again");
    browser.type_into("[data-testid=filter-meta-key]", "i");
    browser.type_into("[data-testid=filter-meta-value]", "27\u{E007}");
    count_is(1, "dashboard_id = 7 and i = 27");
    browser.wait(
        "return location.search.includes('meta.dashboard_id=7') && location.search.includes('meta.i=27')",
        "both conditions in the URL",
    );
    browser.js("location.reload()");
    count_is(1, "both conditions after a reload");
    assert_eq!(
        browser.js("return [...document.querySelectorAll('[data-testid=filter-meta-chips] [data-meta-key]')].map(c => c.dataset.metaKey).join(',')"),
        "dashboard_id,i"
    );
    browser.click(
        "[data-testid=filter-meta-chips] [data-meta-key=i] [data-testid=filter-meta-remove]",
    );
    count_is(40, "i removed, dashboard_id kept");
    browser.click("[data-testid=filter-meta-chips] [data-meta-key=dashboard_id] [data-testid=filter-meta-remove]");
    count_is(300, "no condition left");

    // A range between two stored records' times, typed as RFC 3339.
    let (since, until) = (stored[50].timestamp, stored[150].timestamp);
    let inside = stored
        .iter()
        .filter(|e| since <= e.timestamp && e.timestamp < until)
        .count();
    assert!((90..=100).contains(&inside), "{inside}");
    browser.type_into("[data-testid=filter-since]", &since.to_string());
    browser.type_into("[data-testid=filter-until]", &format!("{until}\u{E007}"));
    count_is(inside, "the lines of the range");
    browser.wait(
        "return location.search.includes('since=') && location.search.includes('until=')",
        "the range in the URL",
    );
    browser.js("location.reload()");
    count_is(inside, "the range after a reload");
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=filter-since]').value"),
        since.to_string()
    );

    // Without a zone, in the time column's zone: UTC here.
    browser.js("const s = document.querySelector('[data-testid=time-mode]'); s.value = 'utc'; s.dispatchEvent(new Event('change'))");
    browser.click("[data-testid=filter-range-clear]");
    count_is(300, "the range cleared");
    let zoneless = since
        .to_datetime()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string();
    browser.type_into("[data-testid=filter-since]", &format!("{zoneless}\u{E007}"));
    let after = stored.iter().filter(|e| since <= e.timestamp).count();
    count_is(after, "from a zoneless UTC time on");

    // Refused in place; the view stays as it was.
    browser.replace_text("[data-testid=filter-since]", "yesterday\u{E007}");
    browser.wait(
        "return document.querySelector('[data-testid=filter-range-error]')?.textContent.includes('yesterday')",
        "the bad time named",
    );
    count_is(after, "the view unchanged by a refused time");
    // Leaving the field applies it: from a minute ago is every line (the task just
    // ran); then a range that ends before it starts is refused.
    browser.replace_text("[data-testid=filter-since]", "1m");
    browser.replace_text("[data-testid=filter-until]", "1h\u{E007}");
    browser.wait(
        "return document.querySelector('[data-testid=filter-range-error]')?.textContent.includes('start before it ends')",
        "an empty range refused",
    );
    browser.replace_text("[data-testid=filter-until]", "\u{E007}");
    count_is(300, "from a minute ago: every line (the task just ran)");
}

/// Issue 15 item 7: the run form shows each plugin's params as fields read from its
/// schema (kinds, example values, defaults, required, descriptions), refuses bad
/// input in place, moves parameters to and from the JSON editor, and keeps the JSON
/// editor for a plugin without a schema.
#[test]
fn the_run_form_renders_each_plugins_params_as_fields() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let value = |field: &str| {
        browser.js(&format!(
            "return document.querySelector('[data-testid=run-field-{field}]').value"
        ))
    };
    let error_says = |text: &str| {
        browser.wait(
            &format!("return document.querySelector('[data-testid=run-error]')?.textContent.includes({text:?})"),
            text,
        );
    };

    // synthetic: its example in its fields, defaults as placeholders.
    browser.wait(
        "return document.querySelector('[data-testid=run-field-count]')",
        "synthetic's fields",
    );
    assert_eq!(value("count"), "1000");
    assert_eq!(value("rate"), "200");
    assert_eq!(value("sources"), "plugin\nsuperset_api\nsystem");
    assert_eq!(value("work"), "");
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=run-field-work]').placeholder"),
        "0"
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=run-field-discard]').checked"),
        false
    );
    let label = browser.js("return document.querySelector('[data-param=count]').textContent");
    assert!(
        label.as_str().unwrap().contains("Records to emit"),
        "{label}"
    );

    browser.replace_text("[data-testid=run-field-count]", "many");
    browser.click("[data-testid=run-submit]");
    error_says("count: \"many\" is not a whole number");
    browser.replace_text("[data-testid=run-field-count]", "25");
    browser.replace_text("[data-testid=run-field-sources]", "alpha\nbeta");
    browser.click("[data-testid=run-submit]");
    let path = browser.wait(
        "return location.pathname.startsWith('/tasks/') && location.pathname",
        "the task page",
    );
    let id = path
        .as_str()
        .unwrap()
        .trim_start_matches("/tasks/")
        .to_owned();
    let task = wait_done(&server, &id);
    assert_eq!(
        task.params,
        json!({"count": 25, "rate": 200, "sources": ["alpha", "beta"]})
    );

    // shell: a required list, a map, nullable fields; and the JSON editor both ways.
    browser.goto(&format!("{}/tasks", server.url()));
    browser.wait(
        "return document.querySelector('[data-testid=run-plugin] option[value=shell]')",
        "the plugins",
    );
    browser.click("[data-testid=run-plugin] option[value=shell]");
    browser.wait(
        "return document.querySelector('[data-testid=run-field-argv]')",
        "shell's fields",
    );
    assert_eq!(value("argv"), "sh\n-c\necho hello; echo oops >&2");
    assert!(browser
        .js("return document.querySelector('[data-param=argv] .required') !== null")
        .as_bool()
        .unwrap());
    browser.replace_text("[data-testid=run-field-argv]", "");
    browser.click("[data-testid=run-submit]");
    error_says("argv is required");
    browser.replace_text("[data-testid=run-field-argv]", "ls\n-l");
    browser.replace_text("[data-testid=run-field-env]", "A=1\nnot a pair");
    browser.click("[data-testid=run-mode-json]");
    error_says("env: line 2 is not KEY=VALUE");
    browser.replace_text("[data-testid=run-field-env]", "A=1");
    browser.click("[data-testid=run-mode-json]");
    let json_text = browser.wait(
        "return document.querySelector('[data-testid=run-params]')?.value",
        "the JSON editor",
    );
    let shown: serde_json::Value = serde_json::from_str(json_text.as_str().unwrap()).unwrap();
    assert_eq!(
        shown,
        json!({"argv": ["ls", "-l"], "env": {"A": "1"}, "timeout_s": 60})
    );
    browser.replace_text(
        "[data-testid=run-params]",
        r#"{"argv": ["ls"], "bogus": 1}"#,
    );
    browser.click("[data-testid=run-mode-fields]");
    error_says("do not fit the fields");
    browser.replace_text(
        "[data-testid=run-params]",
        r#"{"argv": ["env"], "env": {"B": "2"}, "cwd": "/tmp"}"#,
    );
    browser.click("[data-testid=run-mode-fields]");
    browser.wait(
        "return document.querySelector('[data-testid=run-field-argv]')?.value === 'env'",
        "the JSON back in the fields",
    );
    assert_eq!(value("env"), "B=2");
    assert_eq!(value("cwd"), "/tmp");
    assert_eq!(value("timeout_s"), "");

    // No schema to read fields from: the JSON editor alone.
    browser.click("[data-testid=run-plugin] option[value=legacy_backup]");
    browser.wait(
        "return document.querySelector('[data-testid=run-params]') && !document.querySelector('[data-testid=run-mode-fields]')",
        "the JSON editor alone",
    );
}

/// Issue 14 item 8: a task of 1,000,000 lines opens at its end, changes level,
/// opens a permalink deep inside, and comes back to the whole log, with the index
/// sent as runs; no more than a screenful of rows is ever in the page.
#[test]
fn a_million_line_task_opens_filters_and_follows_permalinks() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    // DEBUG, every fourth record, is not kept: 1,000,000 lines, seqs 1..=1,000,000.
    let id = run(&server, "synthetic", &["count=1333334"]);
    wait_done(&server, &id);
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let base = server.url();
    let count_is = |text: &str, what: &str| {
        browser.wait(
            &format!("return document.querySelector('[data-testid=log-count]')?.textContent === '{text}'"),
            what,
        );
    };

    browser.goto(&format!("{base}/tasks/{id}"));
    count_is("1000000 lines", "every line");
    // In sight at the bottom edge, not only drawn: the viewport shrinks as the
    // panel around it fills in, and following keeps the newest line in view.
    browser.wait(
        "const g = document.querySelector('[data-testid=log-viewport]'); const r = document.querySelector('[data-testid=log-row][data-seq=\"1000000\"]'); if (!g || !r) return false; const v = g.getBoundingClientRect(); const b = r.getBoundingClientRect(); return b.top >= v.top && b.bottom <= v.bottom + 1",
        "the last line in view, following",
    );
    assert!(browser.rows().len() <= 300);

    // WARNING and above: two lines of every three kept (INFO, WARNING, ERROR).
    let warning = (0..1_333_334u64).filter(|i| i % 4 >= 2).count();
    browser.js("const s = document.querySelector('[data-testid=filter-level]'); s.value = 'WARNING'; s.dispatchEvent(new Event('change', {bubbles: true}))");
    count_is(&format!("{warning} lines"), "WARNING and above");
    browser.wait(
        "const r = [...document.querySelectorAll('[data-testid=log-row]')]; return r.length > 10 && r.every(x => x.dataset.level === 'WARNING' || x.dataset.level === 'ERROR')",
        "only WARNING and ERROR rows",
    );

    // A permalink deep inside the whole log.
    browser.goto(&format!("{base}/tasks/{id}#L777777"));
    count_is("1000000 lines", "every line again");
    browser.wait(
        "const v = document.querySelector('[data-testid=log-viewport]').getBoundingClientRect(); const r = document.querySelector('[data-testid=log-row][data-seq=\"777777\"]'); const b = r && r.getBoundingClientRect(); return r && r.classList.contains('selected') && b.top >= v.top && b.bottom <= v.bottom",
        "line 777777 selected and in view",
    );
    assert!(browser.rows().len() <= 300);
}

/// Issue 15 item 1: a 1,000,000-line task in 1,000 groups opens with its groups
/// folded but the four holding an ERROR, which open by themselves; a header says
/// its size; expand and collapse all; `e` unfolds the group of the error it goes
/// to; a click unfolds a group; a permalink inside a folded group opens it at its
/// line; a level filter keeps only the groups holding its lines.
#[test]
fn groups_fold_on_a_million_line_task_and_open_for_errors_jumps_and_permalinks() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    // 1,500,000 records in groups of 1,500; DEBUG (a third of the rest) is not
    // kept: 1,000 lines a group, and an ERROR in groups 249, 499, 749 and 999.
    let id = run(
        &server,
        "synthetic",
        &["count=1500000", "group_every=1500", "error_every=375000"],
    );
    wait_done(&server, &id);
    let (status, body) = common::http_get(
        server.port,
        &format!("/api/tasks/{id}/logs/groups"),
        Some(ADMIN),
    );
    assert_eq!(status, 200, "{body}");
    let listed: protocol::LogGroups = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.groups.len(), 1000);
    assert!(listed
        .groups
        .iter()
        .all(|g| g.lines == 1000 && g.end_seq.is_some()));
    let erring: Vec<u64> = listed
        .groups
        .iter()
        .filter(|g| g.worst == Some(protocol::LogLevel::Error))
        .map(|g| g.seq)
        .collect();
    assert_eq!(erring.len(), 4);
    let errors: Vec<u64> = common::entries(&stdout(
        &server.cli(&["logs", &id, "--level", "ERROR", "--json"]),
    ))
    .iter()
    .map(|e| e.seq)
    .collect();
    assert_eq!(errors.len(), 4);
    let total = listed.groups.last().unwrap().end_seq.unwrap();

    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let base = server.url();
    let rows_are = |n: u64, what: &str| {
        browser.wait(
            &format!("return document.querySelector('[data-testid=log-viewport]')?.getAttribute('aria-rowcount') === '{n}'"),
            what,
        );
    };
    let key = |key: &str| {
        browser.js(&format!(
            "document.body.dispatchEvent(new KeyboardEvent('keydown', {{key: '{key}', bubbles: true}}))"
        ));
    };
    let in_view = |seq: u64| {
        format!("const g = document.querySelector('[data-testid=log-viewport]'); const r = document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]'); if (!g || !r) return false; const v = g.getBoundingClientRect(); const b = r.getBoundingClientRect(); return r.classList.contains('selected') && b.top >= v.top && b.bottom <= v.bottom")
    };

    browser.goto(&format!("{base}/tasks/{id}"));
    browser.wait(
        &format!("return document.querySelector('[data-testid=log-count]')?.textContent === '{total} lines'"),
        "every line counted",
    );
    // 1,000 headers and the 1,000 lines of each group holding an ERROR.
    rows_are(1000 + 4 * 1000, "folded but the groups with an ERROR");
    // Following: the last group holds an ERROR, so its last line is at the bottom
    // (its close is never a row).
    browser.wait(
        &format!(
            "return document.querySelector('[data-testid=log-row][data-seq=\"{}\"]')",
            total - 1
        ),
        "the last group, holding an ERROR, open at the bottom",
    );
    assert!(browser.rows().len() <= 300);

    let click = |css: &str| {
        browser.wait(
            &format!("const b = document.querySelector('{css}'); if (b) b.click(); return !!b"),
            css,
        );
    };
    click("[data-testid=expand-all]");
    rows_are(1000 + 1_000_000, "every group open");
    click("[data-testid=collapse-all]");
    rows_are(1000, "every group folded");
    let header = |seq: u64| {
        browser.wait(
            &format!("const h = document.querySelector('[data-testid=group-header][data-seq=\"{seq}\"]'); return h && [h.dataset.open, h.dataset.lines, h.querySelector('.group-name').textContent]"),
            "a group's header",
        )
    };
    assert_eq!(
        header(erring[3] - 1002),
        json!(["false", "1000", "step 998"])
    );
    if let Ok(dir) = std::env::var("TASKLENS_SCREENSHOT_DIR") {
        browser.screenshot(&PathBuf::from(dir).join("groups.png"));
    }

    // A click on a folded header opens it.
    browser.js("document.querySelector('[data-testid=log-viewport]').scrollTop = 0");
    assert_eq!(header(1), json!(["false", "1000", "step 0"]));
    click("[data-testid=group-header][data-seq=\"1\"] [data-testid=group-toggle]");
    rows_are(2000, "the first group open");
    browser.wait(
        "return document.querySelector('[data-testid=log-row][data-seq=\"2\"]')",
        "the first group's first line",
    );

    // `e` from the top goes to the first ERROR and opens its group. The grid keeps
    // its rows until those around the ERROR are there: no placeholder on the way.
    browser.js("window.placeholders = 0; new MutationObserver(ms => { for (const m of ms) for (const n of m.addedNodes) if (n.classList && n.classList.contains('placeholder')) window.placeholders++; }).observe(document.querySelector('[data-testid=log-viewport]'), {childList: true, subtree: true})");
    key("e");
    browser.wait(&in_view(errors[0]), "the first ERROR selected and in view");
    rows_are(3000, "its group open");
    assert_eq!(browser.js("return window.placeholders"), json!(0));

    // A permalink into a folded group: on a fresh page, group 500 is folded.
    let deep = listed.groups[500].seq + 500;
    browser.goto("about:blank");
    browser.goto(&format!("{base}/tasks/{id}#L{deep}"));
    browser.wait(&in_view(deep), "the linked line selected and in view");
    rows_are(1000 + 5 * 1000, "its group opened for it");

    // ERROR only: the groups holding one, open, each with its line.
    browser.js("const s = document.querySelector('[data-testid=filter-level]'); s.value = 'ERROR'; s.dispatchEvent(new Event('change', {bubbles: true}))");
    rows_are(8, "four headers and four lines");
    browser.wait(
        "return document.querySelectorAll('[data-testid=log-row]').length === 4",
        "the four ERROR lines",
    );
    let headers = browser.js("return [...document.querySelectorAll('[data-testid=group-header]')].map(h => Number(h.dataset.seq))");
    assert_eq!(headers, json!(erring));
    assert_eq!(
        browser.rows().iter().map(|r| r.0).collect::<Vec<_>>(),
        errors
    );
}

/// JavaScript: the grid's rows follow one another without gaps or overlaps and
/// cover the viewport (or end at the last row).
const ROWS_TILE_THE_VIEWPORT: &str = r#"
const v = document.querySelector('[data-testid=log-viewport]');
if (!v) return false;
const vr = v.getBoundingClientRect();
const rows = [...v.querySelectorAll('.rows > [role=row]')];
if (rows.length < 2) return false;
for (let i = 1; i < rows.length; i++) {
  const a = rows[i - 1].getBoundingClientRect(), b = rows[i].getBoundingClientRect();
  if (+rows[i].getAttribute('aria-rowindex') !== +rows[i - 1].getAttribute('aria-rowindex') + 1) return false;
  if (Math.abs(b.top - a.bottom) > 1) return false;
}
const first = rows[0].getBoundingClientRect(), last = rows[rows.length - 1].getBoundingClientRect();
const atEnd = +rows[rows.length - 1].getAttribute('aria-rowindex') === +v.getAttribute('aria-rowcount');
return first.top <= vr.top + 1 && (last.bottom >= vr.bottom - 1 || atEnd);
"#;

/// Issue 15 item 3: long lines wrap and unwrap (`w` or the toolbar), the choice is
/// remembered, and with rows of many heights the view keeps a permalinked line in
/// sight, tiles the viewport wherever it is scrolled and ends at the last line.
#[test]
fn long_lines_wrap_keep_their_place_and_the_choice_is_remembered() {
    let Some(ui) = ui_dir() else { return };
    let fresh = FreshDb::new("sqlite");
    let server = Server::start_on(&fresh.url, free_port(), Some(&ui));
    // 3,000 lines; every seventh runs to about 600 characters.
    let id = run(
        &server,
        "shell",
        &[
            r#"argv=["awk", "BEGIN { for (i = 1; i <= 3000; i++) { s = \"line \" i; if (i % 7 == 0) for (j = 0; j < 60; j++) s = s \" word-\" j; print s } }"]"#,
        ],
    );
    wait_done(&server, &id);
    let stored = common::entries(&stdout(&server.cli(&["logs", &id, "--json"])));
    let seq_of = |text: &str| {
        stored
            .iter()
            .find(|e| e.message().split(' ').take(2).collect::<Vec<_>>().join(" ") == text)
            .unwrap_or_else(|| panic!("{text} stored"))
            .seq
    };
    let (long, last) = (seq_of("line 2100"), seq_of("line 3000"));
    let browser = Browser::start();
    browser.login(&server.url(), ADMIN);
    let key = |key: &str| {
        browser.js(&format!(
            "document.body.dispatchEvent(new KeyboardEvent('keydown', {{key: '{key}', bubbles: true}}))"
        ));
    };
    let row_height = |seq: u64| {
        browser.js(&format!("return document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]')?.getBoundingClientRect().height"))
    };
    let in_view = |seq: u64, what: &str| {
        browser.wait(
            &format!("const vp = document.querySelector('[data-testid=log-viewport]'); const r = document.querySelector('[data-testid=log-row][data-seq=\"{seq}\"]'); if (!vp || !r) return false; const v = vp.getBoundingClientRect(), b = r.getBoundingClientRect(); return b.top >= v.top - 1 && b.bottom <= v.bottom + 1"),
            what,
        );
    };

    // Not wrapped: one line each, the long ones cut at the right edge.
    browser.goto(&format!("{}/tasks/{id}#L{long}", server.url()));
    in_view(long, "the permalinked long line");
    assert_eq!(row_height(long), json!(20));
    assert_eq!(
        browser.js(&format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{long}\"]'); return r.scrollWidth > r.clientWidth")),
        json!(true)
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=wrap-lines]').checked"),
        json!(false)
    );

    // Wrapped: the long line shows whole, several lines tall, still in view.
    key("w");
    browser.wait(
        &format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{long}\"]'); return r && r.getBoundingClientRect().height >= 60 && r.scrollWidth <= r.clientWidth"),
        "the long line wrapped",
    );
    assert_eq!(
        row_height(long - 1),
        json!(20),
        "a short line stays one line"
    );
    assert_eq!(
        browser.js("const v = document.querySelector('[data-testid=log-viewport]'); return v.scrollWidth <= v.clientWidth"),
        json!(true),
        "nothing runs past the right edge"
    );
    in_view(long, "the permalinked line, wrapped");
    browser.wait(
        ROWS_TILE_THE_VIEWPORT,
        "rows tiling the viewport around the permalink",
    );

    // Scrolled by the user, somewhere else: rows still tile, wherever they are.
    for fraction in [0.1, 0.5, 0.93] {
        browser.js(&format!("const v = document.querySelector('[data-testid=log-viewport]'); v.scrollTop = (v.scrollHeight - v.clientHeight) * {fraction}"));
        browser.wait(
            ROWS_TILE_THE_VIEWPORT,
            &format!("rows tiling the viewport at {fraction}"),
        );
    }
    // The end: the last line in view, below wrapped ones.
    key("End");
    in_view(last, "the last line after End");
    browser.wait(
        ROWS_TILE_THE_VIEWPORT,
        "rows tiling the viewport at the end",
    );

    // Remembered across a reload (the address still holds the selected line);
    // `w` again unwraps.
    assert_eq!(
        browser.js("return location.hash"),
        json!(format!("#L{long}"))
    );
    browser.js("location.reload()");
    browser.wait(
        &format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{long}\"]'); return r && r.getBoundingClientRect().height >= 60"),
        "still wrapped after a reload",
    );
    assert_eq!(
        browser.js("return document.querySelector('[data-testid=wrap-lines]').checked"),
        json!(true)
    );
    in_view(long, "the permalinked line after the reload");
    if let Ok(dir) = std::env::var("TASKLENS_SCREENSHOT_DIR") {
        browser.screenshot(&PathBuf::from(dir).join("wrapped.png"));
    }
    browser.click("[data-testid=wrap-lines]");
    browser.wait(
        &format!("const r = document.querySelector('[data-testid=log-row][data-seq=\"{long}\"]'); return r && r.getBoundingClientRect().height === 20"),
        "one line again",
    );
    in_view(long, "the permalinked line, unwrapped");
    browser.wait(
        ROWS_TILE_THE_VIEWPORT,
        "rows tiling the viewport, unwrapped",
    );
}
