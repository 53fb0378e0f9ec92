//! RTP header extensions (RFC 8285) in both forms: one-byte (profile 0xBEDE, ids 1..=14,
//! 1..=16 data bytes) and two-byte (profile 0x100X, ids 1..=255, 0..=255 data bytes), with
//! zero bytes as padding between elements. Layout is validated once by [`validate`] when the
//! packet is parsed, so iteration, lookup and in-place rewriting cannot fail afterwards.

use super::RtpError;

/// Which RFC 8285 form an extension block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionForm {
    /// Profile 0xBEDE: a one-byte element header (4-bit id, 4-bit length - 1).
    OneByte,
    /// Profile 0x1000..=0x100F: a two-byte element header (8-bit id, 8-bit length).
    TwoByte,
    /// No extension block, or a profile that is not RFC 8285: no elements are exposed.
    Other,
}

impl ExtensionForm {
    /// The form announced by the 16-bit "defined by profile" field of the block.
    pub fn from_profile(profile: u16) -> Self {
        match profile {
            0xBEDE => ExtensionForm::OneByte,
            0x1000..=0x100F => ExtensionForm::TwoByte,
            _ => ExtensionForm::Other,
        }
    }

    /// The "defined by profile" value to write for this form (`Other` has none).
    pub fn profile(self) -> Option<u16> {
        match self {
            ExtensionForm::OneByte => Some(0xBEDE),
            ExtensionForm::TwoByte => Some(0x1000),
            ExtensionForm::Other => None,
        }
    }

    /// The largest id an element of this form can carry.
    pub fn max_id(self) -> u8 {
        match self {
            ExtensionForm::OneByte => 14,
            ExtensionForm::TwoByte => 255,
            ExtensionForm::Other => 0,
        }
    }
}

/// One step of the element walk shared by validation, iteration and rewriting.
enum Step {
    /// No more elements (end of block, or the one-byte id 15 that stops processing).
    End,
    /// An element overruns the block.
    Malformed,
    /// An element: its id, the offset of its header and its data range.
    Element {
        id: u8,
        header_at: usize,
        data: (usize, usize),
    },
}

/// Finds the element at or after `pos`, skipping padding bytes.
fn step(form: ExtensionForm, block: &[u8], mut pos: usize) -> Step {
    loop {
        let Some(&first) = block.get(pos) else {
            return Step::End;
        };
        if first == 0 {
            pos += 1;
            continue;
        }
        let (id, header_len, data_len) = match form {
            ExtensionForm::OneByte => {
                // RFC 8285 section 4.2: id 15 ends processing of the whole block.
                if first >> 4 == 15 {
                    return Step::End;
                }
                (first >> 4, 1, usize::from(first & 0x0f) + 1)
            }
            ExtensionForm::TwoByte => {
                let Some(&len) = block.get(pos + 1) else {
                    return Step::Malformed;
                };
                (first, 2, usize::from(len))
            }
            ExtensionForm::Other => return Step::End,
        };
        let start = pos + header_len;
        let end = start + data_len;
        if end > block.len() {
            return Step::Malformed;
        }
        return Step::Element {
            id,
            header_at: pos,
            data: (start, end),
        };
    }
}

/// Checks that every element of `block` (the bytes after the 4-byte block header) fits.
pub(super) fn validate(form: ExtensionForm, block: &[u8]) -> Result<(), RtpError> {
    let mut pos = 0;
    loop {
        match step(form, block, pos) {
            Step::End => return Ok(()),
            Step::Malformed => return Err(RtpError::BadExtension),
            Step::Element { data: (_, end), .. } => pos = end,
        }
    }
}

/// Iterator over the `(id, data)` elements of a validated extension block.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    form: ExtensionForm,
    block: &'a [u8],
    pos: usize,
}

impl<'a> ExtensionIter<'a> {
    pub(super) fn new(form: ExtensionForm, block: &'a [u8]) -> Self {
        Self {
            form,
            block,
            pos: 0,
        }
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match step(self.form, self.block, self.pos) {
            Step::Element {
                id,
                data: (start, end),
                ..
            } => {
                self.pos = end;
                Some((id, self.block.get(start..end)?))
            }
            Step::End | Step::Malformed => {
                self.pos = self.block.len();
                None
            }
        }
    }
}

/// The data of the first element with `id`, mutably.
pub(super) fn element_mut(form: ExtensionForm, block: &mut [u8], id: u8) -> Option<&mut [u8]> {
    let mut pos = 0;
    loop {
        match step(form, block, pos) {
            Step::Element {
                id: found,
                data: (start, end),
                ..
            } => {
                if found == id {
                    return block.get_mut(start..end);
                }
                pos = end;
            }
            Step::End | Step::Malformed => return None,
        }
    }
}

/// Where the last element of `block` ends (0 for none): new elements go after it. `None`
/// when the walk stops early (the one-byte id 15, or a malformed block), since an element
/// written after that would not be read.
pub(super) fn used_len(form: ExtensionForm, block: &[u8]) -> Option<usize> {
    let mut pos = 0;
    let mut used = 0;
    loop {
        match step(form, block, pos) {
            Step::Element { data: (_, end), .. } => {
                pos = end;
                used = end;
            }
            Step::End => {
                // End of the block, or an id-15 element (a non-zero byte left unread).
                let rest = block.get(pos..).unwrap_or_default();
                return rest.iter().all(|&b| b == 0).then_some(used);
            }
            Step::Malformed => return None,
        }
    }
}

/// Rewrites each element's id through `map`; unmapped elements become padding.
pub(super) fn remap(form: ExtensionForm, block: &mut [u8], mut map: impl FnMut(u8) -> Option<u8>) {
    let mut pos = 0;
    loop {
        let Step::Element {
            id,
            header_at,
            data: (_, end),
        } = step(form, block, pos)
        else {
            return;
        };
        pos = end;
        let new_id = map(id).filter(|&n| n != 0 && n <= form.max_id());
        match (new_id, block.get_mut(header_at)) {
            (Some(n), Some(header)) if form == ExtensionForm::OneByte => {
                *header = (n << 4) | (*header & 0x0f);
            }
            (Some(n), Some(header)) => *header = n,
            _ => {
                if let Some(element) = block.get_mut(header_at..end) {
                    element.fill(0);
                }
            }
        }
    }
}
