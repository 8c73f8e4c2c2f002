//! One component per route.

pub mod login;
pub mod nodes;
pub mod search;
pub mod settings;
pub mod task;
pub mod tasks;
