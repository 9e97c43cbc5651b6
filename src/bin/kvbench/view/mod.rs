//! `kvbench top`'s view of a running server: [`watch`] works out totals,
//! rates and history from its readings; [`screen`] draws them full-screen
//! with ratatui, [`plain`] writes them as text; [`terminal`] takes the
//! terminal over and gives it back; [`format`] writes the figures alike in
//! both.

pub mod format;
pub mod plain;
pub mod screen;
pub mod terminal;
pub mod watch;
