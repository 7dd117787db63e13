//! Under faults (issue 5): timeouts, retries, halting, signals, a closed stdout, huge or
//! stderr-first output, a full spool disk, SIGKILL then `--resume`, in-place bookkeeping.
//!
//! Jobs that must not outlive fanout run `sleep 300.<unique digits>` (fixtures/bin/
//! spawn-sleepers.sh or inline), so `pgrep -f` on the tag finds every survivor. A `Reaper`
//! kills survivors of a failed test by pid, so a failure never leaves 300 s sleeps behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::*;

// ---------------------------------------------------------------------------------------------
// helpers

/// A tree with one small file `d/NAME` per name (walk `d`; everything else stays outside).
fn files_env(names: &[&str]) -> TestEnv {
    let env = TestEnv::new(&["d"], &[]);
    for n in names {
        env.write(format!("d/{n}"), format!("content of {n}\n"));
    }
    env
}

/// A `sleep` argument no other process on the machine has: `300.<pid><n><nanos>`.
fn unique_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("300.{}{n:03}{nanos:09}", std::process::id())
}

/// Processes whose full command line matches the regex `pattern`, as `pid cmdline` lines.
fn pgrep(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .arg("-a")
        .arg("-f")
        .arg(pattern)
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Every process carrying the tag (the job scripts, the sleeps).
fn tagged(tag: &str) -> Vec<String> {
    pgrep(&tag.replace('.', "\\."))
}

/// The `sleep TAG` processes only.
fn sleepers(tag: &str) -> usize {
    pgrep(&format!("^sleep {}$", tag.replace('.', "\\."))).len()
}

/// After fanout has exited, nothing carrying the tag may be alive. A process killed by
/// SIGKILL needs a moment to disappear, hence the short poll (a real survivor lives 300 s).
#[track_caller]
fn assert_no_survivors(tag: &str, out: &Output) {
    let gone = wait_until(Duration::from_millis(300), || tagged(tag).is_empty());
    assert!(
        gone,
        "processes of fanout's jobs survived fanout:\n{}\n{}",
        tagged(tag).join("\n"),
        out.dump()
    );
}

/// Kills (by pid) whatever still carries the tag when a test ends, pass or fail.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for line in tagged(&self.0) {
            if let Some(pid) = line.split_whitespace().next() {
                let _ = Command::new("kill").arg("-KILL").arg(pid).status();
            }
        }
    }
}

/// Lines of a log file jobs append to (missing file: none).
fn log_lines(path: impl AsRef<Path>) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// How often each line occurs in a log.
fn log_counts(path: impl AsRef<Path>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in log_lines(path) {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

/// A journal that may be cut short (fanout killed): complete JSON lines only.
fn read_journal_lenient(path: impl AsRef<Path>) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Paths of the file records with this status.
fn paths_with(records: &[Value], status: &str) -> BTreeSet<String> {
    file_records(records)
        .iter()
        .filter(|r| r["status"] == status)
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn str_field<'a>(r: &'a Value, key: &str) -> &'a str {
    r[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {r}"))
}

/// Runs a job script with `sh -c SCRIPT _ ARGS...`, the file path last: `"$1"`… are `args`,
/// the path is the last positional parameter (`{}` appended by the caller).
fn sh_job<'a>(script: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sh", "-c", script, "_"];
    v.extend_from_slice(args);
    v
}

// ---------------------------------------------------------------------------------------------
// SIGINT / SIGTERM mid-run: exit codes, counts, no grandchild survives

fn interrupt_mid_run(signal: &str, code: i32, stopped_by: &str) {
    let env = files_env(&["f1", "f2", "f3", "f4", "f5"]);
    let tag = unique_tag();
    let _reaper = Reaper(tag.clone());
    let spawn = fixture("spawn-sleepers.sh");
    // Log the start, then become spawn-sleepers.sh: 2 background + 1 foreground `sleep TAG`.
    let script = r#"echo "$3" >> started.log; exec "$1" "$2" "$3""#;
    let mut args = vec![
        "-j",
        "2",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &[&spawn, &tag, "{}"]));
    let mut run = env.spawn(&args);
    assert!(
        wait_until(Duration::from_secs(5), || sleepers(&tag) == 6),
        "two jobs with three sleepers each never ran: {:?}",
        tagged(&tag)
    );
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    run.signal(signal);
    let out = run.wait();
    let took = sent.elapsed();
    out.assert_code(code).assert_no_panic();
    assert!(
        took < Duration::from_secs(5),
        "fanout took {took:?} to stop after SIG{signal} (grace 0.2 s)\n{}",
        out.dump()
    );
    assert_no_survivors(&tag, &out);
    assert_eq!(
        log_lines(env.path("started.log")).len(),
        2,
        "a job started after SIG{signal}\n{}",
        out.dump()
    );

    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 5, "{fin}");
    assert_eq!(int(&fin, "interrupted"), 2, "{fin}");
    assert_eq!(int(&fin, "not_started"), 3, "{fin}");
    assert_eq!(int(&fin, "ok"), 0, "{fin}");
    assert_eq!(int(&fin, "exit_code"), i64::from(code), "{fin}");
    assert_eq!(fin["stopped_by"], stopped_by, "{fin}");
    assert_eq!(fin["complete"], true, "{fin}");
    for r in file_records(&recs) {
        if r["status"] == "not_started" {
            assert_eq!(int(&r, "attempts"), 0, "{r}");
        } else {
            assert_eq!(r["status"], "interrupted", "{r}");
            assert!(int(&r, "attempts") >= 1, "{r}");
        }
    }
    // The interrupted ones are exactly the two that started.
    let started: BTreeSet<String> = log_lines(env.path("started.log")).into_iter().collect();
    assert_eq!(paths_with(&recs, "interrupted"), started);
}

