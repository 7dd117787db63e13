//! `--generate`: shell completion scripts and the man page, both made from the clap definition
//! in `cli.rs`, so they always name the options this binary has.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, Generate};
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
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("cannot render the man page")?;
            return Ok(out);
        }
    };
    // Rendered into memory first: clap_complete panics when its writer fails, and standard
    // output may be a closed pipe.
    clap_complete::generate(shell, &mut cmd, "fanout", &mut out);
    Ok(out)
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
