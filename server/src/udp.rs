//! The media port's socket: batched receive (recvmmsg, and UDP GRO where the kernel offers
//! it, through quinn-udp) into buffers owned by the worker, and batched sends (sendmmsg) of the
//! protected packets of one routing round, each to its own destination, with runs of
//! equal-sized packets to one destination sent as one UDP GSO entry when that is on.

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

/// Entries (datagrams, or GSO runs of datagrams) per sendmmsg call.
const SEND_BATCH: usize = 64;

/// Datagrams per sendmmsg call, counting each segment of a GSO run.
const SEND_IOVECS: usize = 256;

/// Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more).
const MAX_SEGMENTS: usize = 64;

/// Most bytes in one GSO send: the payload of one IP datagram.
const MAX_GSO_BYTES: usize = 65_000;

/// Largest segment a run may have: what fits a 1500-byte MTU behind IPv6 and UDP headers.
/// The kernel refuses a GSO send whose segments exceed the route's MTU, where a single
/// datagram would merely be fragmented.
const MAX_SEGMENT_SIZE: usize = 1452;

/// Room for one control message carrying a `u16` (UDP_SEGMENT), 8-byte aligned.
type SegmentControl = [u64; 4];

/// One entry of a sendmmsg call: a datagram, or a run of datagrams to one destination that
/// the kernel segments (UDP GSO).
#[derive(Debug, Clone, Copy)]
struct SendEntry {
    destination: SocketAddr,
    /// Index of its first datagram in the call's iovecs.
    first: usize,
    segments: usize,
    /// Length of every segment but the last, which may be shorter.
    segment_size: usize,
    bytes: usize,
    /// A shorter segment ended the run.
    closed: bool,
}

/// The arrays of a `sendmmsg` call, kept between calls: zeroing 14 KiB of them for every call
/// cost more than preparing the call.
struct SendScratch {
    /// (length, start) of each datagram of the call, referenced by the entries.
    datagrams: [(usize, *const u8); SEND_IOVECS],
    iovecs: [libc::iovec; SEND_IOVECS],
    headers: [libc::mmsghdr; SEND_BATCH],
    controls: [SegmentControl; SEND_BATCH],
}

// SAFETY: the raw pointers in the scratch arrays are written before each `sendmmsg` call and
// read only during it; between calls they are stale values that nothing dereferences, so the
// arrays may move to another thread with their socket.
#[allow(unsafe_code)]
unsafe impl Send for SendScratch {}

impl SendScratch {
    fn new() -> Box<Self> {
        Box::new(SendScratch {
            datagrams: [(0, std::ptr::null()); SEND_IOVECS],
            // SAFETY: iovec and mmsghdr are plain C structs for which all-zero bytes are valid.
            #[allow(unsafe_code)]
            iovecs: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            #[allow(unsafe_code)]
            headers: unsafe { std::mem::zeroed() },
            controls: [[0; 4]; SEND_BATCH],
        })
    }
}