#[test]
fn sigint_mid_run_stops_jobs_and_grandchildren_exit_130() {
    interrupt_mid_run("INT", 130, "SIGINT");
}

#[test]
fn sigterm_mid_run_stops_jobs_and_grandchildren_exit_143() {
    interrupt_mid_run("TERM", 143, "SIGTERM");
}

#[test]
fn second_sigint_skips_a_long_kill_grace() {
    let env = files_env(&["a", "b", "c"]);
    let tag = unique_tag();
    let _reaper = Reaper(tag.clone());
    // A job whose whole group ignores SIGTERM: only SIGKILL (after the grace) ends it.
    let script = r#"trap '' TERM; sleep "$1" & sleep "$1"; wait"#;
    let mut args = vec![
        "-j",
        "2",
        "--kill-grace",
        "20s",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &[&tag, "{}"]));
    let mut run = env.spawn(&args);
    assert!(
        wait_until(Duration::from_secs(5), || sleepers(&tag) == 4),
        "two jobs with two sleepers each never ran: {:?}",
        tagged(&tag)
    );
    std::thread::sleep(Duration::from_millis(100));
    run.signal("INT");
    // The first SIGINT only sends SIGTERM, which the jobs ignore: fanout is in its grace.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !run.has_exited(),
        "fanout ended before the 20 s grace although its jobs ignore SIGTERM"
    );
    assert!(
        sleepers(&tag) > 0,
        "the SIGTERM-ignoring sleepers died before any SIGKILL"
    );
    let second = Instant::now();
    run.signal("INT");
    let out = run.wait();
    let took = second.elapsed();
    out.assert_code(130).assert_no_panic();
    assert!(
        took < Duration::from_secs(5),
        "a second SIGINT must skip the 20 s grace; fanout took {took:?} after it\n{}",
        out.dump()
    );
    assert_no_survivors(&tag, &out);
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "interrupted"), 2, "{fin}");
    assert_eq!(int(&fin, "not_started"), 1, "{fin}");
    assert_eq!(int(&fin, "exit_code"), 130, "{fin}");
}

