//! `fanout report RUN.jsonl [-o FILE]`: one self-contained HTML page of a run, made from its
//! `--summary` journal (local or Slurm). Reading the journal is `read.rs`, what the page shows
//! is `data.rs`, and the page itself (styles, script, no network) is `page.html`, into which
//! the data goes as one JSON block. It runs nothing and never changes the journal.

mod data;
mod read;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::error::{counted, print_notice, ExitStatus};

/// The page, split where the data goes.
const PAGE: &str = include_str!("page.html");
const SLOT: &str = "__FANOUT_DATA__";

/// Writes the page of the journal at `journal` to `output` (`-`: standard output), by default
/// beside the journal with the extension `.html`.
pub(crate) fn write(journal: &Path, output: Option<&Path>) -> Result<ExitStatus> {
    let run = read::read(journal)?;
    let title = journal.file_name().map_or_else(
        || journal.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let page = render(&data::build(&run, &title));
    let jobs = counted(run.files.len() as u64, "file");
    let incomplete = if run.complete() {
        ""
    } else {
        " (incomplete journal)"
    };
    match output {
        Some(p) if p == Path::new("-") => {
            let mut out = std::io::stdout().lock();
            match out.write_all(page.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitStatus::ClosedStdout)
                }
                Err(e) => return Err(e).context("cannot write the report to standard output"),
            }
        }
        _ => {
            let path = output.map_or_else(|| default_output(journal), Path::to_path_buf);
            if same_file(&path, journal) {
                bail!(
                    "-o {} names the journal itself: the page would replace it; name another file",
                    path.display()
                );
            }
            save(&path, page.as_bytes(), &run)
                .with_context(|| format!("cannot write the report {}", path.display()))?;
            print_notice(&format!(
                "report of {jobs}{incomplete} written to {}",
                path.display()
            ));
        }
    }
    Ok(ExitStatus::Success)
}

/// The page with `data` in it. Every `<` in the JSON (only ever inside its strings) is
/// written `\u003c`, so no path or stderr line can end the script block it sits in.
fn render(data: &serde_json::Value) -> String {
    let json = serde_json::to_string(data)
        .expect("the page's data is plain JSON")
        .replace('<', "\\u003c");
    let (head, tail) = PAGE
        .split_once(SLOT)
        .expect("the page has a place for data");
    let mut page = String::with_capacity(PAGE.len() + json.len());
    page.push_str(head);
    page.push_str(&json);
    page.push_str(tail);
    page
}

/// `RUN.jsonl` → `RUN.html` beside it (`RUN.html.html` when the journal is itself named
/// `.html`, so the journal is never overwritten).
fn default_output(journal: &Path) -> PathBuf {
    let page = journal.with_extension("html");
    if page == journal {
        let mut name = journal.as_os_str().to_os_string();
        name.push(".html");
        return PathBuf::from(name);
    }
    page
}

/// Whether `a` and `b` are one file (the same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, renamed over it.
/// The page holds what the journal holds (paths, stderr lines that may carry secrets), so it
/// gets no more permissions than `journal` has, less what the umask takes (the kernel applies
/// it when the file is made); where the page's group is not the journal's and cannot be made
/// so, it gets no group permissions.
fn save(path: &Path, bytes: &[u8], journal: &read::Journal) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = journal.mode & 0o666;
    let mut temp = tempfile::Builder::new()
        .prefix(".fanout-report-")
        .suffix(".html")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    let file = temp.as_file();
    let made = file.metadata()?;
    if made.mode() & 0o070 != 0 && made.gid() != journal.gid {
        let gid = rustix::fs::Gid::from_raw(journal.gid);
        if rustix::fs::fchown(file, None, Some(gid)).is_err() {
            file.set_permissions(std::fs::Permissions::from_mode(made.mode() & 0o707))?;
        } else {
            // A change of group may clear bits on some systems: set them again.
            file.set_permissions(std::fs::Permissions::from_mode(made.mode() & 0o777))?;
        }
    }
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_beside_the_journal() {
        assert_eq!(
            default_output(Path::new("d/run.jsonl")),
            Path::new("d/run.html")
        );
        assert_eq!(default_output(Path::new("run")), Path::new("run.html"));
        assert_eq!(
            default_output(Path::new("run.html")),
            Path::new("run.html.html")
        );
    }

    #[test]
    fn no_text_can_close_the_data_block() {
        let data = serde_json::json!({ "path": "</script><script>alert(1)</script><!--" });
        let page = render(&data);
        let block = page
            .split(r#"<script id="data" type="application/json">"#)
            .nth(1)
            .unwrap();
        let json = block.split("</script>").next().unwrap();
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, data);
    }
}
