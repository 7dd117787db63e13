//! A remote root or object named by URL: `s3://bucket/key`, `gs://bucket/key`,
//! `az://container/key`, and the `https://` forms of the three stores.

use std::fmt;

use anyhow::{bail, Result};

/// Which store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    S3,
    Gcs,
    Azure,
}

/// A URL split into the store it names (`base`, ending in `/`) and a key in it (as stored: not
/// percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RemoteUrl {
    pub scheme: Scheme,
    /// `s3://bucket/`, `https://account.blob.core.windows.net/container/`, ...
    pub base: String,
    pub key: String,
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.base, self.key)
    }
}

/// Whether `text` reads as a remote URL (any scheme fanout knows; not checked further).
pub(crate) fn looks_remote(text: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "azure://", "https://", "http://",
    ]
    .iter()
    .any(|p| {
        // Bytes, not a str slice: a path may have a multi-byte character at the cut.
        text.len() > p.len() && text.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    })
}

impl RemoteUrl {
    /// Parses a URL fanout can list and read; one clear line when it cannot.
    pub(crate) fn parse(text: &str) -> Result<RemoteUrl> {
        let (scheme_text, rest) = text
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("{text}: not a URL"))?;
        let scheme_text = scheme_text.to_ascii_lowercase();
        let (scheme, base_len) = match scheme_text.as_str() {
            "s3" | "s3a" => (Scheme::S3, bucket_end(rest)),
            "gs" => (Scheme::Gcs, bucket_end(rest)),
            "az" | "azure" => (Scheme::Azure, bucket_end(rest)),
            "https" | "http" => https_form(text, rest)?,
            other => bail!(
                "{text}: unknown URL scheme `{other}://` (fanout reads s3://, gs://, az:// and \
                 their https:// forms)"
            ),
        };
        let (bucket, key) = rest.split_at(base_len);
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') && !scheme_text.starts_with("http") {
            bail!("{text}: no bucket in the URL (write it as {scheme_text}://BUCKET/PREFIX)");
        }
        let key = key.trim_start_matches('/');
        Ok(RemoteUrl {
            scheme,
            base: format!("{scheme_text}://{bucket}/"),
            key: key.to_string(),
        })
    }

    /// The object `key` in the same store.
    pub(crate) fn with_key(&self, key: &str) -> RemoteUrl {
        RemoteUrl {
            key: key.to_string(),
            ..self.clone()
        }
    }

    /// The key as a prefix of a "directory": empty, or ending in `/`.
    pub(crate) fn dir_prefix(&self) -> String {
        if self.key.is_empty() || self.key.ends_with('/') {
            self.key.clone()
        } else {
            format!("{}/", self.key)
        }
    }

    /// The key's last segment.
    pub(crate) fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or("")
    }
}

/// Where the bucket ends in `rest` (`bucket/key...`).
fn bucket_end(rest: &str) -> usize {
    rest.find('/').unwrap_or(rest.len())
}

/// The https forms: `https://BUCKET.s3[.REGION].amazonaws.com/KEY`,
/// `https://s3[.REGION].amazonaws.com/BUCKET/KEY`, `https://storage.googleapis.com/BUCKET/KEY`,
/// `https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY`.
fn https_form(text: &str, rest: &str) -> Result<(Scheme, usize)> {
    let host_end = bucket_end(rest);
    let host = rest[..host_end].to_ascii_lowercase();
    let path_bucket = || host_end + 1 + bucket_end(&rest[(host_end + 1).min(rest.len())..]);
    if host.ends_with(".amazonaws.com") {
        if host.starts_with("s3.") || host.starts_with("s3-") {
            return Ok((Scheme::S3, path_bucket().min(rest.len())));
        }
        return Ok((Scheme::S3, host_end));
    }
    if host == "storage.googleapis.com" {
        return Ok((Scheme::Gcs, path_bucket().min(rest.len())));
    }
    if host.ends_with(".blob.core.windows.net") || host.ends_with(".dfs.core.windows.net") {
        return Ok((Scheme::Azure, path_bucket().min(rest.len())));
    }
    bail!("{text}: not a URL of S3, GCS or Azure (for another S3 server, write s3://BUCKET/PREFIX and set AWS_ENDPOINT_URL)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_store_and_key() {
        let u = RemoteUrl::parse("s3://lake/events/year=2024/a b.parquet").unwrap();
        assert_eq!(u.scheme, Scheme::S3);
        assert_eq!(u.base, "s3://lake/");
        assert_eq!(u.key, "events/year=2024/a b.parquet");
        assert_eq!(u.to_string(), "s3://lake/events/year=2024/a b.parquet");
        assert_eq!(u.file_name(), "a b.parquet");
        let root = RemoteUrl::parse("gs://b").unwrap();
        assert_eq!((root.base.as_str(), root.key.as_str()), ("gs://b/", ""));
        assert_eq!(root.dir_prefix(), "");
        assert_eq!(
            RemoteUrl::parse("az://c/data").unwrap().dir_prefix(),
            "data/"
        );
        assert_eq!(
            RemoteUrl::parse("az://c/data/").unwrap().dir_prefix(),
            "data/"
        );
        let h = RemoteUrl::parse("https://acct.blob.core.windows.net/cont/x/y").unwrap();
        assert_eq!(h.scheme, Scheme::Azure);
        assert_eq!(h.base, "https://acct.blob.core.windows.net/cont/");
        assert_eq!(h.key, "x/y");
        let v = RemoteUrl::parse("https://b.s3.eu-west-1.amazonaws.com/k/l").unwrap();
        assert_eq!(
            (v.base.as_str(), v.key.as_str()),
            ("https://b.s3.eu-west-1.amazonaws.com/", "k/l")
        );
    }

    #[test]
    fn bad_urls_are_one_line() {
        for bad in ["s3://", "ftp://x/y", "https://example.com/a"] {
            let err = RemoteUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(looks_remote("S3://x"));
        assert!(!looks_remote("data/s3:/x"));
    }
}
