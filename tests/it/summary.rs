//! The per-file result summary: the `--summary` JSON Lines journal (keys, counts, signals) and
//! the human report on stderr (failed files with exit code and last stderr line, "and N more").

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const FILE_KEYS: &[&str] = &[
    "type",
    "job",
    "path",
    "status",
    "exit_code",
    "signal",
    "attempts",
    "duration_ms",
    "peak_rss_bytes",
    "stdout_bytes",
    "stderr_bytes",
    "stderr_tail",
    "command",
    "reason",
    // path_b64 only for non-UTF-8 paths: checked in hostile.rs
];

const FINAL_KEYS: &[&str] = &[
    "type",
    "total",
    "ok",
    "failed",
    "timeout",
    "invalid_output",
    "invalid_input",
    "skipped",
    "not_started",
    "interrupted",
    "walk_errors",
    "wall_ms",
    "jobs_per_s",
    "exit_code",
    "complete",
];

/// Files whose contents are the exit code their job ends with.
fn codes_env() -> TestEnv {
    TestEnv::new(
        &[],
        &[
            ("d/a.txt", "0"),
            ("d/b.txt", "3"),
            ("d/c.txt", "0"),
            ("d/d.txt", "0"),
        ],
    )
}

const JOB: &str = "echo out-of-$1; echo first-err >&2; echo last-err-of-$1 >&2; exit $(cat \"$1\")";

#[test]
fn journal_has_one_record_per_file_and_a_final_record() {
    let env = codes_env();
    let out = env.run(&[
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        JOB,
        "_",
        "{}",
    ]);
    out.assert_code(1);
    let recs = read_summary(env.path("s.jsonl"));
    // The `run` line, a record per file, the final record.
    assert_eq!(recs.len(), 6, "{recs:#?}");
    assert_eq!(recs[0]["type"], "run", "{recs:#?}");
    assert_counts_add_up(&recs);
    for r in file_records(&recs) {
        for k in FILE_KEYS {
            assert!(r.get(k).is_some(), "file record lacks {k:?}: {r}");
        }
    }
    let fin = final_record(&recs);
    for k in FINAL_KEYS {
        assert!(fin.get(k).is_some(), "final record lacks {k:?}: {fin}");
    }
    assert_eq!(int(&fin, "total"), 4);
    assert_eq!(int(&fin, "ok"), 3);
    assert_eq!(int(&fin, "failed"), 1);
    assert_eq!(int(&fin, "walk_errors"), 0);
    assert_eq!(int(&fin, "exit_code"), 1);
    assert_eq!(fin["complete"], true, "{fin}");
    assert!(fin["wall_ms"].is_u64(), "{fin}");
    assert!(fin["jobs_per_s"].is_number(), "{fin}");

    // Job numbers follow input order.
    for (i, p) in ["d/a.txt", "d/b.txt", "d/c.txt", "d/d.txt"]
        .iter()
        .enumerate()
    {
        assert_eq!(int(&record_for(&recs, p), "job"), i as i64 + 1, "{p}");
    }
    let ok = record_for(&recs, "d/a.txt");
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["signal"], Value::Null);
    assert_eq!(ok["reason"], Value::Null);
    assert_eq!(int(&ok, "attempts"), 1);
    assert!(ok["duration_ms"].is_u64(), "{ok}");
    assert_eq!(
        int(&ok, "stdout_bytes"),
        "out-of-d/a.txt\n".len() as i64,
        "{ok}"
    );
    assert_eq!(
        int(&ok, "stderr_bytes"),
        "first-err\nlast-err-of-d/a.txt\n".len() as i64,
        "{ok}"
    );
    assert_eq!(
        ok["command"],
        serde_json::json!(["sh", "-c", JOB, "_", "d/a.txt"]),
        "command is the exact argv"
    );

    let bad = record_for(&recs, "d/b.txt");
    assert_eq!(bad["status"], "failed", "{bad}");
    assert_eq!(bad["exit_code"], 3, "{bad}");
    assert_eq!(bad["signal"], Value::Null, "{bad}");
    let tail = bad["stderr_tail"]
        .as_str()
        .unwrap_or_else(|| panic!("stderr_tail: {bad}"));
    assert!(tail.contains("last-err-of-d/b.txt"), "{bad}");
}

#[test]
fn records_are_written_as_jobs_finish() {
    // A finished job's record is in the file while a later job still runs.
    let env = TestEnv::new(&[], &[("d/a", "0"), ("d/b", "")]);
    let job = "if [ \"$1\" = d/b ]; then i=0; while [ ! -e go ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done; fi";
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
    let journal = env.path("s.jsonl");
    let saw = wait_until(Duration::from_secs(3), || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("\"d/a\""))
    });
    std::fs::write(env.path("go"), "").unwrap();
    let out = run.wait();
    out.assert_ok();
    assert!(
        saw,
        "d/a's record was not flushed while d/b ran\n{}",
        out.dump()
    );
    let recs = read_summary(&journal);
    assert_counts_add_up(&recs);
}

