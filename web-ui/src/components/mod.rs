//! Pieces the pages share.

pub mod error_strip;
pub mod log_row;
pub mod log_view;
pub mod run_form;
pub mod shortcuts;
pub mod status;
