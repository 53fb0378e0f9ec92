//! The media port's socket: batched receive (recvmmsg, and UDP GRO where the kernel offers
//! it, through quinn-udp) into buffers owned by the worker, and batched sends (sendmmsg) of the
//! protected packets of one routing round, each to its own destination.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

/// Datagrams read per receive call.
const BATCH: usize = 32;

/// Bytes per receive buffer: with GRO one buffer can hold many coalesced datagrams of one
/// sender.
const BUFFER_LEN: usize = 64 * 1024;

/// Receive buffers and what the last receive put into them, reused across calls.
pub struct RecvBatch {
    buffers: [Box<[u8]>; BATCH],
    meta: [RecvMeta; BATCH],
    /// (buffer, offset, length, source) of each datagram of the last receive.
    datagrams: Vec<(usize, usize, usize, SocketAddr)>,
}

impl RecvBatch {
    pub fn new() -> Self {
        RecvBatch {
            buffers: std::array::from_fn(|_| vec![0u8; BUFFER_LEN].into_boxed_slice()),
            meta: [RecvMeta::default(); BATCH],
            datagrams: Vec::with_capacity(BATCH * 4),
        }
    }

    /// Datagrams from the last receive.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// The `index`th datagram of the last receive, mutable so it can be unprotected in place.
    pub fn datagram_mut(&mut self, index: usize) -> Option<(SocketAddr, &mut [u8])> {
        let &(buffer, offset, len, source) = self.datagrams.get(index)?;
        let bytes = self
            .buffers
            .get_mut(buffer)?
            .get_mut(offset..offset + len)?;
        Some((source, bytes))
    }
}

/// Datagrams per sendmmsg call.
const SEND_BATCH: usize = 64;

/// The worker's socket on the media port.
pub struct BatchSocket {
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    send_errors: u64,
    /// Destinations of the datagrams queued for the next `sendmmsg`, as socket addresses.
    send_addresses: Vec<socket2::SockAddr>,
}

impl BatchSocket {
    pub fn new(socket: mio::net::UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&socket).into())?;
        // Bursts of video to many subscribers need room in the kernel's queues.
        let _ = state.set_send_buffer_size((&socket).into(), 4 * 1024 * 1024);
        let _ = state.set_recv_buffer_size((&socket).into(), 4 * 1024 * 1024);
        Ok(BatchSocket {
            socket,
            state,
            send_errors: 0,
            send_addresses: Vec::with_capacity(SEND_BATCH),
        })
    }

    /// Reads up to a batch of datagrams; returns how many arrived (0 never: would-block is
    /// an error of kind `WouldBlock`).
    pub fn recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.datagrams.clear();
        let mut slices = batch
            .buffers
            .each_mut()
            .map(|buffer| IoSliceMut::new(&mut buffer[..]));
        let count = self
            .state
            .recv((&self.socket).into(), &mut slices, &mut batch.meta)?;
        for (buffer, meta) in batch.meta.iter().take(count).enumerate() {
            if meta.len == 0 {
                // An empty datagram is still a datagram: it is counted and dropped downstream.
                batch.datagrams.push((buffer, 0, 0, meta.addr));
                continue;
            }
            let stride = meta.stride.max(1);
            let mut offset = 0;
            while offset < meta.len {
                let len = stride.min(meta.len - offset);
                batch.datagrams.push((buffer, offset, len, meta.addr));
                offset += len;
            }
        }
        Ok(batch.datagrams.len())
    }

    /// Sends one datagram. Send errors concern one peer and are counted, not returned.
    pub fn send(&mut self, destination: SocketAddr, contents: &[u8]) {
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        };
        if self
            .state
            .try_send((&self.socket).into(), &transmit)
            .is_err()
        {
            self.send_errors += 1;
        }
    }

    /// Sends every `(destination, datagram)` with as few system calls as possible
    /// (`sendmmsg`, up to 64 datagrams a call). A datagram the kernel refuses is counted and
    /// skipped; the rest of the batch still goes out.
    pub fn send_batch<'a>(&mut self, datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>) {
        let mut datagrams = datagrams.peekable();
        let mut chunk: [(usize, *const u8); SEND_BATCH] = [(0, std::ptr::null()); SEND_BATCH];
        while datagrams.peek().is_some() {
            self.send_addresses.clear();
            let mut count = 0;
            for (slot, (destination, bytes)) in chunk.iter_mut().zip(datagrams.by_ref()) {
                *slot = (bytes.len(), bytes.as_ptr());
                self.send_addresses.push(destination.into());
                count += 1;
                if count == SEND_BATCH {
                    break;
                }
            }
            let mut sent = 0;
            while sent < count {
                match self.sendmmsg(&chunk[sent..count], sent) {
                    Ok(0) => break,
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // The first datagram of the rest failed (e.g. an unreachable peer, or a
                        // full socket buffer): count it and go on with the others.
                        self.send_errors += 1;
                        sent += 1;
                    }
                }
            }
        }
    }

    /// One `sendmmsg` call for `datagrams` (length and start of each), whose destinations are
    /// `self.send_addresses[first..]`.
    #[allow(unsafe_code)] // The system call; see the SAFETY comments.
    fn sendmmsg(&self, datagrams: &[(usize, *const u8)], first: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let count = datagrams.len().min(SEND_BATCH);
        // SAFETY: iovec and mmsghdr are plain C structs for which all-zero bytes are valid.
        let mut iovecs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        for (index, &(len, start)) in datagrams.iter().take(count).enumerate() {
            let (Some(iovec), Some(header), Some(address)) = (
                iovecs.get_mut(index),
                headers.get_mut(index),
                self.send_addresses.get(first + index),
            ) else {
                return Ok(0);
            };
            iovec.iov_base = start as *mut libc::c_void;
            iovec.iov_len = len;
            header.msg_hdr.msg_name = address.as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = address.len();
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers[..count]` point at `iovecs` and at addresses in `send_addresses`,
        // and each iovec at the caller's datagram bytes; all of them outlive the call, and the
        // kernel only reads through these pointers (it writes `msg_len`, which we own).
        let sent = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                headers.as_mut_ptr(),
                count as libc::c_uint,
                0,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }
}

/// Binds a non-blocking UDP socket with SO_REUSEPORT, so that every worker can own a socket
/// on the one media port.
pub fn bind_reuse_port(address: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

// What the bare forwarder (benches/) needs of these types besides their methods: it measures
// the physical limit with this same socket code.

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Whether the last receive brought no datagram.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("datagrams", &self.datagrams.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for BatchSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSocket")
            .field("socket", &self.socket)
            .field("send_errors", &self.send_errors)
            .finish_non_exhaustive()
    }
}
