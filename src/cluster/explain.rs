//! Why a file has no record: its array task ended first (killed for memory, time limit, node
//! failure, cancelled). Each such file gets a record with Slurm's state, the task's exit signal,
//! the log line that tells most, and whether the file was running or never reached; files are
//! never silently lost. In place and with `-o`, the `{out}` files killed jobs left behind are
//! removed.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::follow::{Intake, Shard};
use super::state::{ExitCode, JobId, Task, TaskState};
use super::watch::Watch;
use crate::cancel::Cancel;
use crate::config::Config;
use crate::record::{JobRecord, Status};
use crate::template::JobValues;

/// Every planned file without a record gets one, in job order, handed to `intake`.
pub(crate) fn account_for_the_rest(
    shards: &[Shard],
    watch: &Watch,
    config: &Config,
    cancel: &Cancel,
    intake: &mut dyn Intake,
) {
    let in_place = config.run.in_place.is_some();
    let quiet = config.quiet;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut missing: Vec<JobRecord> = Vec::new();
    for s in shards {
        if s.unrecorded().next().is_none() {
            continue;
        }
        let state = watch.state(s.index);
        let started = s.started || state.is_some_and(|t| t.node.is_some());
        // Never listed by squeue (fanout stopped waiting): ask scontrol all the same.
        let exit = if state.is_none_or(TaskState::is_ended) {
            watch.exit_code(s.index)
        } else {
            None
        };
        let why = explain(&watch.job, s.index, state, exit);
        let running = s.started_jobs();
        let status = if !started {
            Status::NotStarted
        } else if watch.cancelled {
            Status::Interrupted
        } else {
            Status::Failed
        };
        for f in s.unrecorded() {
            let Ok(path) = f.path() else { continue };
            let mut r = JobRecord::new(f.job, &path, status);
            // Which of the task's files was running when it died, and which it never reached.
            let reason = file_reason(
                status,
                running.contains(&f.job),
                &why,
                watch.cancelled,
                cancel,
                &s.log_lines,
                &f.path,
            );
            // With -o, where its target (and so its `{out}`) lies.
            let target = config.target.as_ref().and_then(|t| {
                t.expand(&JobValues::of(&path, f.job, f.rel_at, config.run.threads))
                    .ok()
            });
            r.reason = Some(match (in_place, &target) {
                (true, _) => format!("{reason}; original kept"),
                (false, Some(_)) => format!("{reason}; target left as it was"),
                (false, None) => reason,
            });
            r.weight_bytes = Some(f.weight_bytes);
            if let Some(t) = &target {
                r.set_output(t);
            }
            if in_place || target.is_some() {
                r.action = Some(crate::record::Action::Kept);
                let dir = match &target {
                    Some(t) => out_dir_of(t),
                    None => out_dir(&path),
                };
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            missing.push(r);
        }
    }
    missing.sort_by_key(|r| r.job);
    for r in missing {
        intake.accept(crate::executor::Done::bare(r));
    }
    sweep(&dirs, quiet, intake);
}

/// Why a file has no record, from what ended its task (`why`, with the task's last `log`
/// lines as evidence) and whether the file was running then (`ran`) or never reached.
fn file_reason(
    status: Status,
    ran: bool,
    why: &str,
    cancelled: bool,
    cancel: &Cancel,
    log: &VecDeque<String>,
    path: &str,
) -> String {
    match (status, ran) {
        (Status::NotStarted, _) if cancelled => format!(
            "{} (its Slurm array task was cancelled before it started)",
            crate::executor::not_started_reason(cancel)
        ),
        (Status::NotStarted, _) => format!("not started: {why} before it started"),
        (Status::Interrupted, _) => format!("interrupted: {why}"),
        (_, true) => with_evidence(why, "while this file ran", log, path),
        (_, false) => with_evidence(why, "before this file started", log, path),
    }
}

/// A task killed outright leaves its jobs' `{out}` files behind in `dirs`: removes them now
/// (their inputs are no longer locked by anyone).
fn sweep(dirs: &[PathBuf], quiet: bool, intake: &mut dyn Intake) {
    let removed: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| crate::inplace::sweep_dead(d, std::process::id()))
        .collect();
    if !removed.is_empty() && !quiet {
        intake.notice(&format!(
            "removed {} of array tasks that ended without finishing",
            crate::error::counted(removed.len() as u64, "temporary file")
        ));
    }
}

