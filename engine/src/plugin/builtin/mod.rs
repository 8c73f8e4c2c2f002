//! The plugins every server offers.
//!
//! - [`shell`]: runs a command (admin only); output lines become records.
//! - [`synthetic`]: deterministic records at a chosen rate, for demos, tests and benchmarks.
//! - [`demo_sync`]: a realistic example of the plugin API (sources, metadata, belief_scope).
//! - [`legacy_backup`]: an example of the old `execute(params)` signature.

pub mod demo_sync;
pub mod legacy_backup;
pub mod shell;
pub mod synthetic;
