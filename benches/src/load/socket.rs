//! The load generator's sockets: a session's own socket, or an address of its own on one of
//! the engine's shared sockets; sends through quinn-udp (GSO, a source address per session),
//! and batched receives (recvmmsg) that also return each datagram's destination address
//! (IP_PKTINFO), its GRO segment size and the kernel's receive time (SO_TIMESTAMPNS), so
//! that the time a packet spent inside the server does not include the time it waited for
//! the load generator to read it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd as _, RawFd};

use anyhow::Context as _;
use quinn_udp::{Transmit, UdpSocketState};

use super::session::EngineContext;

/// The socket a pending session will use.
#[derive(Debug)]
pub(crate) enum SocketChoice {
    Own(std::net::UdpSocket),
    /// The index of one of the engine's shared sockets.
    Shared(usize),
}

/// Where a session's datagrams come and go: its own socket, or one of the engine's shared
/// ones.
#[derive(Debug)]
pub(crate) enum SessionSocket {
    Own {
        socket: mio::net::UdpSocket,
        udp: UdpSocketState,
    },
    Shared(usize),
}

/// Sessions per shared socket: few enough that a keyframe burst to all of them fits in the
/// socket's receive buffer (15 packets x 64 sessions x ~2.3 KiB of kernel memory each).
const SESSIONS_PER_SHARED_SOCKET: u32 = 64;

/// One socket for many sessions: bound to the wildcard address on one port, it receives what
/// the server sends to any 127.x.y.z on that port (IP_PKTINFO says which), and sends from
/// the session's address. One batched receive then serves many sessions.
#[derive(Debug)]
pub struct SharedSocket {
    socket: mio::net::UdpSocket,
    udp: UdpSocketState,
}

impl SharedSocket {
    /// Binds enough sockets for `sessions` sessions; returns them and the addresses to hand
    /// out.
    pub fn bind_for(sessions: usize) -> anyhow::Result<(Vec<SharedSocket>, SharedAddresses)> {
        let count = (sessions as u32)
            .div_ceil(SESSIONS_PER_SHARED_SOCKET)
            .max(1);
        let mut sockets = Vec::with_capacity(count as usize);
        let mut ports = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .context("binding a shared socket")?;
            socket.set_nonblocking(true)?;
            ports.push(socket.local_addr()?.port());
            let socket = mio::net::UdpSocket::from_std(socket);
            let udp = UdpSocketState::new((&socket).into())?;
            enable_receive_timestamps(&socket)?;
            // Bursts of video to many sessions need room in the kernel's queue.
            let _ = udp.set_recv_buffer_size((&socket).into(), 8 * 1024 * 1024);
            let _ = udp.set_send_buffer_size((&socket).into(), 4 * 1024 * 1024);
            sockets.push(SharedSocket { socket, udp });
        }
        Ok((sockets, SharedAddresses { ports, next: 0 }))
    }

    /// The socket, for registering with the engine's poll.
    pub fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// Reads one batch; `None` once the queue is empty.
    pub fn receive(&self, batch: &mut RecvBatch) -> Option<usize> {
        batch.receive(&self.socket)
    }
}

/// Hands out 127.1.0.1, 127.1.0.2, ..., each on the port of the shared socket it belongs to.
#[derive(Debug)]
pub struct SharedAddresses {
    ports: Vec<u16>,
    next: u32,
}

impl SharedAddresses {
    /// The next session's address and the index of its shared socket.
    pub fn next_address(&mut self) -> anyhow::Result<(SocketAddr, usize)> {
        let socket = (self.next / SESSIONS_PER_SHARED_SOCKET) as usize;
        let port = *self
            .ports
            .get(socket)
            .context("more sessions than the shared sockets were bound for")?;
        self.next += 1;
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + self.next);
        Ok((SocketAddr::new(IpAddr::V4(ip), port), socket))
    }
}

pub(crate) fn max_gso_segments(io: &SessionSocket, ctx: &EngineContext) -> usize {
    match io {
        SessionSocket::Own { udp, .. } => udp.max_gso_segments(),
        SessionSocket::Shared(index) => ctx
            .shared
            .get(*index)
            .map_or(1, |s| s.udp.max_gso_segments()),
    }
}