/// The worker's socket on the media port.
pub struct BatchSocket {
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    send_errors: u64,
    /// Whether runs of equal-sized datagrams to one destination go out as one GSO send.
    gso: bool,
    /// The entries of the next `sendmmsg` and their destinations as socket addresses.
    entries: Vec<SendEntry>,
    send_addresses: Vec<socket2::SockAddr>,
    scratch: Box<SendScratch>,
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
            gso: false,
            entries: Vec::with_capacity(SEND_BATCH),
            send_addresses: Vec::with_capacity(SEND_BATCH),
            scratch: SendScratch::new(),
        })
    }

    /// Turns UDP GSO on or off for [`BatchSocket::send_batch`]; it stays off where the
    /// kernel does not offer it. Returns whether it is on.
    pub fn set_gso(&mut self, enabled: bool) -> bool {
        self.gso = enabled && self.state.max_gso_segments() > 1;
        self.gso
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
    /// (`sendmmsg`, up to 64 entries a call). With GSO on, consecutive datagrams to one
    /// destination whose sizes are equal (the last may be shorter) become one entry that the
    /// kernel segments; callers that want this put each destination's datagrams together. A
    /// datagram the kernel refuses is counted and skipped; the rest of the batch still goes
    /// out. If the kernel refuses a GSO send, GSO is turned off and the run goes out as
    /// single datagrams.
    pub fn send_batch<'a>(&mut self, datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>) {
        let mut datagrams = datagrams.peekable();
        while datagrams.peek().is_some() {
            self.entries.clear();
            self.send_addresses.clear();
            let mut used = 0;
            while let Some(&(destination, bytes)) = datagrams.peek() {
                let Some(slot) = self.scratch.datagrams.get_mut(used) else {
                    break;
                };
                match plan_datagram(&mut self.entries, self.gso, destination, bytes.len(), used) {
                    None => break,
                    Some(Planned::NewEntry) => self.send_addresses.push(destination.into()),
                    Some(Planned::Segment) => {}
                }
                *slot = (bytes.len(), bytes.as_ptr());
                used += 1;
                datagrams.next();
            }
            self.send_entries();
        }
    }

    /// Sends `self.entries`, whose datagrams are in the scratch arrays, handling partial sends
    /// and errors.
    fn send_entries(&mut self) {
        let mut sent = 0;
        while sent < self.entries.len() {
            match self.sendmmsg(sent) {
                Ok(0) => {
                    // Nothing went out and nothing failed: count the rest as refused rather
                    // than spin.
                    let rest = self.entries.iter().skip(sent).map(|e| e.segments);
                    self.send_errors += rest.sum::<usize>() as u64;
                    break;
                }
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let Some(&entry) = self.entries.get(sent) else {
                        break;
                    };
                    if entry.segments > 1 && gso_refused(&e) {
                        // The kernel or the route cannot segment this run: send it one by
                        // one, and stop grouping when the device cannot segment at all.
                        if e.raw_os_error() != Some(libc::EINVAL) {
                            self.gso = false;
                        }
                        for index in entry.first..entry.first + entry.segments {
                            let Some(&(len, start)) = self.scratch.datagrams.get(index) else {
                                break;
                            };
                            // SAFETY: `start` and `len` describe a datagram of the caller's
                            // iterator, which outlives this call.
                            #[allow(unsafe_code)]
                            let bytes = unsafe { std::slice::from_raw_parts(start, len) };
                            self.send(entry.destination, bytes);
                        }
                    } else {
                        // The first entry of the rest failed (e.g. an unreachable peer, or a
                        // full socket buffer): count it and go on with the others.
                        self.send_errors += entry.segments as u64;
                    }
                    sent += 1;
                }
            }
        }
    }

    /// One `sendmmsg` call for `self.entries[first..]` (up to [`SEND_BATCH`]), whose datagrams
    /// are in the scratch arrays and destinations in `self.send_addresses`.
    #[allow(unsafe_code)] // The system call; see the SAFETY comments.
    fn sendmmsg(&mut self, first: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let entries = self.entries.get(first..).unwrap_or_default();
        let count = entries.len().min(SEND_BATCH);
        let SendScratch {
            datagrams,
            iovecs,
            headers,
            controls,
        } = &mut *self.scratch;
        for (index, entry) in entries.iter().take(count).enumerate() {
            let (Some(header), Some(control), Some(address), Some(datagrams), Some(iovs)) = (
                headers.get_mut(index),
                controls.get_mut(index),
                self.send_addresses.get(first + index),
                datagrams.get(entry.first..entry.first + entry.segments),
                iovecs.get_mut(entry.first..entry.first + entry.segments),
            ) else {
                return Ok(0);
            };
            for (iovec, &(len, start)) in iovs.iter_mut().zip(datagrams) {
                iovec.iov_base = start as *mut libc::c_void;
                iovec.iov_len = len;
            }
            // Every field is set: the header may hold a previous call's values.
            header.msg_len = 0;
            header.msg_hdr.msg_name = address.as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = address.len();
            header.msg_hdr.msg_iov = iovs.as_mut_ptr();
            header.msg_hdr.msg_iovlen = entry.segments;
            header.msg_hdr.msg_control = std::ptr::null_mut();
            header.msg_hdr.msg_controllen = 0;
            header.msg_hdr.msg_flags = 0;
            if entry.segments > 1 {
                let segment_size = u16::try_from(entry.segment_size).unwrap_or(u16::MAX);
                // SAFETY: `control` is 32 bytes, 8-byte aligned: room for a cmsghdr and a u16
                // (CMSG_SPACE(2) is 24 on 64-bit Linux); CMSG_FIRSTHDR and CMSG_DATA stay in it.
                unsafe {
                    header.msg_hdr.msg_control = control.as_mut_ptr().cast();
                    header.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as usize;
                    let cmsg = libc::CMSG_FIRSTHDR(&header.msg_hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment_size);
                }
            }
        }
        // SAFETY: `headers[..count]` were all written above and point at `iovecs`, `controls`
        // and addresses in `send_addresses`, and each iovec at the caller's datagram bytes; all
        // of them outlive the call, and the kernel only reads through these pointers (it
        // writes `msg_len`, which we own).
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

/// Where [`plan_datagram`] put a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    /// It starts an entry of its own.
    NewEntry,
    /// It is the next segment of the last entry's GSO run.
    Segment,
}

/// Adds the datagram at `index` of a call (`len` bytes to `destination`) to the call's
/// `entries`: as the next segment of the last entry when GSO is on and it fits that run,
/// else as a new entry. `None` when the call has no room for it.
fn plan_datagram(
    entries: &mut Vec<SendEntry>,
    gso: bool,
    destination: SocketAddr,
    len: usize,
    index: usize,
) -> Option<Planned> {
    let full = entries.len() == SEND_BATCH;
    match entries.last_mut() {
        Some(run) if gso && joins_run(run, destination, len) => {
            run.segments += 1;
            run.bytes += len;
            run.closed = len < run.segment_size;
            Some(Planned::Segment)
        }
        _ if full => None,
        _ => {
            entries.push(SendEntry {
                destination,
                first: index,
                segments: 1,
                segment_size: len,
                bytes: len,
                closed: false,
            });
            Some(Planned::NewEntry)
        }
    }
}