#[test]
fn sighup_lets_running_jobs_finish_and_starts_nothing_new() {
    let env = files_env(&["f1", "f2", "f3", "f4"]);
    let script = r#"echo "$1" >> started.log; sleep 0.5"#;
    let mut args = vec!["-j", "2", "--summary", "s.jsonl", "d", "--"];
    args.extend(sh_job(script, &["{}"]));
    let mut run = env.spawn(&args);
    assert!(
        wait_until(Duration::from_secs(5), || log_lines(
            env.path("started.log")
        )
        .len()
            == 2),
        "two jobs never started"
    );
    std::thread::sleep(Duration::from_millis(50));
    run.signal("HUP");
    let out = run.wait();
    out.assert_code(1).assert_no_panic();
    let started: BTreeSet<String> = log_lines(env.path("started.log")).into_iter().collect();
    assert_eq!(
        started.len(),
        2,
        "a job started after SIGHUP: {started:?}\n{}",
        out.dump()
    );
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 4, "{fin}");
    assert_eq!(int(&fin, "ok"), 2, "{fin}");
    assert_eq!(int(&fin, "not_started"), 2, "{fin}");
    assert_eq!(fin["stopped_by"], "SIGHUP", "{fin}");
    assert_eq!(
        paths_with(&recs, "ok"),
        started,
        "the running jobs must finish ok"
    );
    for p in &started {
        let r = record_for(&recs, p);
        assert_eq!(r["exit_code"], 0, "{r}");
        assert!(
            int(&r, "duration_ms") >= 400,
            "the job was cut short instead of finishing: {r}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// process groups: grandchildren and leftovers never survive; SIGTERM-ignorers cannot hang us

#[test]
fn timeout_kills_grandchildren() {
    let env = files_env(&["a", "b"]);
    let tag = unique_tag();
    let _reaper = Reaper(tag.clone());
    let spawn = fixture("spawn-sleepers.sh");
    let out = env.run(&[
        "-j",
        "2",
        "--timeout",
        "0.3",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        &spawn,
        &tag,
    ]);
    out.assert_code(1).assert_no_panic();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "a 0.3 s timeout took {:?}\n{}",
        out.elapsed,
        out.dump()
    );
    assert_no_survivors(&tag, &out);
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(paths_with(&recs, "timeout").len(), 2, "{recs:#?}");
}

#[test]
fn halt_now_kills_running_jobs_and_their_grandchildren() {
    let env = files_env(&["a", "b", "c", "d"]);
    let tag = unique_tag();
    let _reaper = Reaper(tag.clone());
    let spawn = fixture("spawn-sleepers.sh");
    // d/a fails after 0.3 s; every other file runs sleepers for 300 s.
    let script = r#"echo "$3" >> started.log
case "$3" in
    */a) sleep 0.3; exit 1 ;;
    *) exec "$1" "$2" "$3" ;;
esac"#;
    let mut args = vec![
        "-j",
        "2",
        "--halt",
        "now",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &[&spawn, &tag, "{}"]));
    let out = env.run(&args);
    out.assert_code(1).assert_no_panic();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "--halt now took {:?}\n{}",
        out.elapsed,
        out.dump()
    );
    assert_no_survivors(&tag, &out);
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(record_for(&recs, "d/a")["status"], "failed");
    assert_eq!(record_for(&recs, "d/b")["status"], "interrupted");
    assert_eq!(record_for(&recs, "d/c")["status"], "not_started");
    assert_eq!(record_for(&recs, "d/d")["status"], "not_started");
    assert_eq!(
        log_lines(env.path("started.log"))
            .into_iter()
            .collect::<BTreeSet<_>>(),
        ["d/a", "d/b"].map(String::from).into(),
        "nothing may start after the failure\n{}",
        out.dump()
    );
}

#[test]
fn halt_soon_lets_running_jobs_finish_and_starts_nothing_new() {
    let env = files_env(&["a", "b", "c", "d", "e"]);
    let script = r#"echo "$1" >> started.log
case "$1" in
    */a) sleep 0.1; exit 1 ;;
    */b) sleep 0.5 ;;
esac"#;
    let mut args = vec![
        "-j",
        "2",
        "--halt",
        "soon",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &["{}"]));
    let out = env.run(&args);
    out.assert_code(1).assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(record_for(&recs, "d/a")["status"], "failed");
    let b = record_for(&recs, "d/b");
    assert_eq!(b["status"], "ok", "the running job must finish: {b}");
    assert!(int(&b, "duration_ms") >= 400, "d/b was cut short: {b}");
    for p in ["d/c", "d/d", "d/e"] {
        let r = record_for(&recs, p);
        assert_eq!(r["status"], "not_started", "{r}");
        assert_eq!(int(&r, "attempts"), 0, "{r}");
    }
    assert_eq!(
        log_lines(env.path("started.log"))
            .into_iter()
            .collect::<BTreeSet<_>>(),
        ["d/a", "d/b"].map(String::from).into(),
        "nothing may start after the failure\n{}",
        out.dump()
    );
    assert_eq!(int(&final_record(&recs), "exit_code"), 1);
}

