//! Log reads over REST: every filter alone and combined, against the record set the
//! synthetic plugin is specified to produce; counts; export.

use actix_web::http::StatusCode;
use protocol::{LogEntry, LogLevel, SourceCount, TaskId, Timestamp};
use testkit::backends;

use crate::helpers::{assert_ascending, spawn_app};

const COUNT: u64 = 2000;
const SOURCES: [&str; 3] = ["plugin", "superset_api", "system"];

/// The synthetic contract: record i has source SOURCES[i % 3], level [D, I, W, E][i % 4],
/// message `synthetic record {i}`, metadata {"i": i, "dashboard_id": i % 10}; the
/// default INFO gate drops the DEBUG ones.
fn expected(keep: impl Fn(u64) -> bool) -> Vec<String> {
    (0..COUNT)
        .filter(|i| i % 4 != 0)
        .filter(|i| keep(*i))
        .map(|i| format!("synthetic record {i}"))
        .collect()
}

/// Which synthetic record numbers a filter should keep.
type Keep = Box<dyn Fn(u64) -> bool>;

/// The seqs of a `format=bits` index: the first seq, then a bit per seq from it.
fn bits_to_seqs(body: &[u8]) -> Vec<u64> {
    let Some((first, bits)) = body.split_first_chunk::<4>() else {
        assert!(body.is_empty(), "a body of 1 to 3 bytes: {body:?}");
        return Vec::new();
    };
    let first = u64::from(u32::from_le_bytes(*first));
    assert_ne!(bits.last(), Some(&0), "bits end at the last seq's byte");
    assert_eq!(
        bits.first().map(|b| b & 1),
        Some(1),
        "bits start at the first seq"
    );
    (0..bits.len() as u64 * 8)
        .filter(|i| bits[(i / 8) as usize] & (1 << (i % 8)) != 0)
        .map(|i| first + i)
        .collect()
}

fn messages(entries: &[LogEntry]) -> Vec<String> {
    entries.iter().map(|e| e.message().to_owned()).collect()
}