/// Sends one datagram, or one GSO run of `segment_size` segments, from `local_ip` when on the
/// shared socket. Send errors concern one session and are counted, not returned.
pub(crate) fn send_on(
    io: &SessionSocket,
    local_ip: IpAddr,
    ctx: &mut EngineContext,
    destination: SocketAddr,
    contents: &[u8],
    segment_size: Option<usize>,
) {
    let (udp, socket, src_ip) = match io {
        SessionSocket::Own { socket, udp } => (udp, socket, None),
        SessionSocket::Shared(index) => match ctx.shared.get(*index) {
            Some(shared) => (&shared.udp, &shared.socket, Some(local_ip)),
            None => {
                ctx.send_errors += 1;
                return;
            }
        },
    };
    let transmit = Transmit {
        destination,
        ecn: None,
        contents,
        segment_size,
        src_ip,
    };
    if udp.try_send(socket.into(), &transmit).is_err() {
        ctx.send_errors += 1;
    }
}

/// Datagrams per receive call.
pub const RECV_BATCH: usize = 32;
/// Bytes per receive buffer: with GRO one buffer holds several datagrams of one sender.
const RECV_BUFFER_LEN: usize = 64 * 1024;
/// Bytes of control messages per datagram (a timestamp, a pktinfo and a GRO size fit).
const CONTROL_LEN: usize = 128;
/// `SO_TIMESTAMPNS` (and `SCM_TIMESTAMPNS`) on Linux; the libc crate lacks it for glibc.
const SO_TIMESTAMPNS: libc::c_int = 35;
/// `UDP_GRO` on Linux (its control message carries the segment size).
const UDP_GRO: libc::c_int = 104;

/// What the kernel said about one received message.
#[derive(Debug, Clone, Copy, Default)]
struct RecvMeta {
    len: usize,
    /// Segment size of a GRO message (several datagrams of one sender); `len` otherwise.
    stride: usize,
    source: Option<SocketAddr>,
    destination: Option<IpAddr>,
    /// The kernel's receive time (CLOCK_REALTIME nanoseconds).
    received_ns: Option<u64>,
}

/// Receive buffers shared by every session of an engine thread.
#[derive(Debug)]
pub struct RecvBatch {
    buffers: Vec<u8>,
    meta: [RecvMeta; RECV_BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buffers: vec![0; RECV_BATCH * RECV_BUFFER_LEN],
            meta: [RecvMeta::default(); RECV_BATCH],
        }
    }
}