#[test]
fn leftover_background_processes_of_a_finished_job_are_stopped() {
    let env = files_env(&["a", "b"]);
    let tag = unique_tag();
    let _reaper = Reaper(tag.clone());
    // d/a: the background sleep keeps the job's stdout and stderr open;
    // d/b: it has let go of them. Both commands exit 0 at once.
    let script = r#"case "$2" in
    */a) sleep "$1" & ;;
    *) sleep "$1" > /dev/null 2>&1 & ;;
esac
echo "done $2""#;
    let mut args = vec![
        "-j",
        "2",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &[&tag, "{}"]));
    let out = env.run(&args);
    out.assert_ok()
        .assert_no_panic()
        .assert_stdout_sorted(&["done d/a", "done d/b"]);
    assert!(
        out.elapsed < Duration::from_secs(5),
        "fanout waited {:?} for a job's background process\n{}",
        out.elapsed,
        out.dump()
    );
    assert_no_survivors(&tag, &out);
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(paths_with(&recs, "ok").len(), 2, "{recs:#?}");
}

#[test]
fn a_job_ignoring_sigterm_cannot_hang_fanout() {
    let ignore = fixture("ignore-term.sh");
    // By timeout.
    let env = files_env(&["a", "b"]);
    let out = env.run(&[
        "-j",
        "2",
        "--timeout",
        "0.3",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        &ignore,
    ]);
    out.assert_code(1).assert_no_panic();
    assert!(
        out.elapsed < Duration::from_secs(5),
        "timeout 0.3 s + grace 0.2 s took {:?}\n{}",
        out.elapsed,
        out.dump()
    );
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    assert_eq!(paths_with(&recs, "timeout").len(), 2, "{recs:#?}");

    // By SIGTERM to fanout.
    let env = files_env(&["a", "b", "c"]);
    let script = r#"echo "$2" >> started.log; exec "$1" "$2""#;
    let mut args = vec![
        "-j",
        "2",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &[&ignore, "{}"]));
    let mut run = env.spawn(&args);
    assert!(
        wait_until(Duration::from_secs(5), || log_lines(
            env.path("started.log")
        )
        .len()
            == 2),
        "two jobs never started"
    );
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    run.signal("TERM");
    let out = run.wait();
    let took = sent.elapsed();
    out.assert_code(143).assert_no_panic();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM with grace 0.2 s took {took:?}\n{}",
        out.dump()
    );
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "interrupted"), 2, "{fin}");
    assert_eq!(int(&fin, "not_started"), 1, "{fin}");
}

// ---------------------------------------------------------------------------------------------
// --timeout and --retries

#[test]
fn timeout_keeps_output_printed_before_it() {
    let env = files_env(&["a", "b"]);
    let script = r#"echo "before $1"; sleep 5; echo "after $1""#;
    let mut args = vec![
        "-j",
        "2",
        "--timeout",
        "0.3",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &["{}"]));
    let out = env.run(&args);
    out.assert_code(1)
        .assert_no_panic()
        .assert_stdout_sorted(&["before d/a", "before d/b"]);
    assert!(
        out.elapsed < Duration::from_secs(4),
        "a 0.3 s timeout took {:?}\n{}",
        out.elapsed,
        out.dump()
    );
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    for p in ["d/a", "d/b"] {
        let r = record_for(&recs, p);
        assert_eq!(r["status"], "timeout", "{r}");
        assert_eq!(
            int(&r, "stdout_bytes"),
            format!("before {p}\n").len() as i64
        );
        let ms = int(&r, "duration_ms");
        assert!(
            (250..3000).contains(&ms),
            "duration of a 0.3 s timeout: {r}"
        );
        assert!(
            str_field(&r, "reason").contains("timed out"),
            "a timeout says so: {r}"
        );
    }
    assert_eq!(int(&final_record(&recs), "timeout"), 2);
}