#[actix_rt::test]
async fn every_filter_alone_and_combined_returns_exactly_the_expected_records() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let task = app
            .run_task("synthetic", serde_json::json!({"count": COUNT}))
            .await;
        let starts = |i: u64, p: &str| i.to_string().starts_with(p);
        let cases: Vec<(&str, Keep)> = vec![
            ("", Box::new(|_| true)),
            ("level=INFO", Box::new(|_| true)),
            ("level=warning", Box::new(|i| i % 4 >= 2)),
            ("level=WARN", Box::new(|i| i % 4 >= 2)),
            ("level=ERROR", Box::new(|i| i % 4 == 3)),
            ("source=superset_api", Box::new(|i| i % 3 == 1)),
            ("source=plugin,system", Box::new(|i| i % 3 != 1)),
            ("source=plugin&source=system", Box::new(|i| i % 3 != 1)),
            ("source=nobody", Box::new(|_| false)),
            ("q=record%201", Box::new(move |i| starts(i, "1"))),
            ("q=RECORD%2019", Box::new(move |i| starts(i, "19"))),
            (
                "re=%5Esynthetic%20record%20%5Cd*7%24",
                Box::new(|i| i % 10 == 7),
            ),
            ("meta.dashboard_id=5", Box::new(|i| i % 10 == 5)),
            ("meta.i=123", Box::new(|i| i == 123)),
            ("meta.i=123&meta.dashboard_id=4", Box::new(|_| false)),
            (
                "level=ERROR&source=superset_api&meta.dashboard_id=3",
                Box::new(|i| i % 4 == 3 && i % 3 == 1 && i % 10 == 3),
            ),
            (
                "level=WARNING&source=superset_api",
                Box::new(|i| i % 4 >= 2 && i % 3 == 1),
            ),
            (
                "level=INFO&q=record%201&source=system",
                Box::new(move |i| i % 3 == 2 && starts(i, "1")),
            ),
            (
                "re=1%24&meta.dashboard_id=1&level=ERROR",
                Box::new(|i| i % 10 == 1 && i % 4 == 3),
            ),
        ];
        for (query, keep) in cases {
            let got = app.all_logs(task.id, query).await;
            assert_ascending(&got);
            assert_eq!(messages(&got), expected(keep), "{backend}: ?{query}");
            // The console's index holds exactly the same records.
            let (status, body, headers) = app
                .request(
                    awc::http::Method::GET,
                    &format!("/api/tasks/{}/logs/index?{query}", task.id),
                    Some(&app.viewer),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            let seqs: Vec<u64> = body
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
                .collect();
            assert_eq!(
                seqs,
                got.iter().map(|e| e.seq).collect::<Vec<_>>(),
                "{backend}: index ?{query}"
            );
            // As runs: the same seqs, and the same count.
            let (status, body, runs_headers) = app
                .request(
                    awc::http::Method::GET,
                    &format!("/api/tasks/{}/logs/index?format=runs&{query}", task.id),
                    Some(&app.viewer),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            let ends: Vec<u64> = body
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
                .collect();
            let expanded: Vec<u64> = ends.chunks(2).flat_map(|r| r[0]..=r[1]).collect();
            assert_eq!(expanded, seqs, "{backend}: runs ?{query}");
            assert!(
                ends.chunks(2)
                    .collect::<Vec<_>>()
                    .windows(2)
                    .all(|w| w[0][1] + 1 < w[1][0]),
                "runs ascend and never touch: {ends:?}"
            );
            assert_eq!(
                runs_headers.get("x-total-count"),
                headers.get("x-total-count")
            );
            // As bits, and as whichever of the two is smaller: the same seqs.
            let mut sizes = vec![body.len()];
            for format in ["bits", "auto"] {
                let (status, body, shaped) = app
                    .request(
                        awc::http::Method::GET,
                        &format!("/api/tasks/{}/logs/index?format={format}&{query}", task.id),
                        Some(&app.viewer),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK);
                let shape = shaped.get("x-index-format").unwrap().to_str().unwrap();
                let decoded = match shape {
                    "bits" => bits_to_seqs(&body),
                    "runs" if format == "auto" => {
                        let ends: Vec<u64> = body
                            .chunks(4)
                            .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
                            .collect();
                        ends.chunks(2).flat_map(|r| r[0]..=r[1]).collect()
                    }
                    other => panic!("format={format} answered {other}"),
                };
                assert_eq!(decoded, seqs, "{backend}: {format} ?{query}");
                assert_eq!(shaped.get("x-total-count"), headers.get("x-total-count"));
                sizes.push(body.len());
            }
            assert_eq!(
                sizes[2],
                sizes[0].min(sizes[1]),
                "auto is the smaller ?{query}"
            );
            assert_eq!(
                headers.get("x-total-count").unwrap().to_str().unwrap(),
                got.len().to_string()
            );
        }

        // since/until select by the stored timestamps.
        let all = app.all_logs(task.id, "").await;
        let (from, to) = (all[100].timestamp, all[900].timestamp);
        let query = format!("since={from}&until={to}")
            .replace(':', "%3A")
            .replace('+', "%2B");
        let got = app.all_logs(task.id, &query).await;
        let want: Vec<_> = all
            .iter()
            .filter(|e| e.timestamp >= from && e.timestamp < to)
            .cloned()
            .collect();
        assert_eq!(got, want);
        assert!(!got.is_empty());

        // One page: limit, next_after_seq and has_more.
        let (status, page) = app
            .get(&format!(
                "/api/tasks/{}/logs?source=system&limit=10",
                task.id
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["logs"].as_array().unwrap().len(), 10);
        assert_eq!(page["has_more"], true);
        assert_eq!(page["next_after_seq"], page["logs"][9]["seq"]);
        // The last records, oldest first.
        let (_, tail) = app
            .get(&format!(
                "/api/tasks/{}/logs?before_seq=99999999&limit=3",
                task.id
            ))
            .await;
        let tail: Vec<LogEntry> = serde_json::from_value(tail["logs"].clone()).unwrap();
        assert_eq!(
            messages(&tail),
            [
                "synthetic record 1997",
                "synthetic record 1998",
                "synthetic record 1999"
            ]
        );
    }
}

#[actix_rt::test]
async fn source_counts_match_the_records() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let task = app
            .run_task("synthetic", serde_json::json!({"count": COUNT}))
            .await;
        let (status, body) = app
            .get_as(&app.viewer, &format!("/api/tasks/{}/logs/sources", task.id))
            .await;
        assert_eq!(status, StatusCode::OK);
        let counts: Vec<SourceCount> = serde_json::from_value(body).unwrap();
        assert_eq!(
            counts.iter().map(|c| c.source.as_str()).collect::<Vec<_>>(),
            SOURCES
        );
        for (n, count) in counts.iter().enumerate() {
            for level in [LogLevel::Info, LogLevel::Warning, LogLevel::Error] {
                let want = (0..COUNT)
                    .filter(|i| i % 3 == n as u64 && i % 4 == level.as_i16() as u64)
                    .count() as u64;
                assert_eq!(
                    count.levels.get(&level).copied().unwrap_or(0),
                    want,
                    "{backend} {} {level}",
                    count.source
                );
            }
            assert!(!count.levels.contains_key(&LogLevel::Debug));
            assert_eq!(count.count, count.levels.values().sum::<u64>());
        }
    }
}

