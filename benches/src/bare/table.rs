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
