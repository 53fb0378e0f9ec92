//! dtls (placeholder: filled in by the dtls work).

/// Errors of the dtls module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsError {
    /// Placeholder.
    Unimplemented,
}

impl std::fmt::Display for DtlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for DtlsError {}