#[test]
fn timeout_durations_parse_with_units() {
    let env = files_env(&["a"]);
    let sleep = fixture("sleep-then.sh");
    // A 0.4 s job: long timeouts written with units must let it finish (a unit read as ms, or
    // `1h30m` read as 1 h only would still pass, but a misread as a tiny number would not).
    for t in ["30s", "1h30m", "5m"] {
        let out = env.run(&[
            "-j",
            "2",
            "--timeout",
            t,
            "--summary",
            "s.jsonl",
            "d",
            "--",
            &sleep,
            "0.4",
        ]);
        out.assert_ok().assert_no_panic();
        let r = record_for(&read_summary(env.path("s.jsonl")), "d/a");
        assert_eq!(r["status"], "ok", "--timeout {t}: {r}");
    }
    // A bare number is seconds: 0.1 stops the same 0.4 s job.
    let out = env.run(&[
        "-j",
        "2",
        "--timeout",
        "0.1",
        "--kill-grace",
        "0.2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        &sleep,
        "0.4",
    ]);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/a");
    assert_eq!(r["status"], "timeout", "--timeout 0.1: {r}");
    assert!(int(&r, "duration_ms") < 390, "--timeout 0.1 ran {r}");
    // Nonsense is a usage error, nothing runs.
    for bad in ["soon", "1x", "-3s"] {
        let out = env.run(&["--timeout", bad, "d", "--", &sleep, "0"]);
        out.assert_code(2).assert_no_panic();
    }
}

#[test]
fn retries_rerun_a_flaky_job_until_it_succeeds() {
    let env = files_env(&["a", "b"]);
    let counters = env.out_dir("counters");
    let flaky = fixture("flaky.sh");
    let out = env.run(&[
        "-j",
        "2",
        "--retries",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        &flaky,
        &counters,
    ]);
    out.assert_ok().assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    for p in ["d/a", "d/b"] {
        let r = record_for(&recs, p);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(int(&r, "attempts"), 2, "fails once, then succeeds: {r}");
    }
    // Each file's command ran exactly twice (not a third time after succeeding).
    let calls: Vec<usize> = fs::read_dir(&counters)
        .unwrap()
        .map(|e| log_lines(e.unwrap().path()).len())
        .collect();
    assert_eq!(calls, vec![2, 2], "calls per file");
}

