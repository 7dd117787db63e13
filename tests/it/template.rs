//! The command template: every placeholder, literal braces, `{name}` typos rejected, the
//! implicit trailing `{}`, and `./` before a leading dash.

use crate::harness::*;

#[test]
fn path_placeholders_expand() {
    let env = TestEnv::new(&[], &[("d/sub/a.tar.gz", ""), ("d/b", "")]);
    env.run(&[
        "-k",
        "d",
        "--",
        "printf",
        "%s|%s|%s|%s|%s\\n",
        "{}",
        "{.}",
        "{/}",
        "{//}",
        "{/.}",
    ])
    .assert_ok()
    .assert_stdout_lines(&[
        "d/b|d/b|b|d|b",
        "d/sub/a.tar.gz|d/sub/a.tar|a.tar.gz|d/sub|a.tar",
    ]);
}

#[test]
fn placeholders_work_inside_words() {
    let env = TestEnv::new(&[], &[("d/x.csv", "")]);
    env.run(&["d", "--", "echo", "in={}", "out={.}.json", "[{/.}]@{//}"])
        .assert_ok()
        .assert_stdout_lines(&["in=d/x.csv out=d/x.json [x]@d"]);
}

#[test]
fn job_number_follows_input_order() {
    let env = TestEnv::new(
        &[],
        &[("a.txt", ""), ("b.txt", ""), ("c/d.txt", ""), ("e.txt", "")],
    );
    // With two workers the finishing order is free, but {#} must follow input order.
    env.run(&["-j", "2", "--", "echo", "{#}", "{}"])
        .assert_ok()
        .assert_stdout_sorted(&["1 a.txt", "2 b.txt", "3 c/d.txt", "4 e.txt"]);
    env.run_stdin(&["-k", "-", "--", "echo", "{#}", "{}"], b"e.txt\na.txt\n")
        .assert_ok()
        .assert_stdout_lines(&["1 e.txt", "2 a.txt"]);
}

#[test]
fn worker_slot_is_within_jobs() {
    let files: Vec<(String, &str)> = (0..8).map(|i| (format!("f{i}.txt"), "")).collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let env = TestEnv::new(&[], &files);
    let out = env.run(&["-j", "1", "--", "echo", "{%}"]);
    out.assert_ok();
    // No path placeholder: {} is appended.
    for line in out.stdout_lines() {
        assert!(
            line.starts_with("1 f"),
            "-j 1: slot must be 1\n{}",
            out.dump()
        );
    }
    let out = env.run(&[
        "-j",
        "3",
        "--",
        "sh",
        "-c",
        "sleep 0.05; echo \"$1\"",
        "_",
        "{%}",
    ]);
    out.assert_ok();
    let slots: Vec<String> = out.stdout_lines();
    assert_eq!(slots.len(), 8, "{}", out.dump());
    for s in &slots {
        assert!(
            ["1", "2", "3"].contains(&s.as_str()),
            "slot {s} outside 1..=3\n{}",
            out.dump()
        );
    }
}

#[test]
fn threads_placeholder_divides_cpus_by_jobs() {
    let env = TestEnv::new(&[], &[("a.txt", "")]);
    env.run(&["-j", "1000", "--", "echo", "{threads}"])
        .assert_ok()
        .assert_stdout_lines(&["1 a.txt"]);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let out = env.run(&["-j", "1", "--", "echo", "t={threads}", "{}"]);
    out.assert_ok();
    assert_eq!(
        out.stdout_lines(),
        vec![format!("t={cpus} a.txt")],
        "-j 1: {{threads}} = logical CPUs\n{}",
        out.dump()
    );
}

