//! SIGINT and SIGTERM mid-run: running jobs are stopped, no new job starts, the summary file
//! still gets its final record (interrupted / not_started counts), exit 130 / 143.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::*;

fn interrupt_run(signal: &str, code: i32) {
    let files: Vec<(String, &str)> = (0..6).map(|i| (format!("d/f{i}"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    env.mkdir("started");
    // Each job records its pid, then becomes a long sleep (exec: the pid is the sleep's).
    let job = "echo $$ > \"started/$(basename \"$1\")\"; exec sleep 20";
    let mut run = env.spawn(&[
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        job,
        "_",
        "{}",
    ]);
    let started_dir = env.path("started");
    let count = || fs::read_dir(&started_dir).map_or(0, std::iter::Iterator::count);
    let two_running = wait_until(Duration::from_secs(5), || {
        count() == 2
            && fs::read_dir(&started_dir)
                .unwrap()
                .all(|e| fs::read_to_string(e.unwrap().path()).is_ok_and(|s| s.ends_with('\n')))
    });
    assert!(two_running, "two jobs never started");
    let pids: Vec<u32> = fs::read_dir(&started_dir)
        .unwrap()
        .map(|e| {
            fs::read_to_string(e.unwrap().path())
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    // Give fanout a moment to be past spawning, then signal it (only it, not its jobs).
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    run.signal(signal);
    let out = run.wait();
    let took = sent.elapsed();
    out.assert_code(code).assert_no_panic();
    assert!(
        took < Duration::from_secs(4),
        "fanout took {took:?} to stop after SIG{signal}\n{}",
        out.dump()
    );
    assert_eq!(
        count(),
        2,
        "a job started after SIG{signal}\n{}",
        out.dump()
    );
    // The running jobs were stopped.
    for pid in pids {
        let gone = wait_until(Duration::from_secs(2), || {
            fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
        assert!(
            gone,
            "job process {pid} still runs after fanout exited\n{}",
            out.dump()
        );
    }
    let recs = read_summary(env.path("s.jsonl"));
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 6, "{fin}");
    assert_eq!(int(&fin, "interrupted"), 2, "{fin}");
    assert_eq!(int(&fin, "not_started"), 4, "{fin}");
    assert_eq!(int(&fin, "ok"), 0, "{fin}");
    assert_eq!(int(&fin, "exit_code"), i64::from(code), "{fin}");
    assert_counts_add_up(&recs);
}

#[test]
fn sigint_mid_run_exits_130_with_summary() {
    interrupt_run("INT", 130);
}

#[test]
fn sigterm_mid_run_exits_143_with_summary() {
    interrupt_run("TERM", 143);
}

#[test]
fn sigint_with_one_job_exits_130() {
    // -j 1 shares the terminal; fanout still reports 130 and writes the summary.
    let env = TestEnv::new(&["started"], &[("d/a", ""), ("d/b", "")]);
    let job = "touch \"started/$(basename \"$1\")\"; exec sleep 20";
    let mut run = env.spawn(&[
        "-j",
        "1",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        job,
        "_",
        "{}",
    ]);
    assert!(
        wait_until(Duration::from_secs(5), || env.exists("started/a")),
        "the job never started"
    );
    std::thread::sleep(Duration::from_millis(100));
    run.signal("INT");
    let out = run.wait();
    out.assert_code(130).assert_no_panic();
    assert!(!env.exists("started/b"), "a job started after SIGINT");
    let recs = read_summary(env.path("s.jsonl"));
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "interrupted"), 1, "{fin}");
    assert_eq!(int(&fin, "not_started"), 1, "{fin}");
    assert_counts_add_up(&recs);
}

/// After Ctrl-C, a run with a journal names the command that finishes it: fanout's own
/// command line resuming from and writing to that journal. Running that line finishes the run.
#[test]
fn sigint_names_the_resume_command_that_finishes_the_run() {
    let files: Vec<(String, &str)> = (0..4).map(|i| (format!("d/f {i}"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    env.mkdir("started");
    // Jobs hang until `go` exists; the first goes quickly so the journal has an ok to skip.
    let job =
        "touch \"started/$(basename \"$1\")\"; [ \"$1\" = 'd/f 0' ] || [ -e go ] || exec sleep 20";
    let mut run = env.spawn(&[
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        job,
        "_",
        "{}",
    ]);
    let started_dir = env.path("started");
    let started = wait_until(Duration::from_secs(5), || {
        fs::read_dir(&started_dir).map_or(0, std::iter::Iterator::count) >= 3
    });
    assert!(started, "jobs never started");
    std::thread::sleep(Duration::from_millis(100));
    run.signal("INT");
    let out = run.wait();
    out.assert_code(130).assert_no_panic();
    let line = out
        .stderr_lines()
        .into_iter()
        .find_map(|l| {
            l.strip_prefix("fanout: to finish the run: ")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no resume command\n{}", out.dump()));
    assert!(
        line.contains("--resume s.jsonl --summary s.jsonl")
            && line.matches("--summary").count() == 1,
        "{line}"
    );
    fs::write(env.path("go"), "").unwrap();
    let again = env.sh(&line);
    again
        .assert_ok()
        .assert_stderr_contains("4 files: 3 ok, 1 skipped");
    let recs = read_summary(env.path("s.jsonl"));
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "ok"), 3, "{fin}");
    assert_eq!(int(&fin, "skipped"), 1, "{fin}");
    // A run that finishes names no command.
    again.assert_stderr_lacks("to finish the run");
}
