//! `synthetic`: `count` deterministic records at `rate` records per second (0 means
//! as fast as possible). Record `i` (0-based) has source `sources[i % len]`, level
//! `[DEBUG, INFO, WARNING, ERROR][i % 4]`, message `synthetic record {i}` and metadata
//! `{"i": i, "dashboard_id": i % 10}`. Records below `task_log_level` are not kept
//! (so at the default INFO, every fourth record, the DEBUG one, is absent).
//!
//! `error_every` (default 0: the pattern above) makes record `i` an ERROR only when
//! `i % error_every == error_every - 1`, the others cycling DEBUG, INFO, WARNING;
//! `group_every` (default 0: no groups) opens a group `step N` at every record `i`
//! with `i % group_every == 0`, closing the one before: logs with sections, some
//! holding an ERROR and most not. `tag_every` (default 0: none) adds `"tag": "rare"`
//! to the metadata of record `i` when `i % tag_every == 0`: a value as rare as wanted.
//!
//! For benchmarks: `work` (default 0) does that many rounds of hashing a 64-byte
//! buffer per record, real CPU work whose digest ends up in the result; `discard`
//! (default false) does the same work and logs nothing, neither formatting nor
//! serialising a record: the baseline that shows what logging costs the task, from
//! the formatting of a record to its storage. Records are written with
//! `TaskLogger::log_fmt_with`, the message formatted and the metadata serialised
//! straight into the record's one allocation.

use std::time::{Duration, Instant};

use protocol::LogLevel;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plugin::{BlockingPlugin, Describe, PluginError, TaskContext};

pub struct Synthetic;

pub const DEFAULT_SOURCES: [&str; 3] = ["plugin", "superset_api", "system"];
const MAX_COUNT: u64 = 100_000_000;
const MAX_WORK: u64 = 1_000_000;

/// `synthetic`'s params; every one is optional.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticParams {
    /// Records to emit (at most 100,000,000).
    pub count: u64,
    /// Records per second; 0 is as fast as possible.
    pub rate: f64,
    /// Sources, used in turn.
    pub sources: Vec<String>,
    /// Rounds of hashing per record (at most 1,000,000), for benchmarks.
    pub work: u64,
    /// Do the work but log nothing, for benchmarks.
    pub discard: bool,
    /// Records per group (`step 0`, `step 1`, …); 0 is no groups.
    pub group_every: u64,
    /// One ERROR every this many records, the rest DEBUG, INFO, WARNING in turn;
    /// 0 is every fourth record.
    pub error_every: u64,
    /// `"tag": "rare"` in the metadata of one record every this many (the first
    /// included); 0 is none.
    pub tag_every: u64,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        SyntheticParams {
            count: 100,
            rate: 0.0,
            sources: DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect(),
            work: 0,
            discard: false,
            group_every: 0,
            error_every: 0,
            tag_every: 0,
        }
    }
}

impl SyntheticParams {
    fn check(&self) -> Result<(), String> {
        if self.count > MAX_COUNT {
            return Err(format!(
                "count must be at most {MAX_COUNT}, not {}",
                self.count
            ));
        }
        if self.work > MAX_WORK {
            return Err(format!(
                "work must be at most {MAX_WORK}, not {}",
                self.work
            ));
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(format!("rate must be a number ≥ 0, not {}", self.rate));
        }
        if self.sources.is_empty() {
            return Err("sources must name at least one source".into());
        }
        if self.sources.iter().any(|s| s.trim().is_empty()) {
            return Err("sources must be non-empty strings".into());
        }
        Ok(())
    }
}

/// The metadata of record `i`, serialised without an intermediate map.
#[derive(Serialize)]
struct Meta {
    i: u64,
    dashboard_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
}

impl Meta {
    fn of(i: u64, p: &SyntheticParams) -> Meta {
        Meta {
            i,
            dashboard_id: i % 10,
            tag: (p.tag_every > 0 && i.is_multiple_of(p.tag_every)).then_some("rare"),
        }
    }
}

impl Describe for Synthetic {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn description(&self) -> &str {
        "Emits `count` deterministic records at `rate` records/s (0 = unthrottled) from `sources`."
    }

    fn example_params(&self) -> serde_json::Value {
        serde_json::json!({"count": 1000, "rate": 200, "sources": DEFAULT_SOURCES})
    }
}

impl BlockingPlugin for Synthetic {
    type Params = SyntheticParams;

    fn check(&self, params: &SyntheticParams) -> Result<(), String> {
        params.check()
    }

