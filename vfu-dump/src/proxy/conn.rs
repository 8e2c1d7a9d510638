//! Connection threads: a client's connection to the server, its two forwarding directions, and the
//! relays of twin sockets.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use vfu_codec::Direction;

use super::ctx::Ctx;
use super::event::{NoteKind, RecEvent};
use super::forward::Forwarder;
use super::sock;

/// Serves one accepted client: connects to the server, forwards both ways, cleans up.
pub(crate) fn connection(ctx: &Arc<Ctx>, conn: u32, client: OwnedFd, tx: SyncSender<RecEvent>) {
    let server = match sock::connect(&ctx.server, ctx.connect_timeout, &ctx.stopping) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(RecEvent::Note {
                conn,
                kind: NoteKind::ConnectFailed,
                text: format!(
                    "cannot connect to the server {} ({e}, after {:.1} s); client connection closed",
                    ctx.server.display(),
                    ctx.connect_timeout.as_secs_f64()
                ),
            });
            let _ = tx.send(RecEvent::Close { conn });
            ctx.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    };
    // The send buffers stay as the system made them (net.core.wmem_default), as a peer's are: the
    // messages sent whole are those a direct sender can queue whole (see `Forwarder::limit`).
    let client = Arc::new(client);
    let server = Arc::new(server);
    ctx.add_sockets(conn, &[&client, &server]);
    let s2c = Forwarder::new(
        ctx,
        tx.clone(),
        conn,
        Direction::ServerToClient,
        &server,
        &client,
        Some(start_twin),
    );
    let other = std::thread::Builder::new()
        .name(format!("vfu-proxy-c{conn}-s2c"))
        .stack_size(256 << 10)
        .spawn(move || s2c.run());
    let mut twins = Vec::new();
    match other {
        Ok(h) => {
            let c2s = Forwarder::new(
                ctx,
                tx.clone(),
                conn,
                Direction::ClientToServer,
                &client,
                &server,
                None,
            );
            twins.extend(c2s.run());
            if let Ok(t) = h.join() {
                twins.extend(t);
            }
        }
        Err(e) => {
            let _ = tx.send(RecEvent::Note {
                conn,
                kind: NoteKind::Info,
                text: format!("cannot start a thread ({e}); connection closed"),
            });
        }
    }
    for t in twins {
        let _ = t.join();
    }
    ctx.remove_sockets(conn);
    let _ = tx.send(RecEvent::Close { conn });
    ctx.active.fetch_sub(1, Ordering::SeqCst);
}

/// Relays a twin socket: `server` is the end the server sent, `proxy` our end of the pair whose other
/// end the client got.
pub(super) fn start_twin(
    ctx: &Arc<Ctx>,
    main: u32,
    server: OwnedFd,
    proxy: OwnedFd,
) -> Option<JoinHandle<()>> {
    let (conn, tx) = ctx.open(Some(main))?;
    let _ = tx.send(RecEvent::Note {
        conn: main,
        kind: NoteKind::Info,
        text: format!(
            "twin socket: the client gets the proxy's socket; relayed as connection {conn}"
        ),
    });
    let server = Arc::new(server);
    let proxy = Arc::new(proxy);
    ctx.add_sockets(conn, &[&server, &proxy]);
    let c = Arc::clone(ctx);
    std::thread::Builder::new()
        .name(format!("vfu-proxy-c{conn}-twin"))
        .stack_size(256 << 10)
        .spawn(move || {
            let s2c = Forwarder::new(
                &c,
                tx.clone(),
                conn,
                Direction::ServerToClient,
                &server,
                &proxy,
                None,
            );
            let h = std::thread::Builder::new()
                .name(format!("vfu-proxy-c{conn}-s2c"))
                .stack_size(256 << 10)
                .spawn(move || s2c.run());
            if let Ok(h) = h {
                let c2s = Forwarder::new(
                    &c,
                    tx.clone(),
                    conn,
                    Direction::ClientToServer,
                    &proxy,
                    &server,
                    None,
                );
                let _ = c2s.run();
                let _ = h.join();
            }
            c.remove_sockets(conn);
            let _ = tx.send(RecEvent::Close { conn });
        })
        .ok()
}
