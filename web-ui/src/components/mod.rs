//! Pieces the pages share.

pub mod error_strip;
pub mod log_panel;
pub mod log_row;
pub mod run_form;
pub mod shortcuts;
pub mod status;
