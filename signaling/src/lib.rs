//! HTTP signaling for Sluice: the room protocol over WebSocket, WHIP and WHEP, and the
//! embedded web app, served with hyper.
#![forbid(unsafe_code)]
