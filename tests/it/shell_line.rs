//! A shell command line without `-s`, and a `-s` script that `sh` cannot parse: both are
//! refused before any job runs (exit 2), instead of every job failing the same way.

use crate::harness::*;

#[test]
fn a_shell_line_without_s_is_refused_with_the_s_command_line() {
    let env = TestEnv::new(&[], &[("raw/a.csv", "x\n"), ("raw/b.csv", "y\n")]);
    let out = env.run(&["-e", "csv", "raw", "--", "gzip -c {} > {}.gz"]);
    out.assert_code(2)
        .assert_stderr_contains("is a shell command line, not a program")
        .assert_stderr_contains("fanout -s -e csv raw -- 'gzip -c {} > {}.gz'");
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.dump());
    assert!(!env.exists("raw/a.csv.gz"));
    // The same with a word after it, and in the dry run.
    env.run(&["-n", "raw", "--", "wc -l", "{}"])
        .assert_code(2)
        .assert_stderr_contains("fanout -s -n raw -- 'wc -l {}'");
    // The suggested line does what was meant.
    env.run(&["-s", "-e", "csv", "raw", "--", "gzip -c {} > {}.gz"])
        .assert_ok();
    assert!(env.exists("raw/a.csv.gz") && env.exists("raw/b.csv.gz"));
}

#[test]
fn a_program_whose_path_has_a_space_still_runs() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    let program = env.script("my tools/say (v2).sh", "#!/bin/sh\necho \"said $1\"\n");
    let program = program.to_str().unwrap();
    env.run(&["d", "--", program, "{}"])
        .assert_ok()
        .assert_stdout_lines(&["said d/a.txt"]);
    env.run(&["d", "--", "./my tools/say (v2).sh", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["said d/a.txt"]);
}

#[test]
fn a_script_sh_cannot_parse_is_refused_before_any_job() {
    let env = TestEnv::new(&[], &[("d/a.txt", ""), ("d/b.txt", "")]);
    for script in [
        "touch {}.ran; echo 'unterminated",
        "touch {}.ran; echo \"unterminated",
        "touch {}.ran; for f in x; echo $f",
        "touch {}.ran; if true; then echo",
        "touch {}.ran; echo $(date",
    ] {
        let out = env.run(&["-s", "-e", "txt", "d", "--", script]);
        out.assert_code(2)
            .assert_stderr_contains("sh cannot parse the script");
        assert_eq!(out.stderr_lines().len(), 1, "{script}\n{}", out.dump());
        assert!(!env.exists("d/a.txt.ran"), "{script}: a job ran");
        env.run(&["-n", "-s", "-e", "txt", "d", "--", script])
            .assert_code(2);
    }
    // A script sh reads fine runs as before.
    env.run(&["-s", "-e", "txt", "d", "--", "touch {}.ran; echo 'done'"])
        .assert_ok();
    assert!(env.exists("d/a.txt.ran"));
}
