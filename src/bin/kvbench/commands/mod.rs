//! The subcommands, each composed from the parts below it: load
//! generation (`load`), measurement (`measure`), the queueing model
//! (`model`), reporting (`report`), the live view (`view`) and the servers
//! under test (`servers`).

pub mod compare;
pub mod run;
pub mod sweep;
pub mod top;
