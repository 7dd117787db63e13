//! Running: -j bounds concurrency, -j 1 streams live, output of two jobs never interleaves, -k
//! keeps input order, big outputs do not grow fanout's memory, job stderr goes to stderr, job
//! stdin is /dev/null.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::*;

fn files(n: usize) -> Vec<(String, &'static str)> {
    (0..n).map(|i| (format!("d/f{i:02}.txt"), "")).collect()
}

fn env_with(n: usize) -> TestEnv {
    let f = files(n);
    let f: Vec<(&str, &str)> = f.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    TestEnv::new(&[], &f)
}

#[test]
fn jobs_limit_concurrency() {
    let env = env_with(6);
    env.mkdir("running");
    // Each job registers itself in running/, records how many are registered, then leaves.
    let job = "touch running/$$; ls running | wc -l >> counts; sleep 0.15; rm running/$$";
    for (j, max) in [("2", 2), ("1", 1)] {
        let _ = std::fs::remove_file(env.path("counts"));
        env.run(&["-j", j, "d", "--", "sh", "-c", job, "_", "{}"])
            .assert_ok();
        let counts = std::fs::read_to_string(env.path("counts")).unwrap();
        let seen: Vec<usize> = counts
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(seen.len(), 6, "{counts}");
        let peak = *seen.iter().max().unwrap();
        assert!(peak <= max, "-j {j}: {peak} jobs ran at once ({seen:?})");
        assert_eq!(
            peak, max,
            "-j {j}: expected {max} jobs at once at some point ({seen:?})"
        );
    }
}

#[test]
fn one_job_streams_output_live() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    // The job prints, then waits for the test to create `go` (at most ~4 s).
    let job = "echo ready; i=0; while [ ! -e go ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done; echo finished";
    let mut child = env
        .command(&["-j", "1", "d", "--", "sh", "-c", job])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(3));
    // Let the job finish either way.
    std::fs::write(env.path("go"), "").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(
        first.as_deref(),
        Ok("ready"),
        "with -j 1 the job's output must appear while it runs"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).as_deref(),
        Ok("finished")
    );
    assert_eq!(status.code(), Some(0));
}

/// Checks that `text` holds, per job name, one contiguous block of lines `NAME 0..n`.
fn assert_blocks(text: &str, names: &[String], n: usize, what: &str, dump: &str) {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| names.iter().any(|nm| l.starts_with(&format!("{nm} "))))
        .collect();
    assert_eq!(lines.len(), names.len() * n, "{what}: line count\n{dump}");
    let mut seen_blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let name = lines[i].split(' ').next().unwrap();
        assert!(
            !seen_blocks.contains(&name),
            "{what}: job {name} printed in two pieces (interleaved at line {i})\n{dump}"
        );
        for k in 0..n {
            let expected = format!("{name} {k}");
            assert_eq!(
                lines.get(i + k).copied(),
                Some(expected.as_str()),
                "{what}: job {name} interleaved or reordered at line {}\n{dump}",
                i + k
            );
        }
        seen_blocks.push(name);
        i += n;
    }
}

#[test]
fn output_of_concurrent_jobs_never_interleaves() {
    let env = env_with(6);
    let n = 1500;
    let job = format!(
        "i=0; while [ $i -lt {n} ]; do echo \"$1 $i\"; echo \"$1 $i\" >&2; i=$((i+1)); done"
    );
    let out = env.run(&["-j", "3", "d", "--", "sh", "-c", job.as_str(), "_", "{/.}"]);
    out.assert_ok();
    let names: Vec<String> = (0..6).map(|i| format!("f{i:02}")).collect();
    let dump = out.dump();
    assert_blocks(&out.stdout_str(), &names, n, "stdout", &dump);
    assert_blocks(&out.stderr_str(), &names, n, "stderr", &dump);
}

#[test]
fn job_stderr_goes_to_stderr() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let tool = fixture("to-stderr.sh");
    for j in ["1", "2"] {
        let out = env.run(&["-j", j, "d", "--", tool.as_str(), "hello-err"]);
        out.assert_ok()
            .assert_stdout_empty()
            .assert_stderr_contains("hello-err d/a.txt")
            .assert_stderr_contains("hello-err d/b.txt")
            .assert_stderr_contains("last: hello-err");
    }
}

