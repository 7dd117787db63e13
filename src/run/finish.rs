//! The end of a run, in one place: the exit status, the human report on stderr and the
//! journal's final record.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;

use super::ledger::Closed;
use crate::cancel::{Cancel, Reason};
use crate::config::Config;
use crate::error::{counted, print_notice, ExitStatus};
use crate::executor::Extra;
use crate::summary::Totals;
use crate::units;
use crate::walk::WalkReport;

/// Everything the end of a run looks at.
pub(super) struct Ending<'a> {
    pub config: &'a Config,
    pub cancel: &'a Cancel,
    pub closed: Closed<'a>,
    pub extra: Extra,
    pub walk: WalkReport,
    pub start: Instant,
    /// A dry run: nothing ran, so nothing failed.
    pub rehearsal: bool,
}

/// Prints the report, writes the final record, and returns the exit status.
pub(super) fn finish(end: Ending<'_>) -> Result<ExitStatus> {
    let Ending {
        config,
        cancel,
        closed,
        mut extra,
        walk,
        start,
        rehearsal,
    } = end;
    let Closed {
        journal,
        mut totals,
        error,
    } = closed;
    totals.walk_errors += walk.errors;
    let wall = start.elapsed();
    let stopped = cancel.reason();
    let exit = exit_status(&totals, stopped, rehearsal, error.is_some());
    measure_own_cpu(&totals, &mut extra);
    let reader_gone = matches!(stopped, Some(Reason::ClosedStdout | Reason::ClosedStderr));
    if !config.quiet && !reader_gone {
        report(&totals, &walk, &mut extra, wall, rehearsal, config.verbose);
        if let Some(msg) = &error {
            print_notice(&format!("error: {msg}: the journal is incomplete"));
        }
        for note in &extra.notes {
            print_notice(note);
        }
    }
    let (Some(j), None) = (journal, &error) else {
        return Ok(exit);
    };
    if walk.cut_short {
        // Not every input has its record.
        j.walk_cut_short();
    }
    let cluster = extra.cluster.as_ref();
    if let Err(err) = j.finish(&totals, wall, exit, stopped, &extra.memory, cluster) {
        print_notice(&format!(
            "error: cannot write the summary {}: {}",
            j.path().display(),
            crate::error::io_reason(&err)
        ));
        return Ok(exit.max_with(ExitStatus::Failure));
    }
    let stopped_by_signal = matches!(stopped, Some(Reason::Signal(_)));
    if stopped_by_signal && !config.quiet && !reader_gone && j.path().is_file() {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        print_notice(&format!(
            "to finish the run: {}",
            resume_command(&argv, j.path())
        ));
    }
    Ok(exit)
}

/// The command line that finishes a stopped run: fanout's own, with `--resume JOURNAL
/// --summary JOURNAL` in place of its `--resume` and `--summary` (reading and writing the same
/// journal is safe: it is replaced only once the new one holds everything), shell-quoted.
/// Only words before the command's `--` are fanout's.
fn resume_command(argv: &[std::ffi::OsString], journal: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let quote = |w: &[u8]| String::from_utf8_lossy(&crate::template::shell_quote(w)).into_owned();
    let mut words: Vec<String> = Vec::with_capacity(argv.len() + 4);
    let mut args = argv.iter();
    if let Some(program) = args.next() {
        words.push(quote(program.as_bytes()));
    }
    let journal = quote(journal.as_os_str().as_bytes());
    words.extend([
        "--resume".into(),
        journal.clone(),
        "--summary".into(),
        journal,
    ]);
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            words.push("--".into());
            words.extend(args.by_ref().map(|a| quote(a.as_bytes())));
            break;
        }
        if bytes == b"--resume" || bytes == b"--summary" {
            args.next();
            continue;
        }
        if bytes.starts_with(b"--resume=") || bytes.starts_with(b"--summary=") {
            continue;
        }
        words.push(quote(bytes));
    }
    words.join(" ")
}

/// The exit status: the stop's or the records', a dry run never fails for what it would run,
/// and a journal that could not be written is a failure scripts must see.
fn exit_status(
    totals: &Totals,
    stopped: Option<Reason>,
    rehearsal: bool,
    journal_failed: bool,
) -> ExitStatus {
    let mut exit = totals.exit_status(stopped);
    // A dry run whose lines could not be written failed to say its plan.
    let said = stopped != Some(Reason::OutputFailed);
    if rehearsal && exit == ExitStatus::Failure && said {
        // Nothing ran, so nothing failed: inputs that would fail are named on stderr.
        exit = ExitStatus::Success;
    }
    if journal_failed {
        exit = exit.max_with(ExitStatus::Failure);
    }
    exit
}