#[test]
fn retries_give_up_after_n_more_attempts() {
    let env = files_env(&["a", "b"]);
    let counters = env.out_dir("counters");
    let flaky = fixture("flaky.sh");
    let mut cmd = env.command(&[
        "-j",
        "2",
        "--retries",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        &flaky,
        &counters,
    ]);
    cmd.env("FLAKY_FAILS", "100");
    let out = run_command(cmd, None);
    out.assert_code(1).assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    for p in ["d/a", "d/b"] {
        let r = record_for(&recs, p);
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(int(&r, "attempts"), 3, "1 + 2 retries: {r}");
        assert_eq!(r["exit_code"], 1, "{r}");
    }
    let calls: Vec<usize> = fs::read_dir(&counters)
        .unwrap()
        .map(|e| log_lines(e.unwrap().path()).len())
        .collect();
    assert_eq!(calls, vec![3, 3], "calls per file");

    // A timed-out job is retried too; the last attempt decides (timeout).
    let env = files_env(&["a"]);
    let script = r#"echo "$1" >> calls.log; sleep 5"#;
    let mut args = vec![
        "-j",
        "2",
        "--retries",
        "1",
        "--timeout",
        "0.2",
        "--kill-grace",
        "0.1",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &["{}"]));
    let out = env.run(&args);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/a");
    assert_eq!(r["status"], "timeout", "{r}");
    assert_eq!(int(&r, "attempts"), 2, "{r}");
    assert_eq!(log_lines(env.path("calls.log")).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// output: 1 GiB through a small fanout, stderr first, a closed stdout, a full spool disk

#[test]
fn a_job_printing_1_gib_leaves_fanout_small() {
    let time = "/usr/bin/time";
    let probe = Command::new(time).args(["-f", "%M", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            !in_ci(),
            "CI=true but GNU {time} is missing (.ci/run installs `time`)"
        );
        eprintln!("skipped: no GNU {time} (-f %M): Debian's `time` package measures fanout's peak");
        return;
    }
    let env = files_env(&["big"]);
    let print = fixture("print-lots.sh");
    let out = env.sh(&format!(
        r#"{time} -o rss.txt -f %M "$FANOUT" -j 2 --summary s.jsonl d -- '{print}' 1024 | wc -c > count.txt"#
    ));
    out.assert_ok();
    let count: u64 = fs::read_to_string(env.path("count.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 1 << 30, "every byte of the 1 GiB reached stdout");
    let rss = fs::read_to_string(env.path("rss.txt")).unwrap();
    let kib: u64 = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max RSS in {rss:?}"));
    assert!(
        kib * 1024 < 100_000_000,
        "fanout's peak RSS was {kib} KiB for a job printing 1 GiB"
    );
    let recs = read_summary(env.path("s.jsonl"));
    let r = record_for(&recs, "d/big");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(int(&r, "stdout_bytes"), 1 << 30, "{r}");
    assert_eq!(int(&final_record(&recs), "exit_code"), 0);
}

#[test]
fn ten_mb_of_stderr_before_stdout_does_not_deadlock() {
    let env = files_env(&["a", "b"]);
    let script = fixture("stderr-then-stdout.sh");
    let out = env.run(&["-j", "2", "--summary", "s.jsonl", "d", "--", &script, "10"]);
    out.assert_ok().assert_stdout_lines(&[
        "stdout after 10 MiB of stderr",
        "stdout after 10 MiB of stderr",
    ]);
    assert!(
        out.elapsed < Duration::from_secs(15),
        "took {:?}",
        out.elapsed
    );
    assert!(
        out.stderr.len() >= 2 * 10 * 1048576,
        "the stderr of both jobs reaches fanout's stderr ({} bytes)",
        out.stderr.len()
    );
    let recs = read_summary(env.path("s.jsonl"));
    for p in ["d/a", "d/b"] {
        let r = record_for(&recs, p);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(int(&r, "stderr_bytes"), 10 * 1048576, "{r}");
    }
}

#[test]
fn closed_stdout_ends_quietly_with_141_and_a_complete_journal() {
    let env = files_env(&["f1", "f2", "f3", "f4", "f5", "f6"]);
    let tag = unique_tag();
    let _reaper = Reaper(tag.clone());
    let print = fixture("print-lots.sh");
    // d/f1 prints 1 MiB at once; the others would sleep 300 s.
    let script = r#"case "$3" in */f1) exec "$1" 1 ;; *) exec sleep "$2" ;; esac"#;
    let out = env.sh(&format!(
        r#"{{ "$FANOUT" -j 2 --kill-grace 0.2 --summary s.jsonl d -- sh -c '{script}' _ '{print}' {tag} {{}} 2> err.txt; echo $? > rc.txt; }} | head -1"#
    ));
    out.assert_ok();
    assert_eq!(out.stdout_lines().len(), 1, "{}", out.dump());
    assert!(
        out.elapsed < Duration::from_secs(5),
        "fanout did not stop its jobs when stdout closed: {:?}",
        out.elapsed
    );
    let rc = fs::read_to_string(env.path("rc.txt")).unwrap();
    assert_eq!(rc.trim(), "141", "fanout's exit status");
    let err = fs::read_to_string(env.path("err.txt")).unwrap();
    for noise in ["panicked", "Broken pipe", "os error", "error:"] {
        assert!(
            !err.contains(noise),
            "not quiet: {noise:?} in stderr:\n{err}"
        );
    }
    assert_no_survivors(&tag, &out);
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 6, "{fin}");
    assert_eq!(int(&fin, "exit_code"), 141, "{fin}");
    assert_eq!(fin["stopped_by"], "closed_stdout", "{fin}");
    assert_eq!(fin["complete"], true, "{fin}");
    // Only d/f1 finished, and `head` read one line of its megabyte: its output was not
    // delivered, so it is not ok.
    assert_eq!(int(&fin, "ok"), 0, "{fin}");
    let f1 = typed_records(env.path("s.jsonl"))
        .into_iter()
        .find(|r| r.path.ends_with("f1"))
        .expect("a record of d/f1");
    assert_eq!(f1.status, fanout::record::Status::Failed, "{f1:?}");
    assert!(
        f1.reason
            .as_deref()
            .is_some_and(|r| r.contains("not delivered")),
        "{f1:?}"
    );
}

/// Unmounts a test's tmpfs however the test ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_disk_fails_the_job_never_truncates_silently() {
    let env = files_env(&["a"]);
    let spool = env.mkdir("spool");
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&spool)
        .output();
    match mount {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIPPED a_full_spool_disk_fails_the_job_never_truncates_silently: cannot mount a tmpfs (needs root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!(
                "SKIPPED a_full_spool_disk_fails_the_job_never_truncates_silently: no mount(8): {e}"
            );
            return;
        }
    }
    let _umount = Mount(spool.clone());
    let print = fixture("print-lots.sh");
    let mut cmd = env.command(&["-j", "2", "--summary", "s.jsonl", "d", "--", &print, "8"]);
    cmd.env("TMPDIR", &spool);
    let out = run_command(cmd, None);
    out.assert_code(1).assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let r = record_for(&recs, "d/a");
    assert_eq!(
        r["status"], "failed",
        "a job whose output could not be kept: {r}"
    );
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("output"),
        "the reason must say the output could not be kept: {r}"
    );
    assert!(
        out.stdout.len() < 8 << 20,
        "8 MiB printed although the spool was full?"
    );
    assert_eq!(
        fs::read_dir(&spool).unwrap().count(),
        0,
        "temporary files left in TMPDIR"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGKILL mid-run, then --resume

#[test]
fn sigkill_mid_run_then_resume_runs_every_file_and_never_an_ok_one_again() {
    let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let env = files_env(&names);
    let script = r#"echo "$1" >> runs.log; sleep 0.2"#;
    let mut args = vec!["-j", "2", "--summary", "s1.jsonl", "d", "--"];
    args.extend(sh_job(script, &["{}"]));
    let mut run = env.spawn(&args);
    let some_ok = wait_until(Duration::from_secs(10), || {
        paths_with(&read_journal_lenient(env.path("s1.jsonl")), "ok").len() >= 2
    });
    assert!(some_ok, "no two jobs finished ok in the journal in time");
    run.signal("KILL");
    let killed = run.wait();
    assert_eq!(killed.signal, Some(9), "{}", killed.dump());

    let first = read_journal_lenient(env.path("s1.jsonl"));
    assert!(
        first.iter().all(|r| r["type"] != "summary"),
        "the first run should have been cut short: {first:#?}"
    );
    let ok_first = paths_with(&first, "ok");
    assert!(
        ok_first.len() >= 2 && ok_first.len() < 8,
        "first run: {ok_first:?}"
    );
    // Let the orphaned jobs of the killed run end (0.2 s sleeps) before resuming.
    std::thread::sleep(Duration::from_millis(300));

    let mut args = vec![
        "-j",
        "2",
        "--resume",
        "s1.jsonl",
        "--summary",
        "s2.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &["{}"]));
    let out = env.run(&args);
    out.assert_ok().assert_no_panic();
    let second = read_summary(env.path("s2.jsonl"));
    assert_counts_add_up(&second);
    let fin = final_record(&second);
    assert_eq!(int(&fin, "total"), 8, "{fin}");
    assert_eq!(int(&fin, "skipped"), ok_first.len() as i64, "{fin}");
    assert_eq!(int(&fin, "ok"), 8 - ok_first.len() as i64, "{fin}");
    assert_eq!(paths_with(&second, "skipped"), ok_first);
    for p in &ok_first {
        let r = record_for(&second, p);
        assert!(
            r["reason"].as_str().is_some_and(|s| !s.is_empty()),
            "a skipped record carries a reason: {r}"
        );
        assert_eq!(int(&r, "attempts"), 0, "{r}");
    }
    let runs = log_counts(env.path("runs.log"));
    for n in &names {
        let p = format!("d/{n}");
        let times = runs.get(&p).copied().unwrap_or(0);
        assert!(times >= 1, "{p} never ran: {runs:?}");
        if ok_first.contains(&p) {
            assert_eq!(
                times, 1,
                "{p} was ok in the first journal but ran again: {runs:?}"
            );
        }
        assert!(
            ok_first.contains(&p) || record_for(&second, &p)["status"] == "ok",
            "{p} is ok in neither run"
        );
    }
}

#[test]
fn resume_reruns_files_whose_size_or_mtime_changed() {
    let env = files_env(&["a", "b", "c", "d"]);
    let script = r#"echo "$1" >> runs.log"#;
    let mut args = vec![
        "-j",
        "2",
        "--resume",
        "s.jsonl",
        "--summary",
        "s.jsonl",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &["{}"]));
    // First run: no journal to resume from yet.
    let mut first = vec!["-j", "2", "--summary", "s.jsonl", "d", "--"];
    first.extend(sh_job(script, &["{}"]));
    env.run(&first).assert_ok();
    assert_eq!(
        paths_with(&read_summary(env.path("s.jsonl")), "ok").len(),
        4
    );

    // d/a grows; d/b keeps its size but gets another mtime; d/c, d/d are untouched; d/e is new.
    let mut a = fs::OpenOptions::new()
        .append(true)
        .open(env.path("d/a"))
        .unwrap();
    std::io::Write::write_all(&mut a, b"more\n").unwrap();
    drop(a);
    let b = fs::OpenOptions::new()
        .write(true)
        .open(env.path("d/b"))
        .unwrap();
    b.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    drop(b);
    env.write("d/e", "new\n");

    let out = env.run(&args);
    out.assert_ok().assert_no_panic();
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let fin = final_record(&recs);
    assert_eq!(int(&fin, "total"), 5, "{fin}");
    assert_eq!(
        paths_with(&recs, "ok"),
        ["d/a", "d/b", "d/e"].map(String::from).into(),
        "{recs:#?}"
    );
    assert_eq!(
        paths_with(&recs, "skipped"),
        ["d/c", "d/d"].map(String::from).into(),
        "{recs:#?}"
    );
    for p in ["d/c", "d/d"] {
        let r = record_for(&recs, p);
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
    }
    let runs = log_counts(env.path("runs.log"));
    let want: BTreeMap<String, usize> =
        [("d/a", 2), ("d/b", 2), ("d/c", 1), ("d/d", 1), ("d/e", 1)]
            .map(|(p, n)| (p.to_string(), n))
            .into();
    assert_eq!(runs, want);
}

// ---------------------------------------------------------------------------------------------
// in-place bookkeeping

#[test]
fn a_finished_in_place_run_leaves_no_extra_files() {
    let env = files_env(&["a.txt", "b.txt", "bad.txt", "slow.txt"]);
    let before = env.list_files();
    // Every job writes {out}; bad fails afterwards, slow times out afterwards.
    let script = r#"cp "$1" "$2"; echo changed >> "$2"
case "$1" in
    *bad*) exit 1 ;;
    *slow*) sleep 5 ;;
