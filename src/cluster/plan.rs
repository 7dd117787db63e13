//! The plan of a Slurm run, as written to the plan directory and read back by each worker.
//!
//! ```text
//! PLAN/plan.json               the template and options (the same for every shard)
//! PLAN/job.sh                  the sbatch script
//! PLAN/inputs/shard-K.jsonl    shard K's files: job number, path, identity, weight
//! PLAN/records/shard-K.jsonl   shard K's journal, written by its worker as each file finishes
//! PLAN/records/shard-K.started the job numbers of its jobs as they start
//! PLAN/output/shard-K.stdout   its jobs' standard output, one job after another
//! PLAN/output/shard-K.stderr   its jobs' standard error, one job after another
//! PLAN/logs/shard-K.log        the worker's own messages and Slurm's (slurmstepd)
//! ```
//!
//! Paths stay as the walk produced them (relative to the submit directory, which the worker
//! changes to), so records and `--resume` match a local run's.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, Executor, Halt, Order, PerJob};
use crate::config::Config;
use crate::memory::Amount;
use crate::parquet::Verify;
use crate::walk::Input;

/// Bumped when the plan's meaning changes; a worker refuses a plan of another version.
const PLAN_VERSION: u32 = 1;

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
    /// The command words, base64 of their bytes.
    pub command_b64: Vec<String>,
    /// The same, readable.
    pub command: Vec<String>,
    pub shell: bool,
    pub in_place: bool,
    pub verify: Option<String>,
    pub force: bool,
    /// Jobs at once in each task (`-j`).
    pub jobs: usize,
    pub cpus_per_job: usize,
    pub keep_order: bool,
    pub timeout_ms: Option<u64>,
    pub kill_grace_ms: u64,
    pub retries: u32,
    pub halt: Option<String>,
    pub order: String,
    /// `--mem-per-job SIZE`; `None`: learn within each task.
    pub mem_per_job: Option<u64>,
    pub mem_reserve: Option<u64>,
    /// `--mem` of each array task (the jobs' budget plus the worker's own share).
    pub task_mem_bytes: u64,
}

/// One file of a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlannedFile {
    pub job: u64,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path_b64: Option<String>,
    pub weight_bytes: u64,
}

