//! `--generate`: the completion scripts load in their shells and complete fanout's options, and
//! the man page renders without a warning.

use std::process::Command;

use crate::harness::*;

/// Runs `shell ARGS…` with `$FANOUT` set, or `None` when the shell is not installed: the test
/// is then skipped with one line outside CI and fails in CI (`.ci/run` installs bash, zsh,
/// fish and groff).
fn shell(program: &str, args: &[&str]) -> Option<Output> {
    if !tool_or_skip(program, "it loads fanout's --generate output", false) {
        return None;
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("FANOUT", FANOUT)
        .stdin(std::process::Stdio::null());
    Some(run_command(cmd, None))
}

#[test]
fn bash_loads_the_completion_and_completes_options_and_values() {
    let Some(out) = shell(
        "bash",
        &[
            "-c",
            r#"source <("$FANOUT" --generate complete-bash) || exit 9
               complete -p fanout || exit 8
               complete_at() {
                 COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                 COMPREPLY=(); _fanout_first_word fanout "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                 printf '%s\n' "${COMPREPLY[@]}"
               }
               echo "-- options"; complete_at fanout --keep
               echo "-- values"; complete_at fanout --executor ''"#,
        ],
    ) else {
        return;
    };
    out.assert_ok();
    let stdout = out.stdout_str();
    assert!(
        stdout.contains("-F _fanout_first_word fanout"),
        "{}",
        out.dump()
    );
    let section = |name: &str| -> Vec<String> {
        stdout
            .split(&format!("-- {name}\n"))
            .nth(1)
            .unwrap_or("")
            .lines()
            .take_while(|l| !l.starts_with("-- "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    assert_eq!(section("options"), ["--keep-order"], "{}", out.dump());
    assert_eq!(
        section("values"),
        ["local", "slurm", "srun"],
        "{}",
        out.dump()
    );
}

#[test]
fn zsh_and_fish_completions_parse_and_name_the_options() {
    if let Some(zsh) = shell(
        "zsh",
        &["-c", r#"zsh -n <("$FANOUT" --generate complete-zsh)"#],
    ) {
        zsh.assert_ok();
    }
    let text = TestEnv::new(&[], &[])
        .run(&["--generate", "complete-zsh"])
        .assert_ok()
        .stdout_str();
    assert!(text.starts_with("#compdef fanout"), "{text}");
    assert!(text.contains("--keep-order"), "{text}");

    let Some(fish) = shell(
        "fish",
        &[
            "--no-config",
            "-c",
            r#"$FANOUT --generate complete-fish | source; and complete -C 'fanout --keep'"#,
        ],
    ) else {
        return;
    };
    fish.assert_ok();
    assert!(
        fish.stdout_str().contains("--keep-order"),
        "{}",
        fish.dump()
    );
}

#[test]
fn man_page_renders_without_warnings() {
    if !tool_or_skip("groff", "it renders the man page", false) {
        return;
    }
    let env = TestEnv::new(&[], &[]);
    let page = env.run(&["--generate", "man"]);
    page.assert_ok();
    std::fs::write(env.path("fanout.1"), page.stdout.clone()).unwrap();
    let rendered = env.sh("groff -man -Tutf8 -ww fanout.1");
    rendered.assert_ok();
    assert!(
        rendered.stderr.is_empty(),
        "groff warns about the man page:\n{}",
        rendered.dump()
    );
    // grotty marks bold and underlined text with overstrikes (`X\bX`, `_\bX`) and may print
    // a hyphen as U+2010 or a minus as U+2212: compare the plain text.
    let mut plain = String::new();
    for c in rendered.stdout_str().chars() {
        match c {
            '\u{8}' => {
                plain.pop();
            }
            '\u{2010}' | '\u{2212}' => plain.push('-'),
            c => plain.push(c),
        }
    }
    for needle in [
        "NAME",
        "SYNOPSIS",
        "--keep-order",
        "--generate",
        "PLACEHOLDERS",
        "{mem}",
    ] {
        assert!(
            plain.contains(needle),
            "the man page lacks {needle}:\n{plain}"
        );
    }
}

#[test]
fn generate_stands_alone() {
    let env = TestEnv::new(&[], &[]);
    env.run(&["--generate", "man", "-j", "2"])
        .assert_code(2)
        .assert_stderr_contains("--generate");
    env.run(&["--generate", "complete-tcsh"])
        .assert_code(2)
        .assert_stderr_contains("complete-bash");
    // Without --generate the command is still required.
    env.run(&["-j", "2"]).assert_code(2);
}

/// The completions know `fanout report`: `fanout re<TAB>` offers it, and after it the report's
/// own options are offered, not the run's. Each shell runs its real completion code.
#[test]
fn completions_offer_report_and_then_its_options() {
    let env = TestEnv::new(&["reports"], &[]);
    let dir = env.root();
    if let Some(out) = shell(
        "bash",
        &[
            "-c",
            r#"source <("$FANOUT" --generate complete-bash) || exit 9
               complete_at() {
                 COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                 COMPREPLY=(); _fanout_first_word fanout "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                 printf '%s\n' "${COMPREPLY[@]}"
               }
               cd "$1" || exit 7
               echo "-- re"; complete_at fanout re
               echo "-- report"; complete_at fanout report -
               echo "-- run"; complete_at fanout --keep"#,
            "_",
            dir.to_str().unwrap(),
        ],
    ) {
        out.assert_ok();
        let text = out.stdout_str();
        let section = |name: &str| section(&text, name);
        // Paths that begin like `report` are still offered.
        assert_eq!(section("re"), ["report", "reports"], "{}", out.dump());
        let report = section("report");
        assert!(report.iter().any(|l| l == "--output"), "{}", out.dump());
        assert!(
            !report.iter().any(|l| l == "--keep-order"),
            "{}",
            out.dump()
        );
        assert_eq!(section("run"), ["--keep-order"], "{}", out.dump());
    }

    // zsh: the completion functions run with zsh's completion builtins replaced by stubs that
    // print what they were given.
    if let Some(out) = shell(
        "zsh",
        &[
            "-f",
            "-c",
            r#"compdef() { :; }
               _arguments() { print -r -- "arguments: $*"; }
               _describe() { print -r -- "describe: ${(P)4}"; }
               source <("$FANOUT" --generate complete-zsh) || exit 9
               complete_at() { words=("$@"); CURRENT=$#; PREFIX=${words[CURRENT]}; _fanout; }
               echo "-- re"; complete_at fanout re
               echo "-- report"; complete_at fanout report -
               echo "-- run"; complete_at fanout --keep
               echo "-- dir"; complete_at fanout report -- wc
               true"#,
        ],
    ) {
        out.assert_ok();
        let text = out.stdout_str();
        let joined = |name: &str| section(&text, name).join("\n");
        let re = joined("re");
        assert!(re.contains("describe: report:"), "{}", out.dump());
        assert!(
            re.contains("--keep-order"),
            "files and options too\n{}",
            out.dump()
        );
        let report = joined("report");
        assert!(
            report.contains(":journal") && !report.contains("--keep-order"),
            "{}",
            out.dump()
        );
        assert!(!report.contains("describe:"), "{}", out.dump());
        let run = joined("run");
        assert!(
            run.contains("--keep-order") && !run.contains("describe:"),
            "{}",
            out.dump()
        );
        let dir = joined("dir");
        assert!(
            dir.contains("--keep-order") && !dir.contains(":journal"),
            "{}",
            out.dump()
        );
    }

    if let Some(out) = shell(
        "fish",
        &[
            "--no-config",
            "-c",
            r#"$FANOUT --generate complete-fish | source
               echo "-- re"; complete -C 'fanout re'
               echo "-- report"; complete -C 'fanout report -'"#,
        ],
    ) {
        out.assert_ok();
        let text = out.stdout_str();
        let first = |name: &str| -> Vec<String> {
            section(&text, name)
                .iter()
                .map(|l| l.split('\t').next().unwrap_or("").to_string())
                .collect()
        };
        assert!(first("re").iter().any(|l| l == "report"), "{}", out.dump());
        let report = first("report");
        assert!(report.iter().any(|l| l == "--output"), "{}", out.dump());
        assert!(
            !report.iter().any(|l| l == "--keep-order"),
            "{}",
            out.dump()
        );
    }
}

/// The lines after `-- NAME` up to the next `-- ` line.
fn section(text: &str, name: &str) -> Vec<String> {
    text.split(&format!("-- {name}\n"))
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| !l.starts_with("-- "))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}
