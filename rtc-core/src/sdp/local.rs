//! Sluice's own side of every description it writes, answers and offers alike: the session
//! header (ICE-lite, BUNDLE), the transport attributes (ICE credentials, DTLS fingerprint and
//! role, host candidates) and the codec lines.

use super::attribute::{Attribute, Fmtp, RtcpFb, Rtpmap, Setup};
use super::negotiated::NegotiatedCodec;
use super::session::{Origin, SessionDescription};

/// What Sluice puts into every description about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalParams {
    /// Local ICE username fragment.
    pub ice_ufrag: String,
    /// Local ICE password.
    pub ice_pwd: String,
    /// The DTLS certificate fingerprint as `<hash> <hex>`, e.g. `sha-256 AB:CD:...`.
    pub fingerprint: String,
    /// Host candidates as `a=candidate:` values (`1 1 udp 2130706431 203.0.113.1 3478 typ
    /// host`); the first one also gives the m-line port and `c=` address.
    pub candidates: Vec<String>,
    /// `o=` session id; stays the same for the life of the connection.
    pub session_id: u64,
    /// `o=` session version; increment it for each new offer or answer.
    pub session_version: u64,
}

impl LocalParams {
    /// The port and `c=` value of the default candidate (the first), or the RFC 8840 dummy
    /// `9` / `IN IP4 0.0.0.0` when there is none.
    pub(crate) fn default_address(&self) -> (u16, String) {
        let parsed = self.candidates.first().and_then(|c| {
            // foundation component transport priority address port typ ...
            let mut parts = c.split_whitespace().skip(4);
            let address = parts.next()?;
            let port = parts.next()?.parse::<u16>().ok()?;
            let family = if address.contains(':') { "IP6" } else { "IP4" };
            Some((port, format!("IN {family} {address}")))
        });
        parsed.unwrap_or_else(|| (9, "IN IP4 0.0.0.0".to_owned()))
    }

    /// ICE credentials, fingerprint and DTLS role of one m-line.
    pub(crate) fn transport_attributes(&self, setup: Setup) -> Vec<Attribute> {
        let fingerprint = Attribute::parse(&format!("fingerprint:{}", self.fingerprint))
            .unwrap_or_else(|_| Attribute::Other {
                name: "fingerprint".to_owned(),
                value: Some(self.fingerprint.clone()),
            });
        vec![
            Attribute::IceUfrag(self.ice_ufrag.clone()),
            Attribute::IcePwd(self.ice_pwd.clone()),
            fingerprint,
            Attribute::Setup(setup),
        ]
    }

    /// The host candidates followed by `a=end-of-candidates` (an ICE-lite agent has no more).
    pub(crate) fn candidate_attributes(&self) -> impl Iterator<Item = Attribute> + '_ {
        self.candidates
            .iter()
            .map(|c| Attribute::Candidate(c.clone()))
            .chain(std::iter::once(Attribute::EndOfCandidates))
    }

    /// The session header: BUNDLE over `bundle`, ICE-lite, and mixed extmaps when agreed.
    pub(crate) fn session(&self, bundle: Vec<String>, allow_mixed: bool) -> SessionDescription {
        let mut attributes = vec![
            Attribute::Group {
                semantics: "BUNDLE".to_owned(),
                mids: bundle,
            },
            Attribute::IceLite,
        ];
        if allow_mixed {
            attributes.push(Attribute::ExtmapAllowMixed);
        }
        attributes.push(Attribute::Other {
            name: "msid-semantic".to_owned(),
            value: Some(" WMS *".to_owned()),
        });
        SessionDescription {
            origin: Origin {
                username: "-".to_owned(),
                session_id: self.session_id.to_string(),
                session_version: self.session_version.to_string(),
                address: "IN IP4 0.0.0.0".to_owned(),
            },
            session_name: "-".to_owned(),
            connection: None,
            attributes,
            media: Vec::new(),
        }
    }
}

/// The m-line format list of `codecs`: each payload type followed by its RTX and its
/// redundant audio.
pub(crate) fn codec_formats(codecs: &[NegotiatedCodec]) -> Vec<String> {
    codecs
        .iter()
        .flat_map(|c| std::iter::once(c.pt).chain(c.rtx_pt).chain(c.red_pt))
        .map(|pt| pt.to_string())
        .collect()
}

/// `a=rtpmap`, `a=rtcp-fb` and `a=fmtp` lines of `codecs`, their RTX and their redundant
/// audio.
pub(crate) fn codec_attributes(codecs: &[NegotiatedCodec]) -> Vec<Attribute> {
    let mut attrs = Vec::new();
    for c in codecs {
        attrs.push(Attribute::Rtpmap(Rtpmap {
            pt: c.pt,
            name: c.name.clone(),
            clock_rate: c.clock_rate,
            channels: c.channels,
        }));
        for fb in &c.rtcp_fb {
            let (kind, param) = fb.as_parts();
            attrs.push(Attribute::RtcpFb(RtcpFb {
                pt: Some(c.pt),
                kind: kind.to_owned(),
                param: param.map(str::to_owned),
            }));
        }
        if let Some(params) = &c.fmtp {
            attrs.push(Attribute::Fmtp(Fmtp {
                pt: c.pt,
                params: params.clone(),
            }));
        }
        if let Some(rtx) = c.rtx_pt {
            let rtpmap = Rtpmap {
                pt: rtx,
                name: "rtx".to_owned(),
                clock_rate: c.clock_rate,
                channels: None,
            };
            attrs.push(Attribute::Rtpmap(rtpmap));
            attrs.push(Attribute::Fmtp(Fmtp {
                pt: rtx,
                params: format!("apt={}", c.pt),
            }));
        }
        if let Some(red) = c.red_pt {
            attrs.push(Attribute::Rtpmap(Rtpmap {
                pt: red,
                name: "red".to_owned(),
                clock_rate: c.clock_rate,
                channels: c.channels,
            }));
            attrs.push(Attribute::Fmtp(Fmtp {
                pt: red,
                params: format!("{}/{}", c.pt, c.pt),
            }));
        }
    }
    attrs
}
