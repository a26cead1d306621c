//! PJRT C API versions: the one our struct layouts are declared at and the range of plugins we
//! accept.

use std::fmt;

/// A PJRT C API version as `PJRT_Api.pjrt_api_version` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: i32,
    pub minor: i32,
}

impl ApiVersion {
    /// The version whose layouts `ffi` declares (checked field by field against the 0.114 header
    /// tables). A newer plugin reads only the prefix of each struct that it knows, so larger
    /// caller structs are fine; smaller ones are rejected by the plugin.
    pub const DECLARED: ApiVersion = ApiVersion {
        major: 0,
        minor: 114,
    };

    /// The oldest plugin version this runtime was run against (the official CPU plugin). Older
    /// plugins compared struct sizes for equality, which our larger structs would fail.
    pub const OLDEST_SUPPORTED: ApiVersion = ApiVersion {
        major: 0,
        minor: 81,
    };
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
