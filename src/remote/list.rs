//! Listing a root into inputs: the keys under a prefix, filtered as the walk filters files
//! (`-e`, `-g`, `--max-depth` by `/` segments, `-H` for segments starting with `.`). Ignore
//! files do not apply to keys. Listing streams: each key is handed on as its page arrives.

use std::path::Path;

use anyhow::Result;
use ignore::overrides::{Override, OverrideBuilder};

use super::object::Object;
use super::store::stores;
use super::url::RemoteUrl;

/// Which keys a listing keeps.
pub(crate) struct KeyFilter {
    /// Lower-case extensions without a dot; empty means any.
    extensions: Vec<String>,
    globs: Override,
    hidden: bool,
    max_depth: Option<usize>,
}

impl KeyFilter {
    pub(crate) fn new(
        extensions: &[String],
        globs: &[String],
        hidden: bool,
        max_depth: Option<usize>,
    ) -> Result<KeyFilter> {
        let mut builder = OverrideBuilder::new("/");
        for glob in globs {
            builder.add(glob)?;
        }
        Ok(KeyFilter {
            extensions: extensions.to_vec(),
            globs: builder.build()?,
            hidden,
            max_depth,
        })
    }

    /// Whether the object at `rel` (its key below the root) is an input.
    pub(crate) fn wants(&self, rel: &str) -> bool {
        if rel.is_empty() || rel.ends_with('/') {
            // A "directory marker" some tools write: not a file.
            return false;
        }
        let segments = rel.split('/');
        if !self.hidden && rel.split('/').any(|s| s.starts_with('.')) {
            return false;
        }
        if self.max_depth.is_some_and(|d| segments.count() > d) {
            return false;
        }
        self.named_wants(rel)
    }

    /// The extension and glob rules alone (a URL named directly).
    fn named_wants(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let ext_ok = self.extensions.is_empty()
            || name.rsplit_once('.').is_some_and(|(stem, ext)| {
                !stem.is_empty() && self.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
            });
        ext_ok && !self.globs.matched(Path::new(rel), false).is_ignore()
    }
}

/// Lists `root` and hands each input object to `send` with where `{rel}` begins in its URL,
/// until `send` returns false (then false). A URL that names an object is that one input; a
/// URL ending in `/`, or naming no object, is a "directory": the keys under `KEY/`.
pub(crate) fn list_root(
    root: &RemoteUrl,
    filter: &KeyFilter,
    send: &mut dyn FnMut(Object, usize) -> bool,
) -> Result<bool> {
    let stores = stores();
    if !root.key.is_empty() && !root.key.ends_with('/') {
        if let Some(head) = stores.head(root)? {
            let name_at = root.base.len() + root.key.len() - root.file_name().len();
            return Ok(!filter.named_wants(root.file_name()) || send(head.object, name_at));
        }
    }
    let prefix = root.dir_prefix();
    let rel_at = root.base.len() + prefix.len();
    let mut go_on = true;
    stores.list(root, &prefix, &mut |object| {
        let rel = &object.url.key[prefix.len().min(object.url.key.len())..];
        if filter.wants(rel) {
            go_on = send(object, rel_at);
        }
        go_on
    })?;
    Ok(go_on)
}

/// The object a URL read from standard input names (`None`: there is none).
pub(crate) fn named(url: &RemoteUrl) -> Result<Option<Object>> {
    Ok(stores().head(url)?.map(|h| h.object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_filtered_as_files_are() {
        let f = KeyFilter::new(&["parquet".into()], &[], false, Some(2)).unwrap();
        assert!(f.wants("year=2024/a.parquet"));
        assert!(f.wants("a.PARQUET"));
        assert!(!f.wants("a.csv"));
        assert!(!f.wants("y/m/a.parquet"), "deeper than --max-depth 2");
        assert!(!f.wants(".hidden/a.parquet"));
        assert!(!f.wants("y/.a.parquet"));
        assert!(!f.wants("y/"));
        let g = KeyFilter::new(&[], &["year=2024/**".into(), "!*.tmp".into()], true, None).unwrap();
        assert!(g.wants("year=2024/m/a.csv"));
        assert!(!g.wants("year=2023/a.csv"));
        assert!(!g.wants("year=2024/a.tmp"));
        assert!(g.wants("year=2024/.a.csv"), "-H keeps hidden keys");
    }
}
