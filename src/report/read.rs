//! Reads a `--summary` journal back: its file records (the types of `record.rs`), its final
//! record and the Slurm workers' headers. It decides whether a file is a fanout journal at all,
//! and whether it was cut short; it neither writes nor prints.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::record::{BatchLine, FileInBatch, JobRecord, NEWEST_FORMAT_VERSION};

/// A journal as read.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub files: Vec<JobRecord>,
    /// The final record, if the run wrote it.
    pub summary: Option<Map<String, Value>>,
    /// What ran, where and when: the `run` line (journals before it have none), or a Slurm
    /// task's `worker` header.
    pub run: Option<Map<String, Value>>,
    /// Lines that are not records (a line cut in the middle by a crash, or not fanout's).
    pub unreadable: u64,
    /// The last line stops without its newline: the writer was stopped while writing it.
    pub cut_short: bool,
    /// The journal's permission bits and group, as its descriptor says: the page, which
    /// holds its paths and stderr lines, gets no more than these.
    pub mode: u32,
    pub gid: u32,
}

impl Journal {
    /// The run wrote its final record: the journal is whole.
    pub(crate) fn complete(&self) -> bool {
        self.summary.is_some()
    }
}

/// One journal line, by its `type`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Run(Map<String, Value>),
    File(Box<FileLine>),
    Batch(Box<BatchLine>),
    Summary(Map<String, Value>),
    Worker(Map<String, Value>),
    SlurmArray(Map<String, Value>),
}

/// A `file` line: a whole record, or the short line of a file in a batch (version 2).
#[derive(Deserialize)]
#[serde(untagged)]
enum FileLine {
    Whole(Box<JobRecord>),
    InBatch(Box<FileInBatch>),
}

/// Reads the journal at `path`. A file whose first line is not a fanout record is refused.
pub(crate) fn read(path: &Path) -> Result<Journal> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let cannot = || format!("cannot read {}", path.display());
    let mut file = std::fs::File::open(path).with_context(cannot)?;
    let meta = file.metadata().with_context(cannot)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(cannot)?;
    let mut journal =
        parse(&bytes).with_context(|| format!("{} is not a fanout journal", path.display()))?;
    journal.mode = meta.mode() & 0o777;
    journal.gid = meta.gid();
    Ok(journal)
}

