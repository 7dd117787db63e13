//! Small things people trip over: a forgotten `--` is named as such, counts read well, and the
//! dry run's plan is one line unless `-v` asks for more.

use crate::harness::*;

/// A usage error: exit 2, nothing on stdout, exactly one line on stderr containing `needle`.
#[track_caller]
fn one_line_error(out: &Output, needle: &str) {
    out.assert_code(2).assert_stdout_empty();
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "want one line\n{}", out.dump());
    assert!(lines[0].starts_with("fanout: error: "), "{}", out.dump());
    assert!(lines[0].contains(needle), "want {needle:?}\n{}", out.dump());
}

#[test]
fn a_forgotten_double_dash_is_named_with_the_fix() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", ""), ("t.sh", "touch RAN\n")]);
    // The first word of the command is a program on PATH and no file here.
    let out = env.run(&["-e", "txt", "d", "sh", "t.sh", "{}"]);
    one_line_error(
        &out,
        "`sh` is a program, not a file here; put `--` before the command: fanout [OPTIONS] d -- sh t.sh {}",
    );
    // No PATH before the program: the fix shows the default `.`.
    let out = env.run(&["sh", "t.sh"]);
    one_line_error(&out, "fanout [OPTIONS] . -- sh t.sh");
    // A placeholder among the paths.
    let out = env.run(&["d", "./t.sh", "{}"]);
    one_line_error(&out, "`{}` is among the paths; put `--` before the command");
    // The command's own option, with no `--` on the line.
    let out = env.run(&["d", "sh", "-c", "touch RAN", "{}"]);
    one_line_error(
        &out,
        "unexpected argument '-c': if it is the command's, put `--`",
    );
    // Nothing that looks like a command: say where it goes.
    for args in [&["d"][..], &["d", "--"]] {
        let out = env.run(args);
        one_line_error(&out, "no command to run: give it after `--`");
    }
    assert!(!env.exists("RAN") && !env.exists("d/RAN"), "a job ran");
    // With `--`, an unknown option is clap's usual error (not the command's).
    env.run(&["--bogus", "d", "--", "true"])
        .assert_code(2)
        .assert_stderr_contains("unexpected argument '--bogus'");
}

#[test]
fn counts_of_one_are_singular() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", "")]);
    env.run(&["-n", "d", "--", "true"])
        .assert_ok()
        .assert_stderr_contains("dry run: 1 job, at most")
        .assert_stderr_lacks("1 jobs");
    env.run(&["-j", "2", "d", "--", "true"])
        .assert_ok()
        .assert_stderr_contains("1 file: 1 ok")
        .assert_stderr_lacks("1 files");
    let two = TestEnv::new(&["d"], &[("d/a.txt", ""), ("d/b.txt", "")]);
    two.run(&["-n", "d", "--", "true"])
        .assert_ok()
        .assert_stderr_contains("dry run: 2 jobs, at most");
}

#[test]
fn the_dry_run_plan_is_one_line_unless_verbose() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", "x"), ("d/b.txt", "yy")]);
    let short = env.run(&["-n", "d", "--", "true"]);
    short.assert_ok();
    assert_eq!(short.stderr_lines().len(), 1, "{}", short.dump());
    short
        .assert_stderr_contains("fanout: dry run: 2 jobs")
        .assert_stderr_lacks("memory:")
        .assert_stderr_lacks("weight");
    let long = env.run(&["-n", "-v", "d", "--", "true"]);
    long.assert_ok()
        .assert_stderr_contains("fanout: dry run: 2 jobs")
        .assert_stderr_contains("fanout: memory: ")
        .assert_stderr_contains("weight")
        .assert_stderr_contains("d/b.txt");
    // The commands on stdout are the same either way.
    assert_eq!(short.stdout, long.stdout);
}

/// The end report's `memory:` line is there when memory shaped the run (an input waited for
/// memory while fewer than `-j` jobs ran), or with `-v`; not after a run memory never held back.
#[test]
fn the_memory_line_only_when_memory_shaped_the_run_or_verbose() {
    let files: Vec<(String, &str)> = (0..4).map(|i| (format!("d/{i}.txt"), "x")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&["d"], &files);
    // Jobs long enough for memory to be sampled.
    let job = ["--", "sh", "-c", "sleep 0.4", "x", "{}"];
    let plain = env.run(&[&["-j", "4", "d"][..], &job].concat());
    plain
        .assert_ok()
        .assert_stderr_contains("4 files: 4 ok")
        .assert_stderr_lacks("memory:");
    let verbose = env.run(&[&["-j", "4", "-v", "d"][..], &job].concat());
    verbose
        .assert_ok()
        .assert_stderr_contains("fanout: memory: at most");
    // A budget of one reservation: the others wait for memory although -j allows 4.
    let tight = env.run(
        &[
            &[
                "-j",
                "4",
                "--mem-per-job",
                "100M",
                "--mem-limit",
                "150M",
                "d",
            ][..],
            &job,
        ]
        .concat(),
    );
    tight
        .assert_ok()
        .assert_stderr_contains("fanout: memory: at most 1 job at once");
}

/// `--color`: fanout's messages and clap's are coloured alike with `always` (and `auto` when
/// CLICOLOR_FORCE is set), never with `never`, NO_COLOR, or in a pipe; both say `fanout: error:`.
#[test]
fn colour_follows_color_no_color_and_clicolor_force() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let run = |args: &[&str], vars: &[(&str, &str)]| {
        let mut cmd = env.command(args);
        cmd.env_remove("CLICOLOR_FORCE").env_remove("NO_COLOR");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        run_command(cmd, None)
    };
    const ESC: &str = "\u{1b}[";
    // The end report: failed red, ok green.
    let failed = run(&["--color", "always", "d", "--", "false"], &[]);
    failed
        .assert_code(1)
        .assert_stderr_contains("\u{1b}[31m2 failed")
        .assert_stderr_contains("\u{1b}[31mfailed");
    let ok = run(&["--color=always", "d", "--", "true"], &[]);
    ok.assert_ok().assert_stderr_contains("\u{1b}[32m2 ok");
    // fanout's own error and clap's: the same prefix, the same red bold `error:`.
    let red_error = "fanout: \u{1b}[1m\u{1b}[31merror:";
    for args in [
        &["--color", "always", "-e", "txt", "d"][..],
        &["--color", "always", "-j", "x", "d", "--", "true"][..],
    ] {
        run(args, &[])
            .assert_code(2)
            .assert_stderr_contains(red_error);
    }
    // CLICOLOR_FORCE colours a pipe under `auto`; NO_COLOR and `never` win over it.
    run(&["d", "--", "false"], &[("CLICOLOR_FORCE", "1")]).assert_stderr_contains(ESC);
    for (args, vars) in [
        (&["d", "--", "false"][..], &[][..]),
        (
            &["--color", "never", "d", "--", "false"][..],
            &[("CLICOLOR_FORCE", "1")][..],
        ),
        (
            &["d", "--", "false"][..],
            &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")][..],
        ),
        (&["-j", "x", "d", "--", "true"][..], &[][..]),
        (
            &["--color", "never", "-j", "x", "d", "--", "true"][..],
            &[("CLICOLOR_FORCE", "1")][..],
        ),
    ] {
        let out = run(args, vars);
        assert!(
            !out.stderr_str().contains(ESC),
            "{args:?} {vars:?}\n{}",
            out.dump()
        );
    }
    // Errors read the same whoever found them.
    let clap = run(&["-j", "x", "d", "--", "true"], &[]);
    clap.assert_code(2)
        .assert_stderr_contains("fanout: error: invalid value 'x'");
}
