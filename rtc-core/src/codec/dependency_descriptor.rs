//! The Dependency Descriptor RTP header extension (appendix A of the AV1 RTP payload
//! format): the codec-independent description of a frame's layers and dependencies that
//! lets an SFU choose what to forward without reading the payload.
//!
//! Every packet carries the mandatory fields (start and end of frame, a template id, a
//! frame number). The template dependency structure, which maps template ids to spatial and
//! temporal layers and decode target indications, comes only now and then (with keyframes),
//! so the caller keeps the latest one per stream: [`DependencyDescriptor::parse`] reads a
//! packet against it and replaces it when the packet brings a new one.
//!
//! Read and kept: the mandatory fields; the structure's decode target count, each
//! template's spatial and temporal id and decode target indications, each decode target's
//! highest layers, the chain count and the render resolutions; the active decode target
//! mask; the frame's layer, its decode target indications (template or custom) and its
//! resolution. Read past but not kept: frame diffs and chain diffs (template and custom).
//! Structures with more than 8 spatial layers are refused as unsupported.

use super::bits::BitReader;
use super::{CodecError, Resolution};

/// Length of the mandatory fields.
const MANDATORY_LEN: usize = 3;
/// Template ids are 6 bits: at most 64 templates.
const MAX_TEMPLATES: usize = 64;
/// dt_cnt_minus_one is 5 bits.
const MAX_DECODE_TARGETS: usize = 32;
/// Spatial layers whose resolutions are kept (VP9 has at most 8, AV1 4).
const MAX_SPATIAL_LAYERS: usize = 8;

/// A decode target indication (table A.1): how a frame matters to a decode target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dti {
    /// Not part of the decode target.
    NotPresent,
    /// Part of it, but no later frame of it depends on this one.
    Discardable,
    /// A point where a decoder can switch to the decode target.
    Switch,
    /// Part of it, and needed by later frames.
    Required,
}

impl Dti {
    fn from_bits(bits: u64) -> Self {
        match bits & 0x03 {
            0 => Dti::NotPresent,
            1 => Dti::Discardable,
            2 => Dti::Switch,
            _ => Dti::Required,
        }
    }
}

/// Reads 2-bit indications for `count` decode targets into a packed word.
fn read_dtis(r: &mut BitReader<'_>, count: u8) -> Result<u64, CodecError> {
    let mut dtis = 0u64;
    for dt in 0..count {
        dtis |= u64::from(r.bits(2)?) << (2 * u32::from(dt));
    }
    Ok(dtis)
}

/// The template dependency structure (section A.8.3), as far as this module keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyStructure {
    template_id_offset: u8,
    decode_targets: u8,
    templates: u8,
    /// Spatial and temporal id of each template.
    template_layers: [(u8, u8); MAX_TEMPLATES],
    /// Decode target indications of each template, 2 bits per decode target.
    template_dtis: [u64; MAX_TEMPLATES],
    /// Highest spatial and temporal id of each decode target.
    decode_target_layers: [(u8, u8); MAX_DECODE_TARGETS],
    chains: u8,
    max_spatial_id: u8,
    resolutions: Option<[Resolution; MAX_SPATIAL_LAYERS]>,
}

