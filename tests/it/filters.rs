//! Walk filters: -e, -g, -H, -I, -d, -L; filters on explicit files and stdin paths; the hint
//! when nothing matched but hidden or ignored files would have.

use crate::harness::*;

fn print_args<'a>(head: &[&'a str]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend(["--", "printf", "%s\\n", "{}"]);
    v
}

fn tree() -> TestEnv {
    TestEnv::new(
        &[],
        &[
            ("a.txt", ""),
            ("b.TXT", ""),
            ("c.csv", ""),
            ("d.json", ""),
            ("e.txt.bak", ""),
            ("txt", ""),
            ("sub/f.txt", ""),
            ("sub/deep/g.txt", ""),
            ("sub/deep/h.log", ""),
        ],
    )
}

#[test]
fn ext_is_repeatable_and_case_insensitive() {
    let env = tree();
    env.run(&print_args(&["-e", "txt", "-e", "csv"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "b.TXT", "c.csv", "sub/f.txt", "sub/deep/g.txt"]);
    env.run(&print_args(&["--ext", "TXT"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "b.TXT", "sub/f.txt", "sub/deep/g.txt"]);
}

#[test]
fn ext_matches_last_extension_only() {
    let env = TestEnv::new(&[], &[("x.tar.gz", ""), ("y.gz.tar", ""), ("gz", "")]);
    env.run(&print_args(&["-e", "gz"]))
        .assert_ok()
        .assert_stdout_sorted(&["x.tar.gz"]);
}

#[test]
fn glob_without_slash_matches_name_at_any_depth() {
    let env = tree();
    env.run(&print_args(&["-g", "*.txt"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "sub/f.txt", "sub/deep/g.txt"]);
}

#[test]
fn glob_star_does_not_cross_slash_but_double_star_does() {
    let env = tree();
    env.run(&print_args(&["-g", "sub/*.txt"]))
        .assert_ok()
        .assert_stdout_sorted(&["sub/f.txt"]);
    env.run(&print_args(&["-g", "sub/**/*.txt"]))
        .assert_ok()
        .assert_stdout_sorted(&["sub/f.txt", "sub/deep/g.txt"]);
    env.run(&print_args(&["-g", "sub/**"]))
        .assert_ok()
        .assert_stdout_sorted(&["sub/f.txt", "sub/deep/g.txt", "sub/deep/h.log"]);
}

#[test]
fn glob_is_repeatable_and_bang_excludes() {
    let env = tree();
    env.run(&print_args(&["-g", "*.txt", "-g", "*.csv"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "c.csv", "sub/f.txt", "sub/deep/g.txt"]);
    env.run(&print_args(&["-g", "*.txt", "-g", "!g.*"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "sub/f.txt"]);
}

#[test]
fn only_negated_globs_keep_everything_else() {
    let env = tree();
    env.run(&print_args(&["-g", "!*.txt", "-g", "!deep/"]))
        .assert_ok()
        .assert_stdout_sorted(&["b.TXT", "c.csv", "d.json", "e.txt.bak", "txt"]);
    env.run(&print_args(&["--glob", "!*.txt"]))
        .assert_ok()
        .assert_stdout_sorted(&[
            "b.TXT",
            "c.csv",
            "d.json",
            "e.txt.bak",
            "txt",
            "sub/deep/h.log",
        ]);
}

#[test]
fn ext_and_glob_combine() {
    let env = tree();
    env.run(&print_args(&["-e", "txt", "-g", "sub/**"]))
        .assert_ok()
        .assert_stdout_sorted(&["sub/f.txt", "sub/deep/g.txt"]);
}

#[test]
fn hidden_files_skipped_unless_h() {
    let env = TestEnv::new(
        &[],
        &[
            ("a.txt", ""),
            (".h.txt", ""),
            (".hdir/x.txt", ""),
            ("sub/.y.txt", ""),
        ],
    );
    env.run(&print_args(&[]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt"]);
    env.run(&print_args(&["-H"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", ".h.txt", ".hdir/x.txt", "sub/.y.txt"]);
    env.run(&print_args(&["--hidden"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", ".h.txt", ".hdir/x.txt", "sub/.y.txt"]);
}

#[test]
fn gitignore_in_a_repo_and_ignore_files_are_honoured_unless_i() {
    let env = TestEnv::new(
        &[".git"],
        &[
            (".gitignore", "ignored.txt\ndata/\n"),
            (".ignore", "*.tmp\n"),
            ("keep.txt", ""),
            ("ignored.txt", ""),
            ("data/big.txt", ""),
            ("scratch.tmp", ""),
            ("sub/ignored.txt", ""),
            ("sub/other.tmp", ""),
            ("sub/ok.txt", ""),
        ],
    );
    env.run(&print_args(&[]))
        .assert_ok()
        .assert_stdout_sorted(&["keep.txt", "sub/ok.txt"]);
    let all = [
        "keep.txt",
        "ignored.txt",
        "data/big.txt",
        "scratch.tmp",
        "sub/ignored.txt",
        "sub/other.tmp",
        "sub/ok.txt",
    ];
    env.run(&print_args(&["-I"]))
        .assert_ok()
        .assert_stdout_sorted(&all);
    env.run(&print_args(&["--no-ignore"]))
        .assert_ok()
        .assert_stdout_sorted(&all);
}

#[test]
fn gitignore_outside_a_repo_is_not_read_but_ignore_is() {
    // design.md: .gitignore only inside a git repository; .ignore always.
    let env = TestEnv::new(
        &[],
        &[
            (".gitignore", "a.txt\n"),
            (".ignore", "b.txt\n"),
            ("a.txt", ""),
            ("b.txt", ""),
        ],
    );
    env.run(&print_args(&[]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt"]);
}

#[test]
fn max_depth_limits_descent() {
    let env = TestEnv::new(
        &[],
        &[("d/a.txt", ""), ("d/s/b.txt", ""), ("d/s/t/c.txt", "")],
    );
    env.run(&print_args(&["-d", "1", "d"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/a.txt"]);
    env.run(&print_args(&["--max-depth", "2", "d"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/a.txt", "d/s/b.txt"]);
    env.run(&print_args(&["-d", "1"]))
        .assert_ok()
        .assert_stdout_sorted(&[]);
}

#[test]
fn follow_enters_symlinked_directories() {
    let env = TestEnv::new(&[], &[("d/own.txt", ""), ("outside/y.txt", "")]);
    env.symlink("../outside", "d/link");
    env.symlink("own.txt", "d/filelink.txt");
    // Without -L the directory link is not entered and a symlink is not a regular file.
    env.run(&print_args(&["d"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/own.txt"]);
    // With -L the linked directory is walked; the file link is the same file as own.txt.
    let out = env.run(&print_args(&["-L", "d"]));
    out.assert_ok();
    let mut lines = out.stdout_lines();
    lines.sort();
    assert!(
        lines.contains(&"d/link/y.txt".to_string()),
        "-L must walk d/link\n{}",
        out.dump()
    );
    assert_eq!(
        lines.len(),
        2,
        "own.txt and its link are one file; d/link/y.txt the other\n{}",
        out.dump()
    );
    env.run(&print_args(&["--follow", "d/link"]))
        .assert_ok()
        .assert_stdout_sorted(&["d/link/y.txt"]);
}

#[test]
fn filters_apply_to_explicit_files() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.csv", ""), ("sub/c.txt", "")]);
    env.run(&print_args(&["-e", "txt", "a.txt", "b.csv", "sub/c.txt"]))
        .assert_ok()
        .assert_stdout_sorted(&["a.txt", "sub/c.txt"]);
    env.run(&print_args(&["-g", "*.csv", "a.txt", "b.csv"]))
        .assert_ok()
        .assert_stdout_sorted(&["b.csv"]);
    env.run(&print_args(&["-g", "!a.*", "a.txt", "b.csv"]))
        .assert_ok()
        .assert_stdout_sorted(&["b.csv"]);
}

#[test]
fn filters_apply_to_stdin_paths() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.csv", ""), ("sub/c.TXT", "")]);
    env.run_stdin(
        &print_args(&["-e", "txt", "-"]),
        b"a.txt\nb.csv\nsub/c.TXT\n",
    )
    .assert_ok()
    .assert_stdout_sorted(&["a.txt", "sub/c.TXT"]);
    env.run_stdin(&print_args(&["-g", "*.csv", "-"]), b"a.txt\nb.csv\n")
        .assert_ok()
        .assert_stdout_sorted(&["b.csv"]);
}

#[test]
fn nothing_matched_because_hidden_names_the_hidden_flag() {
    let env = TestEnv::new(&[], &[(".data/x.parquet", ""), ("readme.md", "")]);
    let out = env.run(&print_args(&["-e", "parquet"]));
    out.assert_ok()
        .assert_stdout_empty()
        .assert_stderr_contains("no files matched")
        .assert_stderr_contains("--hidden")
        .assert_stderr_lacks("--no-ignore");
}

#[test]
fn nothing_matched_because_ignored_names_the_no_ignore_flag() {
    let env = TestEnv::new(
        &[".git"],
        &[
            (".gitignore", "data/\n"),
            ("data/x.parquet", ""),
            ("readme.md", ""),
        ],
    );
    let out = env.run(&print_args(&["-e", "parquet"]));
    out.assert_ok()
        .assert_stdout_empty()
        .assert_stderr_contains("no files matched")
        .assert_stderr_contains("--no-ignore")
        .assert_stderr_lacks("--hidden");
}

#[test]
fn nothing_matched_plain_has_no_misleading_hint() {
    let env = TestEnv::new(&[], &[("readme.md", ""), (".h.md", "")]);
    let out = env.run(&print_args(&["-e", "parquet"]));
    out.assert_ok()
        .assert_stdout_empty()
        .assert_stderr_contains("no files matched")
        .assert_stderr_lacks("--hidden")
        .assert_stderr_lacks("--no-ignore");
}
