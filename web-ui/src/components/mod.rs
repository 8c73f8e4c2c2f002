//! Pieces the pages share.

pub mod error_strip;
pub mod log_row;
pub mod log_view;
pub mod param_fields;
pub mod run_form;
pub mod shortcuts;
pub mod status;
pub mod task_filters;
