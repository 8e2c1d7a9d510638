//! What every thread of a proxy shares: the configuration its threads need, the buffer pool, the
//! counts of connections, and the registry of sockets that a stop shuts down.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::event::RecEvent;
use super::pool::Pool;
use super::sock;

/// Connections and their sockets, for stopping.
pub(super) struct Registry {
    pub(super) next_id: u32,
    pub(super) sockets: HashMap<u32, Vec<Arc<OwnedFd>>>,
    pub(super) tx: Option<SyncSender<RecEvent>>,
}

/// What every thread shares.
pub(crate) struct Ctx {
    pub(super) server: PathBuf,
    /// Bulk transfer data may be spliced (no hex dump needs its bytes, and a capture, if there is
    /// one, takes them from the tee pipe).
    pub(crate) splice: bool,
    /// There is a capture: spliced data is duplicated into a tee pipe for the recorder.
    pub(crate) tee: bool,
    /// How many of a message's first bytes the capture keeps ([`PcapngWriter::with_snaplen`]'s
    /// cut, `u64::MAX` without one): spliced data past it is not teed, for the capture does not
    /// hold it.
    ///
    /// [`PcapngWriter::with_snaplen`]: crate::capture::PcapngWriter::with_snaplen
    pub(crate) tee_cap: u64,
    pub(super) connect_timeout: Duration,
    /// How long the client→server forwarder polls before it sleeps (zero: never).
    pub(crate) spin: Duration,
    /// Forwarders polling right now, and how many may (one processor fewer than the machine has).
    pub(crate) spinning: AtomicUsize,
    pub(crate) max_spinning: usize,
    pub(super) pool: Pool,
    pub(super) stopping: AtomicBool,
    pub(super) active: AtomicUsize,
    pub(super) registry: Mutex<Registry>,
}

impl Ctx {
    pub(super) fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers a new connection, announces it to the recorder (in number order, so numbers are
    /// capture interface ids) and returns its number and a channel to the recorder.
    pub(crate) fn open(&self, twin_of: Option<u32>) -> Option<(u32, SyncSender<RecEvent>)> {
        let mut r = self.registry();
        let tx = r.tx.clone()?;
        let conn = r.next_id;
        r.next_id += 1;
        let name = match twin_of {
            None => format!("vfio-user:{conn}:{}", self.server.display()),
            Some(m) => format!(
                "vfio-user:{conn}:{} (twin socket of connection {m})",
                self.server.display()
            ),
        };
        tx.send(RecEvent::Open {
            conn,
            name,
            twin_of,
        })
        .ok()?;
        Some((conn, tx))
    }

    /// Remembers a connection's sockets so that stopping can shut them down; when the proxy is
    /// already stopping, shuts them down at once.
    pub(crate) fn add_sockets(&self, conn: u32, socks: &[&Arc<OwnedFd>]) {
        let mut r = self.registry();
        if self.stopping.load(Ordering::SeqCst) {
            for s in socks {
                sock::shutdown(s.as_fd(), rustix::net::Shutdown::Both);
            }
        }
        r.sockets
            .entry(conn)
            .or_default()
            .extend(socks.iter().map(|s| Arc::clone(s)));
    }

    pub(crate) fn remove_sockets(&self, conn: u32) {
        self.registry().sockets.remove(&conn);
    }

    pub(super) fn shutdown_all(&self) {
        let r = self.registry();
        self.stopping.store(true, Ordering::SeqCst);
        for s in r.sockets.values().flatten() {
            sock::shutdown(s.as_fd(), rustix::net::Shutdown::Both);
        }
    }
}
