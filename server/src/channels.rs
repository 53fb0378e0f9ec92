//! The ways into the media workers: what a worker receives besides its own socket's datagrams
//! (commands from signaling, datagrams and TCP connections handed over by other workers),
//! the handle that sends it and wakes it, and what all workers share.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::{hand_over, tcp};
use media_plane::{Command, Reply, SfuError};

/// What a media worker receives besides its own socket's datagrams.
pub(crate) enum Inbound {
    /// A request from the signaling side, and where its reply goes.
    Command {
        command: Command,
        reply: oneshot::Sender<Reply>,
    },
    /// Send RTCP BYE to every peer, free the sessions and exit.
    Shutdown,
    /// Datagrams that another worker's socket received for this worker's sessions.
    Datagrams(hand_over::HandOverBatch),
    /// A batch this worker handed over, emptied, back for reuse.
    Recycle(hand_over::HandOverBatch),
    /// A TCP connection another worker accepted whose first check names this worker's
    /// session.
    TcpConnection(tcp::HandedConnection),
}

/// The way into one worker.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    pub(crate) inbound: mpsc::Sender<Inbound>,
    pub(crate) waker: mio::Waker,
}

impl WorkerHandle {
    pub(crate) fn send(&self, inbound: Inbound) -> Result<(), SfuError> {
        self.send_quietly(inbound)?;
        self.wake()
    }

    /// Queues without waking the worker: for what can wait until it wakes anyway.
    pub(crate) fn send_quietly(&self, inbound: Inbound) -> Result<(), SfuError> {
        self.inbound.send(inbound).map_err(|_| SfuError::Stopped)
    }

    pub(crate) fn wake(&self) -> Result<(), SfuError> {
        self.waker.wake().map_err(|_| SfuError::Stopped)
    }
}

/// What all workers share: the way into each other, and which worker owns each remote
/// address that passed an ICE check (written on validation and removal, read only when a
/// datagram lands on a worker that does not own its session and is not in that worker's
/// cache of the table).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) workers: Vec<WorkerHandle>,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<signaling::MediaEvent>,
    pub(crate) owners: std::sync::RwLock<std::collections::HashMap<SocketAddr, usize>>,
    /// Incremented on every change of `owners`, so that workers know when to drop their
    /// caches of it (one atomic load per receive round instead of a lock per datagram).
    pub(crate) owners_generation: AtomicU64,
}

impl Shared {
    /// Records that worker `owner` owns `address`.
    pub(crate) fn set_owner(&self, address: SocketAddr, owner: usize) {
        if let Ok(mut owners) = self.owners.write() {
            owners.insert(address, owner);
            self.owners_generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Forgets the owner of `address` if it is still `owner` (another worker may own it now).
    pub(crate) fn forget_owner(&self, address: SocketAddr, owner: usize) {
        if let Ok(mut owners) = self.owners.write()
            && owners.get(&address) == Some(&owner)
        {
            owners.remove(&address);
            self.owners_generation.fetch_add(1, Ordering::Release);
        }
    }
}
