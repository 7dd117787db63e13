//! `-X/--batch`: many files per command. Word repetition, the argument-size limit, a record
//! per file, resume, refusals, the dry run, hostile names, failures, timeouts and Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::harness::*;
use crate::hostile::{hostile_env_where, hostile_names};

fn strs(argv: &Argv) -> Vec<String> {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[test]
fn words_with_a_path_repeat_once_per_file() {
    let env = TestEnv::new(&[], &[("d/a.c", ""), ("d/b.h", ""), ("d/c", "")]);
    let out = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    env.run(&[
        "-X",
        "-j",
        "1",
        "d",
        "--",
        dump.as_str(),
        out.as_str(),
        "-t",
        "--in={}",
        "{/.}:{//}",
        "lit",
        "n{#}",
    ])
    .assert_ok();
    let argvs = read_argv_dumps(&out);
    let all: Vec<Vec<String>> = argvs.iter().map(strs).collect();
    // One command per batch; put together in batch order they are the whole list.
    assert!(!all.is_empty());
    let mut ins = Vec::new();
    let mut names = Vec::new();
    let mut numbers = BTreeSet::new();
    for a in &all {
        assert_eq!(a[0], "-t", "{all:?}");
        let n = (a.len() - 3) / 2;
        assert_eq!(a.len(), 3 + 2 * n, "{a:?}");
        assert!(a[1..=n].iter().all(|w| w.starts_with("--in=d/")), "{a:?}");
        assert_eq!(a[1 + 2 * n], "lit");
        ins.extend(a[1..=n].iter().cloned());
        names.extend(a[(1 + n)..=(2 * n)].iter().cloned());
        numbers.insert(a[2 + 2 * n].clone());
    }
    ins.sort();
    names.sort();
    assert_eq!(ins, ["--in=d/a.c", "--in=d/b.h", "--in=d/c"]);
    assert_eq!(names, ["a:d", "b:d", "c:d"]);
    // {#} is the batch number: one per command, from 1.
    let want: BTreeSet<String> = (1..=all.len()).map(|i| format!("n{i}")).collect();
    assert_eq!(numbers, want);

    // The implicit trailing {} repeats the same way; --batch-size caps a command's files.
    clear_dir(&out);
    env.run(&[
        "-X",
        "--batch-size",
        "2",
        "-j",
        "1",
        "d",
        "--",
        dump.as_str(),
        out.as_str(),
    ])
    .assert_ok();
    let argvs = read_argv_dumps(&out);
    assert_eq!(argvs.len(), 2, "{}", show_argvs(&argvs));
    assert_eq!(
        argvs.iter().flatten().cloned().collect::<BTreeSet<_>>(),
        set([b("d/a.c"), b("d/b.h"), b("d/c")])
    );
    assert!(argvs.iter().any(|a| a.len() == 2));
}

/// 2,000 paths of about 200 bytes (400 KiB of arguments) under a 128 KiB limit, with a large
/// environment: split into commands that each fit, every file exactly once. With -j 1 the
/// first batch would take 1,000 files: only the limit keeps it smaller.
#[test]
fn batches_fit_the_argument_size_limit_with_long_paths() {
    let env = TestEnv::new(&[], &[]);
    let dir = format!("d/{}", "x".repeat(120));
    env.mkdir(&dir);
    let mut want = BTreeSet::new();
    for i in 0..2000 {
        let rel = format!("{dir}/{}{i:04}", "y".repeat(72));
        env.write(&rel, "");
        want.insert(rel.into_bytes());
    }
    let out = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    // A 512 KiB stack makes ARG_MAX 128 KiB (a quarter of it); 40 KiB of environment
    // must be left for it too.
    let filler = "f".repeat(40 * 1024);
    let script = format!(
        "ulimit -s 512 && getconf ARG_MAX > arg_max && exec '{FANOUT}' -X -j 1 --summary s.jsonl d -- '{dump}' '{out}'"
    );
    let o = run_command(
        {
            let mut c = std::process::Command::new("sh");
            c.arg("-c").arg(&script).current_dir(env.root());
            c.env("FILLER", &filler);
            c
        },
        None,
    );
    o.assert_ok();
    let arg_max: usize = std::fs::read_to_string(env.path("arg_max"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(arg_max, 128 * 1024, "the test wants the kernel's floor");
    let argvs = read_argv_dumps(&out);
    assert!(argvs.len() >= 4, "not split: {} commands", argvs.len());
    let env_bytes: usize = std::env::vars_os()
        .map(|(k, v)| k.len() + v.len() + 2 + 8)
        .sum::<usize>()
        + filler.len()
        + 8;
    let mut seen = BTreeMap::new();
    for a in &argvs {
        // argv: the script, OUTDIR, then the paths.
        let bytes: usize =
            a.iter().map(|w| w.len() + 1 + 8).sum::<usize>() + dump.len() + out.len() + 2 * (1 + 8);
        assert!(
            bytes + env_bytes <= arg_max,
            "a command of {} files took {bytes} + {env_bytes} bytes > {arg_max}",
            a.len()
        );
        for p in a {
            *seen.entry(p.clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(seen.values().all(|&n| n == 1), "a file ran twice");
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    assert_eq!(int(&final_record(&records), "ok"), 2000);
}

#[test]
fn every_file_has_its_record_with_the_batch() {
    let files: Vec<(String, &str)> = (0..40).map(|i| (format!("d/f{i:02}"), "xy")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    env.run(&[
        "-X",
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "wc",
        "-c",
    ])
    .assert_ok();
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let files = file_records(&records);
    assert_eq!(files.len(), 40);
    let mut per_batch: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for r in &files {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["exit_code"], 0, "{r}");
        assert_eq!(int(r, "file_size"), 2);
        // The command that ran it: its batch's, which holds it.
        let path = r["path"].as_str().unwrap();
        assert!(strings(&r["command"]).iter().any(|w| w == path), "{r}");
        let e = per_batch
            .entry(int(r, "batch"))
            .or_insert((int(r, "batch_size"), 0));
        assert_eq!(e.0, int(r, "batch_size"), "one size per batch");
        e.1 += 1;
        // The batch's output sizes, on every file of it.
        assert!(int(r, "stdout_bytes") > 0);
    }
    assert!(per_batch.len() >= 2, "{per_batch:?}");
    for (batch, (size, n)) in &per_batch {
        assert_eq!(size, n, "batch {batch}: batch_size vs records");
    }
    // Batches are numbered 1..=N.
    let numbers: Vec<i64> = per_batch.keys().copied().collect();
    assert_eq!(numbers, (1..=per_batch.len() as i64).collect::<Vec<_>>());
    // As written: a batch line per command of several files with the argv that ran, then a
    // short line per file of it (format version 2), which says only what is the file's own;
    // a command of one file (the last few) has the whole record, as without -X.
    let lines = journal_lines(env.path("s.jsonl"));
    let mut current: Option<&serde_json::Value> = None;
    let (mut shorts, mut alone) = (0, 0);
    for line in &lines {
        match line["type"].as_str() {
            Some("batch") => {
                assert_eq!(line["v"], 2, "{line}");
                current = Some(line);
            }
            Some("file") if line["v"] == 1 => {
                assert_eq!(line["v"], 1, "{line}");
                assert_eq!(int(line, "batch_size"), 1, "{line}");
                let path = line["path"].as_str().unwrap();
                assert_eq!(strings(&line["command"]), ["wc", "-c", path], "{line}");
                alone += 1;
            }
            Some("file") => {
                let b = current.unwrap_or_else(|| panic!("a file line before any batch: {line}"));
                assert_eq!(line["v"], 2, "{line}");
                assert_eq!(line["batch"], b["batch"], "{line}");
                let mut keys: Vec<&str> = line
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                keys.sort_unstable();
                assert_eq!(
                    keys,
                    [
                        "batch",
                        "file_mtime_ns",
                        "file_size",
                        "job",
                        "path",
                        "status",
                        "type",
                        "v",
                        "weight_bytes"
                    ],
                    "{line}"
                );
                let cmd = strings(&b["command"]);
                assert_eq!(&cmd[..2], ["wc", "-c"], "{b}");
                assert!(
                    cmd[2..].iter().any(|p| p == line["path"].as_str().unwrap()),
                    "{b}"
                );
                shorts += 1;
            }
            _ => {}
        }
    }
    assert_eq!(shorts + alone, 40);
    assert!(shorts >= 20, "{shorts} short lines");
    for b in lines.iter().filter(|l| l["type"] == "batch") {
        let paths: Vec<String> = files
            .iter()
            .filter(|r| r["batch"] == b["batch"])
            .map(|r| r["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(strings(&b["command"])[2..], paths[..], "{b}");
    }
}

#[test]
fn a_failing_batch_fails_every_file_in_it_not_attributed() {
    let env = TestEnv::new(
        &[],
        &[("d/a", ""), ("d/b-bad", ""), ("d/c", ""), ("d/d", "")],
    );
    let o = env.run(&[
        "-X",
        "--batch-size",
        "2",
        "-j",
        "1",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        "case \"$*\" in *bad*) echo broken >&2; exit 3;; esac",
        "sh",
        "{}",
    ]);
    o.assert_code(1);
    // Which of the two failed is not known: the batch is named once, with its files.
    o.assert_stderr_contains(
        "failed         batch 1, 2 files: exit 3; which of them caused it is not known: d/a, d/b-bad",
    );
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    for (p, status, code) in [
        ("d/a", "failed", 3),
        ("d/b-bad", "failed", 3),
        ("d/c", "ok", 0),
        ("d/d", "ok", 0),
    ] {
        let r = record_for(&records, p);
        assert_eq!(r["status"], status, "{r}");
        assert_eq!(int(&r, "exit_code"), code, "{r}");
        assert_eq!(r.get("attributed").is_some(), status == "failed", "{r}");
    }
}

#[test]
fn resume_skips_files_one_by_one() {
    let env = TestEnv::new(
        &[],
        &[
            ("d/a", ""),
            ("d/b", ""),
            ("d/c-bad", ""),
            ("d/d", ""),
            ("d/e", ""),
            ("d/f", ""),
        ],
    );
    let out = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    env.write("fail", "");
    // Fails while ./fail exists and the batch holds a bad file.
    let script = format!(
        "if [ -e fail ]; then case \"$*\" in *bad*) exit 1;; esac; fi; exec '{dump}' '{out}' \"$@\""
    );
    let args = |extra: &[&str]| {
        let mut a = vec!["-X", "--batch-size", "2", "-j", "1"];
        a.extend_from_slice(extra);
        a.extend(["d", "--", "sh", "-c", script.as_str(), "sh", "{}"]);
        a.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()
    };
    env.run(&args(&["--summary", "one.jsonl"])).assert_code(1);
    clear_dir(&out);
    std::fs::remove_file(env.path("fail")).unwrap();
    env.run(&args(&["--resume", "one.jsonl", "--summary", "two.jsonl"]))
        .assert_ok();
    // -j 1, at most 2 a batch: [a b] [c-bad d] [e] [f] (sizes shrink towards the end).
    // Only the failed batch's files ran again.
    let ran: BTreeSet<Vec<u8>> = read_argv_dumps(&out).into_iter().flatten().collect();
    assert_eq!(ran, set([b("d/c-bad"), b("d/d")]));
    let records = read_summary(env.path("two.jsonl"));
    assert_counts_add_up(&records);
    for p in ["d/a", "d/b", "d/e", "d/f"] {
        assert_eq!(record_for(&records, p)["status"], "skipped");
    }
    for p in ["d/c-bad", "d/d"] {
        let r = record_for(&records, p);
        assert_eq!(r["status"], "ok");
        assert!(int(&r, "batch") >= 1);
    }
}

#[test]
fn refused_with_what_cannot_go_with_it() {
    let env = TestEnv::new(&[], &[("a", "")]);
    for (args, needle) in [
        (
            &["-X", "-i", "--", "cp", "{}", "{out}"][..],
            "-X/--batch cannot go with -i/--in-place",
        ),
        (
            &["-X", "-o", "out/{rel}", "--", "cp", "{}", "{out}"][..],
            "-X/--batch cannot go with -o/--output",
        ),
        (
            &["-X", "-s", "--", "cat {}"][..],
            "sh -c 'cmd \"$@\"' sh {}",
        ),
        (
            &["-X", "--executor", "slurm", "--", "cat"][..],
            "-X/--batch runs on this machine only",
        ),
        (
            &["-X", "--executor", "srun", "--", "cat"][..],
            "-X/--batch runs on this machine only",
        ),
    ] {
        let o = env.run(args);
        o.assert_code(2).assert_stderr_contains(needle);
        assert_eq!(o.stderr_lines().len(), 1, "one line: {}", o.dump());
        o.assert_stdout_empty();
    }
    // clap's own usage errors.
    for (args, needle) in [
        (&["--batch-size", "3", "--", "cat"][..], "--batch"),
        (&["-X", "--batch-size", "0", "--", "cat"][..], "at least 1"),
    ] {
        env.run(args).assert_code(2).assert_stderr_contains(needle);
    }
}

#[test]
fn the_dry_run_prints_one_line_per_batch_that_replays_the_real_run() {
    let files: Vec<(String, &str)> = (0..9).map(|i| (format!("d/f {i}"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    let out = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let args = [
        "-X",
        "--batch-size",
        "4",
        "-j",
        "1",
        "d",
        "--",
        dump.as_str(),
        out.as_str(),
        "{#}",
        "{}",
    ];
    env.run(&args).assert_ok();
    let real = read_argv_dumps(&out);
    clear_dir(&out);
    let mut dry = vec!["-n"];
    dry.extend(args);
    let d = env.run(&dry);
    d.assert_ok();
    let lines = d.stdout_lines();
    // At most 4 a batch, sizes shrinking towards the end: 4 3 1 1.
    assert_eq!(lines.len(), 4, "{}", d.dump());
    d.assert_stderr_contains("9 files in 4 batches");
    assert!(read_argv_dumps(&out).is_empty(), "the dry run ran a job");
    for line in &lines {
        env.sh(line).assert_ok();
    }
    assert_eq!(read_argv_dumps(&out), real);
}

#[test]
fn hostile_names_arrive_whole_inside_batches() {
    let env = hostile_env_where(|_| true);
    env.write("-top-dash", "");
    let out = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    env.run_stdin(
        &[
            "-X",
            "-j",
            "2",
            "--summary",
            "s.jsonl",
            "d",
            "-",
            "--",
            dump.as_str(),
            out.as_str(),
            "--name={/}",
            "{}",
        ],
        b"-top-dash\n",
    )
    .assert_ok();
    let args: Vec<Vec<u8>> = read_argv_dumps(&out).into_iter().flatten().collect();
    let mut want = BTreeSet::new();
    for name in hostile_names() {
        let mut p = b"d/".to_vec();
        p.extend(&name);
        want.insert(p);
        let mut n = b"--name=".to_vec();
        n.extend(&name);
        want.insert(n);
    }
    want.insert(b("./-top-dash"));
    want.insert(b("--name=-top-dash"));
    assert_eq!(args.len(), want.len(), "a word was split or lost");
    assert_eq!(args.into_iter().collect::<BTreeSet<_>>(), want);
    for p in ["PWNED", "d/PWNED", "PWNED.txt", "d/PWNED.txt"] {
        assert!(!env.exists(p), "{p} was created");
    }
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    assert_eq!(int(&final_record(&records), "ok"), want.len() as i64 / 2);
    let bad = file_records(&records)
        .into_iter()
        .find(|r| r["path_b64"].is_string())
        .expect("the non-UTF-8 name has its exact bytes");
    assert_eq!(bad["status"], "ok");
}

#[test]
fn a_timeout_stops_the_batch_and_times_out_its_files() {
    let env = TestEnv::new(&[], &[("d/a", ""), ("d/b", ""), ("d/c", "")]);
    let start = std::time::Instant::now();
    let o = env.run(&[
        "-X",
        "-j",
        "1",
        "--batch-size",
        "3",
        "--timeout",
        "300ms",
        "--kill-grace",
        "0",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        "sleep 20",
        "sh",
        "{}",
    ]);
    o.assert_code(1);
    assert!(start.elapsed() < Duration::from_secs(10));
    let records = read_summary(env.path("s.jsonl"));
    for r in file_records(&records) {
        assert_eq!(r["status"], "timeout", "{r}");
        assert!(int(&r, "batch_size") >= 1);
    }
}

#[test]
fn ctrl_c_interrupts_the_running_batch_and_starts_no_other() {
    let env = TestEnv::new(&[], &[("d/a", ""), ("d/b", ""), ("d/c", ""), ("d/d", "")]);
    let mut run = env.spawn(&[
        "-X",
        "-j",
        "1",
        "--batch-size",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        "echo \"$@\" >> started; exec sleep 20",
        "sh",
        "{}",
    ]);
    assert!(
        wait_until(Duration::from_secs(5), || env.exists("started")),
        "the first batch never started"
    );
    std::thread::sleep(Duration::from_millis(100));
    run.signal("INT");
    let o = run.wait();
    o.assert_code(130).assert_no_panic();
    let started = std::fs::read_to_string(env.path("started")).unwrap();
    assert_eq!(started, "d/a d/b\n", "another batch started");
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    for p in ["d/a", "d/b"] {
        assert_eq!(record_for(&records, p)["status"], "interrupted");
    }
    for p in ["d/c", "d/d"] {
        assert_eq!(record_for(&records, p)["status"], "not_started");
    }
}

/// A tree of `n` empty files `d/f0000`, `d/f0001`, … (in input order by name).
fn empty_files(n: usize) -> TestEnv {
    let files: Vec<(String, &str)> = (0..n).map(|i| (format!("d/f{i:04}"), "")).collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    TestEnv::new(&[], &refs)
}

#[test]
fn keep_order_prints_whole_batches_in_input_order() {
    let env = empty_files(30);
    // Earlier batches sleep longer, so they finish last; -k still prints them first.
    let o = env.run(&[
        "-X",
        "-k",
        "-j",
        "3",
        "--batch-size",
        "4",
        "d",
        "--",
        "sh",
        "-c",
        "sleep $(( (12 - $0) / 10 )).$(( (12 - $0) % 10 )); printf '%s\\n' \"$@\"",
        "{#}",
        "{}",
    ]);
    o.assert_ok();
    let want: Vec<String> = (0..30).map(|i| format!("d/f{i:04}")).collect();
    assert_eq!(o.stdout_lines(), want, "{}", o.dump());
}

/// `--halt soon` with batches: the failed batch stops admission before it gives its memory
/// back, so no batch waiting for that memory starts: every failed file is in the first batch,
/// every other file is `not_started`. (The batch path once released first and made its
/// records after: the waiting batch started meanwhile, and failed too.)
#[test]
fn halt_soon_stops_the_batch_waiting_for_the_failed_one_s_memory() {
    let env = empty_files(3000);
    let o = env.run(&[
        "-X",
        "-j",
        "2",
        "--mem-limit",
        "100M",
        "--mem-per-job",
        "100M",
        "--halt",
        "soon",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        "sleep 0.3; exit 3",
        "sh",
        "{}",
    ]);
    o.assert_code(1);
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let files = file_records(&records);
    let failed: BTreeSet<i64> = files
        .iter()
        .filter(|r| r["status"] == "failed")
        .map(|r| int(r, "batch"))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "files of batches {failed:?} failed\n{}",
        o.dump()
    );
    for r in &files {
        assert!(
            r["status"] == "failed" || r["status"] == "not_started",
            "{r}"
        );
    }
}

/// Forty `.gz` files made by the real gzip, one of them (`d/f06.gz`, in the first and largest
/// batch) corrupt, for `gzip -t`.
fn gz_tree_with_one_corrupt() -> TestEnv {
    let env = TestEnv::new(&[], &[]);
    env.mkdir("d");
    for i in 0..40 {
        env.write(format!("d/f{i:02}"), format!("line {i}\n").repeat(50));
    }
    env.sh("gzip d/f*").assert_ok();
    // Valid header, broken body: gzip -t says "unexpected end of file" and exits 1.
    let good = std::fs::read(env.path("d/f06.gz")).unwrap();
    let mut bad = good[..12].to_vec();
    bad.extend_from_slice(&[0xff; 40]);
    env.write("d/f06.gz", bad);
    env.sh("gzip -t d/f06.gz").assert_code(1);
    env
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// One corrupt `.gz` among good ones under `-X` (real gzip): every file of its batch is still
/// `failed`, but its record says it was not attributed, the batch's command as it ran is on its
/// first record, and the end report names the batch once, not each file as if it had failed.
/// (Before, each record said `failed` with a one-file command that never ran, and the report
/// listed every file of the batch.)
#[test]
fn a_corrupt_gz_fails_its_batch_unattributed_and_the_report_names_the_batch() {
    let env = gz_tree_with_one_corrupt();
    let o = env.run(&[
        "-X",
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "-e",
        "gz",
        "d",
        "--",
        "gzip",
        "-t",
        "{}",
    ]);
    o.assert_code(1);
    validate_journal(&env.path("s.jsonl")).unwrap();
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let files = file_records(&records);
    assert_eq!(files.len(), 40);
    let bad = record_for(&records, "d/f06.gz");
    let number = int(&bad, "batch");
    let size = int(&bad, "batch_size");
    assert!(size > 3, "the corrupt file's batch is small: {bad}");
    let mut batch: Vec<&serde_json::Value> =
        files.iter().filter(|r| int(r, "batch") == number).collect();
    batch.sort_by_key(|r| int(r, "job"));
    assert_eq!(batch.len() as i64, size);
    let reason =
        format!("its batch of {size} failed (exit 1); which of its files caused it is not known");
    for r in &batch {
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["attributed"], false, "{r}");
        assert_eq!(r["reason"], reason.as_str(), "{r}");
    }
    // The batch's command, as it ran, once: on its first record.
    let paths: Vec<String> = batch
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec!["gzip".to_string(), "-t".to_string()];
    want.extend(paths.iter().cloned());
    let line = journal_lines(env.path("s.jsonl"))
        .into_iter()
        .find(|l| l["type"] == "batch" && int(l, "batch") == number)
        .expect("the batch's line");
    assert_eq!(strings(&line["command"]), want, "{line}");
    assert_eq!(line["status"], "failed", "{line}");
    assert_eq!(line["attributed"], false, "{line}");
    // The other batches' files are ok and carry no such field.
    for r in files.iter().filter(|r| int(r, "batch") != number) {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r.get("attributed").is_none(), "{r}");
    }
    // The report: one line for the batch, none for its files.
    let err = o.stderr_str();
    let line = format!(
        "failed         batch {number}, {size} files: exit 1: gzip: d/f06.gz: unexpected end of file"
    );
    assert!(err.contains(&line), "{}", o.dump());
    assert!(
        err.contains(&format!(
            "which of them caused it is not known: {} and {} more",
            paths[..3].join(", "),
            size - 3
        )),
        "{}",
        o.dump()
    );
    for p in &paths {
        assert!(
            !err.contains(&format!("failed         {p}")),
            "{}",
            o.dump()
        );
    }
}

/// `--split-failed` runs a failed batch's files again by halves: only the corrupt file is
/// `failed` (with its own one-file command, which ran), the rest of its batch `ok`, every
/// record of it marked `split`; the report names the file alone. With `--halt soon` the
/// batch's failure stops new jobs, so nothing is split and the batch's records stand.
#[test]
fn split_failed_finds_the_corrupt_gz_of_a_failed_batch() {
    let env = gz_tree_with_one_corrupt();
    let o = env.run(&[
        "-X",
        "-j",
        "2",
        "--split-failed",
        "--summary",
        "s.jsonl",
        "-e",
        "gz",
        "d",
        "--",
        "gzip",
        "-t",
        "{}",
    ]);
    o.assert_code(1);
    validate_journal(&env.path("s.jsonl")).unwrap();
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let files = file_records(&records);
    assert_eq!(files.len(), 40);
    assert_eq!(int(&final_record(&records), "failed"), 1);
    let bad = record_for(&records, "d/f06.gz");
    assert_eq!(bad["status"], "failed", "{bad}");
    assert_eq!(int(&bad, "exit_code"), 1, "{bad}");
    assert_eq!(bad["split"], true, "{bad}");
    assert_eq!(int(&bad, "batch_size"), 1, "{bad}");
    assert!(bad.get("attributed").is_none(), "{bad}");
    assert_eq!(strings(&bad["command"]), ["gzip", "-t", "d/f06.gz"]);
    let number = int(&bad, "batch");
    for r in &files {
        assert!(r.get("attributed").is_none(), "{r}");
        if r["path"] != "d/f06.gz" {
            assert_eq!(r["status"], "ok", "{r}");
        }
        if int(r, "batch") == number {
            assert_eq!(r["split"], true, "{r}");
        } else {
            assert!(r.get("split").is_none(), "{r}");
        }
    }
    let err = o.stderr_str();
    assert!(
        err.contains("failed         d/f06.gz: exit 1: gzip: d/f06.gz: unexpected end of file"),
        "{}",
        o.dump()
    );
    assert!(!err.contains("caused it is not known"), "{}", o.dump());

    // With --retries and -k: each re-run has its attempts, the output stays in input order.
    let o = env.run(&[
        "-X",
        "-j",
        "2",
        "-k",
        "--retries",
        "1",
        "--split-failed",
        "--summary",
        "r.jsonl",
        "-e",
        "gz",
        "d",
        "--",
        "gzip",
        "-t",
        "{}",
    ]);
    o.assert_code(1);
    validate_journal(&env.path("r.jsonl")).unwrap();
    let records = read_summary(env.path("r.jsonl"));
    assert_eq!(int(&final_record(&records), "failed"), 1);
    let bad = record_for(&records, "d/f06.gz");
    assert_eq!(
        (bad["status"].as_str(), int(&bad, "attempts")),
        (Some("failed"), 2)
    );

    // --halt soon: the batch's failure stops new jobs; its records stand, not attributed.
    let o = env.run(&[
        "-X",
        "-j",
        "2",
        "--split-failed",
        "--halt",
        "soon",
        "--summary",
        "h.jsonl",
        "-e",
        "gz",
        "d",
        "--",
        "gzip",
        "-t",
        "{}",
    ]);
    o.assert_code(1);
    validate_journal(&env.path("h.jsonl")).unwrap();
    let records = read_summary(env.path("h.jsonl"));
    let bad = record_for(&records, "d/f06.gz");
    assert_eq!(bad["attributed"], false, "{bad}");
    assert!(file_records(&records)
        .iter()
        .all(|r| r.get("split").is_none()));
}

/// Ctrl-C while `--split-failed` re-runs a failed batch's first half: splitting stops, no
/// other half starts, and every file keeps the batch's record (failed, not attributed), as
/// without the flag: the half that was interrupted says nothing about its files.
#[test]
fn ctrl_c_stops_splitting_and_the_batch_s_records_stand() {
    // Eight files at -j 1: the first batch holds four (d/a to d/d).
    let env = empty_files(8);
    let mut run = env.spawn(&[
        "-X",
        "-j",
        "1",
        "--split-failed",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        "echo \"$@\" >> started; [ $# = 4 ] && exit 1; exec sleep 20",
        "sh",
        "{}",
    ]);
    let lines = || std::fs::read_to_string(env.path("started")).map_or(0, |s| s.lines().count());
    assert!(
        wait_until(Duration::from_secs(5), || lines() == 2),
        "the first half never started"
    );
    std::thread::sleep(Duration::from_millis(100));
    run.signal("INT");
    let o = run.wait();
    o.assert_code(130).assert_no_panic();
    let started = std::fs::read_to_string(env.path("started")).unwrap();
    assert_eq!(
        started,
        "d/f0000 d/f0001 d/f0002 d/f0003\nd/f0000 d/f0001\n",
        "{}",
        o.dump()
    );
    validate_journal(&env.path("s.jsonl")).unwrap();
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    for i in 0..8 {
        let r = record_for(&records, &format!("d/f{i:04}"));
        assert!(r.get("split").is_none(), "{r}");
        if i < 4 {
            assert_eq!(r["status"], "failed", "{r}");
            assert_eq!(r["attributed"], false, "{r}");
        } else {
            assert_eq!(r["status"], "not_started", "{r}");
        }
    }
}