/// Whether a datagram of `len` bytes to `destination` can join `run` as its next segment.
fn joins_run(run: &SendEntry, destination: SocketAddr, len: usize) -> bool {
    run.destination == destination
        && !run.closed
        && run.segment_size <= MAX_SEGMENT_SIZE
        && len <= run.segment_size
        && len > 0
        && run.segments < MAX_SEGMENTS
        && run.bytes + len <= MAX_GSO_BYTES
}

/// Errors by which the kernel says it cannot segment this send (no GSO on the route's
/// device, or a checksum offload it lacks), as opposed to an error of the destination.
fn gso_refused(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// (destination port, segments, segment size, bytes) of each planned entry.
    fn plan(gso: bool, datagrams: &[(u16, usize)]) -> Vec<(u16, usize, usize, usize)> {
        let mut entries = Vec::new();
        for (index, &(port, len)) in datagrams.iter().enumerate() {
            plan_datagram(&mut entries, gso, address(port), len, index).expect("room");
        }
        entries
            .iter()
            .map(|e| (e.destination.port(), e.segments, e.segment_size, e.bytes))
            .collect()
    }

    #[test]
    fn runs_split_by_destination_and_size() {
        let datagrams = [
            (1, 1200),
            (1, 1200),
            (1, 1200),
            // A shorter one ends the run it joins...
            (1, 700),
            // ...so the next one to the same peer starts a new run.
            (1, 1200),
            // A larger one cannot join.
            (1, 1300),
            (2, 1300),
            (2, 1300),
            (1, 1300),
        ];
        assert_eq!(
            plan(true, &datagrams),
            vec![
                (1, 4, 1200, 4300),
                (1, 1, 1200, 1200),
                (1, 1, 1300, 1300),
                (2, 2, 1300, 2600),
                (1, 1, 1300, 1300),
            ]
        );
        // Without GSO every datagram is an entry.
        assert_eq!(plan(false, &datagrams).len(), datagrams.len());
    }

    #[test]
    fn runs_stop_at_the_segment_and_byte_limits() {
        let many = vec![(1, 1000); MAX_SEGMENTS + 1];
        assert_eq!(
            plan(true, &many),
            vec![
                (1, MAX_SEGMENTS, 1000, MAX_SEGMENTS * 1000),
                (1, 1, 1000, 1000)
            ]
        );
        let large = vec![(1, 1400); 50];
        assert_eq!(
            plan(true, &large),
            vec![(1, 46, 1400, 64_400), (1, 4, 1400, 5600)]
        );
        // Segments above what an MTU of 1500 carries go alone.
        assert_eq!(plan(true, &[(1, 1500), (1, 1500)]).len(), 2);
        // An empty datagram never joins a run (it would be lost in the segmentation).
        assert_eq!(plan(true, &[(1, 100), (1, 0)]).len(), 2);
    }

    #[test]
    fn a_call_holds_at_most_its_entries() {
        let mut entries = Vec::new();
        for index in 0..SEND_BATCH {
            let planned = plan_datagram(&mut entries, true, address(index as u16 + 1), 10, index);
            assert_eq!(planned, Some(Planned::NewEntry));
        }
        // Full, but a segment of the last run still fits.
        assert_eq!(plan_datagram(&mut entries, true, address(99), 10, 64), None);
        let last = address(SEND_BATCH as u16);
        assert_eq!(
            plan_datagram(&mut entries, true, last, 10, 64),
            Some(Planned::Segment)
        );
    }

    /// Sends runs through the loopback interface and checks every datagram arrives whole, in
    /// order, with GSO on (where the kernel offers it) and off.
    #[test]
    fn batches_arrive_whole_and_in_order_with_and_without_gso() {
        for gso in [false, true] {
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            sender.set_nonblocking(true).expect("nonblocking");
            let mut socket =
                BatchSocket::new(mio::net::UdpSocket::from_std(sender)).expect("socket");
            socket.set_gso(gso);
            let receivers: Vec<std::net::UdpSocket> = (0..2)
                .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
                .collect();
            let packets: Vec<(usize, Vec<u8>)> = [
                (0, 1200),
                (0, 1200),
                (0, 1200),
                (0, 500),
                (1, 1200),
                (1, 1200),
                (0, 1200),
            ]
            .iter()
            .enumerate()
            .map(|(n, &(to, len))| (to, vec![n as u8; len]))
            .collect();
            let destinations: Vec<SocketAddr> = receivers
                .iter()
                .map(|r| r.local_addr().expect("address"))
                .collect();
            socket.send_batch(
                packets
                    .iter()
                    .map(|(to, bytes)| (destinations[*to], &bytes[..])),
            );
            assert_eq!(socket.send_errors(), 0);
            for (index, receiver) in receivers.iter().enumerate() {
                receiver
                    .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .expect("timeout");
                for (_, expected) in packets.iter().filter(|(to, _)| *to == index) {
                    let mut buf = [0u8; 2048];
                    let len = receiver.recv(&mut buf).expect("a datagram");
                    assert_eq!(&buf[..len], &expected[..], "gso {gso}, receiver {index}");
                }
            }
        }
    }
}
