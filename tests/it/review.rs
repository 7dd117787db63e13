//! Review of the run core: hangs, lost records and exit codes found by trying the binary hard.

use crate::harness::*;

/// With `-k`, a record that needs no process (a missing path read from stdin) waiting in
/// triage's batch while more than the backlog's limit of later jobs finish must not hang the
/// run: the walk blocked on a full job queue has to hand its batch over first.
#[test]
fn keep_order_with_an_early_record_first_and_a_full_backlog_does_not_hang() {
    let env = TestEnv::new(&["d"], &[]);
    let mut list = String::from("missing-first\n");
    for i in 0..4400 {
        env.write(format!("d/f{i}"), "");
        list.push_str(&format!("d/f{i}\n"));
    }
    let out = env.run_stdin(
        &["-k", "-j", "4", "--summary", "s.jsonl", "-", "--", "true"],
        list.as_bytes(),
    );
    out.assert_code(1).assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    assert_eq!(file_records(&recs).len(), 4401);
    let last = final_record(&recs);
    assert_eq!(last["ok"], 4400, "{last}");
    assert_eq!(last["failed"], 1, "{last}");
}

/// The dry run exits 0 when inputs would fail (named on stderr), as the README promises: it
/// runs nothing, so nothing failed.
#[test]
fn dry_run_with_inputs_that_would_fail_exits_0() {
    let env = TestEnv::new(&[], &[("a.txt", "a\n")]);
    let out = env.run_stdin(&["-n", "-", "--", "echo"], b"a.txt\nmissing.txt\n");
    out.assert_code(0)
        .assert_stdout_lines(&["echo a.txt"])
        .assert_stderr_contains("would fail: missing.txt");
}

/// A dry run without `--resume` never says files were skipped as "ok in the resumed run": the
/// other name of a hard-linked file is kept, not resumed.
#[test]
fn dry_run_does_not_call_other_names_of_a_file_resumed() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", "a\n")]);
    std::fs::hard_link(env.path("d/a.txt"), env.path("d/b.txt")).unwrap();
    let out = env.run(&["-n", "-i", "d", "--", "cp", "{}", "{out}"]);
    out.assert_code(0).assert_stderr_lacks("resumed run");
}

/// With `-i`, a read-only file is skipped by a real run (without `--force`): the dry run must
/// not list it as a job.
#[test]
fn dry_run_in_place_does_not_list_read_only_files() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new(&["d"], &[("d/a.txt", "a\n"), ("d/ro.txt", "r\n")]);
    std::fs::set_permissions(env.path("d/ro.txt"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let dry = env.run(&["-n", "-i", "d", "--", "cp", "{}", "{out}"]);
    dry.assert_code(0);
    let listed = dry.stdout_str();
    assert!(listed.contains("d/a.txt"), "{}", dry.dump());
    assert!(!listed.contains("ro.txt"), "{}", dry.dump());
    let real = env.run(&["-i", "--summary", "s.jsonl", "d", "--", "cp", "{}", "{out}"]);
    real.assert_code(0);
    assert_eq!(
        record_for(&read_summary(env.path("s.jsonl")), "d/ro.txt")["status"],
        "skipped"
    );
}

/// Unmounts a test's tmpfs however the test ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a small tmpfs at `dir`, or says why the test is skipped.
fn small_tmpfs(dir: &std::path::Path, test: &str) -> Option<Mount> {
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Mount(dir.to_path_buf())),
        _ => {
            eprintln!("SKIPPED {test}: cannot mount a tmpfs (needs root)");
            None
        }
    }
}

