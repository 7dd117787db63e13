//! Trust boundaries (#21): no other user can steer what fanout reads or writes. Another user's
//! leftovers beside a journal, links that another user planted, `{out}` in a directory others
//! can write, and the metadata (ACLs, extended attributes) a commit must keep.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::harness::*;
use crate::inplace_hostile::{as_nobody, chmod, is_root};

/// Item 5: `nobody` plants a replacement of root's journal in a sticky shared directory, with
/// a forged `ok` record for a file that failed. `--resume` must not skip that file, must say
/// that it ignored the planted file, and the forged record must not enter the journal.
#[test]
fn resume_ignores_a_journal_leftover_another_user_planted() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the leftover is planted by nobody)");
        return;
    }
    let env = TestEnv::new(&["shared"], &[("in/a.txt", "a\n"), ("in/b.txt", "b\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("in"), 0o755);
    chmod(&env.path("shared"), 0o1777);
    // First run: b fails.
    let job = [
        "sh",
        "-c",
        "test ! -e fail-$(basename \"$1\") && touch ran-$(basename \"$1\")",
        "_",
        "{}",
    ];
    env.write("fail-b.txt", "");
    let first = [
        &["--summary", "shared/run.jsonl", "-k", "in", "--"][..],
        &job[..],
    ]
    .concat();
    env.run(&first).assert_code(1);
    assert!(!env.exists("ran-b.txt"));
    fs::remove_file(env.path("fail-b.txt")).unwrap();
    // nobody forges an `ok` record for b, with b's size and time, as a leftover of root's run.
    let b = fs::metadata(env.path("in/b.txt")).unwrap();
    let forged = format!(
        "{{\"type\":\"file\",\"v\":1,\"job\":2,\"path\":\"in/b.txt\",\"status\":\"ok\",\"file_size\":{},\"file_mtime_ns\":{}}}\n",
        b.size(),
        b.mtime() * 1_000_000_000 + b.mtime_nsec()
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let plant = format!(
        "printf '%s' '{forged}' > '{}/.run.jsonl.fanout-journal-AbCdEfGh'",
        env.path("shared").display()
    );
    let Some(mut attacker) = as_nobody(&plant) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    assert!(attacker.status().unwrap().success());
    let planted = env.path("shared/.run.jsonl.fanout-journal-AbCdEfGh");
    assert_eq!(fs::metadata(&planted).unwrap().uid(), 65534);
    let again = [
        &[
            "--resume",
            "shared/run.jsonl",
            "--summary",
            "shared/run.jsonl",
            "-k",
            "in",
            "--",
        ][..],
        &job[..],
    ]
    .concat();
    let out = env.run(&again);
    out.assert_ok()
        .assert_stderr_contains("--resume: ignored")
        .assert_stderr_contains(".run.jsonl.fanout-journal-AbCdEfGh (owned by another user)");
    assert!(
        env.exists("ran-b.txt"),
        "b was skipped on a forged record\n{}",
        out.dump()
    );
    let records = file_records(&read_summary(env.path("shared/run.jsonl")));
    let b = record_for(&records, "in/b.txt");
    assert_eq!(b["status"], "ok", "{b}");
    assert!(
        b["duration_ms"].is_number(),
        "b's record is not its own run's: {b}"
    );
}