#[test]
fn job_stdin_is_dev_null() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    for j in ["1", "2"] {
        env.run_stdin(
            &["-j", j, "d", "--", "sh", "-c", "cat; echo end"],
            b"SECRET from fanout's stdin\n",
        )
        .assert_ok()
        .assert_stdout_lines(&["end"]);
    }
}

#[test]
fn large_stderr_before_stdout_does_not_deadlock() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let tool = fixture("stderr-then-stdout.sh");
    let out = env.run(&["-j", "2", "d", "--", tool.as_str(), "4"]);
    out.assert_ok().assert_stdout_lines(&[
        "stdout after 4 MiB of stderr",
        "stdout after 4 MiB of stderr",
    ]);
    assert!(
        out.stderr.len() >= 2 * 4 * 1024 * 1024,
        "stderr lost: {} bytes",
        out.stderr.len()
    );
}

#[test]
fn huge_job_output_keeps_fanout_memory_small() {
    const MIB: usize = 50;
    let time = std::path::Path::new("/usr/bin/time");
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let tool = fixture("print-lots.sh");
    let args = [
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        tool.as_str(),
        "{#}",
    ];
    // Job 1 prints 1 MiB, job 2 prints 2 MiB: a quick check of byte accounting first.
    let out = env.run(&args);
    out.assert_ok();
    assert_eq!(
        out.stdout.len(),
        3 * 1024 * 1024,
        "bytes lost or duplicated"
    );
    let recs = read_summary(env.path("s.jsonl"));
    assert_eq!(
        int(&record_for(&recs, "d/b.txt"), "stdout_bytes"),
        2 * 1024 * 1024
    );

    // Now the big one, under /usr/bin/time to read fanout's peak RSS.
    let mib = MIB.to_string();
    let big_args = ["-j", "2", "d/a.txt", "--", tool.as_str(), mib.as_str()];
    let out = if time.exists() {
        let mut cmd = std::process::Command::new(time);
        cmd.args(["-f", "%M", "-o"])
            .arg(env.path("rss.txt"))
            .arg(FANOUT)
            .args(big_args)
            .current_dir(env.root())
            .stdin(Stdio::null());
        run_command(cmd, None)
    } else {
        env.run(&big_args)
    };
    out.assert_ok();
    assert_eq!(out.stdout.len(), MIB * 1024 * 1024, "stdout length");
    assert!(
        out.stdout.starts_with(b"fanout-fixture-print-lots-") && out.stdout.ends_with(b"\n"),
        "stdout content mangled"
    );
    if !time.exists() {
        eprintln!("skipped the RSS check: /usr/bin/time is not installed");
        return;
    }
    let rss_kib: u64 = std::fs::read_to_string(env.path("rss.txt"))
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        rss_kib < 30 * 1024,
        "fanout's peak RSS was {rss_kib} KiB for a job printing {MIB} MiB: output is held in memory"
    );
}

#[test]
fn jobs_start_while_input_is_still_arriving() {
    // Inputs stream to the pool: the first path's job runs before stdin is closed.
    let env = TestEnv::new(&["done"], &[("a.txt", ""), ("b.txt", "")]);
    let mut child = env
        .command(&["-", "--", "sh", "-c", "touch \"done/$1\"", "_", "{}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"a.txt\n").unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    let streamed = wait_until(Duration::from_secs(3), || env.exists("done/a.txt"));
    std::io::Write::write_all(&mut stdin, b"b.txt\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(streamed, "the first job waited for the end of the input");
    assert_eq!(status.code(), Some(0));
    assert!(env.exists("done/b.txt"));
}

#[test]
fn progress_bar_never_splits_job_output() {
    // With a forced bar, each job's stderr still starts on a line of its own.
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", ""), ("d/c.txt", "")]);
    let out = env.run(&[
        "--progress",
        "-j",
        "2",
        "d",
        "--",
        "sh",
        "-c",
        "sleep 0.2; echo MARK-$1 >&2",
        "_",
        "{/}",
    ]);
    out.assert_ok();
    let err = &out.stderr;
    let mut found = 0;
    for i in 0..err.len() {
        if err[i..].starts_with(b"MARK-") {
            found += 1;
            let before = &err[..i];
            assert!(
                before.is_empty() || before.ends_with(b"\n") || before.ends_with(b"\x1b[2K"),
                "job output starts in the middle of the progress line\n{}",
                out.dump()
            );
        }
    }
    assert_eq!(found, 3, "{}", out.dump());
}
