//! # vfu-dump
//!
//! The library behind the `vfu-dump` command: reading and writing captures of vfio-user and VDUSE
//! sessions ([`capture`]).

pub mod capture;
pub mod cli;
pub mod convert;
pub mod dissector;
pub mod proxy;
pub mod read;
pub mod render;
pub mod replay;
pub mod stats;
pub mod validate;
pub mod validate_cli;
pub mod vduse_render;
