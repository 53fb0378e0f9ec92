//! Sans-IO packet router: rooms, publishers, tracks and subscriptions, with per-subscriber
//! rewriting of SSRCs, sequence numbers and timestamps. It is built on the views in
//! `rtc-core`; the media plane wires it to sockets.
#![forbid(unsafe_code)]
