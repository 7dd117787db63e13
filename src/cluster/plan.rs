//! The plan of a Slurm run, as written to the plan directory and read back by each worker.
//!
//! ```text
//! PLAN/plan.json               how each job goes (the same for every shard)
//! PLAN/job.sh                  the sbatch script
//! PLAN/inputs/shard-K.jsonl    shard K's files: job number, path, identity, weight
//! PLAN/records/shard-K.jsonl   shard K's journal, written by its worker as each file finishes
//! PLAN/records/shard-K.started the job numbers of its jobs as they start
//! PLAN/output/shard-K.stdout   its jobs' standard output, one job after another
//! PLAN/output/shard-K.stderr   its jobs' standard error, one job after another
//! PLAN/logs/shard-K.log        the worker's own messages and Slurm's (slurmstepd)
//! ```
//!
//! The plan says how each job goes as a `RunSpec`, from which every worker builds its own
//! Config. Paths stay as the walk produced them (relative to the submit directory, which the worker
//! changes to), so records and `--resume` match a local run's.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::private;
use crate::config::{Config, RunSpec};
use crate::input::Input;

/// Bumped when the plan's shape or meaning changes; a worker refuses a plan of another version.
/// 2: how each job goes is one `run` object (durations exact, not in whole milliseconds).
/// 3: the shards' inputs are sealed with their SHA-256 (`inputs_sha256`).
const PLAN_VERSION: u32 = 3;

/// Memory a worker needs for itself, on top of its jobs' budget, in a Slurm task's `--mem`.
pub(crate) const WORKER_MEM: u64 = 64 << 20;

/// Everything a worker needs besides its inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub plan_version: u32,
    pub fanout_version: String,
    /// The submit directory, base64 of its bytes; workers change to it.
    pub cwd_b64: String,
    /// The same, readable.
    pub cwd: String,
    pub shards: usize,
    pub files: u64,
    /// `--mem` of each array task (the jobs' budget plus the worker's own share).
    pub task_mem_bytes: u64,
    /// How each job goes, in every task (`jobs` of them at once).
    pub run: RunSpec,
    /// The SHA-256 of each shard's `inputs/shard-K.jsonl`; the plan's own digest is in the
    /// batch script, which Slurm keeps from submit time.
    pub inputs_sha256: Vec<String>,
}

/// The versions of a plan, read before the rest: a plan of another version may have another
/// shape, and is refused for its version.
#[derive(Deserialize)]
struct Versions {
    plan_version: u32,
    fanout_version: String,
}

/// One file of a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlannedFile {
    pub job: u64,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path_b64: Option<String>,
    pub weight_bytes: u64,
    /// Where `{rel}` begins in the path (the walked root's length), for a walked file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rel_at: Option<usize>,
    /// An object (its path is its URL): what the listing saw, so a worker stages exactly
    /// that version on its node.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object: Option<PlannedObject>,
}

/// An object's facts in a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlannedObject {
    pub size: u64,
    pub mtime_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}

impl PlannedObject {
    pub(crate) fn of(object: &crate::remote::Object) -> PlannedObject {
        PlannedObject {
            size: object.size,
            mtime_ns: object.mtime_ns,
            etag: object.etag.clone(),
            version: object.version.clone(),
        }
    }

    fn object(&self, url: &str) -> Result<crate::remote::Object> {
        Ok(crate::remote::Object {
            url: crate::remote::RemoteUrl::parse(url)?,
            size: self.size,
            etag: self.etag.clone(),
            version: self.version.clone(),
            mtime_ns: self.mtime_ns,
        })
    }
}

impl PlannedFile {
    pub(crate) fn new(job: u64, path: &Path, weight: u64, rel_at: Option<usize>) -> PlannedFile {
        let bytes = path.as_os_str().as_bytes();
        let (path, path_b64) = match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(b64(bytes)),
            ),
        };
        PlannedFile {
            job,
            path,
            path_b64,
            weight_bytes: weight,
            rel_at,
            object: None,
        }
    }

    pub(crate) fn path(&self) -> Result<PathBuf> {
        Ok(match &self.path_b64 {
            Some(b) => PathBuf::from(OsString::from_vec(unb64(b)?)),
            None => PathBuf::from(&self.path),
        })
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .context("bad base64 in the plan")
}