impl RecvBatch {
    /// Reads up to a batch of messages from `socket`; `None` when none is waiting (or the
    /// socket failed).
    pub(crate) fn receive(&mut self, socket: &mio::net::UdpSocket) -> Option<usize> {
        loop {
            match self.recvmmsg(socket.as_raw_fd()) {
                Ok(count) => return Some(count),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Calls `f(source, destination ip, received_ns, datagram)` for each datagram of message
    /// `index` (a GRO message holds several of one sender).
    pub fn for_each_datagram(
        &mut self,
        index: usize,
        mut f: impl FnMut(SocketAddr, Option<IpAddr>, Option<u64>, &mut [u8]),
    ) {
        let Some(meta) = self.meta.get(index).copied() else {
            return;
        };
        let Some(source) = meta.source else {
            return;
        };
        let Some(buffer) = self
            .buffers
            .get_mut(index * RECV_BUFFER_LEN..(index + 1) * RECV_BUFFER_LEN)
        else {
            return;
        };
        let stride = meta.stride.max(1);
        let mut offset = 0;
        while offset < meta.len {
            let len = stride.min(meta.len - offset);
            let Some(datagram) = buffer.get_mut(offset..offset + len) else {
                break;
            };
            f(source, meta.destination, meta.received_ns, datagram);
            offset += len;
        }
    }

    /// One `recvmmsg` call into the batch's buffers; fills `meta` for what arrived.
    #[allow(unsafe_code)] // The system call and control-message walk; see the SAFETY comments.
    fn recvmmsg(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: iovec, sockaddr_storage and mmsghdr are plain C structs for which all-zero
        // bytes are valid values.
        let mut iovecs: [libc::iovec; RECV_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut names: [libc::sockaddr_storage; RECV_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        // u64 elements keep each control buffer aligned for cmsghdr.
        let mut controls = [[0u64; CONTROL_LEN / 8]; RECV_BATCH];
        let base = self.buffers.as_mut_ptr();
        for (index, ((iovec, header), (name, control))) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(names.iter_mut().zip(controls.iter_mut()))
            .enumerate()
        {
            // SAFETY: `buffers` holds RECV_BATCH * RECV_BUFFER_LEN bytes, so each offset stays
            // inside it.
            iovec.iov_base = unsafe { base.add(index * RECV_BUFFER_LEN) }.cast();
            iovec.iov_len = RECV_BUFFER_LEN;
            header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = control.as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = CONTROL_LEN as _;
        }
        // SAFETY: every header points at its own iovec (into `buffers`), name and control
        // buffer, all alive and exclusively borrowed for the call, with their true lengths.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        let count = (received as usize).min(RECV_BATCH);
        for index in 0..count {
            let header = &headers[index];
            let mut meta = RecvMeta {
                len: header.msg_len as usize,
                stride: header.msg_len as usize,
                source: socket_address(&names[index]),
                ..RecvMeta::default()
            };
            let msg = &header.msg_hdr;
            // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; CMSG_FIRSTHDR and
            // CMSG_NXTHDR only return headers inside that range (or null).
            let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
            while !cmsg.is_null() {
                // SAFETY: `cmsg` is non-null and inside the control buffer (see above).
                let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
                // SAFETY: CMSG_DATA points at the message's data, which has the type its level
                // and kind name; read_unaligned copes with any alignment.
                let data = unsafe { libc::CMSG_DATA(cmsg) };
                match (level, kind) {
                    (libc::SOL_SOCKET, SO_TIMESTAMPNS) => {
                        // SAFETY: as above: a timespec.
                        let time: libc::timespec =
                            unsafe { data.cast::<libc::timespec>().read_unaligned() };
                        meta.received_ns =
                            Some(time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64);
                    }
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        // SAFETY: as above: an in_pktinfo.
                        let info: libc::in_pktinfo =
                            unsafe { data.cast::<libc::in_pktinfo>().read_unaligned() };
                        meta.destination = Some(IpAddr::V4(Ipv4Addr::from(
                            info.ipi_addr.s_addr.to_ne_bytes(),
                        )));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        // SAFETY: as above: an in6_pktinfo.
                        let info: libc::in6_pktinfo =
                            unsafe { data.cast::<libc::in6_pktinfo>().read_unaligned() };
                        meta.destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    }
                    (libc::SOL_UDP, UDP_GRO) => {
                        // SAFETY: as above: an int.
                        let size: libc::c_int =
                            unsafe { data.cast::<libc::c_int>().read_unaligned() };
                        meta.stride = usize::try_from(size).unwrap_or(meta.len);
                    }
                    _ => {}
                }
                // SAFETY: `msg` and `cmsg` are valid (see above).
                cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
            }
            self.meta[index] = meta;
        }
        Ok(count)
    }
}

/// The address in a `sockaddr_storage` the kernel filled.
#[allow(unsafe_code)] // Reading the family's own struct out of the storage.
fn socket_address(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let v4 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(v4.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be(v6.sin6_port)))
        }
        _ => None,
    }
}

/// Asks the kernel to stamp every datagram `socket` receives with its arrival time.
#[allow(unsafe_code)] // setsockopt; see the SAFETY comment.
pub(crate) fn enable_receive_timestamps(socket: &mio::net::UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and its size is passed; the fd belongs to `socket`.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_receive_reports_source_destination_and_kernel_time() {
        let (sockets, mut addresses) = SharedSocket::bind_for(2).unwrap();
        let (to, index) = addresses.next_address().unwrap();
        assert_eq!(index, 0);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = crate::load::media::realtime_ns();
        for byte in 0..3u8 {
            sender.send_to(&[byte; 100], to).unwrap();
        }
        let mut batch = RecvBatch::default();
        let mut seen = Vec::new();
        for _ in 0..100 {
            if let Some(count) = sockets[0].receive(&mut batch) {
                for message in 0..count {
                    batch.for_each_datagram(
                        message,
                        |source, destination, received_ns, datagram| {
                            seen.push((
                                source,
                                destination,
                                received_ns,
                                datagram[0],
                                datagram.len(),
                            ));
                        },
                    );
                }
            }
            if seen.len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(seen.len(), 3);
        for (n, (source, destination, received_ns, first, len)) in seen.into_iter().enumerate() {
            assert_eq!(source, sender.local_addr().unwrap());
            assert_eq!(destination, Some(to.ip()));
            assert!(
                received_ns.is_some_and(|t| t >= before),
                "kernel receive time"
            );
            assert_eq!((first, len), (n as u8, 100));
        }
    }
}
