//! Preflight: the program is resolved before any job starts; not found or not executable is one
//! clear message and exit 2 with nothing run.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

fn tree() -> TestEnv {
    TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")])
}

#[track_caller]
fn assert_one_line_exit_2(out: &Output, needle: &str) {
    out.assert_code(2)
        .assert_stdout_empty()
        .assert_stderr_contains(needle);
    let lines: Vec<String> = out
        .stderr_lines()
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one message line\n{}",
        out.dump()
    );
}

#[test]
fn missing_program_is_one_message_and_exit_2() {
    let env = tree();
    let out = env.run(&[
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "no-such-program-fanout-test",
        "{}",
    ]);
    assert_one_line_exit_2(&out, "no-such-program-fanout-test");
    // Nothing ran: no file record can exist.
    if env.exists("s.jsonl") {
        let recs = read_summary(env.path("s.jsonl"));
        assert!(file_records(&recs).is_empty(), "{recs:#?}");
    }
}

#[test]
fn missing_program_with_a_path_is_exit_2() {
    let env = tree();
    let out = env.run(&["d", "--", "./bin/nothing-here", "{}"]);
    assert_one_line_exit_2(&out, "nothing-here");
}

#[test]
fn non_executable_program_is_exit_2_and_nothing_runs() {
    let env = tree();
    let marker = env.path("ran");
    let script = env.write(
        "tool.sh",
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["d", "--", "./tool.sh", "{}"]);
    assert_one_line_exit_2(&out, "tool.sh");
    assert!(!marker.exists(), "the job ran");
    // A directory is not a program either.
    let out = env.run(&["d", "--", "./d", "{}"]);
    out.assert_code(2).assert_stdout_empty();
}

#[test]
fn non_executable_on_path_is_not_found_or_exit_2() {
    // A non-executable file of that name in a PATH directory must not count as found.
    let env = tree();
    let bin = env.mkdir("bin");
    let f = env.write("bin/fanout-noexec-tool", "#!/bin/sh\nexit 0\n");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = env.command(&["d", "--", "fanout-noexec-tool"]);
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    let out = run_command(cmd, None);
    assert_one_line_exit_2(&out, "fanout-noexec-tool");
}

#[test]
fn program_is_resolved_on_path() {
    let env = tree();
    let bin = format!("{}/fixtures/bin", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = env.command(&["d", "--", "exit-with.sh", "0"]);
    cmd.env("PATH", format!("{bin}:/usr/bin:/bin"));
    run_command(cmd, None).assert_ok();
}

#[test]
fn program_from_a_placeholder_is_not_preflighted() {
    // `-- {}`: each file is its own program, checked per job, not up front.
    let env = TestEnv::new(&[], &[]);
    env.script("d/a.sh", "#!/bin/sh\necho ran a\n");
    env.script("d/b.sh", "#!/bin/sh\necho ran b\n");
    env.run(&["d", "--", "{}"])
        .assert_ok()
        .assert_stdout_sorted(&["ran a", "ran b"]);
}

#[test]
fn shell_mode_preflights_sh_only() {
    // In -s mode the program is `sh`; a missing command inside the script fails per job.
    let env = tree();
    let out = env.run(&["-s", "d", "--", "no-such-program-fanout-test {}"]);
    out.assert_code(1);
}

#[test]
fn timeout_zero_is_refused() {
    // A zero timeout raced every job against its own start: refuse it, as one line.
    let env = tree();
    let marker = env.path("ran");
    let cmd = format!("touch '{}'", marker.display());
    for args in [
        ["--timeout", "0"],
        ["--timeout", "0s"],
        ["--timeout", "0.0"],
    ] {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["d", "--", "sh", "-c", &cmd]);
        assert_one_line_exit_2(&env.run(&all), "--timeout must be more than 0");
    }
    assert!(!marker.exists(), "a job ran");
}

#[test]
fn bad_durations_are_usage_errors() {
    let env = tree();
    for value in ["nan", "-1", "-inf", "soon"] {
        for flag in ["--timeout", "--kill-grace"] {
            env.run(&[flag, value, "d", "--", "true"])
                .assert_code(2)
                .assert_no_panic()
                .assert_stdout_empty();
        }
    }
}

#[test]
fn huge_durations_mean_never_and_never_panic() {
    let env = tree();
    for value in [
        "1e19",
        "1e400",
        "inf",
        "18446744073709551615",
        "999999999999999999999h",
    ] {
        env.run(&[
            "--timeout",
            value,
            "--summary",
            "s.jsonl",
            "d",
            "--",
            "true",
        ])
        .assert_ok()
        .assert_no_panic();
        let recs = read_summary(env.path("s.jsonl"));
        assert_eq!(file_records(&recs).len(), 2, "{recs:#?}");
        // A huge grace after a timeout: the job obeys SIGTERM and is recorded as timed out.
        let out = env.run(&[
            "--timeout",
            "0.2",
            "--kill-grace",
            value,
            "--summary",
            "s.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            "exec sleep 20",
            "_",
            "{}",
        ]);
        out.assert_code(1).assert_no_panic();
        let recs = read_summary(env.path("s.jsonl"));
        for r in file_records(&recs) {
            assert_eq!(r["status"], "timeout", "{r}\n{}", out.dump());
        }
    }
}

#[test]
fn zero_kill_grace_kills_at_once() {
    // --kill-grace 0 means SIGKILL at once: a job that ignores SIGTERM still stops.
    let env = tree();
    let ignore = fixture("ignore-term.sh");
    let out = env.run(&[
        "--timeout",
        "0.2",
        "--kill-grace",
        "0",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        ignore.as_str(),
    ]);
    out.assert_code(1).assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    for r in file_records(&recs) {
        assert_eq!(r["status"], "timeout", "{r}");
        assert_eq!(r["signal"], 9, "{r}");
    }
}
