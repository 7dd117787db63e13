//! `-h` is one screen for a newcomer (usage, the main options by group, the placeholders,
//! examples, where the rest is); `--help` is the full help. Every option `-h` names exists.

use crate::harness::*;

/// The option names (`-e`, `--mem-limit`) written in a text.
fn option_names(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ',' || c == ';' || c == '\'')
        .filter(|w| {
            let name = w.trim_start_matches('-');
            (w.starts_with("--") && name.len() > 1 || w.len() == 2 && w.starts_with('-'))
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(|w| w.split(['=', ':']).next().unwrap_or(w).to_string())
        .collect()
}

#[test]
fn short_help_is_one_screen_with_what_a_newcomer_needs() {
    let env = TestEnv::new(&[], &[]);
    let short = env.run(&["-h"]);
    short.assert_ok();
    let text = short.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 45, "-h has {} lines:\n{text}", lines.len());
    assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
    for needle in [
        "Usage: fanout [OPTIONS] [PATH]... -- COMMAND [ARG]...",
        "fanout report JOURNAL",
        "{}",
        "{.}",
        "{/}",
        "{//}",
        "{/.}",
        "{#}",
        "{%}",
        "{rel}",
        "{rel.}",
        "{threads}",
        "{mem}",
        "{out}",
        "Examples",
        "fanout --help",
        "--generate man",
        "docs/reference.md",
    ] {
        assert!(text.contains(needle), "-h lacks {needle}:\n{text}");
    }
    // Every option -h names is one of fanout's (in --help), the report's -o aside.
    let full = env.run(&["--help"]);
    full.assert_ok();
    let full = full.stdout_str();
    let known = option_names(&full);
    for name in option_names(&text) {
        assert!(
            known.contains(&name),
            "-h names {name}, which `fanout --help` does not have"
        );
    }
    // --help stays the full help, {mem} included; -h anywhere before `--` is the summary.
    assert!(
        full.lines().count() > 80 && full.contains("{mem}"),
        "{full}"
    );
    assert!(
        full.contains("PLACEHOLDERS") && full.contains("--kill-grace"),
        "{full}"
    );
    env.run(&["-j", "2", "-h"])
        .assert_ok()
        .assert_stdout_lines(&lines);
}

#[test]
fn short_help_examples_are_valid_command_lines() {
    let env = TestEnv::new(&[], &[("data/a.csv", "x\n"), ("logs/a.log", "ERROR\n")]);
    let text = env.run(&["-h"]).stdout_str();
    let examples: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Examples")
        .filter_map(|l| l.trim_start().strip_prefix("fanout "))
        .collect();
    assert_eq!(examples.len(), 3, "{text}");
    for example in examples {
        // The command line as a shell reads it, up to the description after wide spacing.
        let line = example.split("   ").next().unwrap();
        let mut words = shlex::split(line).expect("an example is shell words");
        words.insert(0, "-n".into());
        let out = env.run(&words);
        assert!(
            out.code == Some(0),
            "`fanout {line}` does not plan a run:\n{}",
            out.dump()
        );
    }
}