/// Parses the bytes of a journal.
pub(crate) fn parse(bytes: &[u8]) -> Result<Journal> {
    let mut journal = Journal::default();
    let mut seen_record = false;
    // The last `batch` line of each number: the short lines of its files refer to it.
    let mut batches: std::collections::HashMap<u64, BatchLine> = Default::default();
    let ends_whole = bytes.last().is_none_or(|b| *b == b'\n');
    let mut lines = bytes.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let last = lines.peek().is_none();
        let parsed = serde_json::from_slice::<Line>(line);
        let Ok(parsed) = parsed else {
            if !seen_record {
                bail!("its first line is not a fanout record (a `--summary` journal of fanout)");
            }
            if last && !ends_whole {
                journal.cut_short = true;
            } else {
                journal.unreadable += 1;
            }
            continue;
        };
        seen_record = true;
        let version = match &parsed {
            Line::File(f) => match &**f {
                FileLine::Whole(r) => u64::from(r.version),
                FileLine::InBatch(f) => u64::from(f.version),
            },
            Line::Batch(b) => u64::from(b.version),
            Line::Run(m) | Line::Summary(m) | Line::Worker(m) | Line::SlurmArray(m) => {
                m.get("v").and_then(Value::as_u64).unwrap_or(0)
            }
        };
        if version > u64::from(NEWEST_FORMAT_VERSION) {
            bail!(
                "it is of format version {version}, written by a newer fanout; this one reads versions up to {NEWEST_FORMAT_VERSION}"
            );
        }
        match parsed {
            Line::File(f) => match *f {
                FileLine::Whole(r) => journal.files.push(*r),
                FileLine::InBatch(f) => match batches.get(&f.batch) {
                    Some(b) => journal.files.push(b.record(*f)),
                    // A short line without its batch's line is not a record.
                    None => journal.unreadable += 1,
                },
            },
            Line::Batch(b) => {
                batches.insert(b.batch, *b);
            }
            Line::Summary(m) => journal.summary = Some(m),
            Line::Run(m) => journal.run = Some(m),
            Line::Worker(m) => {
                journal.run.get_or_insert(m);
            }
            Line::SlurmArray(_) => {}
        }
    }
    if !seen_record {
        bail!("it holds no record");
    }
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    const FILE: &str = r#"{"type":"file","v":1,"job":1,"path":"a","status":"ok","exit_code":0,"signal":null,"attempts":1,"duration_ms":5,"peak_rss_bytes":null,"stdout_bytes":0,"stderr_bytes":0,"stderr_tail":null,"command":["true"],"reason":null,"file_size":1,"file_mtime_ns":1,"started_ms":3,"slot":1,"weight_bytes":1,"mem_reserved_bytes":1}"#;

    #[test]
    fn a_whole_journal() {
        let text = format!("{FILE}\n{{\"type\":\"summary\",\"v\":1,\"total\":1}}\n");
        let j = parse(text.as_bytes()).unwrap();
        assert_eq!(j.files.len(), 1);
        assert_eq!(j.files[0].slot, Some(1));
        assert!(j.complete() && !j.cut_short);
        assert_eq!(j.unreadable, 0);
    }

    #[test]
    fn the_run_line_is_kept_and_journals_without_it_are_read() {
        let run = r#"{"type":"run","v":1,"argv":["fanout","--","true"],"started_unix_ms":1,"host":"h","cwd":"/","fanout_version":"0.1.0","executor":"local","pid":1}"#;
        let j = parse(format!("{run}\n{FILE}\n").as_bytes()).unwrap();
        assert_eq!(j.run.unwrap()["host"], "h");
        assert_eq!(j.files.len(), 1);
        let old = parse(format!("{FILE}\n").as_bytes()).unwrap();
        assert!(old.run.is_none());
    }

    /// The records of a batch of four as the journal writes them (format version 2: a batch
    /// line, then a short line per file) read back whole: each file's own fields and its
    /// batch's. A record changed alone (its output lost) starts a batch line of its own, and
    /// the files after it go back to the batch's facts, in a line that says them again.
    #[test]
    fn a_batch_s_short_lines_read_back_as_whole_records() {
        use crate::record::Status;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut journal = crate::summary::JournalWriter::create(&path).unwrap();
        let ran = std::sync::Arc::new(vec![
            "wc".into(),
            "-c".into(),
            "a".into(),
            "b\u{fffd}".into(),
        ]);
        let mut records = Vec::new();
        for (job, name) in [(1, &b"a"[..]), (2, b"b\xff"), (3, b"c"), (4, b"d")] {
            let name = std::ffi::OsStr::from_bytes(name);
            let mut r = JobRecord::new(job, Path::new(name), Status::Failed);
            r.exit_code = Some(3);
            r.attempts = 1;
            r.duration_ms = Some(12);
            r.stdout_bytes = Some(40);
            r.stderr_tail = Some("d: bad".into());
            r.batch = Some(7);
            r.batch_size = Some(4);
            r.not_attributed(4);
            r.slot = Some(2);
            r.weight_bytes = Some(job * 10);
            r.file_size = Some(job);
            r.file_mtime_ns = Some(1_000 + job as i64);
            r.batch_argv = Some(std::sync::Arc::clone(&ran));
            records.push(r);
        }
        records[1].reason = Some("its output could not be written".into());
        let mut alone = JobRecord::new(5, Path::new("e"), Status::Ok);
        alone.command = vec!["wc".into(), "e".into()];
        for r in records.iter().chain([&alone]) {
            journal.record(r).unwrap();
        }
        journal.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let kinds: Vec<(String, u64)> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap();
                (
                    v["type"].as_str().unwrap().to_string(),
                    v["v"].as_u64().unwrap(),
                )
            })
            .collect();
        let want = [
            ("batch", 2),
            ("file", 2),
            ("batch", 2),
            ("file", 2),
            ("batch", 2),
            ("file", 2),
            ("file", 2),
            ("file", 1),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(k, v)| ((*k).into(), *v)).collect();
        assert_eq!(kinds, want);
        let back = parse(&bytes).unwrap();
        assert_eq!(back.files.len(), 5);
        assert_eq!(back.unreadable, 0);
        for (r, b) in records.iter().zip(&back.files) {
            let mut expected = serde_json::to_value(r).unwrap();
            // The command that ran is the batch line's, once: not copied into each record.
            expected["command"] = serde_json::json!([]);
            expected["v"] = 2.into();
            assert_eq!(serde_json::to_value(b).unwrap(), expected);
            assert_eq!(b.path_bytes(), r.path_bytes());
        }
        assert_eq!(back.files[4].command, ["wc", "e"]);
        // A short line without its batch line is not a record.
        let orphan = r#"{"type":"file","v":2,"job":9,"path":"z","status":"ok","batch":99,"weight_bytes":1,"file_size":1,"file_mtime_ns":1}"#;
        let j = parse(format!("{FILE}\n{orphan}\n").as_bytes()).unwrap();
        assert_eq!((j.files.len(), j.unreadable), (1, 1));
    }

    #[test]
    fn a_journal_cut_short_by_a_crash() {
        let text = format!("{FILE}\n{}", &FILE[..40]);
        let j = parse(text.as_bytes()).unwrap();
        assert_eq!(j.files.len(), 1);
        assert!(!j.complete() && j.cut_short);
    }

    #[test]
    fn records_from_before_the_version_field_are_read() {
        let old = FILE.replace(r#""v":1,"#, "");
        let j = parse(old.as_bytes()).unwrap();
        assert_eq!(j.files[0].version, 0);
        assert!(!j.complete());
    }

    #[test]
    fn what_is_not_a_journal_is_refused() {
        for bad in [
            "",
            "\n\n",
            "hello\n",
            "{\"a\":1}\n",
            "{\"type\":\"movie\"}\n",
            "PAR1\u{0}\u{0}",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let newer = FILE.replace(r#""v":1"#, r#""v":7"#);
        let err = parse(newer.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("newer fanout"), "{err}");
    }
}