impl PlannedFile {
    pub(crate) fn new(job: u64, path: &Path, weight: u64) -> PlannedFile {
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

fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

fn parse_value<T: ValueEnum>(s: &str, what: &str) -> Result<T> {
    T::from_str(s, false).map_err(|_| anyhow::anyhow!("the plan has an unknown {what}: {s}"))
}

impl Plan {
    pub(crate) fn new(config: &Config, shards: usize, files: u64, task_mem: u64) -> Result<Plan> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let verify = config
            .in_place
            .as_ref()
            .and_then(|ip| ip.verify)
            .map(|v| value_name(&v));
        Ok(Plan {
            plan_version: PLAN_VERSION,
            fanout_version: env!("CARGO_PKG_VERSION").to_string(),
            cwd_b64: b64(cwd.as_os_str().as_bytes()),
            cwd: cwd.to_string_lossy().into_owned(),
            shards,
            files,
            command_b64: config.command.iter().map(|w| b64(w.as_bytes())).collect(),
            command: config
                .command
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect(),
            shell: config.shell,
            in_place: config.in_place.is_some(),
            verify,
            force: config.in_place.as_ref().is_some_and(|ip| ip.force),
            jobs: config.jobs,
            cpus_per_job: config.threads,
            keep_order: config.keep_order,
            timeout_ms: config.timeout.map(|d| d.as_millis() as u64),
            kill_grace_ms: config.kill_grace.as_millis() as u64,
            retries: config.retries,
            halt: config.halt.map(|h| value_name(&h)),
            order: value_name(&config.order),
            mem_per_job: config.mem_per_job,
            mem_reserve: config.mem_reserve,
            task_mem_bytes: task_mem,
        })
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join("plan.json");
        let text = serde_json::to_vec_pretty(self)?;
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub(crate) fn load(dir: &Path) -> Result<Plan> {
        let path = dir.join("plan.json");
        let text = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let plan: Plan = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a fanout plan", path.display()))?;
        if plan.plan_version != PLAN_VERSION || plan.fanout_version != env!("CARGO_PKG_VERSION") {
            bail!(
                "{} was written by fanout {} (plan version {}); this is fanout {} (plan version {PLAN_VERSION})",
                path.display(),
                plan.fanout_version,
                plan.plan_version,
                env!("CARGO_PKG_VERSION")
            );
        }
        Ok(plan)
    }

    pub(crate) fn cwd(&self) -> Result<PathBuf> {
        Ok(PathBuf::from(OsString::from_vec(unb64(&self.cwd_b64)?)))
    }

    /// The command line a local run of this plan would have had, for `Config::from_cli`.
    /// `budget` is the jobs' memory budget in the task.
    pub(crate) fn to_cli(&self, summary: PathBuf, budget: u64) -> Result<Cli> {
        let command = self
            .command_b64
            .iter()
            .map(|w| unb64(w).map(OsString::from_vec))
            .collect::<Result<Vec<_>>>()?;
        Ok(Cli {
            paths: Vec::new(),
            command,
            ext: Vec::new(),
            glob: Vec::new(),
            hidden: false,
            no_ignore: false,
            follow: false,
            max_depth: None,
            null: false,
            jobs: Some(self.jobs),
            shell: self.shell,
            // Job numbers in a shard are not consecutive: ordering by them would hold every
            // record back until the task ends (and lose them if it is killed).
            keep_order: false,
            dry_run: false,
            timeout: self.timeout_ms.map(Duration::from_millis),
            kill_grace: Duration::from_millis(self.kill_grace_ms),
            in_place: self.in_place,
            verify: self
                .verify
                .as_deref()
                .map(|v| parse_value::<Verify>(v, "verify mode"))
                .transpose()?,
            force: self.force,
            mem_limit: Some(Amount::Bytes(budget)),
            mem_per_job: Some(self.mem_per_job.map_or(PerJob::Auto, PerJob::Fixed)),
            mem_reserve: self.mem_reserve.map(Amount::Bytes),
            order: parse_value::<Order>(&self.order, "order")?,
            retries: self.retries,
            halt: self
                .halt
                .as_deref()
                .map(|h| parse_value::<Halt>(h, "halt mode"))
                .transpose()?,
            resume: None,
            summary: Some(summary),
            progress: false,
            no_progress: true,
            quiet: true,
            executor: Executor::Local,
            cpus_per_job: Some(self.cpus_per_job),
            shards: None,
            slurm_arg: Vec::new(),
            plan_dir: None,
        })
    }
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

    /// Creates the directories.
    pub(crate) fn create(&self) -> Result<()> {
        for sub in ["inputs", "records", "output", "logs"] {
            let d = self.dir.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(())
    }

    pub(crate) fn write_inputs(&self, shard: usize, files: &[PlannedFile]) -> Result<()> {
        let path = self.inputs(shard);
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(fs::File::create(&path)?);
            for f in files {
                serde_json::to_writer(&mut out, f)?;
                out.write_all(b"\n")?;
            }
            out.into_inner()?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }

    pub(crate) fn read_inputs(&self, shard: usize) -> Result<Vec<Input>> {
        let path = self.inputs(shard);
        let file =
            fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut inputs = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            let f: PlannedFile = serde_json::from_str(&line)
                .with_context(|| format!("{}: not a plan line", path.display()))?;
            inputs.push(Input {
                job: f.job,
                path: f.path()?,
                problem: None,
                weight: Some(f.weight_bytes),
                duplicate_of: None,
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
        let f = PlannedFile::new(4, Path::new(&raw), 10);
        let line = serde_json::to_string(&f).unwrap();
        let back: PlannedFile = serde_json::from_str(&line).unwrap();
        assert_eq!(back.path().unwrap(), PathBuf::from(raw));
        assert_eq!(back.job, 4);
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