#[test]
fn job_killed_by_a_signal_is_failed_with_signal() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let job = "if [ \"$1\" = d/b.txt ]; then kill -KILL $$; fi; exit 0";
    for j in ["1", "2"] {
        let out = env.run(&[
            "-j",
            j,
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
        out.assert_code(1);
        let recs = read_summary(env.path("s.jsonl"));
        assert_counts_add_up(&recs);
        let rec = record_for(&recs, "d/b.txt");
        assert_eq!(rec["status"], "failed", "-j {j}: {rec}");
        let sig = &rec["signal"];
        assert!(
            sig == 9 || sig == "SIGKILL" || sig == "KILL",
            "-j {j}: signal should name SIGKILL: {rec}"
        );
        assert_eq!(record_for(&recs, "d/a.txt")["status"], "ok");
        assert_eq!(int(&final_record(&recs), "failed"), 1);
        // The human summary names the signal.
        assert!(
            out.stderr_lines()
                .iter()
                .any(|l| l.contains("d/b.txt") && (l.contains("SIGKILL") || l.contains("signal 9"))),
            "-j {j}: failed file listed with its signal\n{}",
            out.dump()
        );
    }
}

#[test]
fn human_summary_lists_failed_files_with_code_and_last_stderr_line() {
    let env = codes_env();
    let out = env.run(&["d", "--", "sh", "-c", JOB, "_", "{}"]);
    out.assert_code(1);
    let stderr = out.stderr_str();
    // The counts line.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("4 files") && l.contains("3 ok") && l.contains("1 failed")),
        "counts line missing\n{}",
        out.dump()
    );
    // The failed file: path, exit code and its last stderr line on one line.
    let line = stderr
        .lines()
        .find(|l| {
            l.contains("d/b.txt") && l.contains("last-err-of-d/b.txt") && !l.starts_with("last-err")
        })
        .unwrap_or_else(|| panic!("failed file not listed\n{}", out.dump()));
    assert!(line.contains('3'), "exit code missing in {line:?}");
    assert!(
        !line.contains("first-err"),
        "only the last stderr line: {line:?}"
    );
    // Files that succeeded are not listed as failed.
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("failed") && l.contains("d/a.txt")),
        "{}",
        out.dump()
    );
}

#[test]
fn human_summary_lists_a_few_then_and_n_more() {
    let files: Vec<(String, &str)> = (0..13).map(|i| (format!("d/f{i:02}"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    let tool = fixture("exit-with.sh");
    let out = env.run(&["d", "--", tool.as_str(), "4"]);
    out.assert_code(1);
    out.assert_stderr_contains("13 failed");
    let listed = out
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("d/f"))
        .count();
    assert!(
        (1..13).contains(&listed),
        "a few failed files are listed, not all 13 (got {listed})\n{}",
        out.dump()
    );
    out.assert_stderr_contains(&format!("and {} more", 13 - listed));
}

#[test]
fn quiet_hides_the_end_summary() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let loud = env.run(&["--no-progress", "d", "--", "true"]);
    loud.assert_ok();
    assert!(
        !loud.stderr.is_empty(),
        "the end summary is expected without -q"
    );
    let quiet = env.run(&["-q", "d", "--", "true"]);
    quiet.assert_ok();
    assert!(
        quiet.stderr.is_empty(),
        "-q prints nothing on success\n{}",
        quiet.dump()
    );
    let quiet = env.run(&["--quiet", "d", "--", "sh", "-c", "echo job-err >&2"]);
    quiet.assert_ok();
    assert_eq!(
        quiet.stderr_str(),
        "job-err\n",
        "-q keeps job stderr only\n{}",
        quiet.dump()
    );
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let out = env.run(&["d", "--", "true"]);
    out.assert_ok();
    // No cursor movement / carriage-return redraws in a pipe.
    assert!(!out.stderr.contains(&b'\r'), "{}", out.dump());
    assert!(!out.stderr.contains(&0x1b), "{}", out.dump());
    // --progress and --no-progress are accepted.
    env.run(&["--progress", "d", "--", "true"]).assert_ok();
    env.run(&["--no-progress", "d", "--", "true"]).assert_ok();
}

#[test]
fn one_job_streams_so_output_sizes_are_unknown() {
    // design.md: with -j 1 output is inherited; stdout_bytes/stderr_bytes/stderr_tail are null.
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let out = env.run(&[
        "-j",
        "1",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        "echo x; echo y >&2",
    ]);
    out.assert_ok().assert_stdout_lines(&["x"]);
    let recs = read_summary(env.path("s.jsonl"));
    let rec = record_for(&recs, "d/a.txt");
    assert_eq!(rec["status"], "ok");
    for k in ["stdout_bytes", "stderr_bytes", "stderr_tail"] {
        assert!(
            rec.get(k).is_some_and(Value::is_null),
            "{k} should be null: {rec}"
        );
    }
}
