//! Exit status: 0 all ok (also nothing matched), 1 a failure or a walk error, 2 usage errors
//! with nothing run, and a closed stdout ends quietly.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

#[test]
fn zero_when_every_job_succeeds() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let tool = fixture("exit-with.sh");
    env.run(&["d", "--", tool.as_str(), "0"]).assert_ok();
}

#[test]
fn zero_when_nothing_matched_with_a_message() {
    let env = TestEnv::new(&["empty"], &[("d/a.txt", "")]);
    let out = env.run(&["--summary", "s.jsonl", "empty", "--", "true"]);
    out.assert_ok()
        .assert_stdout_empty()
        .assert_stderr_contains("no files matched");
    let recs = read_summary(env.path("s.jsonl"));
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 0, "{fin}");
    assert_eq!(int(&fin, "exit_code"), 0, "{fin}");
    env.run(&["-e", "csv", "d", "--", "true"])
        .assert_ok()
        .assert_stderr_contains("no files matched");
}

#[test]
fn one_when_a_job_fails() {
    let env = TestEnv::new(&[], &[("d/a", "0"), ("d/b", "1"), ("d/c", "0")]);
    let out = env.run(&["d", "--", "sh", "-c", "exit $(cat \"$1\")", "_", "{}"]);
    out.assert_code(1);
    // Any non-zero code counts, and all files still ran.
    let env = TestEnv::new(&[], &[("d/a", "0"), ("d/b", "77")]);
    let out = env.run(&[
        "-k",
        "d",
        "--",
        "sh",
        "-c",
        "echo ran $1; exit $(cat \"$1\")",
        "_",
        "{}",
    ]);
    out.assert_code(1)
        .assert_stdout_lines(&["ran d/a", "ran d/b"]);
}

#[test]
fn one_on_a_walk_error_and_the_run_goes_on() {
    // Tests run as root, so an unreadable directory is not unreadable: use a symlink loop.
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/z.txt", "")]);
    env.symlink(".", "d/sub-loop");
    let out = env.run(&[
        "-L",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "printf",
        "%s\\n",
        "{}",
    ]);
    out.assert_code(1)
        .assert_stdout_sorted(&["d/a.txt", "d/z.txt"])
        .assert_stderr_contains("fanout:");
    let recs = read_summary(env.path("s.jsonl"));
    let fin = final_record(&recs);
    assert!(
        int(&fin, "walk_errors") >= 1,
        "walk error not counted: {fin}"
    );
    assert_eq!(int(&fin, "ok"), 2, "{fin}");
    assert_eq!(int(&fin, "exit_code"), 1, "{fin}");
    assert_counts_add_up(&recs);
}

#[test]
fn one_on_an_unreadable_directory() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/locked/x.txt", "")]);
    let locked = env.path("d/locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read_dir(&locked).is_ok() {
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!("skipped: running as root, chmod 000 does not make a directory unreadable");
        return;
    }
    let out = env.run(&["d", "--", "printf", "%s\\n", "{}"]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    out.assert_code(1)
        .assert_stdout_sorted(&["d/a.txt"])
        .assert_stderr_contains("locked");
}

#[test]
fn two_on_usage_errors_and_nothing_runs() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let cases: Vec<Vec<&str>> = vec![
        vec!["d", dump.as_str(), out_dir.as_str()], // no `--`
        vec!["d", "--"],                            // no command
        vec!["-j", "0", "d", "--", dump.as_str(), out_dir.as_str()],
        vec!["-j", "x", "d", "--", dump.as_str(), out_dir.as_str()],
        vec!["-j", "-1", "d", "--", dump.as_str(), out_dir.as_str()],
        vec!["--jobs=", "d", "--", dump.as_str(), out_dir.as_str()],
        vec!["-d", "x", "d", "--", dump.as_str(), out_dir.as_str()],
        vec!["--bogus-flag", "d", "--", dump.as_str(), out_dir.as_str()],
        vec!["d", "--", dump.as_str(), out_dir.as_str(), "{outt}"],
    ];
    for args in cases {
        let out = env.run(&args);
        out.assert_code(2).assert_stdout_empty();
        assert!(
            !out.stderr.is_empty(),
            "a usage error needs a message\n{}",
            out.dump()
        );
        assert!(
            read_argv_dumps(&out_dir).is_empty(),
            "{args:?} ran a job\n{}",
            out.dump()
        );
    }
}

#[test]
fn help_and_version_exit_zero() {
    let env = TestEnv::new(&[], &[]);
    let help = env.run(&["--help"]);
    help.assert_ok();
    let text = help.stdout_str();
    for needle in [
        "--dry-run",
        "--keep-order",
        "--summary",
        "{//}",
        "{threads}",
    ] {
        assert!(
            text.contains(needle),
            "--help lacks {needle}\n{}",
            help.dump()
        );
    }
    env.run(&["--version"])
        .assert_ok()
        .assert_stdout_lines(&[&format!("fanout {}", env!("CARGO_PKG_VERSION"))]);
}

#[test]
fn closed_stdout_ends_quietly() {
    let files: Vec<(String, &str)> = (0..8).map(|i| (format!("d/f{i}"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    let tool = fixture("print-lots.sh");
    let out = env.sh(&format!(
        "{{ \"$FANOUT\" -j 2 d -- {tool} 1; echo $? > rc; }} | head -n 1"
    ));
    out.assert_ok().assert_no_panic();
    assert_eq!(out.stdout_lines().len(), 1, "{}", out.dump());
    let rc = fs::read_to_string(env.path("rc")).unwrap();
    assert_eq!(
        rc.trim(),
        "141",
        "design.md: 141 when fanout's own stdout was closed\n{}",
        out.dump()
    );
    out.assert_stderr_lacks("Broken pipe")
        .assert_stderr_lacks("error");
}

#[test]
fn closed_stdout_in_dry_run_ends_quietly() {
    let files: Vec<(String, &str)> = (0..100).map(|i| (format!("d/f{i:03}"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    let long = "x".repeat(4000);
    let out = env.sh(&format!(
        "{{ \"$FANOUT\" -n d -- echo {long}; echo $? > rc; }} | head -n 1"
    ));
    out.assert_ok().assert_no_panic();
    out.assert_stderr_lacks("Broken pipe")
        .assert_stderr_lacks("error");
    let rc = fs::read_to_string(env.path("rc")).unwrap();
    assert_eq!(rc.trim(), "141", "{}", out.dump());
}