/// Job output sits in fanout's stdout buffer until the buffer fills: when writing the next
/// job's output flushes it into a full disk, the jobs whose bytes were in the buffer lost
/// output too. No job whose output is not all in the file may say ok.
#[test]
fn output_lost_in_the_stdout_buffer_fails_the_jobs_it_belonged_to() {
    let env = TestEnv::new(&["d"], &[("d/g1", ""), ("d/g2", ""), ("d/g3", "")]);
    let disk = env.mkdir("disk");
    let Some(_umount) = small_tmpfs(&disk, "output_lost_in_the_stdout_buffer") else {
        return;
    };
    // About 4 KiB stay free.
    std::fs::write(disk.join("filler"), vec![0u8; 60 * 1024]).unwrap();
    let marks = env.out_dir("marks");
    let script = env.script(
        "out.sh",
        &format!(
            r#"#!/bin/sh
case "$1" in
*g1) while [ ! -e {marks}/g2 ] || [ ! -e {marks}/g3 ]; do sleep 0.05; done; sleep 0.3
     head -c 40000 /dev/zero | tr '\0' a;;
*g2) head -c 40000 /dev/zero | tr '\0' b; : > {marks}/g2;;
*g3) head -c 100000 /dev/zero | tr '\0' c; : > {marks}/g3;;
esac
"#
        ),
    );
    let stdout = std::fs::File::create(disk.join("out.txt")).unwrap();
    let mut cmd = env.command(&["-k", "-j", "3", "--summary", "s.jsonl", "d", "--"]);
    cmd.arg(&script)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(disk.join("out.txt")).unwrap();
    let recs = read_summary(env.path("s.jsonl"));
    for (name, letter) in [("d/g1", b'a'), ("d/g2", b'b'), ("d/g3", b'c')] {
        let rec = record_for(&recs, name);
        let kept = written.iter().filter(|&&c| c == letter).count() as i64;
        if rec["status"] == "ok" {
            assert_eq!(kept, int(&rec, "stdout_bytes"), "{name} says ok: {rec}");
        }
    }
}

/// Reads a journal that may end in a cut line (the run was killed).
fn read_lenient(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// With `-k`, a job that finished while an earlier one still runs has its record in the
/// journal at once when it has no output to hold back: after a SIGKILL, files already replaced
/// in place have their records, so `--resume` does not rewrite them a second time.
#[test]
fn keep_order_journals_finished_jobs_without_output_before_a_sigkill() {
    let env = TestEnv::new(
        &["d"],
        &[
            ("d/f1", "v\n"),
            ("d/f2", "v\n"),
            ("d/f3", "v\n"),
            ("d/f4", "v\n"),
        ],
    );
    let marks = env.out_dir("marks");
    let script = env.script(
        "job.sh",
        &format!(
            "#!/bin/sh\ncase \"$1\" in *f1) i=0; while [ ! -e {marks}/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done;; esac\n{{ cat \"$1\"; echo x; }} > \"$2\"\n"
        ),
    );
    let script = script.to_str().unwrap().to_string();
    let mut run = env.spawn(&[
        "-k",
        "-i",
        "-j",
        "4",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        &script,
        "{}",
        "{out}",
    ]);
    let journaled = wait_until(std::time::Duration::from_secs(10), || {
        read_lenient(&env.path("s.jsonl"))
            .iter()
            .filter(|r| r["status"] == "ok")
            .count()
            == 3
    });
    run.signal("KILL");
    let killed = run.wait();
    assert_eq!(killed.signal, Some(9), "{}", killed.dump());
    std::fs::write(env.path("marks/go"), "").unwrap();
    let recs = read_lenient(&env.path("s.jsonl"));
    assert!(
        journaled,
        "the three finished jobs have no records: {recs:#?}"
    );
    for f in ["d/f2", "d/f3", "d/f4"] {
        assert_eq!(std::fs::read_to_string(env.path(f)).unwrap(), "v\nx\n");
        assert!(
            recs.iter()
                .any(|r| r["path"] == f && r["action"] == "replaced"),
            "{f}: {recs:#?}"
        );
    }
}

/// With `-k`, a record that needs no process (a missing path) must not keep the output of the
/// jobs after it waiting while the input stream pauses (a producer that is still working).
#[test]
fn keep_order_output_is_not_held_by_an_early_record_while_stdin_pauses() {
    use std::io::{BufRead, Write};
    let env = TestEnv::new(&[], &[("a.txt", "a\n")]);
    let mut child = env
        .command(&["-k", "-", "--", "echo"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"missing.txt\na.txt\n").unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(10));
    drop(stdin);
    let _ = child.wait();
    assert_eq!(line.as_deref(), Ok("a.txt\n"));
}