    fn run(&self, ctx: TaskContext, p: SyntheticParams) -> Result<serde_json::Value, PluginError> {
        let loggers: Vec<_> = p
            .sources
            .iter()
            .map(|s| ctx.logger.with_source(s))
            .collect();
        let started = Instant::now();
        let mut digest = [0u8; 64];
        let mut group = None;
        for i in 0..p.count {
            if ctx.cancel.is_cancelled() {
                return Err(PluginError::Cancelled);
            }
            if p.rate > 0.0 {
                let due = Duration::from_secs_f64(i as f64 / p.rate);
                let elapsed = started.elapsed();
                if due > elapsed + Duration::from_millis(1)
                    && ctx.cancel.wait_timeout(due - elapsed)
                {
                    return Err(PluginError::Cancelled);
                }
            }
            if p.work > 0 {
                digest[..8].copy_from_slice(&i.to_le_bytes());
                for _ in 0..p.work {
                    digest = hash_round(&digest);
                }
            }
            if p.discard {
                continue;
            }
            if p.group_every > 0 && i % p.group_every == 0 {
                // The step before closes before the next one opens.
                drop(group.take());
                group = Some(ctx.logger.group(&format!("step {}", i / p.group_every)));
            }
            let level = match p.error_every {
                0 => LogLevel::ALL[(i % 4) as usize],
                every if i % every == every - 1 => LogLevel::Error,
                _ => LogLevel::ALL[(i % 3) as usize],
            };
            let logger = &loggers[(i % loggers.len() as u64) as usize];
            logger.log_fmt_with(
                level,
                format_args!("synthetic record {i}"),
                &Meta::of(i, &p),
            );
        }
        if p.work > 0 {
            let check: u64 = digest.iter().map(|b| u64::from(*b)).sum();
            return Ok(serde_json::json!({ "records": p.count, "work_digest": check }));
        }
        Ok(serde_json::json!({ "records": p.count }))
    }
}

/// One round of a simple mixing hash over 64 bytes (FNV-1a lanes plus a rotate):
/// cheap, deterministic, and not something the optimiser can skip.
fn hash_round(block: &[u8; 64]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, b) in block.iter().enumerate() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3).rotate_left(5);
        out[i] = (h >> (i % 8 * 8)) as u8;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::erased::parse_params;

    fn parse(value: serde_json::Value) -> Result<SyntheticParams, String> {
        let p: SyntheticParams = parse_params(&value)?;
        p.check().map(|_| p)
    }

    #[test]
    fn params_default_and_validate() {
        let p = parse(serde_json::json!({})).unwrap();
        assert_eq!(p.count, 100);
        assert_eq!(p.rate, 0.0);
        assert_eq!(p.sources, DEFAULT_SOURCES);
        let p = parse(serde_json::json!({"count": 5, "rate": 2.5, "sources": ["a", "b"]})).unwrap();
        assert_eq!(
            (p.count, p.rate, p.sources),
            (5, 2.5, vec!["a".to_string(), "b".to_string()])
        );
        let unknown = parse(serde_json::json!({"cuont": 5})).unwrap_err();
        assert!(unknown.contains("unknown field `cuont`"), "{unknown}");
        let wrong = parse(serde_json::json!({"count": "many"})).unwrap_err();
        assert!(wrong.starts_with("count: invalid type"), "{wrong}");
        for bad in [
            serde_json::json!({"count": -1}),
            serde_json::json!({"count": 1.5}),
            serde_json::json!({"count": 1_000_000_000_000u64}),
            serde_json::json!({"rate": "fast"}),
            serde_json::json!({"rate": -1}),
            serde_json::json!({"sources": []}),
            serde_json::json!({"sources": [""]}),
            serde_json::json!({"sources": [1]}),
            serde_json::json!({"work": 2_000_000}),
            serde_json::json!({"tag_every": -1}),
            serde_json::json!({"tag_every": "often"}),
            serde_json::json!({"tag_every": 1.5}),
            serde_json::json!([1]),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_every_marks_one_record_in_that_many() {
        let meta = |i, tag_every| {
            let p = SyntheticParams {
                tag_every,
                ..SyntheticParams::default()
            };
            serde_json::to_value(Meta::of(i, &p)).unwrap()
        };
        assert_eq!(meta(3, 0), serde_json::json!({"i": 3, "dashboard_id": 3}));
        assert_eq!(meta(0, 0), serde_json::json!({"i": 0, "dashboard_id": 0}));
        let tagged: Vec<u64> = (0..3_000)
            .filter(|i| meta(*i, 1_000).get("tag").is_some())
            .collect();
        assert_eq!(tagged, [0, 1_000, 2_000]);
        assert_eq!(meta(2_000, 1_000)["tag"], "rare");
    }

    #[test]
    fn the_schema_names_every_param_and_refuses_others() {
        let schema = crate::plugin::erased::schema_of::<SyntheticParams>();
        let props = schema["properties"].as_object().unwrap();
        for key in [
            "count",
            "rate",
            "sources",
            "work",
            "discard",
            "group_every",
            "error_every",
            "tag_every",
        ] {
            assert!(props.contains_key(key), "{key} in {schema}");
        }
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    }
}