#[test]
fn double_braces_are_literal() {
    let env = TestEnv::new(&[], &[("a.txt", "")]);
    env.run(&["--", "echo", "{{}}", "{{rel..}}", "{{{}}}"])
        .assert_ok()
        .assert_stdout_lines(&["{} {rel..} {a.txt}"]);
    // Doubled braces that escape no placeholder are the command's own (Go templates).
    env.run(&["--", "echo", "{{x}}", "{{.State.Status}}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["{{x}} {{.State.Status}} a.txt"]);
}

#[test]
fn non_placeholder_brace_text_stays_literal() {
    let env = TestEnv::new(&[], &[("a.txt", "hello world\nsecond line\n")]);
    env.run(&["--", "awk", "{print $1}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["hello", "second"]);
    env.run(&["--", "echo", "{ x }", "{1}", "{A}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["{ x } {1} {A} a.txt"]);
}

#[test]
fn unknown_lowercase_placeholder_is_rejected() {
    let env = TestEnv::new(&[], &[("a.txt", "")]);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let out = env.run(&[
        "-e",
        "txt",
        "--",
        dump.as_str(),
        out_dir.as_str(),
        "{outt}",
        "{}",
    ]);
    out.assert_code(2).assert_stderr_contains("{outt}");
    assert_eq!(
        out.stderr_lines().len(),
        1,
        "one clear message\n{}",
        out.dump()
    );
    assert!(read_argv_dumps(&out_dir).is_empty(), "{}", out.dump());
    // Also inside a word, and in shell mode.
    env.run(&["--", "echo", "x{Rel}y", "{}"])
        .assert_code(2)
        .assert_stderr_contains("did you mean {rel}?");
    env.run(&["-s", "--", "echo {mme}"])
        .assert_code(2)
        .assert_stderr_contains("did you mean {mem}?");
}

#[test]
fn implicit_trailing_path() {
    let env = TestEnv::new(&[], &[("d/a.txt", "")]);
    env.run(&["d", "--", "echo", "hi"])
        .assert_ok()
        .assert_stdout_lines(&["hi d/a.txt"]);
    // Any path placeholder suppresses it; {#} alone does not.
    env.run(&["d", "--", "echo", "{/}"])
        .assert_ok()
        .assert_stdout_lines(&["a.txt"]);
    env.run(&["d", "--", "echo", "{//}"])
        .assert_ok()
        .assert_stdout_lines(&["d"]);
    env.run(&["d", "--", "echo", "{#}"])
        .assert_ok()
        .assert_stdout_lines(&["1 d/a.txt"]);
    // In shell mode the appended {} is a quoted word at the end of the script.
    env.run(&["-s", "d", "--", "echo", "hi"])
        .assert_ok()
        .assert_stdout_lines(&["hi d/a.txt"]);
}

#[test]
fn leading_dash_path_gets_dot_slash() {
    let env = TestEnv::new(&[], &[("-n", ""), ("-rf.txt", "")]);
    env.run(&["-k", "--", "printf", "%s\\n", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["./-n", "./-rf.txt"]);
    // The same for paths read from stdin.
    env.run_stdin(&["-", "--", "printf", "%s\\n", "{}"], b"-n\n")
        .assert_ok()
        .assert_stdout_lines(&["./-n"]);
    // And `ls {}` does not take the name as an option.
    env.run(&["-k", "--", "ls", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["./-n", "./-rf.txt"]);
}

/// Every value that begins a word gets `./` when it would begin with `-`: the base name, its
/// stem, the parent, {out} and {rel}, in a plain run, in a script, in batches and in the dry
/// run alike. Inside a word (`--in={/}`) a dash is harmless and stays as it is.
#[test]
fn no_placeholder_passes_a_leading_dash() {
    let env = TestEnv::new(&[], &[("d/--version", ""), ("-p/x.txt", "x")]);
    let line = "./--version ./--version ./--version d/--version";
    env.run(&["d", "--", "echo", "{/}", "{/.}", "{rel}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&[line]);
    env.run(&["-s", "d", "--", "echo", "{/}", "{/.}", "{rel}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&[line]);
    env.run(&["-X", "d", "--", "echo", "{/}", "{/.}", "{rel}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&[line]);
    let dry = env.run(&["-n", "d", "--", "ls", "{/}", "{/.}", "{rel}"]);
    dry.assert_ok();
    assert!(
        dry.stdout_str()
            .contains("ls ./--version ./--version ./--version"),
        "{}",
        dry.dump()
    );
    // `cd {//} && wc -c {/}` in a script: the name is a file, not an option.
    env.run(&["-s", "d", "--", "cd {//} && wc -c {/}"])
        .assert_ok()
        .assert_stdout_lines(&["0 ./--version"]);
    // The parent and its stem, and {out}, begin with `-` below a root named `-p`.
    env.run_stdin(
        &["-", "--", "echo", "{//}", "{.}", "{/}", "--in={/}", "x{//}"],
        b"-p/x.txt\n",
    )
    .assert_ok()
    .assert_stdout_lines(&["./-p ./-p/x x.txt --in=x.txt x./-p"]);
    let out = env.run_stdin(
        &[
            "-i",
            "-",
            "--",
            "sh",
            "-c",
            "printf %s \"$1\" | head -c 2; cp -- \"$2\" \"$3\"",
            "_",
            "{out}",
            "{}",
            "{out}",
        ],
        b"-p/x.txt\n",
    );
    out.assert_ok();
    assert_eq!(out.stdout_str(), "./", "{}", out.dump());
}

#[test]
fn shell_mode_runs_one_script() {
    let env = TestEnv::new(&[], &[("d/a.txt", "x\ny\n")]);
    env.run(&["-s", "d", "--", "wc -l < {} | tr -d ' '"])
        .assert_ok()
        .assert_stdout_lines(&["2"]);
    // Several words after -- are joined with single spaces.
    env.run(&["--shell", "d", "--", "echo", "{/}", "&&", "echo", "done"])
        .assert_ok()
        .assert_stdout_lines(&["a.txt", "done"]);
}

#[test]
fn leading_dots_never_begin_an_extension() {
    // `{.}` of `d/..double` must not be `d/..` (the parent directory), nor `{/.}` be `.`.
    let env = TestEnv::new(
        &[],
        &[
            ("d/..double", ""),
            ("d/...", ""),
            ("d/.hidden", ""),
            ("d/.a.b", ""),
            ("d/a.b.c", ""),
        ],
    );
    env.run(&[
        "-H",
        "-k",
        "d",
        "--",
        "printf",
        "%s|%s|%s|%s|%s\\n",
        "{}",
        "{.}",
        "{/}",
        "{//}",
        "{/.}",
    ])
    .assert_ok()
    .assert_stdout_lines(&[
        "d/...|d/...|...|d|...",
        "d/..double|d/..double|..double|d|..double",
        "d/.a.b|d/.a|.a.b|d|.a",
        "d/.hidden|d/.hidden|.hidden|d|.hidden",
        "d/a.b.c|d/a.b|a.b.c|d|a.b",
    ]);
    // A bare name keeps `{.}` = `{/.}`.
    env.run_stdin(&["-", "--", "echo", "{.}", "{/.}"], b"d/..double\n")
        .assert_ok()
        .assert_stdout_lines(&["d/..double ..double"]);
}

#[test]
fn shell_mode_refuses_a_placeholder_in_quotes() {
    // fanout quotes each value itself: `"{}"` would put its quotes inside the user's, and a file
    // named `$(touch PWNED).txt` would run.
    let env = TestEnv::new(&[], &[("d/$(touch PWNED).txt", ""), ("d/b.txt", "x y\n")]);
    for script in [
        r#"echo "{}""#,
        "echo '{}'",
        r#"cat "{/}" > "{.}.out""#,
        "cat <<EOF\n{}\nEOF",
    ] {
        let out = env.run(&["-s", "d", "--", script]);
        out.assert_code(2)
            .assert_stdout_empty()
            .assert_stderr_contains("without quotes");
        assert_eq!(out.stderr_lines().len(), 1, "one line\n{}", out.dump());
        assert!(!env.exists("PWNED"), "a file name ran\n{}", out.dump());
        assert!(!env.exists("d/PWNED"), "a file name ran\n{}", out.dump());
    }
    env.run(&["-s", "d", "--", r#"echo "{}""#])
        .assert_stderr_contains("{} is inside double quotes");
    env.run(&["-s", "d", "--", "echo '{}'"])
        .assert_stderr_contains("{} is inside single quotes");
    // The --help text says so.
    let help = env.run(&["--help"]);
    help.assert_ok();
    assert!(
        help.stdout_str().contains("write {} without quotes"),
        "{}",
        help.dump()
    );
}

#[test]
fn shell_mode_accepts_placeholders_outside_quotes() {
    let env = TestEnv::new(&[], &[("d/$(touch PWNED).txt", ""), ("d/b.txt", "x y\n")]);
    env.run(&["-s", "-k", "d", "--", r#"echo {/} "literal""#])
        .assert_ok()
        .assert_stdout_lines(&["$(touch PWNED).txt literal", "b.txt literal"]);
    env.run(&["-s", "-g", "b.txt", "d", "--", "awk '{print $1}' {}"])
        .assert_ok()
        .assert_stdout_lines(&["x"]);
    env.run(&["-s", "-k", "d", "--", r#"echo "$(basename {})""#])
        .assert_ok()
        .assert_stdout_lines(&["$(touch PWNED).txt", "b.txt"]);
    assert!(!env.exists("PWNED") && !env.exists("d/PWNED"));
}