impl Plan {
    pub(crate) fn new(config: &Config, shards: usize, files: u64, task_mem: u64) -> Result<Plan> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Ok(Plan {
            plan_version: PLAN_VERSION,
            fanout_version: env!("CARGO_PKG_VERSION").to_string(),
            cwd_b64: b64(cwd.as_os_str().as_bytes()),
            cwd: cwd.to_string_lossy().into_owned(),
            shards,
            files,
            task_mem_bytes: task_mem,
            run: config.spec(),
            inputs_sha256: Vec::new(),
        })
    }

    /// Seals the plan over its shards: each shard's inputs file as it will be written (and
    /// its digest, kept in the plan), then the plan's own bytes and their digest.
    pub(crate) fn seal(&mut self, shards: &[Vec<PlannedFile>]) -> Result<Sealed> {
        let inputs = shards
            .iter()
            .map(|files| inputs_bytes(files))
            .collect::<Result<Vec<_>>>()?;
        self.inputs_sha256 = inputs.iter().map(|b| private::sha256(b)).collect();
        let plan = serde_json::to_vec_pretty(self)?;
        Ok(Sealed {
            digest: private::sha256(&plan),
            plan,
            inputs,
        })
    }

    /// Reads `plan.json` of `dir`, which must match `digest` (from the batch script).
    pub(crate) fn load(dir: &Path, digest: &str) -> Result<Plan> {
        let path = dir.join("plan.json");
        let text = private::read_sealed(&path, digest)?;
        let not_a_plan = || format!("{} is not a fanout plan", path.display());
        let v: Versions = serde_json::from_slice(&text).with_context(not_a_plan)?;
        if v.plan_version != PLAN_VERSION || v.fanout_version != env!("CARGO_PKG_VERSION") {
            bail!(
                "{} was written by fanout {} (plan version {}); this is fanout {} (plan version {PLAN_VERSION})",
                path.display(),
                v.fanout_version,
                v.plan_version,
                env!("CARGO_PKG_VERSION")
            );
        }
        serde_json::from_slice(&text).with_context(not_a_plan)
    }

    pub(crate) fn cwd(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(OsString::from_vec(unb64(&self.cwd_b64)?)))
    }
}

/// A plan ready to be written: `plan.json`'s bytes and digest, and each shard's inputs.
pub(crate) struct Sealed {
    pub plan: Vec<u8>,
    pub digest: String,
    pub inputs: Vec<Vec<u8>>,
}

