//! `-n/--dry-run`: one shell-quoted line per job in input order, nothing run or written, the
//! plan on stderr, exit 0 (or 2 on planning errors); each line run with `sh -c` reproduces the
//! real run's argv exactly.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use crate::harness::*;
use crate::hostile::{hostile_env, hostile_env_where, hostile_names};

fn no_newline(name: &[u8]) -> bool {
    !name.contains(&b'\n')
}

/// Runs every stdout line of a dry run with `sh -c LINE` in the tree.
fn run_each_line(env: &TestEnv, dry: &Output) {
    for line in dry.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(OsStr::from_bytes(line))
            .current_dir(env.root());
        let out = run_command(cmd, None);
        assert_eq!(
            out.code,
            Some(0),
            "sh -c {:?} failed\n{}\n--- dry run ---\n{}",
            OsStr::from_bytes(line),
            out.dump(),
            dry.dump()
        );
    }
}

#[test]
fn one_line_per_job_in_input_order() {
    let env = TestEnv::new(&[], &[("b.txt", ""), ("a.txt", ""), ("sub/c.txt", "")]);
    let out = env.run(&["-n", "-j", "2", "--", "cp", "{}", "{}.bak"]);
    out.assert_ok().assert_stdout_lines(&[
        "cp a.txt a.txt.bak",
        "cp b.txt b.txt.bak",
        "cp sub/c.txt sub/c.txt.bak",
    ]);
    assert!(!env.exists("a.txt.bak"), "dry run ran a job");
    env.run(&["--dry-run", "sub", "--", "echo", "{#}"])
        .assert_ok()
        .assert_stdout_lines(&["echo 1 sub/c.txt"]);
}

#[test]
fn quotes_what_needs_quoting() {
    let env = TestEnv::new(&[], &[("a b.txt", ""), ("it's", "")]);
    let out = env.run(&["-n", "--", "echo", "{}"]);
    out.assert_ok();
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 2, "{}", out.dump());
    // Whatever the quoting style, the shell must read back the exact name.
    for (line, name) in lines.iter().zip(["a b.txt", "it's"]) {
        let o = env.sh(line);
        o.assert_ok();
        assert_eq!(o.stdout_str(), format!("{name}\n"), "line {line:?}");
    }
}

#[test]
fn runs_nothing_and_writes_nothing() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", ""), ("d/c.txt", "")]);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let before = env.list_files();
    let out = env.run(&[
        "-n",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        dump.as_str(),
        out_dir.as_str(),
        "{}",
    ]);
    out.assert_ok();
    assert_eq!(out.stdout_lines().len(), 3, "{}", out.dump());
    assert!(
        read_argv_dumps(&out_dir).is_empty(),
        "a job ran\n{}",
        out.dump()
    );
    assert_eq!(
        env.list_files(),
        before,
        "dry run wrote a file\n{}",
        out.dump()
    );
    assert!(!env.exists("s.jsonl"), "dry run wrote the summary file");
    // The plan goes to stderr and mentions the job count.
    assert!(
        !out.stderr.is_empty(),
        "plan expected on stderr\n{}",
        out.dump()
    );
    out.assert_stderr_contains("3");
    // The plan never goes to stdout: every stdout line is a command.
    for l in out.stdout_lines() {
        assert!(l.contains("argv-dump.sh"), "not a command line: {l:?}");
    }
}

