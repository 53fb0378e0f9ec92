//! The media thread's session table: sessions in a slab (a slot index is what the forwarding
//! path holds), with the maps that find a session by id (signaling), by ICE username fragment
//! (STUN) and by validated source address (DTLS and SRTP).

use std::collections::HashMap;
use std::net::SocketAddr;

use packet_router::SessionId;

use super::session::Session;

#[derive(Debug, Default)]
pub(crate) struct SessionTable {
    slots: Vec<Option<Session>>,
    free: Vec<usize>,
    by_id: HashMap<SessionId, usize>,
    by_ufrag: HashMap<String, usize>,
    by_address: HashMap<SocketAddr, usize>,
    /// The last address looked up and its slot: a receive batch holds runs of one
    /// publisher's packets (a video frame is a burst), so most lookups skip the hash.
    last_address: Option<(SocketAddr, usize)>,
}

impl SessionTable {
    /// Stores `session` and returns its slot.
    pub(crate) fn insert(&mut self, session: Session) -> usize {
        let ufrag = session.local_ufrag.clone();
        let id = session.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(entry) = self.slots.get_mut(slot) {
                    *entry = Some(session);
                }
                slot
            }
            None => {
                self.slots.push(Some(session));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        self.by_ufrag.insert(ufrag, slot);
        slot
    }

    /// Takes the session out of `slot`, forgetting its id, ufrag and addresses.
    pub(crate) fn remove(&mut self, slot: usize) -> Option<Session> {
        let session = self.slots.get_mut(slot)?.take()?;
        self.by_id.remove(&session.id);
        self.by_ufrag.remove(&session.local_ufrag);
        self.by_address.retain(|_, owner| *owner != slot);
        self.last_address = None;
        self.free.push(slot);
        Some(session)
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&Session> {
        self.slots.get(slot)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Session> {
        self.slots.get_mut(slot)?.as_mut()
    }

    pub(crate) fn slot_of(&self, id: SessionId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    pub(crate) fn slot_by_ufrag(&self, ufrag: &str) -> Option<usize> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// The session whose ICE checks validated `address`.
    pub(crate) fn slot_by_address(&mut self, address: SocketAddr) -> Option<usize> {
        if let Some((last, slot)) = self.last_address
            && last == address
        {
            return Some(slot);
        }
        let slot = self.by_address.get(&address).copied()?;
        self.last_address = Some((address, slot));
        Some(slot)
    }

    /// Routes `address`'s datagrams to `slot` from now on.
    pub(crate) fn validate_address(&mut self, address: SocketAddr, slot: usize) {
        self.by_address.insert(address, slot);
        self.last_address = None;
    }

    /// Slots of every session.
    pub(crate) fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, session)| session.as_ref().map(|_| slot))
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ice_lite::{IceCredentials, IceLiteAgent, IceLiteConfig};
    use rtc_core::dtls::DtlsCertificate;

    use super::*;
    use crate::bare::session::SessionRole;

    fn session(id: u64, certificate: &DtlsCertificate) -> Session {
        let credentials = IceCredentials::generate(&mut rand::rng());
        let now = Instant::now();
        let local_ufrag = credentials.ufrag().to_owned();
        let agent = IceLiteAgent::new(credentials, IceLiteConfig::default());
        let mut transport = media_plane::PeerTransport::new_lite(agent, now);
        transport.start_dtls(
            now,
            certificate,
            certificate.fingerprint(),
            rtc_core::dtls::DtlsRole::Server,
        );
        Session {
            id: SessionId(id),
            room: "room".to_owned(),
            role: SessionRole::Player { publisher: 0 },
            local_ufrag,
            transport,
        }
    }

    #[test]
    fn a_removed_session_keeps_no_address_even_when_its_slot_is_reused() {
        let certificate = DtlsCertificate::generate(&mut rand::rng()).expect("certificate");
        let mut table = SessionTable::default();
        let address: SocketAddr = "127.0.0.1:5000".parse().expect("address");
        let first = table.insert(session(1, &certificate));
        table.validate_address(address, first);
        assert_eq!(table.slot_by_address(address), Some(first));
        // Now cached: removal must forget the cache too.
        assert_eq!(table.slot_by_address(address), Some(first));
        let removed = table.remove(first).expect("removed");
        assert_eq!(table.slot_by_ufrag(&removed.local_ufrag), None);
        assert_eq!(table.slot_by_address(address), None);
        let second = table.insert(session(2, &certificate));
        assert_eq!(second, first, "the free slot is reused");
        assert_eq!(table.slot_by_address(address), None);
        assert_eq!(table.slot_of(SessionId(1)), None);
        assert_eq!(table.slot_of(SessionId(2)), Some(second));
        assert_eq!(table.slots().collect::<Vec<_>>(), vec![second]);
        assert_eq!(table.len(), 1);
    }
}
