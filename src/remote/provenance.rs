//! Provenance: what every object fanout writes says of where it came from, as user metadata
//! (S3 `x-amz-meta-*`, GCS and Azure metadata): the source's URL or path, the source's
//! version, and a hash of the command. `-u` takes a target as fresh only when all three match
//! the current source and command; `--resume` takes a job as done by the same proof.

use std::ffi::OsString;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::object::Object;

/// Metadata keys (lower case: S3 folds them).
pub(crate) const SOURCE: &str = "fanout-source";
pub(crate) const SOURCE_VERSION: &str = "fanout-source-version";
pub(crate) const COMMAND: &str = "fanout-command";

/// Where an output came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Provenance {
    pub source: String,
    pub version: String,
    pub command: String,
}

impl Provenance {
    /// From an object as it was listed.
    pub(crate) fn of_object(object: &Object, command: &str) -> Provenance {
        let mut version = format!("size={}", object.size);
        if let Some(etag) = &object.etag {
            let _ = write!(version, ";etag={}", etag.trim_matches('"'));
        }
        if let Some(v) = &object.version {
            let _ = write!(version, ";version={v}");
        }
        Provenance {
            source: header_safe(&object.url.to_string()),
            version,
            command: command.to_string(),
        }
    }

    /// From a local file: its path as given, size, modification time (ns) and inode.
    pub(crate) fn of_file(
        path: &std::path::Path,
        md: &std::fs::Metadata,
        command: &str,
    ) -> Provenance {
        use std::os::unix::fs::MetadataExt;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Provenance {
            source: header_safe(&absolute.to_string_lossy()),
            version: format!(
                "size={};mtime_ns={};inode={}",
                md.len(),
                i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
                md.ino()
            ),
            command: command.to_string(),
        }
    }

    /// As user metadata.
    pub(crate) fn metadata(&self) -> Vec<(String, String)> {
        vec![
            (SOURCE.to_string(), self.source.clone()),
            (SOURCE_VERSION.to_string(), self.version.clone()),
            (COMMAND.to_string(), self.command.clone()),
        ]
    }

    /// As extended attributes of a local target (`user.fanout.*`).
    pub(crate) fn xattrs(&self) -> Vec<(String, String)> {
        self.metadata()
            .into_iter()
            .map(|(k, v)| (xattr_name(&k), v))
            .collect()
    }

    /// Whether `metadata` (a target's) says it was made from this very source by this
    /// command; `None` when it carries no provenance (another tool wrote it).
    pub(crate) fn matches(&self, metadata: &[(String, String)]) -> Option<bool> {
        let get = |key: &str| {
            metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let source = get(SOURCE)?;
        Some(
            source == self.source
                && get(SOURCE_VERSION) == Some(self.version.as_str())
                && get(COMMAND) == Some(self.command.as_str()),
        )
    }
}

/// The extended attribute that holds metadata `key` on a local file.
fn xattr_name(key: &str) -> String {
    format!("user.{}", key.replacen("fanout-", "fanout.", 1))
}

/// The provenance a local file carries in its extended attributes (links followed), as
/// metadata pairs; empty when it has none.
pub(crate) fn of_local_target(path: &std::path::Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for key in [SOURCE, SOURCE_VERSION, COMMAND] {
        let mut buf = vec![0u8; 4096];
        if let Ok(n) = rustix::fs::getxattr(path, xattr_name(key).as_str(), &mut buf) {
            buf.truncate(n);
            found.push((key.to_string(), String::from_utf8_lossy(&buf).into_owned()));
        }
    }
    found
}

/// The command's hash: SHA-256 of each word (with `-s` first), hex, 32 characters.
pub(crate) fn command_hash(words: &[OsString], shell: bool) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h = Sha256::new();
    h.update(if shell {
        b"shell\0" as &[u8]
    } else {
        b"argv\0"
    });
    for w in words {
        h.update(w.as_bytes());
        h.update(b"\0");
    }
    let digest = h.finalize();
    digest[..16].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A value that can travel in an HTTP header: printable ASCII kept, every other byte
/// percent-encoded (and `%` itself).
fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::RemoteUrl;

    fn object(etag: &str) -> Object {
        Object {
            url: RemoteUrl::parse("s3://b/k/é.csv").unwrap(),
            size: 3,
            etag: Some(format!("\"{etag}\"")),
            version: None,
            mtime_ns: 0,
        }
    }

    #[test]
    fn provenance_matches_only_the_same_source_version_and_command() {
        let cmd = command_hash(&["sort".into(), "{}".into()], false);
        let p = Provenance::of_object(&object("abc"), &cmd);
        assert_eq!(p.source, "s3://b/k/%C3%A9.csv");
        let meta = p.metadata();
        assert_eq!(p.matches(&meta), Some(true));
        assert_eq!(
            Provenance::of_object(&object("abd"), &cmd).matches(&meta),
            Some(false)
        );
        let other = command_hash(&["sort".into(), "-r".into(), "{}".into()], false);
        assert_eq!(
            Provenance::of_object(&object("abc"), &other).matches(&meta),
            Some(false)
        );
        assert_eq!(p.matches(&[("other".into(), "x".into())]), None);
        assert_ne!(cmd, command_hash(&["sort".into(), "{}".into()], true));
    }
}