#[test]
fn each_line_reproduces_the_real_argv() {
    // Every name except those with a newline (a quoted newline spans two lines; see the
    // whole-script test below).
    let env = hostile_env_where(no_newline);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let args = [
        "-j",
        "1",
        "d",
        "--",
        dump.as_str(),
        out_dir.as_str(),
        "{}",
        "{.}",
        "{/}",
        "{//}",
        "{/.}",
        "{#}",
        "{%}",
        "{threads}",
        "lit eral",
        "{{}}",
        "$(touch PWNED)",
        "'",
    ];
    env.run(&args).assert_ok();
    let real = read_argv_dumps(&out_dir);
    assert_eq!(
        real.len(),
        hostile_names().len() - 1,
        "{}",
        show_argvs(&real)
    );
    clear_dir(&out_dir);

    let mut dry_args = vec!["-n"];
    dry_args.extend(args);
    let dry = env.run(&dry_args);
    dry.assert_ok();
    assert!(
        read_argv_dumps(&out_dir).is_empty(),
        "the dry run ran a job"
    );
    run_each_line(&env, &dry);
    let replayed = read_argv_dumps(&out_dir);
    assert!(
        replayed == real,
        "dry-run lines replay a different argv\n--- replayed ---\n{}\n--- real ---\n{}\n{}",
        show_argvs(&replayed),
        show_argvs(&real),
        dry.dump()
    );
    assert!(!env.exists("PWNED"), "a name was executed");
}

#[test]
fn whole_output_piped_into_sh_reproduces_the_real_argv() {
    let env = hostile_env();
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let args = [
        "-k",
        "d",
        "--",
        dump.as_str(),
        out_dir.as_str(),
        "{}",
        "{/.}",
        "{#}",
    ];
    env.run(&args).assert_ok();
    let real = read_argv_dumps(&out_dir);
    assert_eq!(real.len(), hostile_names().len());
    clear_dir(&out_dir);

    let mut dry_args = vec!["-n"];
    dry_args.extend(args);
    let dry = env.run(&dry_args);
    dry.assert_ok();
    let sh = env.sh_stdin(&dry.stdout);
    assert_eq!(sh.code, Some(0), "sh failed\n{}\n{}", sh.dump(), dry.dump());
    let replayed = read_argv_dumps(&out_dir);
    assert!(
        replayed == real,
        "`fanout -n … | sh` runs a different argv\n--- replayed ---\n{}\n--- real ---\n{}\n{}",
        show_argvs(&replayed),
        show_argvs(&real),
        dry.dump()
    );
    assert!(!env.exists("PWNED"), "a name was executed");
}

#[test]
fn shell_mode_dry_run_reproduces_the_real_argv() {
    let env = hostile_env_where(no_newline);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let script = format!("{dump} {out_dir} {{}} \"$HOME\" | cat && {dump} {out_dir} {{/}}");
    let args = ["-s", "d", "--", script.as_str()];
    env.run(&args).assert_ok();
    let real = read_argv_dumps(&out_dir);
    assert_eq!(real.len(), 2 * (hostile_names().len() - 1));
    clear_dir(&out_dir);

    let mut dry_args = vec!["-n"];
    dry_args.extend(args);
    let dry = env.run(&dry_args);
    dry.assert_ok();
    for l in dry.stdout_lines() {
        assert!(
            l.starts_with("sh -c "),
            "shell mode prints `sh -c '…'`: {l:?}"
        );
    }
    run_each_line(&env, &dry);
    let replayed = read_argv_dumps(&out_dir);
    assert!(
        replayed == real,
        "--- replayed ---\n{}\n--- real ---\n{}\n{}",
        show_argvs(&replayed),
        show_argvs(&real),
        dry.dump()
    );
}

#[test]
fn stdin_dry_run_lists_in_input_order() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("b.txt", "")]);
    env.run_stdin(&["-n", "-", "--", "echo", "{}"], b"b.txt\na.txt\n")
        .assert_ok()
        .assert_stdout_lines(&["echo b.txt", "echo a.txt"]);
}

#[test]
fn nothing_matched_dry_run_exits_zero() {
    let env = TestEnv::new(&[], &[("a.txt", "")]);
    env.run(&["-n", "-e", "csv", "--", "echo"])
        .assert_ok()
        .assert_stdout_empty()
        .assert_stderr_contains("no files matched");
}

#[test]
fn planning_errors_exit_two() {
    let env = TestEnv::new(&[], &[("a.txt", "")]);
    env.run(&["-n", "nope", "--", "echo"])
        .assert_code(2)
        .assert_stdout_empty();
    env.run(&["-n", "--", "echo", "{outt}"])
        .assert_code(2)
        .assert_stdout_empty();
    env.run(&["-n", "--", "no-such-program-fanout-test", "{}"])
        .assert_code(2)
        .assert_stdout_empty();
    env.run(&["-n", "-j", "0", "--", "echo"])
        .assert_code(2)
        .assert_stdout_empty();
    env.run(&["-n"]).assert_code(2).assert_stdout_empty();
}

