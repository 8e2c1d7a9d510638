//! # vfu-dump
//!
//! The library behind the `vfu-dump` command. Its layers, bottom up (`docs/architecture.md`):
//!
//! - [`capture`]: reading and writing captures of vfio-user and VDUSE sessions;
//!   [`validate`]: the protocol checker; [`render`]: text, `-v`, `-x` and JSON (VDUSE included);
//!   [`stats`]: `--stats`; [`options`]: the option groups subcommands share; [`error`];
//! - [`pipeline`]: sources of messages → one pipeline → outputs;
//! - [`proxy`], [`replay`], [`trace`], [`dissector`]: the proxy, the replay, the ptrace tracer and
//!   the Lua dissector generator;
//! - [`cmd`]: one module per subcommand, its options and its `run`.

pub mod capture;
pub mod cmd;
pub mod dissector;
pub mod error;
pub mod options;
pub mod pipeline;
pub mod proxy;
pub mod render;
pub mod replay;
pub mod stats;
pub mod trace;
pub mod validate;
