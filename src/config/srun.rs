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
    /// The allocation's memory, if Slurm says: per node × nodes, or per CPU × CPUs, else what
    /// `scontrol show job` says it holds (an allocation sized by the cluster's DefMemPerCPU).
    pub mem_bytes: Option<u64>,
    /// The memory it holds on one node: no step can get more.
    pub node_mem_bytes: Option<u64>,
    /// `--cpus-per-job`, default 1.
    pub cpus_per_job: usize,
    /// `SLURM_JOB_ID`, and squeue and scancel if on PATH: to send a step's processes SIGTERM.
    pub job_id: String,
    pub squeue: Option<PathBuf>,
    pub scancel: Option<PathBuf>,
}

impl Allocation {
    pub(crate) fn find(cpus_per_job: Option<usize>) -> Result<Allocation> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str| env(k).and_then(|v| leading_number(&v));
        let Some(job_id) = env("SLURM_JOB_ID") else {
            bail!("--executor srun runs inside a Slurm allocation (SLURM_JOB_ID is not set): start fanout under salloc or sbatch, or use --executor slurm to submit a job array");
        };
        let Ok(srun) = which::which("srun") else {
            bail!("--executor srun: srun is not on PATH");
        };
        let nodes = num("SLURM_JOB_NUM_NODES")
            .or(num("SLURM_NNODES"))
            .unwrap_or(1)
            .max(1);
        // CPUs per node: SLURM_CPUS_ON_NODE inside a step or batch script; salloc sets only
        // SLURM_JOB_CPUS_PER_NODE (`2(x3),1`).
        let per_node = env("SLURM_JOB_CPUS_PER_NODE").map(|v| cpus_per_node(&v));
        let cpus = match (num("SLURM_CPUS_ON_NODE"), &per_node) {
            (Some(c), _) => c * nodes,
            (None, Some(list)) if !list.is_empty() => list.iter().sum(),
            _ => 1,
        }
        .max(1);
        let fewest_cpus = per_node
            .as_ref()
            .and_then(|l| l.iter().min().copied())
            .unwrap_or(cpus / nodes)
            .max(1);
        let mib = |m: usize| (m as u64) << 20;
        let (mem_bytes, node_mem_bytes) = if let Some(m) = num("SLURM_MEM_PER_NODE") {
            (Some(mib(m) * nodes as u64), Some(mib(m)))
        } else if let Some(m) = num("SLURM_MEM_PER_CPU") {
            (
                Some(mib(m) * cpus as u64),
                Some(mib(m) * fewest_cpus as u64),
            )
        } else {
            let total = scontrol_mem(&job_id);
            (total, total.map(|t| t / nodes as u64))
        };
        Ok(Allocation {
            srun,
            tasks: num("SLURM_NTASKS"),
            cpus,
            mem_bytes,
            node_mem_bytes,
            cpus_per_job: cpus_per_job.unwrap_or(1),
            job_id,
            squeue: which::which("squeue").ok(),
            scancel: which::which("scancel").ok(),
        })
    }

    /// The name of job `job`'s step (this fanout's process id keeps two runs in one
    /// allocation apart).
    fn step_name(job: u64) -> String {
        format!("fanout-{}-{job}", std::process::id())
    }

    /// Sends SIGTERM to the processes of job `job`'s step through Slurm (`scancel
    /// --signal=TERM JOBID.STEP`), as a local job's group gets it; false if the step could not
    /// be found or signalled (not started yet, squeue or scancel missing).
    pub(crate) fn term_step(&self, job: u64) -> bool {
        let (Some(squeue), Some(scancel)) = (&self.squeue, &self.scancel) else {
            return false;
        };
        let quiet = |c: &mut std::process::Command| {
            c.stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
        };
        let name = Self::step_name(job);
        // A step that has just started may not be listed yet, and a busy controller may not
        // answer at once: a few tries, a second in all, before srun is left to stop it.
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            let Ok(out) = quiet(
                std::process::Command::new(squeue)
                    .args(["--steps", "--noheader", "--jobs", &self.job_id])
                    .arg("--format=%i|%j"),
            ) else {
                continue;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let steps: Vec<&str> = text
                .lines()
                .filter_map(|l| l.trim().split_once('|'))
                .filter(|(_, n)| *n == name)
                .map(|(id, _)| id)
                .collect();
            if steps.is_empty() {
                continue;
            }
            return steps.iter().all(|step| {
                quiet(
                    std::process::Command::new(scancel)
                        .arg("--signal=TERM")
                        .arg(step),
                )
                .is_ok_and(|o| o.status.success())
            });
        }
        false
    }

    /// Refuses up front a fixed `--mem-per-job` that no step of the allocation could get.
    pub(crate) fn check_fits(&self, mem_per_job: Option<u64>) -> Result<()> {
        if let (Some(job), Some(node)) = (mem_per_job, self.node_mem_bytes) {
            if job > node {
                bail!(
                    "--mem-per-job {} is more than the allocation holds on a node ({}): no step could get it; ask salloc or sbatch for more memory, or lower --mem-per-job",
                    crate::units::human(job),
                    crate::units::human(node)
                );
            }
        }
        Ok(())
    }

    /// Jobs at once by default: the allocation's tasks, else its CPUs per job.
    pub(crate) fn default_jobs(&self) -> usize {
        self.tasks.unwrap_or(self.cpus / self.cpus_per_job).max(1)
    }

    /// The argv that runs `argv` as one step of the allocation with `reserved` bytes of memory,
    /// never more than the allocation holds on a node (a job larger than the budget runs
    /// alone, with all there is).
    pub(crate) fn wrap(&self, argv: &[OsString], job: u64, reserved: u64) -> Vec<OsString> {
        let want = reserved.div_ceil(1 << 20);
        let mib = self
            .node_mem_bytes
            .map_or(want, |n| want.min(n >> 20))
            .max(1);
        let mut out: Vec<OsString> = vec![
            self.srun.clone().into(),
            "--exact".into(),
            "--ntasks=1".into(),
            "--nodes=1".into(),
            format!("--cpus-per-task={}", self.cpus_per_job).into(),
            format!("--mem={mib}M").into(),
            format!("--job-name={}", Self::step_name(job)).into(),
            "--quiet".into(),
            "--".into(),
        ];
        out.extend(argv.iter().cloned());
        out
    }
}

