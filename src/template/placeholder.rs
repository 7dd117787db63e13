//! The placeholders: what each stands for and how it is written.

/// A placeholder that expands per job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// `{}`: the path.
    Path,
    /// `{.}`: the path without its extension.
    NoExt,
    /// `{/}`: the base name.
    Basename,
    /// `{//}`: the parent directory.
    Parent,
    /// `{/.}`: the base name without its extension.
    BasenameNoExt,
    /// `{#}`: the 1-based job number in input order.
    JobNumber,
    /// `{%}`: the worker slot, 1..=jobs.
    Slot,
    /// `{threads}`: max(1, logical CPUs / jobs).
    Threads,
    /// `{out}`: where an in-place job writes the new content.
    Out,
    /// `{mem}`: this job's memory reservation in MiB.
    Mem,
    /// `{rel}`: the path relative to the root it was found under (see [`rel_path`]).
    Rel,
    /// `{rel.}`: `{rel}` without its extension.
    RelNoExt,
    /// `{url}`: an object's URL (a local input's path as given).
    Url,
}

/// Every placeholder with its spelling, for parsing and for hints.
pub(super) const PLACEHOLDERS: &[(&str, Placeholder)] = &[
    ("", Placeholder::Path),
    (".", Placeholder::NoExt),
    ("/", Placeholder::Basename),
    ("//", Placeholder::Parent),
    ("/.", Placeholder::BasenameNoExt),
    ("#", Placeholder::JobNumber),
    ("%", Placeholder::Slot),
    ("threads", Placeholder::Threads),
    ("out", Placeholder::Out),
    ("mem", Placeholder::Mem),
    ("rel", Placeholder::Rel),
    ("rel.", Placeholder::RelNoExt),
    ("url", Placeholder::Url),
];

impl Placeholder {
    pub(super) fn is_path(self) -> bool {
        matches!(
            self,
            Placeholder::Path
                | Placeholder::NoExt
                | Placeholder::Basename
                | Placeholder::Parent
                | Placeholder::BasenameNoExt
                | Placeholder::Out
                | Placeholder::Rel
                | Placeholder::RelNoExt
                | Placeholder::Url
        )
    }

    /// Whether its value comes from the file itself (`{}` and what derives from it): an
    /// object must be staged for it.
    pub(super) fn reads_file(self) -> bool {
        matches!(
            self,
            Placeholder::Path
                | Placeholder::NoExt
                | Placeholder::Basename
                | Placeholder::Parent
                | Placeholder::BasenameNoExt
        )
    }
}

/// How a placeholder is written.
pub(super) fn spelling(ph: Placeholder) -> String {
    let name = PLACEHOLDERS
        .iter()
        .find(|(_, p)| *p == ph)
        .map_or("", |(n, _)| n);
    format!("{{{name}}}")
}
