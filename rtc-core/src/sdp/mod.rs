//! sdp (placeholder: filled in by the sdp work).

/// Errors of the sdp module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpError {
    /// Placeholder.
    Unimplemented,
}

impl std::fmt::Display for SdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for SdpError {}
