//! The run's own files: the `--summary` journal and the `--resume` journal are never inputs,
//! a journal is read back whatever cut it, `--resume J --summary J` never loses what J held,
//! and `--summary` writes to special files (/dev/null, pipes) as to regular ones.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Paths with a given status in a journal.
fn paths_with(records: &[Value], status: &str) -> Vec<String> {
    let mut v: Vec<String> = file_records(records)
        .iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// A journal that may end in a partial line (a killed run): whole lines only.
fn read_lenient(path: impl AsRef<std::path::Path>) -> Vec<Value> {
    let bytes = fs::read(path).unwrap_or_default();
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

#[test]
fn resume_accepts_a_journal_cut_inside_a_multibyte_character() {
    let env = TestEnv::new(&[], &[("d/é1.txt", ""), ("d/é2.txt", "")]);
    env.run(&["-j", "1", "--summary", "s.jsonl", "d", "--", "true"])
        .assert_ok();
    // Cut the journal in the middle of the `é` of the second record's path.
    let bytes = fs::read(env.path("s.jsonl")).unwrap();
    let first_end = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let second = &bytes[first_end..];
    let e_acute = second.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    let cut = first_end + e_acute + 1;
    fs::write(env.path("cut.jsonl"), &bytes[..cut]).unwrap();
    let out = env.run(&[
        "-j",
        "1",
        "--resume",
        "cut.jsonl",
        "--summary",
        "s2.jsonl",
        "d",
        "--",
        "true",
    ]);
    out.assert_ok().assert_no_panic();
    let recs = read_summary(env.path("s2.jsonl"));
    assert_eq!(paths_with(&recs, "skipped"), ["d/é1.txt"], "{recs:#?}");
    assert_eq!(paths_with(&recs, "ok"), ["d/é2.txt"], "{recs:#?}");
    // A bad line that is not the last is still an error.
    let mut bad = b"{\"type\":\"file\",\"pa\xc3\n".to_vec();
    bad.extend_from_slice(&bytes);
    fs::write(env.path("bad.jsonl"), &bad).unwrap();
    env.run(&["--resume", "bad.jsonl", "d", "--", "true"])
        .assert_code(2)
        .assert_stderr_contains("line 1");
}
