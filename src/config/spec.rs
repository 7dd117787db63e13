//! The part of a Config that says how each job goes (`RunSpec`, with its `-i` and `-o`
//! options), which a Slurm plan carries to the workers by JSON.

use std::ffi::OsString;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::choices::{Halt, Order};
use crate::parquet::Verify;

/// How each job of a run goes, apart from where its inputs come from and where its output and
/// records go: what a Slurm worker needs to run its shard as the submitting fanout would. It
/// travels in the plan as JSON (command words exactly, whatever their bytes; the modes by their
/// command-line names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunSpec {
    /// The command words as given.
    #[serde(with = "words")]
    pub command: Vec<OsString>,
    /// `-s`: the command runs through `sh -c`.
    pub shell: bool,
    /// `-i`, with its `--verify` and `--force`.
    pub in_place: Option<InPlaceOptions>,
    /// `-o`, with its `--verify` and `-u`.
    #[serde(default)]
    pub output: Option<OutputOptions>,
    /// At most this many jobs at once (in each array task).
    pub jobs: usize,
    /// `{threads}`, and the CPUs of each job.
    pub threads: usize,
    /// Per-job time limit.
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    pub kill_grace: Duration,
    /// Extra attempts for a failed or timed-out job.
    pub retries: u32,
    /// What the first failure stops.
    pub halt: Option<Halt>,
    /// Input order or heaviest first.
    pub order: Order,
    /// `--mem-per-job SIZE`; `None`: learn (`auto`).
    pub mem_per_job: Option<u64>,
    /// `--mem-reserve`; `None`: 5% of memory, at most 1 GiB.
    pub mem_reserve: Option<u64>,
}

/// The in-place part of the configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct InPlaceOptions {
    /// The verify mode given with `--verify`; `None`: by the input's extension.
    pub verify: Option<Verify>,
    /// Rewrite read-only inputs too.
    pub force: bool,
    /// The trust rules relaxed by flags.
    #[serde(default)]
    pub relax: Relax,
}

/// Trust rules of `-i` and `-o` that flags relax (see the README's "Security").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Relax {
    /// `--allow-shared-dirs`: `{out}` may be written in a directory another user can change.
    pub shared_dirs: bool,
    /// `--allow-foreign-links`: as root, follow another user's link to a file they could not
    /// write.
    pub foreign_links: bool,
}

/// The `-o` part of the configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OutputOptions {
    /// The target template, as given.
    #[serde(with = "word")]
    pub template: OsString,
    /// The verify mode given with `--verify`; `None`: by the target's extension.
    pub verify: Option<Verify>,
    /// `-u`: skip inputs whose target is up to date.
    pub update: bool,
    /// The trust rules relaxed by flags.
    #[serde(default)]
    pub relax: Relax,
}

impl RunSpec {
    /// How outputs are checked and committed, for `-i` or `-o`.
    pub(crate) fn commit_options(&self) -> Option<InPlaceOptions> {
        self.in_place.clone().or_else(|| {
            self.output.as_ref().map(|o| InPlaceOptions {
                verify: o.verify,
                force: false,
                relax: o.relax,
            })
        })
    }
}

/// One word in JSON, as [`words`] writes each.
pub(super) mod word {
    use std::ffi::OsString;

    use serde::{de::Error, Deserializer, Serializer};

    pub(in crate::config) fn serialize<S: Serializer>(
        w: &OsString,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        super::words::serialize(std::slice::from_ref(w), s)
    }

    pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<OsString, D::Error> {
        let mut words = super::words::deserialize(d)?;
        match (words.pop(), words.is_empty()) {
            (Some(w), true) => Ok(w),
            _ => Err(D::Error::custom("expected one word")),
        }
    }
}

/// Command words in JSON, exactly: a word that is UTF-8 as itself, any other as `{"b64": …,
/// "lossy": …}`, its bytes in base64 and a readable form (which is not read back).
mod words {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Word {
        Text(String),
        Bytes {
            b64: String,
            #[serde(default, skip_deserializing)]
            lossy: String,
        },
    }

    pub(super) fn serialize<S: Serializer>(words: &[OsString], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(words.iter().map(|w| match w.to_str() {
            Some(text) => Word::Text(text.to_string()),
            None => Word::Bytes {
                b64: STANDARD.encode(w.as_bytes()),
                lossy: w.to_string_lossy().into_owned(),
            },
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OsString>, D::Error> {
        Vec::<Word>::deserialize(d)?
            .into_iter()
            .map(|w| match w {
                Word::Text(text) => Ok(OsString::from(text)),
                Word::Bytes { b64, .. } => STANDARD
                    .decode(b64)
                    .map(OsString::from_vec)
                    .map_err(|e| D::Error::custom(format!("a command word's base64: {e}"))),
            })
            .collect()
    }
}