/// A shard's inputs file: one JSON line per file.
fn inputs_bytes(files: &[PlannedFile]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for f in files {
        serde_json::to_writer(&mut out, f)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// The files of the plan directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub(crate) fn inputs(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("inputs/shard-{shard}.jsonl"))
    }
    pub(crate) fn records(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("records/shard-{shard}.jsonl"))
    }
    pub(crate) fn started(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("records/shard-{shard}.started"))
    }
    pub(crate) fn stdout(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("output/shard-{shard}.stdout"))
    }
    pub(crate) fn stderr(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("output/shard-{shard}.stderr"))
    }
    pub(crate) fn log(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("logs/shard-{shard}.log"))
    }
    /// The `--output` pattern for sbatch (`%a` is the array task id; a literal `%` is doubled),
    /// from the directory's bytes as they are.
    pub(crate) fn log_pattern(&self) -> OsString {
        let mut bytes = Vec::new();
        for &b in self.dir.as_os_str().as_bytes() {
            bytes.push(b);
            if b == b'%' {
                bytes.push(b'%');
            }
        }
        bytes.extend_from_slice(b"/logs/shard-%a.log");
        OsString::from_vec(bytes)
    }
    pub(crate) fn script(&self) -> PathBuf {
        self.dir.join("job.sh")
    }

    /// Creates the subdirectories (the plan directory itself is there), private.
    pub(crate) fn create(&self) -> Result<()> {
        for sub in ["inputs", "records", "output", "logs"] {
            private::create_dir(&self.dir.join(sub))?;
        }
        Ok(())
    }

    /// Writes the sealed plan's files, private.
    pub(crate) fn write_sealed(&self, sealed: &Sealed) -> Result<()> {
        private::write_file(&self.dir.join("plan.json"), &sealed.plan)?;
        for (k, bytes) in sealed.inputs.iter().enumerate() {
            private::write_file(&self.inputs(k), bytes)?;
        }
        Ok(())
    }

    /// Shard `shard`'s inputs, which must match `digest` (from the plan).
    pub(crate) fn read_inputs(&self, shard: usize, digest: &str) -> Result<Vec<Input>> {
        let path = self.inputs(shard);
        let bytes = private::read_sealed(&path, digest)?;
        let mut inputs = Vec::new();
        for line in bytes.as_slice().lines() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            let f: PlannedFile = serde_json::from_str(&line)
                .with_context(|| format!("{}: not a plan line", path.display()))?;
            let remote = match &f.object {
                Some(o) => Some(std::sync::Arc::new(o.object(&f.path)?)),
                None => None,
            };
            inputs.push(Input {
                weight: Some(f.weight_bytes),
                rel_at: f.rel_at,
                seen: remote.as_ref().map(|o| (o.size, o.mtime_ns)),
                remote,
                ..Input::new(f.job, f.path()?)
            });
        }
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_paths_round_trip() {
        let raw = OsString::from_vec(b"d/a\xff b.parquet".to_vec());
        let f = PlannedFile::new(4, Path::new(&raw), 10, Some(2));
        let line = serde_json::to_string(&f).unwrap();
        let back: PlannedFile = serde_json::from_str(&line).unwrap();
        assert_eq!(back.path().unwrap(), PathBuf::from(raw));
        assert_eq!((back.job, back.rel_at), (4, Some(2)));
    }

    fn config() -> Config {
        let args = [
            &b"fanout"[..],
            b"-j",
            b"2",
            b"--timeout",
            b"0.0005",
            b"--",
            b"echo",
            b"\xff",
        ];
        let cli = clap::Parser::try_parse_from(args.map(|a| OsString::from_vec(a.to_vec())));
        Config::from_cli(cli.unwrap()).unwrap()
    }

    #[test]
    fn a_plan_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = config();
        let mut plan = Plan::new(&config, 3, 7, 5 << 30).unwrap();
        let files = vec![PlannedFile::new(0, Path::new("a"), 1, None)];
        let sealed = plan.seal(&[files.clone(), vec![], files]).unwrap();
        let layout = Layout {
            dir: dir.path().to_path_buf(),
        };
        layout.create().unwrap();
        layout.write_sealed(&sealed).unwrap();
        let back = Plan::load(dir.path(), &sealed.digest).unwrap();
        assert!(Plan::load(dir.path(), &private::sha256(b"")).is_err());
        assert_eq!(back.inputs_sha256.len(), 3);
        let inputs = layout.read_inputs(2, &back.inputs_sha256[2]).unwrap();
        assert_eq!(inputs[0].path, Path::new("a"));
        assert!(layout.read_inputs(2, &back.inputs_sha256[1]).is_err());
        assert_eq!(back.run, config.spec());
        assert_eq!(
            (back.shards, back.files, back.task_mem_bytes),
            (3, 7, 5 << 30)
        );
        assert_eq!(back.cwd().unwrap(), std::env::current_dir().unwrap());
    }

    #[test]
    fn a_plan_of_another_version_is_refused_for_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = serde_json::to_value(Plan::new(&config(), 1, 1, 1 << 30).unwrap()).unwrap();
        // Another version may have another shape: the refusal names the version all the same.
        plan["plan_version"] = 1.into();
        plan["fanout_version"] = "0.0.1".into();
        plan.as_object_mut().unwrap().remove("run");
        std::fs::write(dir.path().join("plan.json"), plan.to_string()).unwrap();
        let digest = private::sha256(plan.to_string().as_bytes());
        let err = Plan::load(dir.path(), &digest).unwrap_err().to_string();
        assert!(
            err.contains("written by fanout 0.0.1 (plan version 1)"),
            "{err}"
        );
        std::fs::write(dir.path().join("plan.json"), "{}").unwrap();
        let err = Plan::load(dir.path(), &private::sha256(b"{}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a fanout plan"), "{err}");
    }

    #[test]
    fn log_pattern_escapes_percent() {
        let l = Layout {
            dir: PathBuf::from("/x/100%"),
        };
        assert_eq!(l.log_pattern(), "/x/100%%/logs/shard-%a.log");
        let raw = Layout {
            dir: PathBuf::from(OsString::from_vec(b"/x/\xff".to_vec())),
        };
        assert_eq!(raw.log_pattern().as_bytes(), b"/x/\xff/logs/shard-%a.log");
    }
}
