//! Pieces the pages share.

pub mod log_panel;
pub mod log_row;
pub mod run_form;
pub mod status;