esac"#;
    let mut args = vec![
        "-i",
        "-j",
        "2",
        "--timeout",
        "0.3",
        "--kill-grace",
        "0.1",
        "d",
        "--",
    ];
    args.extend(sh_job(script, &["{}", "{out}"]));
    let out = env.run(&args);
    out.assert_code(1).assert_no_panic();
    assert_eq!(
        env.list_files(),
        before,
        "files added or removed in the tree"
    );
    assert_eq!(
        fs::read_to_string(env.path("d/a.txt")).unwrap(),
        "content of a.txt\nchanged\n"
    );
    assert_eq!(
        fs::read_to_string(env.path("d/bad.txt")).unwrap(),
        "content of bad.txt\n"
    );
    assert_eq!(
        fs::read_to_string(env.path("d/slow.txt")).unwrap(),
        "content of slow.txt\n"
    );
}

#[test]
fn a_second_in_place_run_does_not_rewrite_a_locked_file() {
    let env = files_env(&["a.txt"]);
    let script = r#"echo "$1" >> started.log; sleep 0.5; cp "$1" "$2""#;
    let mut args = vec!["-i", "-j", "2", "d", "--"];
    args.extend(sh_job(script, &["{}", "{out}"]));
    let mut first = env.spawn(&args);
    assert!(
        wait_until(Duration::from_secs(5), || !log_lines(
            env.path("started.log")
        )
        .is_empty()),
        "the first run never started its job"
    );
    let second = env.run(&[
        "-i",
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "cp",
        "{}",
        "{out}",
    ]);
    second.assert_code(1).assert_no_panic();
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/a.txt");
    assert_eq!(r["status"], "not_started", "{r}");
    assert!(
        str_field(&r, "reason").contains("another fanout run is rewriting this file"),
        "{r}"
    );
    first.wait().assert_ok();
    assert_eq!(
        env.list_files(),
        ["d/a.txt", "s.jsonl", "started.log"]
            .map(std::path::PathBuf::from)
            .to_vec(),
        "bookkeeping left in the tree"
    );
}