/// Where an in-place job's `{out}` lies: beside the file rewritten (a symlink's target).
fn out_dir(input: &Path) -> PathBuf {
    out_dir_of(&crate::inplace::InPlace::target(input).unwrap_or(input.to_path_buf()))
}

/// The directory of `target`, where its `{out}` lies.
fn out_dir_of(target: &Path) -> PathBuf {
    target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// How task K ended, from Slurm's state and its exit code, e.g. `Slurm array task 6_1 on
/// node17 ended FAILED (killed by signal 9, SIGKILL)`.
fn explain(job: &JobId, k: usize, state: Option<&TaskState>, exit: Option<ExitCode>) -> String {
    let mut why = format!("Slurm array task {}", job.name(Task::Index(k)));
    if let Some(node) = state.and_then(|t| t.node.as_deref()) {
        why.push_str(&format!(" on {node}"));
    }
    why.push_str(&format!(
        " ended {}",
        state.map_or("UNKNOWN", |t| t.state.name())
    ));
    match exit {
        Some(e) if e.signal > 0 => why.push_str(&format!(
            " (killed by signal {}, {})",
            e.signal,
            crate::record::signal_name(e.signal)
        )),
        Some(e) if e.code > 0 => why.push_str(&format!(" (exit {})", e.code)),
        _ => {}
    }
    if let Some(reason) = state.and_then(|t| t.reason.as_deref()) {
        why.push_str(&format!(" [{reason}]"));
    }
    why
}

/// `WHY when: EVIDENCE` — e.g. `… ended FAILED (killed by signal 9) while this file ran:
/// slurmstepd: error: StepId=6_1.batch exceeded memory limit (A > B), being killed`.
fn with_evidence(why: &str, when: &str, log: &VecDeque<String>, path: &str) -> String {
    match telling_line(log, path) {
        Some(line) => format!("{why} {when}: {line}"),
        None => format!("{why} {when}"),
    }
}

/// The log line that best says why a task ended, for the file at `path`: slurmstepd's memory
/// line first (its first has the numbers, "exceeded memory limit (A > B)"), then Slurm's limits,
/// cancellation and node failure, then the file's own lines, then other out-of-memory lines,
/// then fanout's last words that are not about another file, then the last line. fanout's own
/// notices that merely mention memory (a job larger than the budget, run alone) never count as
/// a memory kill.
fn telling_line<'l>(lines: &'l VecDeque<String>, path: &str) -> Option<&'l str> {
    let lower: Vec<String> = lines.iter().map(|l| l.to_ascii_lowercase()).collect();
    let first = |pred: &dyn Fn(&str) -> bool| lower.iter().position(|l| pred(l));
    let last = |pred: &dyn Fn(&str) -> bool| lower.iter().rposition(|l| pred(l));
    let oom = |l: &str| {
        l.contains("exceeded memory limit")
            || l.contains("exceeded job memory limit")
            || l.contains("oom")
            || l.contains("out of memory")
    };
    let mentions = |l: &str| {
        let p = path.to_ascii_lowercase();
        l.contains(&format!("{p}:")) || l.contains(&format!("{p} ")) || l.ends_with(&p)
    };
    // fanout's own line about a file (`fanout: PATH: …`) that is not this one.
    let about_another = |l: &str| {
        l.strip_prefix("fanout: ").is_some_and(|rest| {
            !mentions(l)
                && !rest.starts_with("error:")
                && !rest.starts_with("warning:")
                && rest.contains(": ")
        })
    };
    let found = first(&|l| l.contains("slurmstepd") && oom(l))
        .or_else(|| {
            last(&|l| {
                l.contains("time limit") || l.contains("cancelled") || l.contains("node fail")
            })
        })
        .or_else(|| (!path.is_empty()).then(|| last(&|l| mentions(l))).flatten())
        .or_else(|| first(&|l| oom(l) && !l.starts_with("fanout")))
        .or_else(|| {
            last(&|l| (l.starts_with("fanout") || l.contains("error")) && !about_another(l))
        })
        .or_else(|| lines.len().checked_sub(1))?;
    lines.get(found).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::{ArrayStates, State};

    fn log(lines: &[&str]) -> VecDeque<String> {
        lines.iter().map(std::string::ToString::to_string).collect()
    }

    #[test]
    fn the_memory_line_explains_a_killed_task() {
        let lines = log(&[
            "fanout: removed 1 temporary file(s)",
            "slurmstepd-n1: error: StepId=16.batch exceeded memory limit (434749440 > 104857600), being killed",
            "slurmstepd-n1: error: *** JOB 16 ON n1 CANCELLED AT 2026-11-22T06:24:25 ***",
        ]);
        assert!(telling_line(&lines, "d/f1")
            .unwrap()
            .contains("exceeded memory limit"));
    }

    /// A task log as the test cluster writes it: the worker's notice that another file is run
    /// alone comes first and mentions memory; slurmstepd's line explains the kill.
    #[test]
    fn slurmstepds_memory_line_wins_over_fanouts_memory_notice() {
        let lines = log(&[
            "fanout: d/f03: its job needs about 1.1 GiB, more than the whole memory budget (448.0 MiB): running it alone",
            "slurmstepd: error: StepId=17_1.batch exceeded memory limit (443125760 > 171966464), being killed",
            "slurmstepd: error: Exceeded job memory limit",
            "slurmstepd: error: *** JOB 18 ON localhost CANCELLED AT 2026-12-07T04:41:02 ***",
        ]);
        assert_eq!(
            telling_line(&lines, "d/f05"),
            Some("slurmstepd: error: StepId=17_1.batch exceeded memory limit (443125760 > 171966464), being killed")
        );
        // Without slurmstepd's words: the file's own line, never another file's notice.
        let lines = log(&[
            "fanout: d/f03: its job needs about 1.1 GiB, more than the whole memory budget (448.0 MiB): running it alone",
            "fanout: d/f05: cannot read it: Input/output error",
        ]);
        assert_eq!(
            telling_line(&lines, "d/f05"),
            Some("fanout: d/f05: cannot read it: Input/output error")
        );
        let lines = log(&[
            "fanout: d/f03: its job needs about 1.1 GiB, more than the whole memory budget (448.0 MiB): running it alone",
            "Killed",
        ]);
        assert_eq!(telling_line(&lines, "d/f05"), Some("Killed"));
        // A prefix of another file's name is not this file.
        let lines = log(&[
            "fanout: d/f10: its job needs more than the whole memory budget",
            "x",
        ]);
        assert_eq!(telling_line(&lines, "d/f1"), Some("x"));
    }

    #[test]
    fn without_a_memory_line_limits_then_fanouts_words_then_the_last_line() {
        let lines = log(&[
            "fanout: starting",
            "something",
            "slurmstepd: error: *** JOB 3 ON n1 CANCELLED AT 2026 DUE TO TIME LIMIT ***",
            "last",
        ]);
        assert!(telling_line(&lines, "p").unwrap().contains("TIME LIMIT"));
        let lines = log(&["fanout: error: cannot read x", "last"]);
        assert_eq!(
            telling_line(&lines, "p"),
            Some("fanout: error: cannot read x")
        );
        assert_eq!(telling_line(&log(&["a", "b"]), "p"), Some("b"));
        assert_eq!(telling_line(&log(&[]), "p"), None);
        assert_eq!(with_evidence("WHY", "when", &log(&[]), "p"), "WHY when");
        assert_eq!(
            with_evidence("WHY", "when", &log(&["x"]), "p"),
            "WHY when: x"
        );
    }

    #[test]
    fn a_tasks_end_in_words() {
        let job = JobId::from_sbatch("6").unwrap();
        let states = ArrayStates::parse("6_1|FAILED|OutOfMemory|node17\n6_2|CANCELLED|None|\n");
        let killed = ExitCode { code: 0, signal: 9 };
        assert_eq!(
            explain(&job, 1, states.of(1), Some(killed)),
            "Slurm array task 6_1 on node17 ended FAILED (killed by signal 9, SIGKILL) [OutOfMemory]"
        );
        assert_eq!(
            explain(&job, 2, states.of(2), Some(ExitCode { code: 2, signal: 0 })),
            "Slurm array task 6_2 ended CANCELLED (exit 2)"
        );
        assert_eq!(
            explain(&job, 3, None, None),
            "Slurm array task 6_3 ended UNKNOWN"
        );
        let forgotten = TaskState::forgotten();
        assert_eq!(forgotten.state, State::Forgotten);
        assert_eq!(
            explain(&job, 0, Some(&forgotten), None),
            "Slurm array task 6_0 ended ENDED [no longer known to Slurm]"
        );
    }
}
