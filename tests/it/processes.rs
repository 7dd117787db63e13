//! What jobs leave behind and what they can reach: processes reparented to fanout are reaped
//! (#13, zombies), and a job cannot stop on the terminal fanout runs in (#13, SIGTTIN).

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// (pid, state, ppid, session) of every process, from /proc.
fn processes() -> Vec<(u32, char, u32, u32)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 1..].split_ascii_whitespace().collect();
        let (Some(state), Some(Ok(ppid)), Some(Ok(sid))) = (
            f.first().and_then(|s| s.chars().next()),
            f.get(1).map(|s| s.parse()),
            f.get(3).map(|s| s.parse()),
        ) else {
            continue;
        };
        out.push((pid, state, ppid, sid));
    }
    out
}

fn zombie_children(parent: u32) -> usize {
    processes()
        .iter()
        .filter(|(_, state, ppid, _)| *ppid == parent && *state == 'Z')
        .count()
}

#[test]
fn orphans_that_left_the_job_group_are_reaped() {
    // The job starts 200 short processes in sessions of their own whose parents exit at once,
    // so each is reparented to fanout (the subreaper) outside the job's process group, then
    // runs on until the test releases it.
    let env = TestEnv::new(&[], &[("d/a", "")]);
    let job = "i=0; while [ $i -lt 200 ]; do (setsid sh -c 'exit 0' &); i=$((i+1)); done; \
               touch spawned; while [ ! -e release ]; do sleep 0.05; done";
    let mut run = env.spawn(&["d", "--", "sh", "-c", job]);
    let fanout = run.pid();
    assert!(
        wait_until(Duration::from_secs(20), || env.exists("spawned")),
        "the job never started its children"
    );
    let reaped = wait_until(Duration::from_secs(5), || zombie_children(fanout) == 0);
    let left = zombie_children(fanout);
    env.write("release", "");
    let out = run.wait();
    assert!(
        reaped,
        "{left} zombie children of fanout remain while it runs\n{}",
        out.dump()
    );
    out.assert_ok().assert_no_panic();
}

/// Kills every process of session `sid` (cleanup after a hang).
fn kill_session(sid: u32) {
    for (pid, _, _, s) in processes() {
        if s == sid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn a_job_reading_the_terminal_fails_instead_of_stopping() {
    // `script` gives fanout a controlling terminal, as in an interactive shell. A job that
    // reads it (an ssh or gpg prompt) must not stop forever on SIGTTIN: it has no terminal.
    for jobs in ["1", "2"] {
        let env = TestEnv::new(&[], &[("d/a", "")]);
        let line = format!("{FANOUT} -j {jobs} --summary s.jsonl d -- sh -c 'read x < /dev/tty'");
        let mut script = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(env.root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("util-linux script");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = script.try_wait().unwrap() {
                break Some(status);
            }
            if start.elapsed() > Duration::from_secs(15) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.is_none() {
            // The shell `script` started leads the session fanout and (before the fix) the
            // stopped job are in.
            let script_pid = script.id();
            for (pid, _, ppid, _) in processes() {
                if ppid == script_pid {
                    kill_session(pid);
                }
            }
            let _ = script.kill();
            let _ = script.wait();
            panic!("-j {jobs}: fanout still waits for a job stopped on the terminal after 15 s");
        }
        let recs = read_summary(env.path("s.jsonl"));
        assert_eq!(record_for(&recs, "d/a")["status"], "failed", "-j {jobs}");
        assert_eq!(status.unwrap().code(), Some(1), "-j {jobs}");
    }
}