/// `SLURM_JOB_CPUS_PER_NODE`, e.g. `2(x3),1`: the CPUs of each node.
fn cpus_per_node(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let Some(c) = leading_number(part) else {
            continue;
        };
        let times = part
            .split_once("(x")
            .and_then(|(_, r)| leading_number(r))
            .unwrap_or(1);
        out.extend(std::iter::repeat_n(c, times));
    }
    out
}

/// The memory `scontrol show job ID` says the allocation holds (`TRES=…,mem=1G,…`).
fn scontrol_mem(job: &str) -> Option<u64> {
    let out = std::process::Command::new(which::which("scontrol").ok()?)
        .args(["--oneliner", "show", "job", job])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    tres_mem(&String::from_utf8_lossy(&out.stdout))
}

/// `mem=` of the `TRES=` field of scontrol's line, in bytes (`512M`, `1G`, `1.50G`).
fn tres_mem(text: &str) -> Option<u64> {
    let tres = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("TRES="))?;
    let mem = tres.split(',').find_map(|kv| kv.strip_prefix("mem="))?;
    let split = mem
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(mem.len());
    let (n, unit) = mem.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale: u64 = match unit {
        "K" => 1 << 10,
        "" | "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        "P" => 1 << 50,
        _ => return None,
    };
    Some((n * scale as f64) as u64)
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
            node_mem_bytes: None,
            cpus_per_job: 2,
            job_id: "1".into(),
            squeue: None,
            scancel: None,
        };
        let argv = a.wrap(&["python3".into(), "a b.py".into()], 3, 300 << 20);
        assert_eq!(argv[0], "/usr/bin/srun");
        assert!(argv.contains(&"--mem=300M".into()));
        assert!(argv.contains(&"--cpus-per-task=2".into()));
        assert_eq!(&argv[argv.len() - 3..], &["--", "python3", "a b.py"]);
        assert_eq!(a.default_jobs(), 2);
        // Never more than a node of the allocation holds.
        let small = Allocation {
            node_mem_bytes: Some(512 << 20),
            ..a.clone()
        };
        let argv = small.wrap(&["true".into()], 1, 1 << 30);
        assert!(argv.contains(&"--mem=512M".into()), "{argv:?}");
        let argv = small.wrap(&["true".into()], 1, 100 << 20);
        assert!(argv.contains(&"--mem=100M".into()), "{argv:?}");
        assert!(small.check_fits(Some(512 << 20)).is_ok());
        let err = small.check_fits(Some(1 << 30)).unwrap_err().to_string();
        assert!(err.contains("--mem-per-job 1.0 GiB"), "{err}");
        assert!(
            a.check_fits(Some(1 << 40)).is_ok(),
            "nothing known: nothing refused"
        );
    }

    #[test]
    fn allocation_sizes_from_slurm() {
        assert_eq!(cpus_per_node("2(x3),1"), vec![2, 2, 2, 1]);
        assert_eq!(cpus_per_node("4"), vec![4]);
        let line = "JobId=59 JobName=sh UserId=root(0) NumNodes=1 NumCPUs=2 TRES=cpu=2,mem=1G,node=1,billing=2 Socks/Node=*";
        assert_eq!(tres_mem(line), Some(1 << 30));
        assert_eq!(tres_mem("TRES=cpu=2,mem=512M,node=1"), Some(512 << 20));
        assert_eq!(tres_mem("TRES=cpu=2,mem=1.50G"), Some(3 << 29));
        assert_eq!(tres_mem("TRES=cpu=2,node=1"), None);
    }
}