#[actix_rt::test]
async fn the_whole_filtered_log_exports_as_ndjson_and_text() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 12000}))
        .await;
    let want = app.all_logs(task.id, "level=ERROR&source=plugin").await;
    let (status, body, headers) = app
        .request(
            awc::http::Method::GET,
            &format!(
                "/api/tasks/{}/logs/export?level=ERROR&source=plugin",
                task.id
            ),
            Some(&app.viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .contains(".ndjson"));
    let lines: Vec<LogEntry> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, want);
    assert_eq!(lines.len(), 1000);

    let (status, body, _) = app
        .request(
            awc::http::Method::GET,
            &format!(
                "/api/tasks/{}/logs/export?format=text&q=record%2011999",
                task.id
            ),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(
        text.contains("ERROR   [system] synthetic record 11999 {\"i\":11999,\"dashboard_id\":9}"),
        "{text}"
    );
}

/// `n` clients that ask for an export of `task`, read its first bytes, then stop
/// reading.
fn stalled_exports(
    app: &crate::helpers::TestApp,
    task: protocol::TaskId,
    n: usize,
) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    (0..n)
        .map(|_| {
            let mut socket = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
            write!(
                socket,
                "GET /api/tasks/{task}/logs/export HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
                app.viewer
            )
            .unwrap();
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let mut first = [0u8; 12];
            socket.read_exact(&mut first).unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            socket
        })
        .collect()
}