/// fanout's own CPU time, in all and per job run.
fn measure_own_cpu(totals: &Totals, extra: &mut Extra) {
    let cpu = crate::os::own_cpu();
    extra.memory.fanout_cpu_ms = cpu.as_millis() as u64;
    if totals.ran > 0 {
        let per_job = cpu.as_secs_f64() * 1000.0 / totals.ran as f64;
        extra.memory.fanout_cpu_ms_per_job = (per_job * 1000.0).round() / 1000.0;
    }
}

/// The human report on stderr.
fn report(
    totals: &Totals,
    walk: &WalkReport,
    extra: &mut Extra,
    wall: std::time::Duration,
    rehearsal: bool,
    verbose: bool,
) {
    if totals.total() == 0 {
        print_notice(&nothing_matched(walk.hint.as_deref()));
    } else if rehearsal {
        dry_report(totals, walk, extra);
    } else {
        let _ = writeln!(std::io::stderr(), "{}", totals.report(wall));
        let m = &extra.memory;
        // Jobs shorter than the sampling interval leave nothing to say about memory.
        if m.max_memory_bytes > 0 && (verbose || memory_shaped(m)) {
            let net = match (m.mem_pauses, m.mem_requeues) {
                (0, 0) => String::new(),
                (p, r) => format!("; {p} paused to free memory, {r} stopped and run again"),
            };
            print_notice(&format!(
                "memory: at most {} at once, peak {} of a {} budget{net}",
                counted(m.max_running as u64, "job"),
                units::human(m.max_memory_bytes),
                units::human(m.mem_limit_bytes)
            ));
        }
    }
    if walk.cut_short && totals.total() > 0 {
        print_notice("discovery stopped with the run: files it had not reached have no record");
    }
}

/// Whether memory shaped the run, so the end report says how: a job waited for memory
/// while fewer than `-j` ran (the budget capped concurrency), or the safety net paused or
/// stopped and requeued a job.
fn memory_shaped(m: &crate::record::MemoryReport) -> bool {
    m.held_by_memory || m.mem_pauses > 0 || m.mem_requeues > 0
}

/// What a run that found nothing says.
fn nothing_matched(hint: Option<&str>) -> String {
    match hint {
        Some(h) => format!("no files matched; {h}"),
        None => "no files matched".to_string(),
    }
}

/// A dry run's report: what would fail, what `--resume` skips, and the plan the dry run made.
fn dry_report(totals: &Totals, walk: &WalkReport, extra: &mut Extra) {
    use crate::record::Status;
    for (path, _, reason) in totals.failures() {
        print_notice(&format!("would fail: {path}: {reason}"));
    }
    if totals.resumed > 0 {
        print_notice(&format!(
            "{} skipped: {}",
            counted(totals.resumed, "file"),
            crate::resume::UNCHANGED
        ));
    }
    if let Some(plan) = extra.notes.first_mut() {
        let failing = totals.count(Status::Failed);
        if failing > 0 {
            plan.push_str(&format!("; {} would fail", counted(failing, "input")));
        }
        if walk.errors > 0 {
            plan.push_str(&format!("; {}", counted(walk.errors, "walk error")));
        }
        plan.push_str("; nothing was run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::Path;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_resume_command_is_the_run_with_its_journal_to_resume() {
        let run = argv(&[
            "fanout",
            "-e",
            "parquet",
            "data/",
            "--summary",
            "run.jsonl",
            "--",
            "python3",
            "t.py",
            "{}",
        ]);
        assert_eq!(
            resume_command(&run, Path::new("run.jsonl")),
            "fanout --resume run.jsonl --summary run.jsonl -e parquet data/ -- python3 t.py '{}'"
        );
        // An earlier --resume is replaced; the command's own words are left alone, quoted.
        let again = argv(&[
            "/opt/bin/fanout",
            "--resume=old.jsonl",
            "--summary=my run.jsonl",
            "-j4",
            "--",
            "sh",
            "-c",
            "x --summary y",
            "--resume",
        ]);
        assert_eq!(
            resume_command(&again, Path::new("my run.jsonl")),
            "/opt/bin/fanout --resume 'my run.jsonl' --summary 'my run.jsonl' -j4 -- sh -c 'x --summary y' --resume"
        );
    }
}
