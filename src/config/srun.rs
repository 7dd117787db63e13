//! `--executor srun`: the Slurm allocation fanout runs in, from the environment Slurm sets
//! (read once, while the configuration is built), and how a job becomes one step of it.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Result};

/// The Slurm allocation fanout runs in (`--executor srun`), from the environment Slurm sets.
#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    /// srun, resolved on PATH.
    pub srun: PathBuf,
    /// Tasks of the allocation (`SLURM_NTASKS`), if given.
    pub tasks: Option<usize>,
    /// CPUs of the allocation: `SLURM_CPUS_ON_NODE` × nodes.
    pub cpus: usize,
    /// The allocation's memory, if Slurm says: per node × nodes, or per CPU × CPUs.
    pub mem_bytes: Option<u64>,
    /// `--cpus-per-job`, default 1.
    pub cpus_per_job: usize,
}

impl Allocation {
    pub(crate) fn find(cpus_per_job: Option<usize>) -> Result<Allocation> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str| env(k).and_then(|v| leading_number(&v));
        if env("SLURM_JOB_ID").is_none() {
            bail!("--executor srun runs inside a Slurm allocation (SLURM_JOB_ID is not set): start fanout under salloc or sbatch, or use --executor slurm to submit a job array");
        }
        let Ok(srun) = which::which("srun") else {
            bail!("--executor srun: srun is not on PATH");
        };
        let nodes = num("SLURM_JOB_NUM_NODES")
            .or(num("SLURM_NNODES"))
            .unwrap_or(1);
        let cpus = num("SLURM_CPUS_ON_NODE").map_or(1, |c| c * nodes).max(1);
        let mem_bytes = num("SLURM_MEM_PER_NODE")
            .map(|m| m as u64 * nodes as u64)
            .or_else(|| num("SLURM_MEM_PER_CPU").map(|m| m as u64 * cpus as u64))
            .map(|mib| mib << 20);
        Ok(Allocation {
            srun,
            tasks: num("SLURM_NTASKS"),
            cpus,
            mem_bytes,
            cpus_per_job: cpus_per_job.unwrap_or(1),
        })
    }

    /// Jobs at once by default: the allocation's tasks, else its CPUs per job.
    pub(crate) fn default_jobs(&self) -> usize {
        self.tasks.unwrap_or(self.cpus / self.cpus_per_job).max(1)
    }

    /// The argv that runs `argv` as one step of the allocation with `reserved` bytes of memory.
    pub(crate) fn wrap(&self, argv: &[OsString], job: u64, reserved: u64) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![
            self.srun.clone().into(),
            "--exact".into(),
            "--ntasks=1".into(),
            "--nodes=1".into(),
            format!("--cpus-per-task={}", self.cpus_per_job).into(),
            format!("--mem={}M", reserved.div_ceil(1 << 20).max(1)).into(),
            format!("--job-name=fanout-{job}").into(),
            "--quiet".into(),
            "--".into(),
        ];
        out.extend(argv.iter().cloned());
        out
    }
}

/// `"16000"` or `"16000M"` or `"4(x2)"`: the leading number.
fn leading_number(s: &str) -> Option<usize> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_numbers() {
        assert_eq!(leading_number("16000"), Some(16000));
        assert_eq!(leading_number("2(x3)"), Some(2));
        assert_eq!(leading_number("x"), None);
    }

    #[test]
    fn srun_wrapping_keeps_the_command_words() {
        let a = Allocation {
            srun: PathBuf::from("/usr/bin/srun"),
            tasks: None,
            cpus: 4,
            mem_bytes: None,
            cpus_per_job: 2,
        };
        let argv = a.wrap(&["python3".into(), "a b.py".into()], 3, 300 << 20);
        assert_eq!(argv[0], "/usr/bin/srun");
        assert!(argv.contains(&"--mem=300M".into()));
        assert!(argv.contains(&"--cpus-per-task=2".into()));
        assert_eq!(&argv[argv.len() - 3..], &["--", "python3", "a b.py"]);
        assert_eq!(a.default_jobs(), 2);
    }
}