impl DependencyStructure {
    fn read(r: &mut BitReader<'_>) -> Result<Self, CodecError> {
        let template_id_offset = r.bits_u8(6)?;
        let decode_targets = r.bits_u8(5)? + 1;
        let mut s = Self {
            template_id_offset,
            decode_targets,
            templates: 0,
            template_layers: [(0, 0); MAX_TEMPLATES],
            template_dtis: [0; MAX_TEMPLATES],
            decode_target_layers: [(0, 0); MAX_DECODE_TARGETS],
            chains: 0,
            max_spatial_id: 0,
            resolutions: None,
        };
        // template_layers(): each next_layer_idc says how the next template's layer moves.
        let (mut spatial, mut temporal) = (0u8, 0u8);
        loop {
            let slot = s
                .template_layers
                .get_mut(usize::from(s.templates))
                .ok_or(CodecError::Malformed("DD more than 64 templates"))?;
            *slot = (spatial, temporal);
            s.templates += 1;
            match r.bits(2)? {
                0 => {}
                1 => temporal += 1,
                2 => {
                    spatial += 1;
                    temporal = 0;
                }
                _ => break,
            }
        }
        s.max_spatial_id = spatial;
        if usize::from(spatial) >= MAX_SPATIAL_LAYERS {
            return Err(CodecError::Unsupported("DD more than 8 spatial layers"));
        }
        for t in 0..usize::from(s.templates) {
            let dtis = read_dtis(r, decode_targets)?;
            if let Some(slot) = s.template_dtis.get_mut(t) {
                *slot = dtis;
            }
        }
        // template_fdiffs(): a list of 4-bit diffs per template, each after a 1 flag.
        for _ in 0..s.templates {
            while r.bit()? {
                r.skip(4)?;
            }
        }
        // template_chains()
        s.chains = u8::try_from(r.ns(u32::from(decode_targets) + 1)?).unwrap_or(0);
        if s.chains > 0 {
            for _ in 0..decode_targets {
                r.ns(u32::from(s.chains))?; // decode_target_protected_by
            }
            r.skip(4 * u32::from(s.templates) * u32::from(s.chains))?;
        }
        // decode_target_layers(): derived, no bits.
        for dt in 0..decode_targets {
            let mut layer = (0u8, 0u8);
            for t in 0..usize::from(s.templates) {
                let dtis = s.template_dtis.get(t).copied().unwrap_or(0);
                let (sid, tid) = s.template_layers.get(t).copied().unwrap_or((0, 0));
                if Dti::from_bits(dtis >> (2 * u32::from(dt))) != Dti::NotPresent {
                    layer = (layer.0.max(sid), layer.1.max(tid));
                }
            }
            if let Some(slot) = s.decode_target_layers.get_mut(usize::from(dt)) {
                *slot = layer;
            }
        }
        if r.bit()? {
            // render_resolutions()
            let mut sizes = [Resolution {
                width: 0,
                height: 0,
            }; MAX_SPATIAL_LAYERS];
            for size in sizes.iter_mut().take(usize::from(spatial) + 1) {
                let width = r.bits(16)? + 1;
                let height = r.bits(16)? + 1;
                *size = Resolution {
                    width: u16::try_from(width).map_err(|_| r.malformed())?,
                    height: u16::try_from(height).map_err(|_| r.malformed())?,
                };
            }
            s.resolutions = Some(sizes);
        }
        Ok(s)
    }

    /// DtCnt: the number of decode targets, 1..=32.
    pub fn decode_targets(&self) -> u8 {
        self.decode_targets
    }

    /// TemplateCnt: the number of templates, 1..=64.
    pub fn templates(&self) -> u8 {
        self.templates
    }

    /// template_id_offset: the template id of template 0.
    pub fn template_id_offset(&self) -> u8 {
        self.template_id_offset
    }

    /// The index of the template a frame's template id names, if the structure has it.
    pub fn template_index(&self, template_id: u8) -> Option<usize> {
        let index = usize::from((template_id + 64 - self.template_id_offset) % 64);
        (index < usize::from(self.templates)).then_some(index)
    }

    /// (spatial_id, temporal_id) of a template, by index.
    pub fn template_layer(&self, index: usize) -> Option<(u8, u8)> {
        self.template_layers
            .get(index)
            .copied()
            .filter(|_| index < usize::from(self.templates))
    }

    /// A template's indication for decode target `dt`.
    pub fn template_dti(&self, index: usize, dt: u8) -> Option<Dti> {
        if index >= usize::from(self.templates) || dt >= self.decode_targets {
            return None;
        }
        let dtis = self.template_dtis.get(index).copied()?;
        Some(Dti::from_bits(dtis >> (2 * u32::from(dt))))
    }

    /// The highest (spatial_id, temporal_id) decode target `dt` contains.
    pub fn decode_target_layer(&self, dt: u8) -> Option<(u8, u8)> {
        (dt < self.decode_targets)
            .then(|| self.decode_target_layers.get(usize::from(dt)).copied())
            .flatten()
    }

    /// The number of chains (0: the stream uses none).
    pub fn chains(&self) -> u8 {
        self.chains
    }

    /// The number of spatial layers.
    pub fn spatial_layers(&self) -> u8 {
        self.max_spatial_id + 1
    }

    /// The render resolution of spatial layer `sid`, if the structure carries them.
    pub fn resolution(&self, sid: u8) -> Option<Resolution> {
        if sid > self.max_spatial_id {
            return None;
        }
        self.resolutions?.get(usize::from(sid)).copied()
    }
}

