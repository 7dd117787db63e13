//! What the stores say of objects, and what an upload may and did do: plain data, the same
//! whether or not this fanout was built with remote support.

use super::url::RemoteUrl;

/// An object as a listing or a HEAD request saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object {
    pub url: RemoteUrl,
    pub size: u64,
    pub etag: Option<String>,
    pub version: Option<String>,
    /// Last modified, in nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// An object's facts with its user metadata (a HEAD request).
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub object: Object,
    pub metadata: Vec<(String, String)>,
}

/// When an upload may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// Only if no object has the name (If-None-Match: *, generation 0).
    Absent,
    /// Only if the object is still this version (If-Match, generation match).
    Unchanged {
        etag: Option<String>,
        version: Option<String>,
    },
}

/// Why an upload did not happen.
#[derive(Debug)]
#[cfg_attr(
    not(feature = "remote"),
    allow(dead_code, reason = "without stores, no write can conflict")
)]
pub(crate) enum PutError {
    /// The condition failed: someone else wrote (or removed) the object.
    Conflict(String),
    Other(anyhow::Error),
}

/// A store that could not be reached (the connection refused or timed out through the
/// client's retries), carried in an error's chain so that the run can tell an outage from one
/// object's own failure. Its text is the whole one-line error.
#[derive(Debug)]
pub(crate) struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Whether `e` failed because a store could not be reached.
pub(crate) fn unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(<dyn std::error::Error>::is::<Unreachable>)
}

/// What a finished upload left.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    pub etag: Option<String>,
    pub version: Option<String>,
    pub bytes: u64,
}

/// What a finished download did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fetched {
    pub bytes: u64,
    /// Times it started over after the store failed.
    pub restarts: u32,
    /// Requests the store client retried (throttling, server errors, dropped connections).
    pub store_retries: u32,
}
