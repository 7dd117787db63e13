//! A shell command line given as one word without `-s` (`fanout -- 'gzip -c {} > {}.gz'`):
//! no program has that name, so every job would fail with "no such file or directory".
//! It is refused before anything runs, with the `-s` command line that does what was meant.

use std::ffi::OsString;

use anyhow::{anyhow, Error};

use crate::template::{shell_quote, Template};

/// Whether a word reads as a shell command line: it has white space or shell syntax.
fn reads_as_shell(word: &[u8]) -> bool {
    word.iter()
        .any(|b| b.is_ascii_whitespace() || b"|&;<>()$`\"'".contains(b))
}

/// The error for a command whose first word is a shell command line, when that word names no
/// program (`found`: whether the program, when the word is literal text, was found). `None`
/// when the first word does not read as one, or names a real program (`/opt/my tools/run`).
/// `args` is fanout's own command line, to show the corrected one in full: its words before
/// `--` (after the program name), when the words after `--` are `command`; else `...`.
pub(super) fn refused(
    command: &[OsString],
    found: bool,
    with_out: bool,
    args: &[OsString],
) -> Option<Error> {
    use std::os::unix::ffi::OsStrExt;
    let first = command.first()?.as_bytes();
    if found || !reads_as_shell(first) {
        return None;
    }
    let script = command.join(std::ffi::OsStr::new(" "));
    let quote = |w: &[u8]| String::from_utf8_lossy(&shell_quote(w)).into_owned();
    let before = match args.iter().position(|a| a == "--") {
        Some(at) if args[at + 1..] == *command && at > 0 => args[1..at]
            .iter()
            .map(|a| quote(a.as_bytes()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "...".to_string(),
    };
    let line = format!("{before} -- {}", quote(script.as_bytes()));
    let line = line.trim_start();
    // Under -s the same words may still be refused (a placeholder in quotes): say so now.
    let then = match Template::parse(&[script], true, with_out) {
        Ok(_) => String::new(),
        Err(e) => format!(" (fix this too: {e})"),
    };
    Some(anyhow!(
        "`{}` is a shell command line, not a program: add -s (--shell) to run it with sh -c, every substituted value quoted for you: fanout -s {line}{then}",
        String::from_utf8_lossy(first)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<OsString> {
        ws.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_shell_line_as_first_word_is_refused_with_the_s_line() {
        let err = refused(&words(&["gzip -c {} > {}.gz"]), false, false, &[])
            .unwrap()
            .to_string();
        assert!(
            err.contains("add -s") && err.contains("fanout -s ... -- 'gzip -c {} > {}.gz'"),
            "{err}"
        );
        for first in ["python3 t.py", "a|b", "x;y", "$(cmd)", "a&&b", "cat<f"] {
            assert!(
                refused(&words(&[first, "{}"]), false, false, &[]).is_some(),
                "{first}"
            );
        }
        // Words after the first join the script.
        let err = refused(&words(&["wc -l", "{}"]), false, false, &[])
            .unwrap()
            .to_string();
        assert!(err.contains("-- 'wc -l {}'"), "{err}");
        // What -s would still refuse is named too.
        let err = refused(&words(&["cat \"{}\" | wc"]), false, false, &[])
            .unwrap()
            .to_string();
        assert!(
            err.contains("fix this too") && err.contains("without quotes"),
            "{err}"
        );
    }

    #[test]
    fn the_corrected_line_keeps_the_options_and_paths() {
        let command = words(&["gzip -c {} > {}.gz"]);
        let args = words(&[
            "fanout",
            "-e",
            "csv",
            "raw dir/",
            "--",
            "gzip -c {} > {}.gz",
        ]);
        let err = refused(&command, false, false, &args).unwrap().to_string();
        assert!(
            err.ends_with("fanout -s -e csv 'raw dir/' -- 'gzip -c {} > {}.gz'"),
            "{err}"
        );
        let args = words(&["fanout", "--", "gzip -c {} > {}.gz"]);
        let err = refused(&command, false, false, &args).unwrap().to_string();
        assert!(err.ends_with("fanout -s -- 'gzip -c {} > {}.gz'"), "{err}");
    }

    #[test]
    fn programs_and_plain_words_pass() {
        assert!(refused(&words(&["gzip", "-c", "{}"]), false, false, &[]).is_none());
        assert!(refused(&words(&["/opt/my tools/run", "{}"]), true, false, &[]).is_none());
        assert!(refused(&words(&["{}"]), false, false, &[]).is_none());
    }
}
