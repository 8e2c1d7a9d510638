//! # vfu-dump
//!
//! The library behind the `vfu-dump` command: reading and writing captures of vfio-user and VDUSE
//! sessions ([`capture`]).

pub mod capture;
pub mod render;
pub mod cli;
pub mod convert;
pub mod read;
pub mod stats;
pub mod validate_cli;
pub mod vduse_render;
pub mod validate;
pub mod proxy;
pub mod dissector;