#[test]
fn worker_slot_in_dry_run_cycles_through_jobs() {
    // design.md: {%} in a dry run is ((job-1) mod jobs)+1.
    let env = TestEnv::new(&[], &[("a", ""), ("b", ""), ("c", "")]);
    env.run(&["-n", "-j", "2", "--", "echo", "{%}", "{#}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["echo 1 1 a", "echo 2 2 b", "echo 1 3 c"]);
}

/// A line break in a file name never ends the `# then …` comment of a dry-run line: replaying
/// the plan with `sh` runs the commands and nothing taken from a name.
#[test]
fn a_line_break_in_a_name_never_runs_when_the_plan_is_replayed() {
    let env = TestEnv::new(&["d"], &[]);
    env.write_bytes_name(b"d/a\ntouch PWNED #.csv", "x\n");
    for args in [
        &["-n", "-i", "d", "--", "cp", "{}", "{out}"][..],
        &["-n", "-o", "o/{/}", "d", "--", "cp", "{}", "{out}"][..],
    ] {
        let out = env.run(args);
        out.assert_ok();
        std::fs::write(env.path("plan.sh"), &out.stdout).unwrap();
        env.sh("mkdir -p o; sh plan.sh >/dev/null 2>&1; true");
        assert!(!env.exists("PWNED"), "{args:?}\n{}", out.dump());
    }
}

/// A dry run whose lines cannot be written (`> /dev/full`) says so and exits 1: its plan is
/// its output (it said nothing and exited 0 before), with `-X` too.
#[test]
fn a_dry_run_whose_lines_cannot_be_written_fails() {
    let env = TestEnv::new(&[], &[("d/a", ""), ("d/b", ""), ("d/c", "")]);
    for flags in ["", "-X"] {
        let out = env.sh(&format!(
            "\"$FANOUT\" -n {flags} d -- echo > /dev/full; echo $? > rc"
        ));
        out.assert_no_panic()
            .assert_stderr_contains("could not be written to fanout's standard output");
        let rc = std::fs::read_to_string(env.path("rc")).unwrap();
        assert_eq!(rc.trim(), "1", "-n {flags}\n{}", out.dump());
    }
}

/// With `-k`, the lines are in input order, heaviest first or not; without it,
/// `--order largest-first` lists the heaviest first, as a real run starts them.
#[test]
fn keep_order_lists_in_input_order_whatever_the_start_order() {
    let env = TestEnv::new(&[], &[("a", "1"), ("b", "333"), ("c", "22")]);
    env.run(&["-n", "-k", "--order", "largest-first", "--", "echo", "{#}"])
        .assert_ok()
        .assert_stdout_lines(&["echo 1 a", "echo 2 b", "echo 3 c"]);
    env.run(&["-n", "--order", "largest-first", "--", "echo", "{#}"])
        .assert_ok()
        .assert_stdout_lines(&["echo 2 b", "echo 3 c", "echo 1 a"]);
}

/// With `-k`, lines listed beside records that need no executor (paths that do not exist, far
/// more than `-k` holds back): the lines in input order, the first failures named, exit 0.
#[test]
fn keep_order_with_many_inputs_that_would_fail() {
    let env = TestEnv::new(&[], &[("a.txt", ""), ("c.txt", "")]);
    let mut list = b"a.txt\n".to_vec();
    for i in 0..5000 {
        list.extend_from_slice(format!("missing-{i:04}\n").as_bytes());
    }
    list.extend_from_slice(b"c.txt\n");
    env.run_stdin(&["-n", "-k", "-", "--", "echo", "{#}"], &list)
        .assert_ok()
        .assert_stdout_lines(&["echo 1 a.txt", "echo 5002 c.txt"])
        .assert_stderr_contains("would fail: missing-0000")
        .assert_stderr_contains("5000 inputs would fail");
}