/// Exports that are downloaded slowly (or not at all) hold no database capacity:
/// the console's index still answers at once. Beyond the exports allowed at once a
/// new one gets 503 with Retry-After, never an indefinite wait.
#[actix_rt::test]
async fn stalled_exports_never_block_the_index() {
    let app = spawn_app("sqlite").await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 200_000}))
        .await;
    let stalled = stalled_exports(&app, task.id, 4);
    let (status, body, _) = app
        .request(
            awc::http::Method::GET,
            &format!("/api/tasks/{}/logs/index", task.id),
            Some(&app.viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 150_000 * 4);
    let (status, body, headers) = app
        .request(
            awc::http::Method::GET,
            &format!("/api/tasks/{}/logs/export", task.id),
            Some(&app.viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8_lossy(&body).contains("exports are streaming"));
    assert!(headers.contains_key("retry-after"));
    drop(stalled);
}

/// Downloads that stop reading cannot hold the export places: past
/// `export_stall_secs` without reading, they are disconnected and a new export
/// gets a place.
#[actix_rt::test]
async fn exports_that_stop_reading_are_disconnected() {
    use std::io::Read;

    let app = crate::helpers::spawn_app_with(
        testkit::FreshDb::new("sqlite"),
        crate::helpers::Tweaks {
            export_stall: std::time::Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    let task = app
        .run_task("synthetic", serde_json::json!({"count": 200_000}))
        .await;
    let stalled = stalled_exports(&app, task.id, 4);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, _, _) = app
            .request(
                awc::http::Method::GET,
                &format!("/api/tasks/{}/logs/export?level=ERROR", task.id),
                Some(&app.viewer),
                None,
            )
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            std::time::Instant::now() < deadline,
            "the places never came back"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Each stalled download, read now, ends: what was sent, then the end.
    for mut socket in stalled {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        let end = socket.read_to_end(&mut rest);
        assert!(
            end.is_ok()
                || end
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{end:?}"
        );
    }
}

/// `GET /api/logs/search`: hits of several tasks, newest task first and latest
/// record first, with their task and plugin; cursor pages join up to the one big
/// page; viewers and admins get the same; task conditions narrow it; a deleted task
/// leaves it.
#[actix_rt::test]
async fn search_across_tasks_finds_records_of_every_task_in_order() {
    for backend in backends() {
        let app = spawn_app(backend).await;
        let mut tasks = Vec::new();
        for count in [300u64, 500, 400] {
            tasks.push(
                app.run_task("synthetic", serde_json::json!({"count": count}))
                    .await,
            );
        }
        let (status, one) = app.get("/api/logs/search?q=RECORD%2021&limit=1000").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {one}");
        let hits: Vec<protocol::SearchHit> = serde_json::from_value(one["hits"].clone()).unwrap();
        assert_eq!(one["has_more"], false, "{backend}");
        let mut want = Vec::new();
        for task in tasks.iter().rev() {
            let count = task.params["count"].as_u64().unwrap();
            let mut seqs: Vec<String> = (0..count)
                .filter(|i| i % 4 != 0 && i.to_string().starts_with("21"))
                .map(|i| format!("synthetic record {i}"))
                .collect();
            seqs.reverse();
            want.extend(seqs.into_iter().map(|m| (task.id, m)));
        }
        let got: Vec<(TaskId, String)> = hits
            .iter()
            .map(|h| (h.task_id, h.log.message().to_owned()))
            .collect();
        assert_eq!(got, want, "{backend}");
        assert!(hits.iter().all(|h| h.plugin == "synthetic"));

        // Pages of 4 add up to the same, for a viewer too.
        let mut paged = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = app
                .get_as(
                    &app.viewer,
                    &format!("/api/logs/search?q=RECORD%2021&limit=4{cursor}"),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{backend}: {page}");
            let hits: Vec<protocol::SearchHit> =
                serde_json::from_value(page["hits"].clone()).unwrap();
            assert!(
                !hits.is_empty() || page["has_more"] == false,
                "{backend}: {page}"
            );
            paged.extend(hits);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(paged, hits, "{backend}");

        // Task conditions: the oldest task only; then a status no task has.
        let oldest = &tasks[0];
        let until = oldest.created_at.as_micros() + 1;
        let until = Timestamp(until).to_string();
        let (_, page) = app
            .get(&format!("/api/logs/search?q=RECORD%2021&created_until={}&status=success,failed&plugin=synthetic", urlencode(&until)))
            .await;
        let only: Vec<protocol::SearchHit> = serde_json::from_value(page["hits"].clone()).unwrap();
        assert!(
            !only.is_empty() && only.iter().all(|h| h.task_id == oldest.id),
            "{backend}: {page}"
        );
        let (_, page) = app
            .get("/api/logs/search?q=RECORD%2021&status=queued")
            .await;
        assert_eq!(page["hits"], serde_json::json!([]), "{backend}");

        // A deleted task's records leave the search.
        let (status, _) = app
            .delete_as(&app.admin, &format!("/api/tasks/{}", tasks[2].id))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, page) = app.get("/api/logs/search?q=RECORD%2021&limit=1000").await;
        let left: Vec<protocol::SearchHit> = serde_json::from_value(page["hits"].clone()).unwrap();
        assert!(
            !left.is_empty() && left.iter().all(|h| h.task_id != tasks[2].id),
            "{backend}"
        );
    }
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}
