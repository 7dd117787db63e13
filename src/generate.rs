//! `--generate`: shell completion scripts and the man page, both made from the clap definition
//! in `cli.rs`, so they always name the options this binary has.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, Entry, Generate};
use crate::error::ExitStatus;

/// The text `--generate WHAT` prints.
pub(crate) fn render(what: Generate) -> anyhow::Result<Vec<u8>> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let shell = match what {
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::Man => {
            man(cmd, &mut out).context("cannot render the man page")?;
            return Ok(out);
        }
    };
    // `fanout report` is an entry of its own (`cli::Entry`), not a subcommand of a run: the
    // completions get it as one, so that `fanout re<TAB>` offers it and `fanout report <TAB>`
    // offers the report's options and files.
    let report = report_command();
    if shell == Shell::Zsh {
        return Ok(zsh(cmd, report));
    }
    cmd = cmd.subcommand(report).disable_help_subcommand(true);
    // Rendered into memory first: clap_complete panics when its writer fails, and standard
    // output may be a closed pipe.
    clap_complete::generate(shell, &mut cmd, "fanout", &mut out);
    if shell == Shell::Bash {
        return Ok(bash_paths_too(&out));
    }
    Ok(out)
}

/// clap's bash script offers only names at the first word, where `report` would now hide
/// every path that begins like it (`fanout r<TAB>` for `raw/`): a wrapper adds the paths.
fn bash_paths_too(script: &[u8]) -> Vec<u8> {
    let script = String::from_utf8_lossy(script)
        .replace("complete -F _fanout ", "complete -F _fanout_first_word ");
    format!(
        "{script}
# The first word is `report` or a path (clap's _fanout offers only the former there).
_fanout_first_word() {{
    _fanout \"$@\"
    local ret=$?
    if [[ ${{COMP_CWORD}} -eq 1 && ${{2}} != -* ]]; then
        local IFS=$'\\n'
        COMPREPLY+=( $(compgen -f -- \"${{2}}\") )
        compopt -o filenames 2>/dev/null
    fi
    return $ret
}}
"
    )
    .into_bytes()
}

/// `fanout report` as clap defines it.
fn report_command() -> clap::Command {
    Entry::command()
        .find_subcommand("report")
        .cloned()
        .expect("cli::Entry has `report`")
}

/// The end of a zsh script of clap_complete: it calls or registers the function.
const ZSH_TAIL: &str = "\nif [ \"$funcstack[1]\" = ";

/// The zsh completion. zsh's generator would expect a subcommand after the run's two
/// positional arguments (PATH..., COMMAND), so the run and the report are generated as two
/// functions, `_fanout_run` and `_fanout_report`, and `_fanout` picks one by the first word.
fn zsh(run: clap::Command, report: clap::Command) -> Vec<u8> {
    let script = |mut cmd: clap::Command, name: &str| {
        let mut out = Vec::new();
        clap_complete::generate(Shell::Zsh, &mut cmd, name, &mut out);
        String::from_utf8(out).expect("clap_complete writes UTF-8")
    };
    let run = script(run, "fanout");
    let report = script(report.name("fanout_report"), "fanout_report");
    let (run, tail) = run.split_at(run.find(ZSH_TAIL).unwrap_or(run.len()));
    let report = &report[..report.find(ZSH_TAIL).unwrap_or(report.len())];
    let report = report.split_once('\n').map_or("", |(_, rest)| rest);
    let run = run.replacen("\n_fanout() {\n", "\n_fanout_run() {\n", 1);
    format!(
        "{run}{report}
# `fanout report JOURNAL` (no `--`) is the page of a run, with options of its own; any other
# command line is a run, whose first word may also be `report`.
_fanout() {{
    if (( CURRENT > 2 )) && [[ ${{words[2]}} == report ]] && (( ${{words[(I)--]}} == 0 )); then
        shift words
        (( CURRENT-- ))
        _fanout_report \"$@\"
        return
    fi
    if (( CURRENT == 2 )) && [[ $PREFIX != -* ]]; then
        local -a entries=('report:write an HTML page of a run from its --summary journal')
        _describe -t commands 'fanout report' entries
    fi
    _fanout_run \"$@\"
}}
{tail}"
    )
    .into_bytes()
}

/// The man page: clap's sections, then the long help's own sections (placeholders, examples,
/// exit status, Slurm) under their names, laid out as in `--help`.
fn man(cmd: clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    use clap_mangen::roff::{roman, Roff};
    let man = clap_mangen::Man::new(cmd);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut roff = Roff::new();
    for (title, body) in help_sections(crate::cli::AFTER_LONG_HELP) {
        roff.control("SH", [title.as_str()]);
        roff.control("nf", []);
        for line in body {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "The full reference, the Slurm executor and the journal format: the docs/ directory of \
         the fanout sources (https://github.com/fanout-rs/fanout).",
    )]);
    roff.to_writer(out)?;
    man.render_version_section(out)
}

/// The long help's sections: a line that starts with a capitalised heading and a colon
/// (`EXAMPLES:`, `EXIT STATUS: 0 …`) opens one; text after the colon is its first line.
fn help_sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let heading = line.split_once(':').filter(|(head, _)| {
            let name = head.split(" (").next().unwrap_or(head);
            !name.is_empty()
                && !line.starts_with(' ')
                && name.chars().all(|c| c.is_ascii_uppercase() || c == ' ')
        });
        match heading {
            Some((head, rest)) => {
                let name = head.split(" (").next().unwrap_or(head).to_string();
                let first = rest.trim();
                let body = if first.is_empty() {
                    Vec::new()
                } else {
                    vec![first.to_string()]
                };
                sections.push((name, body));
            }
            None => match sections.last_mut() {
                Some((_, body)) => body.push(line.to_string()),
                None => sections.push(("NOTES".into(), vec![line.to_string()])),
            },
        }
    }
    for (_, body) in &mut sections {
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
    }
    sections
}

/// Prints `--generate WHAT` to standard output. A reader that goes away early (`| head`) ends
/// it quietly, as it ends a run.
pub(crate) fn print(what: Generate) -> anyhow::Result<ExitStatus> {
    let text = render(what)?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&text).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitStatus::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitStatus::ClosedStdout),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_help_sections_become_man_sections() {
        let names: Vec<String> = help_sections(crate::cli::AFTER_LONG_HELP)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "PLACEHOLDERS",
                "EXAMPLES",
                "EXIT STATUS",
                "A PAGE OF A RUN",
                "ON A SLURM CLUSTER"
            ]
        );
    }

    #[test]
    fn every_kind_names_the_options() {
        for (what, needle) in [
            (Generate::CompleteBash, "--keep-order"),
            (Generate::CompleteZsh, "--keep-order"),
            (Generate::CompleteFish, "keep-order"),
            (Generate::Man, "keep\\-order"),
        ] {
            let text = String::from_utf8(render(what).unwrap()).unwrap();
            assert!(text.contains(needle), "{what:?} lacks {needle}:\n{text}");
        }
    }
}
