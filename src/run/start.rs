//! The journal's first line, `"type": "run"`: what ran and when (the command line, start time,
//! host, working directory, fanout's version and executor), written when the journal is
//! created, so even a journal whose run was killed says what it was.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use base64::Engine;
use serde::Serialize;

use crate::config::Mode;

/// The `run` line.
#[derive(Debug, Serialize)]
pub(super) struct RunRecord {
    #[serde(rename = "type")]
    kind: &'static str,
    v: u32,
    /// fanout's command line, a string per word (lossy UTF-8).
    argv: Vec<String>,
    /// Every word's exact bytes in base64, when one of them is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    argv_b64: Option<Vec<String>>,
    /// When the run started, ms since the Unix epoch.
    started_unix_ms: u64,
    host: String,
    /// The working directory (lossy UTF-8); `null` when it cannot be read.
    cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd_b64: Option<String>,
    fanout_version: &'static str,
    executor: &'static str,
    pid: u32,
}

impl RunRecord {
    /// The record of this process, run in `mode`, started at `started_unix_ms`.
    pub(super) fn new(argv: &[std::ffi::OsString], mode: &Mode, started_unix_ms: u64) -> RunRecord {
        let words: Vec<(String, Option<String>)> = argv.iter().map(|a| text(a)).collect();
        let argv_b64 = words.iter().any(|(_, b)| b.is_some()).then(|| {
            argv.iter()
                .map(|a| base64::engine::general_purpose::STANDARD.encode(a.as_bytes()))
                .collect()
        });
        let (cwd, cwd_b64) = match std::env::current_dir() {
            Ok(d) => {
                let (t, b) = text(d.as_os_str());
                (Some(t), b)
            }
            Err(_) => (None, None),
        };
        RunRecord {
            kind: "run",
            v: crate::record::FORMAT_VERSION,
            argv: words.into_iter().map(|(t, _)| t).collect(),
            argv_b64,
            started_unix_ms,
            host: hostname(),
            cwd,
            cwd_b64,
            fanout_version: env!("CARGO_PKG_VERSION"),
            executor: match mode {
                Mode::DryRun(_) => "dry_run",
                Mode::Local => "local",
                Mode::Srun(_) => "srun",
                Mode::Slurm(_) => "slurm",
                Mode::Worker => "worker",
            },
            pid: std::process::id(),
        }
    }

    /// The record as one journal line (JSON and a newline), `type` first as on every line.
    pub(super) fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("a run record is plain data");
        line.push(b'\n');
        line
    }
}

/// Lossy UTF-8, and the exact bytes in base64 when they are not UTF-8.
fn text(s: &OsStr) -> (String, Option<String>) {
    match s.to_str() {
        Some(t) => (t.to_string(), None),
        None => (
            s.to_string_lossy().into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
        ),
    }
}

/// This machine's name; empty when it cannot be read.
fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

/// Now, in ms since the Unix epoch.
pub(super) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn words_that_are_not_utf8_keep_their_bytes() {
        let argv = vec![
            OsString::from("fanout"),
            OsString::from_vec(b"caf\xe9".to_vec()),
        ];
        let line: serde_json::Value =
            serde_json::from_slice(&RunRecord::new(&argv, &Mode::Local, 5).line()).unwrap();
        assert_eq!(line["type"], "run");
        assert_eq!(line["argv"][1], "caf\u{fffd}");
        let b64 = line["argv_b64"][1].as_str().unwrap();
        let back = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(back, b"caf\xe9");
        assert_eq!(line["executor"], "local");
        assert_eq!(line["started_unix_ms"], 5);

        let plain = RunRecord::new(&argv[..1], &Mode::Local, 5).line();
        assert!(plain.starts_with(br#"{"type":"run","v":1,"#));
        assert!(!String::from_utf8(plain).unwrap().contains("argv_b64"));
    }
}
