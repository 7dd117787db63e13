//! Inputs: directories are walked, files taken as-is, `-` reads paths from stdin (lines or NUL),
//! blank lines ignored, missing stdin paths become failed records, a missing PATH is a usage
//! error, overlapping roots yield each file once.

use crate::harness::*;

const PRINT: [&str; 3] = ["printf", "%s\\n", "{}"];

fn with_print<'a>(head: &[&'a str]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.push("--");
    v.extend(PRINT);
    v
}

#[test]
fn directories_are_walked_recursively() {
    let env = TestEnv::new(
        &[],
        &[
            ("d1/a.txt", ""),
            ("d1/sub/deeper/b.txt", ""),
            ("d2/c.txt", ""),
            ("other/x.txt", ""),
        ],
    );
    env.run(&with_print(&["d1", "d2"]))
        .assert_ok()
        .assert_stdout_sorted(&["d1/a.txt", "d1/sub/deeper/b.txt", "d2/c.txt"]);
}

#[test]
fn no_path_means_current_directory_without_dot_prefix() {
    let env = TestEnv::new(&["empty"], &[("a.txt", ""), ("sub/b.txt", "")]);
    env.run(&with_print(&[]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "sub/b.txt"]);
}

#[test]
fn explicit_root_is_joined_as_typed() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    env.run(&with_print(&["./d"]))
        .assert_ok()
        .assert_stdout_sorted(&["./d/a.txt"]);
    env.run(&with_print(&["d/"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/a.txt"]);
}

#[test]
fn walk_order_is_sorted_by_name_depth_first() {
    // design.md: roots in the order given, entries sorted by file name within each directory.
    let env = TestEnv::new(
        &[],
        &[
            ("d/c.txt", ""),
            ("d/a.txt", ""),
            ("d/b/y.txt", ""),
            ("d/b/x.txt", ""),
            ("e/z.txt", ""),
        ],
    );
    env.run(&with_print(&["-j", "1", "e", "d"]))
        .assert_ok()
        .assert_stdout_lines(&["e/z.txt", "d/a.txt", "d/b/x.txt", "d/b/y.txt", "d/c.txt"]);
}

#[test]
fn file_paths_are_taken_as_is() {
    // A file given explicitly is a job even when hidden or git-ignored: it is taken as-is.
    let env = TestEnv::new(
        &[".git"],
        &[
            ("d/a.txt", ""),
            ("d/b.txt", ""),
            (".hidden.txt", ""),
            ("ign.txt", ""),
            (".gitignore", "ign.txt\n"),
        ],
    );
    env.run(&with_print(&["d/b.txt", ".hidden.txt", "ign.txt"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/b.txt", ".hidden.txt", "ign.txt"]);
}

#[test]
fn stdin_paths_one_per_line_in_order_not_walked() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.txt", ""), ("sub/c.txt", "")]);
    env.run_stdin(&with_print(&["-k", "-"]), b"sub/c.txt\nb.txt\na.txt\n")
        .assert_ok()
        .assert_stdout_lines(&["sub/c.txt", "b.txt", "a.txt"]);
}

#[test]
fn stdin_last_line_without_newline() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.txt", "")]);
    env.run_stdin(&with_print(&["-k", "-"]), b"a.txt\nb.txt")
        .assert_ok()
        .assert_stdout_lines(&["a.txt", "b.txt"]);
}

#[test]
fn stdin_nul_separated_with_null_flag() {
    let env = TestEnv::new(&[], &[("a b.txt", ""), ("c.txt", ""), ("x\ny.txt", "")]);
    let out = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    env.run_stdin(
        &["-0", "-", "--", dump.as_str(), out.as_str(), "{}"],
        b"a b.txt\0x\ny.txt\0c.txt\0",
    )
    .assert_ok();
    let argvs = read_argv_dumps(&out);
    assert_eq!(
        argvs,
        vec![vec![b("a b.txt")], vec![b("c.txt")], vec![b("x\ny.txt")]],
        "{}",
        show_argvs(&argvs)
    );
    // Long form too.
    env.run_stdin(&with_print(&["-k", "--null", "-"]), b"c.txt\0a b.txt\0")
        .assert_ok()
        .assert_stdout_lines(&["c.txt", "a b.txt"]);
}

#[test]
fn stdin_without_null_flag_splits_on_newlines_only() {
    let env = TestEnv::new(&[], &[("a b.txt", ""), ("c\td.txt", "")]);
    env.run_stdin(&with_print(&["-k", "-"]), b"a b.txt\nc\td.txt\n")
        .assert_ok()
        .assert_stdout_lines(&["a b.txt", "c\td.txt"]);
}

#[test]
fn stdin_blank_lines_are_ignored() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.txt", "")]);
    let out = env.run_stdin(
        &[
            "-k",
            "--summary",
            "s.jsonl",
            "-",
            "--",
            "printf",
            "%s\\n",
            "{}",
        ],
        b"\na.txt\n\n\nb.txt\n\n",
    );
    out.assert_ok().assert_stdout_lines(&["a.txt", "b.txt"]);
    let recs = read_summary(env.path("s.jsonl"));
    assert_eq!(file_records(&recs).len(), 2, "{recs:#?}");
    assert_counts_add_up(&recs);
    // And NUL mode: empty fields are ignored too.
    env.run_stdin(&with_print(&["-k", "-0", "-"]), b"\0a.txt\0\0b.txt\0\0")
        .assert_ok()
        .assert_stdout_lines(&["a.txt", "b.txt"]);
}

#[test]
fn stdin_missing_or_non_regular_path_is_a_failed_record() {
    let env = TestEnv::new(&["adir"], &[("a.txt", "")]);
    let out = env.run_stdin(
        &["--summary", "s.jsonl", "-", "--", "printf", "%s\\n", "{}"],
        b"a.txt\nnope.txt\nadir\n",
    );
    out.assert_code(1).assert_stdout_sorted(&["a.txt"]);
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(record_for(&recs, "a.txt")["status"], "ok");
    let nope = record_for(&recs, "nope.txt");
    assert_eq!(nope["status"], "failed", "{nope}");
    let err = nope["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("error reason missing: {nope}"));
    assert!(
        err.to_lowercase().contains("no such file"),
        "reason should say the file does not exist: {nope}"
    );
    let dir = record_for(&recs, "adir");
    assert_eq!(dir["status"], "failed", "{dir}");
    assert!(
        dir["reason"].as_str().is_some_and(|e| !e.is_empty()),
        "a directory on stdin needs a reason: {dir}"
    );
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 3, "{fin}");
    assert_eq!(int(&fin, "ok"), 1, "{fin}");
    assert_eq!(int(&fin, "failed"), 2, "{fin}");
    assert_eq!(int(&fin, "exit_code"), 1, "{fin}");
}

#[test]
fn missing_path_is_an_error_before_anything_runs() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let out = env.run(&["d", "nope", "--", dump.as_str(), out_dir.as_str(), "{}"]);
    out.assert_code(2).assert_stderr_contains("nope");
    assert!(
        read_argv_dumps(&out_dir).is_empty(),
        "a job ran\n{}",
        out.dump()
    );
    // Also when the missing path comes first and with a summary file requested.
    let out = env.run(&[
        "--summary",
        "s.jsonl",
        "nope",
        "d",
        "--",
        dump.as_str(),
        out_dir.as_str(),
    ]);
    out.assert_code(2);
    assert!(
        read_argv_dumps(&out_dir).is_empty(),
        "a job ran\n{}",
        out.dump()
    );
}

#[test]
fn overlapping_roots_yield_each_file_once() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/sub/b.txt", "")]);
    env.run(&with_print(&["d", "d/sub", "d/a.txt", "d"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/a.txt", "d/sub/b.txt"]);
    env.run(&with_print(&["-j", "1", "d/sub", "d"]))
        .assert_ok()
        .assert_stdout_lines(&["d/sub/b.txt", "d/a.txt"]);
}

#[test]
fn overlapping_roots_counted_once_in_summary() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/sub/b.txt", "")]);
    env.run(&["--summary", "s.jsonl", "d", "d/sub", "--", "true"])
        .assert_ok();
    let recs = read_summary(env.path("s.jsonl"));
    assert_eq!(int(&final_record(&recs), "total"), 2, "{recs:#?}");
    assert_counts_add_up(&recs);
}

#[test]
fn stdin_paths_alone_are_taken_as_given_but_deduplicated_with_other_roots() {
    // Alone, stdin streams with flat memory, like xargs: a repeated path runs again.
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.txt", "")]);
    let out = env.run_stdin(&with_print(&["-k", "-"]), b"a.txt\nb.txt\na.txt\n");
    out.assert_ok();
    assert_eq!(
        out.stdout_lines(),
        ["a.txt", "b.txt", "a.txt"],
        "{}",
        out.dump()
    );
    // With another root, a file already seen (same device and inode) is not run again.
    let out = env.run_stdin(
        &with_print(&["-k", "a.txt", "-"]),
        b"./a.txt\nb.txt\na.txt\n",
    );
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["a.txt", "b.txt"], "{}", out.dump());
}

#[test]
fn stdin_and_directories_mix() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("x.txt", "")]);
    env.run_stdin(&with_print(&["d", "-"]), b"x.txt\n")
        .assert_ok()
        .assert_stdout_sorted(&["d/a.txt", "x.txt"]);
}

#[test]
fn empty_stdin_is_nothing_matched() {
    let env = TestEnv::new(&[], &[("a.txt", "")]);
    env.run_stdin(&with_print(&["-"]), b"")
        .assert_ok()
        .assert_stdout_empty()
        .assert_stderr_contains("no files matched");
}
