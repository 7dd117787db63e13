//! `--dry-run`: discover and expand exactly as a real run would, print each command as one
//! shell-quoted line on stdout, and run or write nothing.

use std::io::{self, BufWriter, Write};
use std::sync::atomic::AtomicU64;

use anyhow::Result;
use crossbeam_channel::bounded;

use crate::cancel::Cancel;
use crate::config::Config;
use crate::error::{print_notice, ExitStatus};
use crate::inplace::InPlace;
use crate::resume::Resume;
use crate::template::{display_argv, JobValues};
use crate::walk::{self, Notice};
use std::os::unix::ffi::OsStrExt;

pub(crate) fn run(config: &Config) -> Result<ExitStatus> {
    let cancel = Cancel::default();
    let found = AtomicU64::new(0);
    let (input_tx, input_rx) = bounded(256);
    let (notice_tx, notice_rx) = bounded(64);
    let resume = config.resume.as_deref().map(Resume::load).transpose()?;
    let mut skipped = 0u64;
    let in_place = config.in_place.clone().map(InPlace::new);
    let mut stdout = BufWriter::new(io::stdout().lock());
    let (listed, report, problems) =
        std::thread::scope(|s| -> Result<(u64, walk::WalkReport, u64)> {
            let walker = s.spawn(|| {
                let r = walk::scan(&config.walk, &input_tx, &notice_tx, &cancel, &found);
                drop(input_tx);
                drop(notice_tx);
                r
            });
            let (mut listed, mut problems) = (0u64, 0u64);
            let mut closed = false;
            for input in &input_rx {
                while let Ok(Notice::Error(msg) | Notice::Info(msg)) = notice_rx.try_recv() {
                    print_notice(&msg);
                }
                if closed {
                    continue;
                }
                if let Some(problem) = &input.problem {
                    problems += 1;
                    print_notice(&format!("would fail: {}: {problem}", input.path.display()));
                    continue;
                }
                if resume
                    .as_ref()
                    .is_some_and(|r| r.skip(&input.path).is_some())
                {
                    skipped += 1;
                    continue;
                }
                // In place: show `{out}` and what would be replaced; nothing is created.
                let target = in_place
                    .as_ref()
                    .map(|_| InPlace::target(&input.path).unwrap_or(input.path.clone()));
                let out = in_place
                    .as_ref()
                    .zip(target.as_ref())
                    .map(|(ip, t)| ip.out_path(t, input.job));
                let argv = config.template.expand(&JobValues {
                    path: &input.path,
                    job: input.job,
                    slot: ((input.job - 1) % config.jobs as u64) as usize + 1,
                    threads: config.threads,
                    out: out.as_deref(),
                });
                let mut line = display_argv(&argv);
                if let Some(target) = &target {
                    line.extend_from_slice(b"  # then replaces ");
                    line.extend_from_slice(&crate::template::shell_quote(
                        target.as_os_str().as_bytes(),
                    ));
                }
                line.push(b'\n');
                if stdout.write_all(&line).is_err() {
                    closed = true;
                }
                listed += 1;
            }
            for notice in notice_rx.try_iter() {
                let (Notice::Error(msg) | Notice::Info(msg)) = notice;
                print_notice(&msg);
            }
            let report = walker.join().expect("walker thread")?;
            Ok((listed, report, problems))
        })?;
    if stdout.flush().is_err() {
        return Ok(ExitStatus::ClosedStdout);
    }
    if !config.quiet {
        if skipped > 0 {
            print_notice(&format!(
                "{skipped} files skipped: ok in the resumed run and unchanged since"
            ));
        }
        if listed + problems + skipped == 0 {
            print_notice(&crate::exec::nothing_matched(report.hint.as_deref()));
        }
        print_notice(&plan(config, listed, problems, report.errors));
    }
    Ok(ExitStatus::Success)
}

fn plan(config: &Config, listed: u64, problems: u64, walk_errors: u64) -> String {
    let w = &config.walk;
    let mut filters = Vec::new();
    if !w.extensions.is_empty() {
        filters.push(format!("-e {}", w.extensions.join(",")));
    }
    for g in &w.globs {
        filters.push(format!("-g {g}"));
    }
    filters.push(
        if w.hidden {
            "hidden files included"
        } else {
            "hidden files skipped"
        }
        .into(),
    );
    filters.push(
        if w.no_ignore {
            "ignore files not read"
        } else {
            ".gitignore/.ignore honoured"
        }
        .into(),
    );
    if let Some(d) = w.max_depth {
        filters.push(format!("max depth {d}"));
    }
    let mut text = format!(
        "dry run: {listed} jobs, at most {} at once; {}",
        config.jobs,
        filters.join(", ")
    );
    if problems > 0 {
        text.push_str(&format!("; {problems} inputs would fail"));
    }
    if walk_errors > 0 {
        text.push_str(&format!("; {walk_errors} walk errors"));
    }
    text.push_str("; nothing was run");
    text
}
