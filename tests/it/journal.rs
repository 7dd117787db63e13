//! The run's own files: the `--summary` journal and the `--resume` journal are never inputs,
//! a journal is read back whatever cut it, `--resume J --summary J` never loses what J held,
//! and `--summary` writes to special files (/dev/null, pipes) as to regular ones.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Paths with a given status in a journal.
fn paths_with(records: &[Value], status: &str) -> Vec<String> {
    let mut v: Vec<String> = file_records(records)
        .iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// A journal that may end in a partial line (a killed run): whole lines only.
fn read_lenient(path: impl AsRef<std::path::Path>) -> Vec<Value> {
    let bytes = fs::read(path).unwrap_or_default();
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

#[test]
fn resume_accepts_a_journal_cut_inside_a_multibyte_character() {
    let env = TestEnv::new(&[], &[("d/é1.txt", ""), ("d/é2.txt", "")]);
    env.run(&["-j", "1", "--summary", "s.jsonl", "d", "--", "true"])
        .assert_ok();
    // Cut the journal in the middle of the `é` of the second file record's path (after the
    // `run` line and the first file record).
    let bytes = fs::read(env.path("s.jsonl")).unwrap();
    let run_end = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    assert!(bytes.starts_with(br#"{"type":"run""#));
    let first_end = run_end + bytes[run_end..].iter().position(|b| *b == b'\n').unwrap() + 1;
    let second = &bytes[first_end..];
    let e_acute = second.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    let cut = first_end + e_acute + 1;
    fs::write(env.path("cut.jsonl"), &bytes[..cut]).unwrap();
    let out = env.run(&[
        "-j",
        "1",
        "--resume",
        "cut.jsonl",
        "--summary",
        "s2.jsonl",
        "d",
        "--",
        "true",
    ]);
    out.assert_ok().assert_no_panic();
    let recs = read_summary(env.path("s2.jsonl"));
    assert_eq!(paths_with(&recs, "skipped"), ["d/é1.txt"], "{recs:#?}");
    assert_eq!(paths_with(&recs, "ok"), ["d/é2.txt"], "{recs:#?}");
    // A bad line that is not the last is still an error.
    let mut bad = b"{\"type\":\"file\",\"pa\xc3\n".to_vec();
    bad.extend_from_slice(&bytes);
    fs::write(env.path("bad.jsonl"), &bad).unwrap();
    env.run(&["--resume", "bad.jsonl", "d", "--", "true"])
        .assert_code(2)
        .assert_stderr_contains("line 1");
}

#[test]
fn summary_to_dev_null_a_pipe_or_a_fifo_is_no_error() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    env.run(&["--summary", "/dev/null", "d", "--", "true"])
        .assert_ok()
        .assert_stderr_lacks("summary");
    // Standard output is a pipe here: the journal goes down it, with no job output to mix.
    let out = env.run(&["-q", "--summary", "/dev/stdout", "d", "--", "true"]);
    out.assert_ok();
    let lines: Vec<Value> = out
        .stdout_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_counts_add_up(&lines);
    // A FIFO with a reader.
    let st = std::process::Command::new("mkfifo")
        .arg(env.path("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    let fifo = env.path("fifo");
    let reader = std::thread::spawn(move || fs::read(fifo).unwrap());
    env.run(&["--summary", "fifo", "d", "--", "true"])
        .assert_ok();
    let got = reader.join().unwrap();
    let recs: Vec<Value> = got
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_counts_add_up(&recs);
}

#[test]
fn summary_dash_is_refused() {
    // `-` is not a file to create; standard output carries job output.
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let out = env.run(&["--summary", "-", "d", "--", "true"]);
    out.assert_code(2).assert_stderr_contains("--summary -");
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.dump());
    assert!(!env.exists("-"), "a file named - was created");
    assert!(!env.exists("d/-"), "a file named - was created");
}

/// A tree with data files and room for journals at its top.
fn data_tree() -> TestEnv {
    TestEnv::new(&[], &[("a.txt", "a\n"), ("sub/b.txt", "b\n")])
}

#[test]
fn the_summary_journal_is_never_an_input() {
    let env = data_tree();
    // Whatever the filters: the journal's own name, -H -I, a glob that names it, -e.
    for extra in [
        vec![],
        vec!["-H", "-I"],
        vec!["-g", "*.jsonl", "-g", "*.txt"],
        vec!["-e", "jsonl", "-e", "txt"],
    ] {
        let mut args = vec!["--summary", "run.jsonl", "-j", "1"];
        args.extend(extra.iter().copied());
        args.extend(["--", "echo"]);
        let out = env.run(&args);
        out.assert_ok()
            .assert_stdout_sorted(&["a.txt", "sub/b.txt"]);
        let recs = read_summary(env.path("run.jsonl"));
        assert_counts_add_up(&recs);
        assert_eq!(paths_with(&recs, "ok"), ["a.txt", "sub/b.txt"], "{extra:?}");
    }
    // Named explicitly, or read from stdin, or through another path: still not an input.
    env.run(&["--summary", "run.jsonl", "run.jsonl", "a.txt", "--", "echo"])
        .assert_ok()
        .assert_stdout_lines(&["a.txt"])
        .assert_stderr_contains("this run's journal");
    env.run_stdin(
        &["--summary", "./run.jsonl", "-", "--", "echo"],
        b"run.jsonl\na.txt\n",
    )
    .assert_ok()
    .assert_stdout_lines(&["a.txt"]);
    fs::hard_link(env.path("run.jsonl"), env.path("sub/link.jsonl")).unwrap();
    env.run(&["--summary", "run.jsonl", "--", "echo"])
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "sub/b.txt"]);
}

#[test]
fn in_place_never_rewrites_its_own_journal() {
    let env = data_tree();
    // Without the exclusion, the job's output would be renamed over the journal being written.
    let out = env.run(&[
        "-i",
        "-H",
        "--summary",
        "run.jsonl",
        "-s",
        "--",
        "tr a-z A-Z < {} > {out}",
    ]);
    out.assert_ok();
    let recs = read_summary(env.path("run.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(paths_with(&recs, "ok"), ["a.txt", "sub/b.txt"]);
    assert_eq!(fs::read_to_string(env.path("a.txt")).unwrap(), "A\n");
}

#[test]
fn the_resume_journal_is_never_an_input() {
    let env = data_tree();
    env.run(&["--summary", "run.jsonl", "-q", "--", "true"])
        .assert_ok();
    // Resumed into itself or into another file, with -H -I, in the walked tree: neither journal
    // is an input, and the dry run agrees.
    env.write("new.txt", "n\n");
    let out = env.run(&[
        "-H",
        "-I",
        "-n",
        "--resume",
        "run.jsonl",
        "--summary",
        "run.jsonl",
        "--",
        "echo",
    ]);
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["echo new.txt"], "{}", out.dump());
    let out = env.run(&[
        "-H",
        "-I",
        "-n",
        "--resume",
        "run.jsonl",
        "--summary",
        "other.jsonl",
        "--",
        "echo",
    ]);
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["echo new.txt"], "{}", out.dump());
    let out = env.run(&[
        "-H",
        "-I",
        "-i",
        "--resume",
        "run.jsonl",
        "--summary",
        "run.jsonl",
        "--",
        "cp",
        "{}",
        "{out}",
    ]);
    out.assert_ok();
    let recs = read_summary(env.path("run.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(paths_with(&recs, "ok"), ["new.txt"], "{recs:#?}");
    assert_eq!(
        paths_with(&recs, "skipped"),
        ["a.txt", "sub/b.txt"],
        "{recs:#?}"
    );
    // Nothing is left beside the journal.
    let mut names: Vec<String> = fs::read_dir(env.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.txt", "new.txt", "run.jsonl", "sub"]);
}

#[test]
fn a_killed_resume_into_the_same_journal_loses_no_progress() {
    // A big journal recorded ok, resumed into itself; the resumed run finishes its new files
    // and is SIGKILLed while it writes the skip records. The next resume must skip them all.
    const DONE: usize = 20_000;
    let env = TestEnv::new(&[], &[]);
    env.mkdir("b");
    let mut journal = String::new();
    for i in 0..DONE {
        let rel = format!("b/f{i:05}");
        let p = env.write(&rel, "x");
        let md = fs::metadata(&p).unwrap();
        use std::os::unix::fs::MetadataExt;
        journal.push_str(&format!(
            "{{\"type\":\"file\",\"job\":{},\"path\":\"{rel}\",\"status\":\"ok\",\"file_size\":1,\"file_mtime_ns\":{}}}\n",
            i + 1,
            md.mtime() * 1_000_000_000 + md.mtime_nsec()
        ));
    }
    journal.push_str("{\"type\":\"summary\",\"complete\":true}\n");
    env.write("run.jsonl", &journal);
    let news = ["a/n1", "a/n2", "a/n3"];
    for n in news {
        env.write(n, "new");
    }
    let job = r#"echo "$1" >> ran.log"#;
    let args = [
        "-j",
        "1",
        "--resume",
        "run.jsonl",
        "--summary",
        "run.jsonl",
        "a",
        "b",
        "--",
        "sh",
        "-c",
        job,
        "_",
        "{}",
    ];
    let mut run = env.spawn(&args);
    let started = wait_until(Duration::from_secs(20), || {
        fs::read_to_string(env.path("ran.log")).is_ok_and(|s| s.lines().count() == news.len())
    });
    assert!(started, "the new files did not run");
    // Let the journal record them (it is written as records arrive), then kill.
    let recorded = wait_until(Duration::from_secs(20), || {
        let mut all = read_lenient(env.path("run.jsonl"));
        for p in leftovers(&env) {
            all.extend(read_lenient(p));
        }
        news.iter()
            .all(|n| all.iter().any(|r| r["path"] == *n && r["status"] == "ok"))
    });
    assert!(recorded, "the new files were never recorded");
    run.signal("KILL");
    run.wait();
    fs::remove_file(env.path("ran.log")).unwrap();

    // The next resume runs nothing: every file is ok in the journal or in what the killed run
    // left beside it.
    let out = env.run(&args);
    out.assert_ok();
    assert!(
        !env.exists("ran.log"),
        "{} files ran again\n{}",
        fs::read_to_string(env.path("ran.log"))
            .unwrap()
            .lines()
            .count(),
        out.dump()
    );
    let recs = read_summary(env.path("run.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(
        int(&final_record(&recs), "skipped"),
        (DONE + news.len()) as i64
    );
    // The finished run replaced the journal and took back what the killed one left.
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

/// What runs left beside `run.jsonl` in the tree's top directory.
fn leftovers(env: &TestEnv) -> Vec<std::path::PathBuf> {
    fs::read_dir(env.root())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".run.jsonl.fanout-journal-")
        })
        .map(|e| e.path())
        .collect()
}