/// What one packet's Dependency Descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyDescriptor {
    /// The packet is the first of a frame.
    pub start_of_frame: bool,
    /// The packet is the last of a frame.
    pub end_of_frame: bool,
    /// frame_dependency_template_id, 0..=63.
    pub template_id: u8,
    /// frame_number, wrapping at 16 bits.
    pub frame_number: u16,
    /// This packet carried a template dependency structure (it replaced the caller's).
    pub structure_attached: bool,
    /// The active decode targets, one bit per target (lowest bit: target 0), when the
    /// packet says (a new structure makes all of its targets active).
    pub active_decode_targets: Option<u32>,
    /// The frame's (spatial_id, temporal_id), when a structure is known.
    pub layer: Option<(u8, u8)>,
    /// The frame's decode target indications, 2 bits per target (see [`Self::dti`]), when a
    /// structure is known.
    pub dtis: Option<u64>,
    /// The frame's resolution, when the structure has render resolutions.
    pub resolution: Option<Resolution>,
}

impl DependencyDescriptor {
    /// Reads the extension element's data `data` against `structure`, the latest structure
    /// of the stream, which is replaced when the packet carries a new one (only if the whole
    /// descriptor reads). With no structure known, only the mandatory fields are read and
    /// the frame's layer is `None`.
    pub fn parse(
        data: &[u8],
        structure: &mut Option<DependencyStructure>,
    ) -> Result<Self, CodecError> {
        let &[first, hi, lo] = data
            .get(..MANDATORY_LEN)
            .ok_or(CodecError::Truncated("DD mandatory fields"))?
        else {
            return Err(CodecError::Truncated("DD mandatory fields"));
        };
        let mut dd = Self {
            start_of_frame: first & 0x80 != 0,
            end_of_frame: first & 0x40 != 0,
            template_id: first & 0x3f,
            frame_number: u16::from_be_bytes([hi, lo]),
            structure_attached: false,
            active_decode_targets: None,
            layer: None,
            dtis: None,
            resolution: None,
        };
        let mut r = BitReader::new(
            data.get(MANDATORY_LEN..).unwrap_or(&[]),
            "DD extended fields",
        );
        let extended = data.len() > MANDATORY_LEN;
        let (mut custom_dtis, mut custom_fdiffs, mut custom_chains) = (false, false, false);
        let mut attached = None;
        if extended {
            let has_structure = r.bit()?;
            let has_active = r.bit()?;
            custom_dtis = r.bit()?;
            custom_fdiffs = r.bit()?;
            custom_chains = r.bit()?;
            if has_structure {
                let s = DependencyStructure::read(&mut r)?;
                dd.active_decode_targets = Some(all_targets(s.decode_targets));
                attached = Some(s);
            }
            let Some(known) = attached.as_ref().or(structure.as_ref()) else {
                return Ok(dd);
            };
            if has_active {
                dd.active_decode_targets = Some(r.bits(u32::from(known.decode_targets))?);
            }
        }
        let Some(known) = attached.as_ref().or(structure.as_ref()) else {
            return Ok(dd);
        };
        let index = known
            .template_index(dd.template_id)
            .ok_or(CodecError::Malformed("DD template id not in the structure"))?;
        let (sid, tid) = known.template_layer(index).unwrap_or((0, 0));
        dd.layer = Some((sid, tid));
        dd.dtis = Some(if custom_dtis {
            read_dtis(&mut r, known.decode_targets)?
        } else {
            known.template_dtis.get(index).copied().unwrap_or(0)
        });
        if custom_fdiffs {
            // frame_fdiffs(): each diff announces its size in nibbles.
            loop {
                let nibbles = r.bits(2)?;
                if nibbles == 0 {
                    break;
                }
                r.skip(4 * nibbles)?;
            }
        }
        if custom_chains {
            r.skip(8 * u32::from(known.chains))?;
        }
        dd.resolution = known.resolution(sid);
        dd.structure_attached = attached.is_some();
        if let Some(s) = attached {
            *structure = Some(s);
        }
        Ok(dd)
    }

    /// The frame's indication for decode target `dt`, when a structure is known.
    pub fn dti(&self, dt: u8) -> Option<Dti> {
        let dtis = self.dtis?;
        (dt < 32).then(|| Dti::from_bits(dtis >> (2 * u32::from(dt))))
    }

    /// The frame's spatial_id, when a structure is known.
    pub fn spatial_id(&self) -> Option<u8> {
        self.layer.map(|(s, _)| s)
    }

    /// The frame's temporal_id, when a structure is known.
    pub fn temporal_id(&self) -> Option<u8> {
        self.layer.map(|(_, t)| t)
    }
}

/// The mask with every one of `count` decode targets active.
fn all_targets(count: u8) -> u32 {
    if count >= 32 {
        u32::MAX
    } else {
        (1u32 << count) - 1
    }
}

#[cfg(test)]
mod tests;
