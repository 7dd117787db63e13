//! `--executor slurm` and `--executor srun` against a real Slurm cluster (CI starts a one-node
//! cluster with `.ci/slurm-cluster.sh up` and sets `FANOUT_SLURM_TESTS=1`, then runs these tests
//! again, one at a time, on a two-node cluster with `FANOUT_SLURM_NODES=2`).
//!
//! Without `FANOUT_SLURM_TESTS=1` the tests that need the cluster return at once; the usage
//! errors and the dry run need no cluster and always run. With it set, a misbehaving cluster
//! fails the tests: nothing is skipped silently.
//!
//! Slurm runs take longer than local ones (the controller schedules every second, tasks queue
//! for the node's CPUs when tests run in parallel), so fanout runs here have their own, longer
//! deadline. A test that gives up on a run cancels the Slurm job that run submitted.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::pq;

/// How long one fanout run against the cluster may take.
const SLURM_DEADLINE: Duration = Duration::from_secs(90);

/// Whether the Slurm tests are on (`FANOUT_SLURM_TESTS=1`).
fn slurm() -> bool {
    if std::env::var_os("FANOUT_SLURM_TESTS").is_some_and(|v| v == "1") {
        true
    } else {
        eprintln!("skipped: FANOUT_SLURM_TESTS is not set");
        false
    }
}

/// The number of nodes the tests may count on finding idle (`FANOUT_SLURM_NODES`, set by CI for
/// its serial two-node run): with 2 or more, array tasks must land on different nodes.
/// This machine's address on the two-node cluster's bridge (`NET=10.78.0` in
/// .ci/slurm-cluster.sh), where its nodes reach it.
const BRIDGE_HOST: &str = "10.78.0.1";

fn idle_nodes() -> usize {
    std::env::var("FANOUT_SLURM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// Running fanout (or salloc) with a longer deadline, cancelling its Slurm job on the way out

/// A process started in the background with stdout and stderr captured.
struct Bg {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    started: Instant,
    what: String,
}

fn reader<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

impl Bg {
    fn start(mut cmd: Command) -> Bg {
        let mut what = cmd.get_program().to_string_lossy().into_owned();
        for a in cmd.get_args() {
            what.push_str(&format!(" {a:?}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Bg {
            stdout: child.stdout.take().map(reader),
            stderr: child.stderr.take().map(reader),
            child,
            started: Instant::now(),
            what,
        }
    }

    fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {name} {} failed", self.child.id());
    }

    fn collect(&mut self, status: Option<std::process::ExitStatus>) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let join =
            |h: Option<JoinHandle<Vec<u8>>>| h.map(|h| h.join().unwrap()).unwrap_or_default();
        Output {
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            elapsed: self.started.elapsed(),
            what: self.what.clone(),
        }
    }

    /// Waits until `deadline` after the start; past it, kills the process, cancels the Slurm
    /// job it submitted and fails the test.
    fn wait(&mut self, deadline: Duration) -> Output {
        self.wait_or_fail(deadline, &format!("did not finish within {deadline:?}"))
    }

    /// `wait`, failing with `what` (what the process should have done) after the deadline.
    fn wait_or_fail(&mut self, deadline: Duration, what: &str) -> Output {
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if self.started.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out = self.collect(None);
                cancel_submitted(&out.stderr_str());
                panic!("the process {what}; killed it\n{}", out.dump());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.collect(Some(status))
    }
}

impl Drop for Bg {
    /// A test that failed while fanout ran: stop fanout and the job array it submitted.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let out = self.collect(None);
            cancel_submitted(&out.stderr_str());
        }
    }
}

/// The job id in fanout's notice `submitted Slurm job N: …`.
fn submitted_job(stderr: &str) -> Option<String> {
    let rest = stderr.split("submitted Slurm job ").nth(1)?;
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

fn cancel_submitted(stderr: &str) {
    if let Some(job) = submitted_job(stderr) {
        let _ = Command::new("scancel").arg(&job).status();
    }
}

/// Runs fanout in the tree with the Slurm deadline.
fn run_slurm(env: &TestEnv, args: &[&str]) -> Output {
    Bg::start(env.command(args)).wait(SLURM_DEADLINE)
}

fn spawn_slurm(env: &TestEnv, args: &[&str]) -> Bg {
    Bg::start(env.command(args))
}

// ---------------------------------------------------------------------------------------------
// Asking Slurm

/// Runs a Slurm client command; fails the test if it cannot run.
fn slurm_cmd(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// The cluster's node names: `localhost` for the one-node cluster, n1, n2, … for several.
fn cluster_nodes() -> BTreeSet<String> {
    let out = slurm_cmd("sinfo", &["--noheader", "--Node", "--format=%N"]);
    assert!(out.status.success(), "sinfo failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Array tasks of `job` that are not over yet (pending, running, completing, …).
fn live_tasks(job: &str) -> Vec<String> {
    let out = slurm_cmd(
        "squeue",
        &[
            "--noheader",
            "--array",
            "--jobs",
            job,
            "--states=PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED,REQUEUED,SIGNALING,STOPPED",
            "--format=%i %T",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A job Slurm forgot is over.
        assert!(stderr.contains("Invalid job id"), "squeue failed: {stderr}");
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The ids of the Slurm jobs (any state) whose working directory is `dir`.
fn jobs_in(dir: &Path) -> BTreeSet<String> {
    let dir = dir.canonicalize().unwrap();
    let out = slurm_cmd("squeue", &["--noheader", "--states=all", "--format=%F|%Z"]);
    assert!(
        out.status.success(),
        "squeue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().split_once('|'))
        .filter(|(_, wd)| Path::new(wd) == dir)
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Waits for fanout to have submitted its array (a job whose working directory is the tree).
fn wait_for_job(env: &TestEnv) -> String {
    let mut found = BTreeSet::new();
    let ok = wait_until(Duration::from_secs(20), || {
        found = jobs_in(env.root());
        !found.is_empty()
    });
    assert!(
        ok,
        "fanout never submitted a job array from {}",
        env.root().display()
    );
    assert_eq!(
        found.len(),
        1,
        "more than one job from this tree: {found:?}"
    );
    found.into_iter().next().unwrap()
}

/// Processes (pid and command line) whose command line matches `pattern` (`pgrep -af`).
fn pgrep(pattern: &str) -> Vec<String> {
    let out = slurm_cmd("pgrep", &["-af", pattern]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Trees, journals and plans

/// `n` small files in a hive-like tree: `data/year=2024/month=MM/part-K.csv`, 20 per month.
fn hive(n: usize) -> (TestEnv, Vec<String>) {
    let env = TestEnv::new(&["out"], &[]);
    let mut paths = Vec::new();
    for i in 0..n {
        let p = format!("data/year=2024/month={:02}/part-{}.csv", i / 20 + 1, i % 20);
        env.write(&p, format!("id,value\n{i},{}\n", "x".repeat(i % 7)));
        paths.push(p);
    }
    paths.sort();
    (env, paths)
}

/// `n` small files `d/fNN` (two digits, so walk order is name order).
fn flat(n: usize) -> (TestEnv, Vec<String>) {
    let env = TestEnv::new(&["out"], &[]);
    let paths: Vec<String> = (0..n).map(|i| format!("d/f{i:02}")).collect();
    for p in &paths {
        env.write(p, format!("{p}\n"));
    }
    (env, paths)
}

/// path → status of the file records.
fn statuses(records: &[Value]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for r in file_records(records) {
        let path = r["path"].as_str().expect("path").to_string();
        let status = r["status"].as_str().expect("status").to_string();
        assert!(
            m.insert(path.clone(), status).is_none(),
            "two records for {path}: {records:#?}"
        );
    }
    m
}

/// The journal `s.jsonl` of a run, checked (its counters add up, one record per path of
/// `paths`), and its files' statuses.
#[track_caller]
fn journal(
    env: &TestEnv,
    out: &Output,
    paths: &[String],
) -> (Vec<Value>, BTreeMap<String, String>) {
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let st = statuses(&records);
    assert_eq!(
        st.keys().cloned().collect::<Vec<_>>(),
        paths,
        "records are not one per file\n{}",
        out.dump()
    );
    (records, st)
}

/// Lines of a log the jobs append to (missing: none).
fn log_lines(env: &TestEnv, rel: &str) -> Vec<String> {
    let mut lines: Vec<String> = fs::read_to_string(env.path(rel))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn strings(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// The final record's plan directory.
fn plan_dir(fin: &Value) -> PathBuf {
    PathBuf::from(
        fin["plan_dir"]
            .as_str()
            .unwrap_or_else(|| panic!("no plan_dir: {fin}")),
    )
}

/// The final record's per-shard entries.
fn shards(fin: &Value) -> Vec<Value> {
    fin["shards"]
        .as_array()
        .unwrap_or_else(|| panic!("no shards: {fin}"))
        .clone()
}

/// The paths of shard `k`'s inputs, in the plan's (job) order.
fn shard_inputs(plan: &Path, k: usize) -> Vec<String> {
    let p = plan.join(format!("inputs/shard-{k}.jsonl"));
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["path"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The shard whose inputs include `path`, and those inputs.
fn shard_with(plan: &Path, count: usize, path: &str) -> (usize, Vec<String>) {
    (0..count)
        .map(|k| (k, shard_inputs(plan, k)))
        .find(|(_, files)| files.iter().any(|f| f == path))
        .unwrap_or_else(|| panic!("{path} is in no shard of {}", plan.display()))
}

/// Checks the final record of a run that went through Slurm.
#[track_caller]
fn assert_slurm_final(fin: &Value, shard_count: usize) -> String {
    assert_eq!(fin["executor"], "slurm", "{fin}");
    assert_eq!(fin["complete"], true, "{fin}");
    let job = fin["slurm_job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("slurm_job_id is not a string: {fin}"))
        .to_string();
    assert!(
        !job.is_empty() && job.bytes().all(|b| b.is_ascii_digit()),
        "{fin}"
    );
    assert_eq!(shards(fin).len(), shard_count, "{fin}");
    job
}

/// Files below the root whose name marks an in-place temporary file.
fn temp_files(env: &TestEnv) -> Vec<PathBuf> {
    env.list_files()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(".fanout-")
        })
        .collect()
}

/// A job that holds 400 MiB for 10 s when its file is `hog`, else does `rest`.
fn hog_script(hog: &str, before_hog: &str, rest: &str) -> String {
    format!(
        r#"case "$1" in {hog}) {before_hog} exec python3 {alloc} 400 10 ;; *) {rest} ;; esac"#,
        alloc = fixture("alloc.py")
    )
}

// ---------------------------------------------------------------------------------------------
// Runs that complete

#[test]
fn two_hundred_files_over_four_shards() {
    if !slurm() {
        return;
    }
    let (env, paths) = hive(200);
    // Each job notes the node it ran on (as slurmd names it), to check the shards' node fields.
    let job = r#"echo "$1"; printf '%s\n' "$1" >> out/ran; echo "$SLURMD_NODENAME" >> out/hosts"#;
    let out = run_slurm(
        &env,
        &[
            "--executor",
            "slurm",
            "--shards",
            "4",
            "--summary",
            "s.jsonl",
            "data",
            "--",
            "sh",
            "-c",
            job,
            "_",
            "{}",
        ],
    );
    out.assert_code(0).assert_no_panic();
    let (records, st) = journal(&env, &out, &paths);
    assert!(st.values().all(|s| s == "ok"), "{st:#?}");
    let fin = final_record(&records);
    assert_eq!(int(&fin, "ok"), 200, "{fin}");
    assert_eq!(int(&fin, "exit_code"), 0, "{fin}");
    let job_id = assert_slurm_final(&fin, 4);
    let mut planned = 0;
    let mut nodes = BTreeSet::new();
    for s in shards(&fin) {
        assert_eq!(s["state"], "COMPLETED", "{s}");
        assert_eq!(s["finished"], true, "{s}");
        assert_eq!(s["files"], s["records"], "{s}");
        nodes.insert(
            s["node"]
                .as_str()
                .unwrap_or_else(|| panic!("no node: {s}"))
                .to_string(),
        );
        planned += s["files"].as_i64().unwrap();
    }
    assert_eq!(planned, 200, "{fin}");
    // The shards name the nodes the jobs really ran on, and those are the cluster's.
    let hosts: BTreeSet<String> = log_lines(&env, "out/hosts").into_iter().collect();
    assert_eq!(
        hosts, nodes,
        "hosts the jobs ran on vs the shards' nodes\n{fin}"
    );
    assert!(nodes.is_subset(&cluster_nodes()), "{nodes:?}");
    if idle_nodes() > 1 {
        assert!(
            nodes.len() > 1,
            "4 tasks on an idle multi-node cluster all ran on {nodes:?}"
        );
    }
    // Every file ran exactly once, and its output was relayed.
    assert_eq!(log_lines(&env, "out/ran"), paths, "jobs that ran");
    out.assert_stdout_sorted(&paths.iter().map(String::as_str).collect::<Vec<_>>());
    // The plan: under .fanout/ in the submit directory, one journal per shard.
    let plan = plan_dir(&fin);
    assert!(
        plan.starts_with(env.root().join(".fanout")),
        "{}",
        plan.display()
    );
    assert!(plan.join("plan.json").is_file());
    let script = fs::read_to_string(plan.join("job.sh")).unwrap();
    assert!(script.contains("worker --plan"), "{script}");
    let mut journaled = BTreeSet::new();
    for k in 0..4 {
        let shard_journal = plan.join(format!("records/shard-{k}.jsonl"));
        validate_journal(&shard_journal).unwrap_or_else(|e| panic!("shard {k}: {e}"));
        let recs = read_summary(&shard_journal);
        assert_eq!(recs.first().unwrap()["type"], "worker", "shard {k}");
        assert_eq!(recs.last().unwrap()["type"], "summary", "shard {k}");
        for r in file_records(&recs) {
            assert!(journaled.insert(r["path"].as_str().unwrap().to_string()));
        }
        assert!(plan.join(format!("logs/shard-{k}.log")).exists());
        assert!(plan.join(format!("output/shard-{k}.stdout")).exists());
    }
    assert_eq!(journaled, strings(&paths));
    assert!(live_tasks(&job_id).is_empty(), "{:?}", live_tasks(&job_id));
    // Each record names the task and slot that ran it: the report has a lane per task and slot.
    for r in file_records(&records) {
        assert!(r["shard"].as_u64().unwrap() < 4, "{r}");
        assert!(r["slot"].as_u64().unwrap() >= 1, "{r}");
    }
    env.run(&["report", "s.jsonl"]).assert_ok();
    let page = fs::read_to_string(env.path("s.html")).unwrap();
    assert!(page.contains("task 3 · slot 1"), "no lane for task 3");
}

#[test]
fn resume_of_a_local_journal_runs_only_the_rest_on_slurm() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(6);
    // Locally: f02 and f04 fail.
    let local = r#"case "$1" in */f02|*/f04) exit 3 ;; esac; printf '%s\n' "$1" >> out/local"#;
    env.run(&[
        "-j",
        "2",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        local,
        "_",
        "{}",
    ])
    .assert_code(1);
    let first = statuses(&read_summary(env.path("s.jsonl")));
    assert_eq!(
        first.values().filter(|s| *s == "failed").count(),
        2,
        "{first:#?}"
    );
    // f00 changes after its ok run: it must run again.
    std::thread::sleep(Duration::from_millis(20));
    env.write("d/f00", "changed, and longer than before\n");
    let on_slurm = r#"printf '%s %s\n' "$1" "${SLURM_ARRAY_JOB_ID:-none}" >> out/slurm"#;
    let out = run_slurm(
        &env,
        &[
            "--executor",
            "slurm",
            "--shards",
            "2",
            "--resume",
            "s.jsonl",
            "--summary",
            "s2.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            on_slurm,
            "_",
            "{}",
        ],
    );
    out.assert_code(0).assert_no_panic();
    let records = read_summary(env.path("s2.jsonl"));
    assert_counts_add_up(&records);
    let second = statuses(&records);
    let rerun = ["d/f00", "d/f02", "d/f04"];
    for p in &paths {
        let want = if rerun.contains(&p.as_str()) {
            "ok"
        } else {
            "skipped"
        };
        assert_eq!(second[p], want, "{p}: {second:#?}\n{}", out.dump());
    }
    let fin = final_record(&records);
    let job = assert_slurm_final(&fin, 2);
    assert_eq!(int(&fin, "skipped"), 3, "{fin}");
    let planned: i64 = shards(&fin)
        .iter()
        .map(|s| s["files"].as_i64().unwrap())
        .sum();
    assert_eq!(planned, 3, "only the files to redo go to Slurm: {fin}");
    let want: Vec<String> = rerun.iter().map(|p| format!("{p} {job}")).collect();
    assert_eq!(log_lines(&env, "out/slurm"), want, "jobs run on Slurm");
}

/// A worker runs each job as the submitting fanout would: the same argv as a local run, whatever
/// the bytes of the command words, with `{threads}` from `--cpus-per-job` (1: the two-node
/// test cluster's nodes have one CPU each, and sbatch refuses a task no node can hold).
#[test]
fn workers_run_the_argv_a_local_run_runs() {
    if !slurm() {
        return;
    }
    let (env, _) = flat(4);
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let words: Vec<OsString> = [
        dump.as_str(),
        out_dir.as_str(),
        "{}",
        "{#}",
        "{/.}",
        "{threads}",
        "lit eral",
        "{{}}",
    ]
    .iter()
    .map(OsString::from)
    .chain([os(b"caf\xe9 \xff")])
    .collect();
    let with = |first: &[&str]| -> Vec<OsString> {
        let mut args: Vec<OsString> = first.iter().map(OsString::from).collect();
        args.extend(["--cpus-per-job", "1", "d", "--"].map(OsString::from));
        args.extend(words.iter().cloned());
        args
    };
    env.run(&with(&["-j", "1"])).assert_ok();
    let local = read_argv_dumps(&out_dir);
    assert_eq!(local.len(), 4, "{}", show_argvs(&local));
    clear_dir(&out_dir);
    let out = Bg::start(env.command(&with(&["--executor", "slurm", "--shards", "2"])))
        .wait(SLURM_DEADLINE);
    out.assert_code(0).assert_no_panic();
    let on_slurm = read_argv_dumps(&out_dir);
    assert!(
        on_slurm == local,
        "--- on Slurm ---\n{}\n--- local ---\n{}\n{}",
        show_argvs(&on_slurm),
        show_argvs(&local),
        out.dump()
    );
}

/// The workers keep the run's durations exactly: a timeout under a millisecond is not rounded
/// to 0 (which a worker would refuse, failing its whole shard), and retries follow it.
#[test]
fn a_sub_millisecond_timeout_reaches_the_workers() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(4);
    let mut args: Vec<&str> =
        "--executor slurm --shards 2 --timeout 0.0005 --retries 1 --summary s.jsonl d --"
            .split(' ')
            .collect();
    args.extend(["sh", "-c", "exec sleep 5", "_", "{}"]);
    let out = run_slurm(&env, &args);
    out.assert_code(1).assert_no_panic();
    let (records, st) = journal(&env, &out, &paths);
    assert!(
        st.values().all(|s| s == "timeout"),
        "{st:#?}\n{records:#?}\n{}",
        out.dump()
    );
    for r in file_records(&records) {
        assert_eq!(int(&r, "attempts"), 2, "{r}");
    }
    assert_slurm_final(&final_record(&records), 2);
}

// ---------------------------------------------------------------------------------------------
// Tasks that die

#[test]
fn a_shard_killed_for_memory_fails_its_unfinished_files() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(8);
    let hog = "d/f03";
    let job = hog_script("*/f03", "", r#"printf '%s\n' "$1" >> out/ran; sleep 0.2"#);
    let out = run_slurm(
        &env,
        &[
            "--executor",
            "slurm",
            "--shards",
            "2",
            "-j",
            "1",
            "--mem-per-job",
            "100M",
            "--summary",
            "s.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            &job,
            "_",
            "{}",
        ],
    );
    out.assert_code(1).assert_no_panic();
    assert!(
        out.elapsed < Duration::from_secs(30),
        "the hog was not killed early\n{}",
        out.dump()
    );
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let fin = final_record(&records);
    let job_id = assert_slurm_final(&fin, 2);
    let plan = plan_dir(&fin);
    // The plan's task memory: 100 MiB for one job + 64 MiB for the worker.
    let script = fs::read_to_string(plan.join("job.sh")).unwrap();
    assert!(script.contains("--mem=164M"), "{script}");
    let (k, files) = shard_with(&plan, 2, hog);
    let at = files.iter().position(|f| f == hog).unwrap();
    let task = format!("Slurm array task {job_id}_{k}");
    let st = statuses(&records);
    for p in &paths {
        let r = record_for(&records, p);
        let reason = r["reason"].as_str().unwrap_or("");
        match files.iter().position(|f| f == p) {
            // Ran before the hog in the killed task: done.
            Some(i) if i < at => assert_eq!(r["status"], "ok", "{r}"),
            // The hog and the files it never reached: failed, with Slurm's word for it.
            Some(_) => {
                assert_eq!(r["status"], "failed", "{r}\n{}", out.dump());
                assert!(reason.contains(&task), "{p}: {reason}");
                assert!(reason.contains("memory"), "{p}: {reason}");
                // The one that was running is told apart from those never reached.
                let when = if p == hog {
                    "while this file ran"
                } else {
                    "before this file started"
                };
                assert!(reason.contains(when), "{p}: {reason}");
            }
            None => assert_eq!(r["status"], "ok", "{r}\n{}", out.dump()),
        }
    }
    assert_eq!(int(&fin, "failed") as usize, files.len() - at, "{st:#?}");
    for s in shards(&fin) {
        if s["shard"] == k {
            assert_eq!(s["finished"], false, "{s}");
            assert_ne!(s["state"], "COMPLETED", "{s}");
            assert!(
                (s["records"].as_u64().unwrap() as usize) < files.len(),
                "{s}"
            );
        } else {
            assert_eq!(s["finished"], true, "{s}");
            assert_eq!(s["state"], "COMPLETED", "{s}");
        }
    }
    // The files that were not the hog ran once each, none after the hog in its shard.
    let ran = log_lines(&env, "out/ran");
    assert!(!ran.contains(&hog.to_string()));
    for f in &files[at..] {
        assert!(
            !ran.contains(f),
            "{f} ran after the task was killed: {ran:?}"
        );
    }
    assert_eq!(ran.len(), 8 - (files.len() - at), "{ran:?}");
}

#[test]
fn sigint_stops_the_array_and_reports_every_file() {
    // 4 shards on a 2-CPU node: two tasks run, two are pending when Ctrl-C comes.
    sigint_run(4, false);
}

#[test]
fn sigint_with_every_task_running() {
    // 2 shards, Ctrl-C only once both run: no pending task to cancel.
    sigint_run(2, true);
}

fn sigint_run(shard_count: usize, all_running: bool) {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(40);
    // A sleep duration no other test uses, to find leftover job processes.
    let tag = format!("1.01{shard_count}7");
    let job = format!("sleep {tag}");
    let shard_arg = shard_count.to_string();
    let mut run = spawn_slurm(
        &env,
        &[
            "--executor",
            "slurm",
            "--shards",
            &shard_arg,
            "--summary",
            "s.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            &job,
            "_",
            "{}",
        ],
    );
    let job_id = wait_for_job(&env);
    if all_running {
        let mut live = Vec::new();
        let running = wait_until(Duration::from_secs(45), || {
            live = live_tasks(&job_id);
            live.iter().filter(|t| t.ends_with(" RUNNING")).count() == shard_count
        });
        assert!(running, "the tasks of job {job_id} never all ran: {live:?}");
    }
    let summary = env.path("s.jsonl");
    let some_done = wait_until(Duration::from_secs(45), || {
        fs::read_to_string(&summary).is_ok_and(|t| t.matches("\"type\":\"file\"").count() >= 3)
    });
    assert!(some_done, "no records arrived (job {job_id})");
    let at_signal = live_tasks(&job_id);
    let sent = Instant::now();
    run.signal("INT");
    let out = run.wait_or_fail(
        sent.duration_since(run.started) + Duration::from_secs(25),
        &format!("did not exit within 25 s of SIGINT (tasks of job {job_id} then: {at_signal:?})"),
    );
    let took = sent.elapsed();
    out.assert_code(130)
        .assert_no_panic()
        .assert_stderr_lacks("scancel failed");
    assert!(
        took < Duration::from_secs(20),
        "fanout took {took:?} to stop after SIGINT (tasks then: {at_signal:?})\n{}",
        out.dump()
    );
    let records = read_summary(&summary);
    assert_counts_add_up(&records);
    let fin = final_record(&records);
    assert_slurm_final(&fin, shard_count);
    assert_eq!(fin["stopped_by"], "SIGINT", "{fin}");
    assert_eq!(int(&fin, "exit_code"), 130, "{fin}");
    assert_eq!(int(&fin, "total"), 40, "{fin}");
    let st = statuses(&records);
    assert_eq!(st.keys().cloned().collect::<Vec<_>>(), paths);
    let ok = st.values().filter(|s| *s == "ok").count();
    assert!((3..40).contains(&ok), "{st:#?}");
    for (p, s) in &st {
        assert!(
            ["ok", "interrupted", "not_started"].contains(&s.as_str()),
            "{p}: {s}\n{}",
            out.dump()
        );
    }
    // Nothing of the array is left queued or running, and no job process survived.
    let mut live = Vec::new();
    let over = wait_until(Duration::from_secs(5), || {
        live = live_tasks(&job_id);
        live.is_empty()
    });
    assert!(over, "job {job_id} still has tasks: {live:?}");
    let pattern = format!("sleep {}", tag.replace('.', "\\."));
    let mut left = Vec::new();
    let gone = wait_until(Duration::from_secs(5), || {
        left = pgrep(&pattern);
        left.is_empty()
    });
    assert!(gone, "job processes outlived the run: {left:?}");
}

#[test]
fn external_scancel_then_resume() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(40);
    let job = |log: &str| format!(r#"printf '%s\n' "$1" >> out/{log}; sleep 0.3"#);
    let first_job = job("run1");
    let mut run = spawn_slurm(
        &env,
        &[
            "--executor",
            "slurm",
            "--shards",
            "4",
            "--summary",
            "s.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            &first_job,
            "_",
            "{}",
        ],
    );
    let job_id = wait_for_job(&env);
    let summary = env.path("s.jsonl");
    let some_done = wait_until(Duration::from_secs(45), || {
        fs::read_to_string(&summary).is_ok_and(|t| t.matches("\"status\":\"ok\"").count() >= 3)
    });
    assert!(some_done, "no records arrived (job {job_id})");
    let st = slurm_cmd("scancel", &[&job_id]);
    assert!(st.status.success(), "scancel {job_id}: {st:?}");
    let out = run.wait(SLURM_DEADLINE);
    out.assert_code(1).assert_no_panic();
    let records = read_summary(&summary);
    assert_counts_add_up(&records);
    let fin = final_record(&records);
    assert_eq!(assert_slurm_final(&fin, 4), job_id);
    assert!(
        fin["stopped_by"].is_null(),
        "fanout itself was not stopped: {fin}"
    );
    assert_eq!(int(&fin, "exit_code"), 1, "{fin}");
    let first = statuses(&records);
    assert_eq!(first.keys().cloned().collect::<Vec<_>>(), paths);
    let ok1: BTreeSet<String> = first
        .iter()
        .filter(|(_, s)| *s == "ok")
        .map(|(p, _)| p.clone())
        .collect();
    assert!(ok1.len() >= 3 && ok1.len() < 40, "{first:#?}");
    for (p, s) in &first {
        assert!(
            ["ok", "failed", "interrupted", "not_started"].contains(&s.as_str()),
            "{p}: {s}"
        );
    }
    // The tasks Slurm cancelled before they started: their files say so.
    let task = format!("Slurm array task {job_id}_");
    let explained = file_records(&records)
        .iter()
        .filter(|r| r["status"] != "ok" && r["reason"].as_str().is_some_and(|w| w.contains(&task)))
        .count();
    assert!(explained > 0, "no record mentions {task:?}: {records:#?}");
    assert!(live_tasks(&job_id).is_empty());
    // Nothing says fanout was terminated: the stop came from outside, and the records say so.
    for r in file_records(&records) {
        let reason = r["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains("terminated (SIGTERM)"), "{r}");
        if r["status"] == "interrupted" {
            assert!(reason.contains("from outside fanout"), "{r}");
        }
    }

    // Again, resuming: only what did not finish runs.
    let second_job = job("run2");
    let out = run_slurm(
        &env,
        &[
            "--executor",
            "slurm",
            "--shards",
            "4",
            "--resume",
            "s.jsonl",
            "--summary",
            "s2.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            &second_job,
            "_",
            "{}",
        ],
    );
    out.assert_code(0).assert_no_panic();
    let records = read_summary(env.path("s2.jsonl"));
    assert_counts_add_up(&records);
    let second = statuses(&records);
    for p in &paths {
        let want = if ok1.contains(p) { "skipped" } else { "ok" };
        assert_eq!(second[p], want, "{p}\n{}", out.dump());
    }
    let fin = final_record(&records);
    assert_slurm_final(&fin, 4);
    assert_eq!(int(&fin, "skipped") as usize, ok1.len(), "{fin}");
    let ran2 = strings(&log_lines(&env, "out/run2"));
    let rest: BTreeSet<String> = strings(&paths).difference(&ok1).cloned().collect();
    assert_eq!(
        ran2, rest,
        "the second run ran exactly the unfinished files"
    );
    assert_eq!(log_lines(&env, "out/run2").len(), rest.len(), "each once");
    let ran1 = strings(&log_lines(&env, "out/run1"));
    assert!(ok1.is_subset(&ran1), "ok files of the first run ran in it");
    assert_eq!(
        ran1.union(&ran2).cloned().collect::<BTreeSet<_>>(),
        strings(&paths)
    );
}

// ---------------------------------------------------------------------------------------------
// In place

/// `n` parquet files under `data/` (ids descending) and a sorted version of each under `alt/`.
fn parquet_tree(n: usize) -> (TestEnv, Vec<String>) {
    let env = TestEnv::new(&["alt", "out"], &[]);
    let mut paths = Vec::new();
    for i in 0..n {
        let dir = format!("data/year=2024/month={:02}", i % 3 + 1);
        env.mkdir(&dir);
        let p = format!("{dir}/p{i}.parquet");
        let ids: Vec<i64> = (0..(10 + i as i64)).rev().collect();
        pq::write(&env.path(&p), &ids);
        let mut sorted = ids.clone();
        sorted.sort();
        pq::write(&env.path(format!("alt/p{i}.parquet")), &sorted);
        paths.push(p);
    }
    paths.sort();
    (env, paths)
}

fn alt_of(env: &TestEnv, path: &str) -> Vec<u8> {
    let name = Path::new(path).file_name().unwrap();
    fs::read(env.path("alt").join(name)).unwrap()
}

const SORT: &str = r#"cp "alt/$(basename "$1")" "$2""#;

#[test]
fn in_place_across_shards_replaces_only_verified_outputs() {
    if !slurm() {
        return;
    }
    let (env, paths) = parquet_tree(24);
    let before: BTreeMap<String, Vec<u8>> = paths
        .iter()
        .map(|p| (p.clone(), fs::read(env.path(p)).unwrap()))
        .collect();
    let bad = ["p5.parquet", "p11.parquet", "p17.parquet", "p23.parquet"];
    let is_bad = |p: &str| bad.iter().any(|b| p.ends_with(&format!("/{b}")));
    let job = format!(
        r#"case "$(basename "$1")" in {}) echo garbage > "$2" ;; *) {SORT} ;; esac"#,
        bad.join("|")
    );
    let out = run_slurm(
        &env,
        &[
            "-i",
            "--executor",
            "slurm",
            "--shards",
            "3",
            "--summary",
            "s.jsonl",
            "data",
            "--",
            "sh",
            "-c",
            &job,
            "_",
            "{}",
            "{out}",
        ],
    );
    out.assert_code(1).assert_no_panic();
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let fin = final_record(&records);
    assert_slurm_final(&fin, 3);
    assert_eq!(int(&fin, "ok"), 20, "{fin}");
    assert_eq!(int(&fin, "invalid_output"), 4, "{fin}");
    for s in shards(&fin) {
        assert_eq!(s["finished"], true, "{s}");
        assert!(s["files"].as_u64().unwrap() > 0, "{s}");
    }
    for p in &paths {
        let r = record_for(&records, p);
        let now = fs::read(env.path(p)).unwrap();
        if is_bad(p) {
            assert_eq!(r["status"], "invalid_output", "{r}");
            assert_eq!(r["action"], "kept", "{r}");
            assert!(
                now == before[p],
                "{p} changed although its output was garbage"
            );
        } else {
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["action"], "replaced", "{r}");
            assert!(now == alt_of(&env, p), "{p} was not replaced by its output");
        }
    }
    assert!(temp_files(&env).is_empty(), "left: {:?}", temp_files(&env));

    // The four again, with a command that gets them right: exit 0, all replaced.
    let again: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .filter(|p| is_bad(p))
        .collect();
    let mut args = vec![
        "-i",
        "--executor",
        "slurm",
        "--shards",
        "2",
        "--summary",
        "s2.jsonl",
    ];
    args.extend(&again);
    args.extend(["--", "sh", "-c", SORT, "_", "{}", "{out}"]);
    let out = run_slurm(&env, &args);
    out.assert_code(0).assert_no_panic();
    let records = read_summary(env.path("s2.jsonl"));
    assert_counts_add_up(&records);
    for p in &again {
        let r = record_for(&records, p);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["action"], "replaced", "{r}");
        assert!(fs::read(env.path(p)).unwrap() == alt_of(&env, p), "{p}");
    }
    assert!(temp_files(&env).is_empty(), "left: {:?}", temp_files(&env));
}

#[test]
fn in_place_task_killed_mid_job_keeps_the_original_and_leaves_no_temp_file() {
    if !slurm() {
        return;
    }
    let (env, paths) = parquet_tree(6);
    let before: BTreeMap<String, Vec<u8>> = paths
        .iter()
        .map(|p| (p.clone(), fs::read(env.path(p)).unwrap()))
        .collect();
    let hog = paths
        .iter()
        .find(|p| p.ends_with("/p2.parquet"))
        .unwrap()
        .clone();
    // The hog writes a complete {out} first, notes where, then is killed for memory.
    let job = hog_script(
        "*/p2.parquet",
        r#"cp "alt/$(basename "$1")" "$2" && echo "$2" > out/hog-out &&"#,
        SORT,
    );
    let out = run_slurm(
        &env,
        &[
            "-i",
            "--executor",
            "slurm",
            "--shards",
            "2",
            "-j",
            "1",
            "--mem-per-job",
            "100M",
            "--summary",
            "s.jsonl",
            "data",
            "--",
            "sh",
            "-c",
            &job,
            "_",
            "{}",
            "{out}",
        ],
    );
    out.assert_code(1).assert_no_panic();
    let hog_out = fs::read_to_string(env.path("out/hog-out"))
        .unwrap_or_else(|e| panic!("the hog never wrote its output ({e})\n{}", out.dump()));
    let hog_out = hog_out.trim();
    assert!(hog_out.contains(".fanout-"), "{hog_out}");
    assert!(
        !env.exists(hog_out),
        "the killed job's {{out}} {hog_out} is still there\n{}",
        out.dump()
    );
    assert!(temp_files(&env).is_empty(), "left: {:?}", temp_files(&env));
    let records = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&records);
    let fin = final_record(&records);
    let job_id = assert_slurm_final(&fin, 2);
    let plan = plan_dir(&fin);
    let (k, files) = shard_with(&plan, 2, &hog);
    let at = files.iter().position(|f| *f == hog).unwrap();
    let r = record_for(&records, &hog);
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["action"], "kept", "{r}");
    let reason = r["reason"].as_str().unwrap_or("");
    assert!(reason.contains("memory"), "{reason}");
    assert!(
        reason.contains(&format!("Slurm array task {job_id}_{k}")),
        "{reason}"
    );
    for p in &paths {
        let r = record_for(&records, p);
        let now = fs::read(env.path(p)).unwrap();
        let unfinished = files.iter().position(|f| f == p).is_some_and(|i| i >= at);
        if unfinished {
            assert_eq!(r["action"], "kept", "{r}");
            assert_ne!(r["status"], "ok", "{r}");
            assert!(now == before[p], "{p} changed although its task was killed");
        } else {
            assert_eq!(r["status"], "ok", "{r}\n{}", out.dump());
            assert_eq!(r["action"], "replaced", "{r}");
            assert!(now == alt_of(&env, p), "{p} was not replaced");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Without the cluster: dry run and usage errors

#[test]
fn dry_run_prints_the_plan_and_submits_nothing() {
    let (env, paths) = flat(6);
    // A PATH with sh and nothing else: no sbatch to call even by mistake.
    let bin = env.mkdir("bin");
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let files_before = env.list_files();
    let job = r#"echo "$1""#;
    let mut cmd = env.command(&[
        "-n",
        "--executor",
        "slurm",
        "--shards",
        "2",
        "d",
        "--",
        "sh",
        "-c",
        job,
        "_",
        "{}",
    ]);
    cmd.env("PATH", &bin);
    let out = Bg::start(cmd).wait(Duration::from_secs(30));
    out.assert_code(0).assert_no_panic();
    let text = out.stdout_str();
    assert!(text.contains("sbatch"), "{}", out.dump());
    assert!(text.contains("--array=0-1"), "{}", out.dump());
    assert!(text.contains("worker --plan"), "{}", out.dump());
    let mut in_shards = 0;
    let mut shard_lines = Vec::new();
    let mut commands = Vec::new();
    for line in out.stdout_lines() {
        if let Some(rest) = line.strip_prefix("# shard ") {
            let (k, rest) = rest.split_once(": ").expect("# shard K: …");
            let n: usize = rest.split(' ').next().unwrap().parse().expect("file count");
            assert!(rest.contains(" files, weight "), "{line}");
            shard_lines.push(k.to_string());
            in_shards += n;
        } else if !shard_lines.is_empty() {
            commands.push(line);
        }
    }
    assert_eq!(shard_lines, ["0", "1"], "{}", out.dump());
    assert_eq!(in_shards, 6, "{}", out.dump());
    let mut want: Vec<String> = paths
        .iter()
        .map(|p| format!(r#"sh -c 'echo "$1"' _ {p}"#))
        .collect();
    want.sort();
    commands.sort();
    assert_eq!(commands, want, "{}", out.dump());
    assert!(!env.exists(".fanout"), "a plan directory was written");
    assert_eq!(env.list_files(), files_before, "the dry run wrote files");
    if slurm() {
        // With Slurm's commands on PATH: still nothing submitted.
        let out = env.run(&[
            "-n",
            "--executor",
            "slurm",
            "d",
            "--",
            "sh",
            "-c",
            job,
            "_",
            "{}",
        ]);
        out.assert_code(0);
        assert!(!env.exists(".fanout"), "a plan directory was written");
        assert!(
            jobs_in(env.root()).is_empty(),
            "the dry run submitted a job"
        );
    }
}

#[test]
fn slurm_flags_without_the_slurm_executor_are_usage_errors() {
    let env = TestEnv::new(&[], &[("d/a", "x")]);
    let job = "touch ran";
    let cases: &[(&[&str], &str)] = &[
        (&["--shards", "2"], "--shards"),
        (&["--slurm-arg=--partition=x"], "--slurm-arg"),
        (&["--plan-dir", "plan"], "--plan-dir"),
        (&["--executor", "local", "--shards", "2"], "--shards"),
        (&["--executor", "srun", "--shards", "2"], "--shards"),
        (
            &["--executor", "slurm", "--mem-limit", "50%"],
            "--mem-limit",
        ),
    ];
    for (flags, needle) in cases {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["d", "--", "sh", "-c", job]);
        let mut cmd = env.command(&args);
        cmd.env("SLURM_JOB_ID", "1");
        let out = Bg::start(cmd).wait(Duration::from_secs(30));
        out.assert_code(2)
            .assert_stderr_contains(needle)
            .assert_no_panic();
        assert!(!env.exists("ran"), "{flags:?}: a job ran");
        assert!(
            !env.exists(".fanout") && !env.exists("plan"),
            "{flags:?}: a plan was written"
        );
    }
}

#[test]
fn srun_executor_outside_an_allocation_is_a_usage_error() {
    let env = TestEnv::new(&[], &[("d/a", "x")]);
    let mut cmd = env.command(&["--executor", "srun", "d", "--", "touch", "ran"]);
    cmd.env_remove("SLURM_JOB_ID");
    let out = Bg::start(cmd).wait(Duration::from_secs(30));
    out.assert_code(2)
        .assert_stderr_contains("SLURM_JOB_ID")
        .assert_no_panic();
    assert!(!env.exists("ran"));
}

// ---------------------------------------------------------------------------------------------
// --executor srun

#[test]
fn srun_executor_runs_each_job_as_a_step_of_the_allocation() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(6);
    let job = r#"echo "${SLURM_STEP_ID:-none}" > "out/$(basename "$1")""#;
    let mut cmd = Command::new("salloc");
    cmd.args(["--quiet", "-n2", "--mem=1G", "--"])
        .arg(FANOUT)
        .args([
            "--executor",
            "srun",
            "--summary",
            "s.jsonl",
            "d",
            "--",
            "sh",
            "-c",
            job,
            "_",
            "{}",
        ])
        .current_dir(env.root())
        .env_remove("SLURM_JOB_ID");
    let out = Bg::start(cmd).wait(SLURM_DEADLINE);
    out.assert_code(0).assert_no_panic();
    let (records, st) = journal(&env, &out, &paths);
    assert!(st.values().all(|s| s == "ok"), "{st:#?}");
    for r in file_records(&records) {
        let argv: Vec<&str> = r["command"]
            .as_array()
            .unwrap_or_else(|| panic!("no command: {r}"))
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(argv[0].ends_with("/srun"), "{argv:?}");
        assert!(argv.contains(&"--exact"), "{argv:?}");
        assert!(argv.contains(&"--ntasks=1"), "{argv:?}");
        assert!(argv.iter().any(|w| w.starts_with("--mem=")), "{argv:?}");
        assert_eq!(
            &argv[argv.len() - 5..argv.len() - 1],
            &["sh", "-c", job, "_"]
        );
    }
    // Each job ran as its own step.
    let mut steps = BTreeSet::new();
    for p in &paths {
        let name = Path::new(p).file_name().unwrap();
        let step = fs::read_to_string(env.path("out").join(name))
            .unwrap_or_else(|e| panic!("{p} did not run: {e}"));
        let step: u32 = step
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{p}: SLURM_STEP_ID is {step:?}"));
        steps.insert(step);
    }
    assert_eq!(steps.len(), 6, "steps: {steps:?}");
}

#[test]
fn walks_never_enter_plan_directories() {
    // Needs no cluster: a plan directory from an earlier run is not input, even with -H.
    let env = TestEnv::new(
        &[],
        &[
            ("d/a.txt", "a"),
            (".fanout/slurm-1-2/records/shard-0.jsonl", "{}"),
            (".fanout/slurm-1-2/job.sh", "#!/bin/sh"),
            ("d/.fanout/x.txt", "x"),
            ("d/.hidden.txt", "h"),
        ],
    );
    let out = env.run(&["-H", "-n", "--", "echo"]);
    out.assert_code(0);
    let text = out.stdout_str();
    assert!(text.contains("d/a.txt"), "{}", out.dump());
    assert!(text.contains("d/.hidden.txt"), "{}", out.dump());
    assert!(!text.contains(".fanout"), "{}", out.dump());
}

#[test]
fn a_refused_submission_is_a_usage_error_and_leaves_no_plan() {
    if !slurm() {
        return;
    }
    let (env, _paths) = flat(3);
    let out = env.run(&[
        "--executor",
        "slurm",
        "--slurm-arg=--partition=no-such-partition",
        "d",
        "--",
        "true",
    ]);
    out.assert_code(2).assert_no_panic();
    out.assert_stderr_contains("sbatch refused the job array");
    assert!(!env.exists(".fanout"), "{}", out.dump());
}

#[test]
fn a_used_plan_directory_is_refused_and_left_alone() {
    if !slurm() {
        return;
    }
    let (env, _paths) = flat(3);
    env.write("plan/records/shard-0.jsonl", "old records\n");
    let out = env.run(&[
        "--executor",
        "slurm",
        "--plan-dir",
        "plan",
        "d",
        "--",
        "true",
    ]);
    out.assert_code(2).assert_no_panic();
    out.assert_stderr_contains("is not empty");
    assert_eq!(
        fs::read_to_string(env.path("plan/records/shard-0.jsonl")).unwrap(),
        "old records\n"
    );
}

#[test]
fn slurm_args_that_fanout_owns_are_refused() {
    // Needs no cluster: the array and requeueing are fanout's to set.
    let (env, _paths) = flat(2);
    for arg in ["--slurm-arg=--array=0-9%2", "--slurm-arg=--requeue"] {
        let out = env.run(&["--executor", "slurm", arg, "d", "--", "true"]);
        out.assert_code(2).assert_no_panic();
        out.assert_stderr_contains("--shards");
    }
}

#[test]
fn a_directory_named_worker_is_still_a_path() {
    // Needs no cluster: `fanout worker --plan …` is the array task's entry; `fanout worker -- …`
    // walks a directory called worker.
    let env = TestEnv::new(&[], &[("worker/a.txt", "a")]);
    let out = env.run(&["worker", "--", "cat"]);
    out.assert_code(0).assert_no_panic();
    assert_eq!(out.stdout_str(), "a");
}

// ---------------------------------------------------------------------------------------------
// New datasets (-o) on Slurm

#[test]
fn outputs_across_shards_mirror_the_tree_then_are_up_to_date() {
    if !slurm() {
        return;
    }
    let (env, paths) = hive(30);
    let args = [
        "--executor",
        "slurm",
        "--shards",
        "3",
        "--summary",
        "s.jsonl",
        "-u",
        "data",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "cp",
        "{}",
        "{out}",
    ];
    let out = run_slurm(&env, &args);
    out.assert_code(0).assert_no_panic();
    let (records, st) = journal(&env, &out, &paths);
    assert!(st.values().all(|s| s == "ok"), "{}", out.dump());
    for r in file_records(&records) {
        let path = r["path"].as_str().unwrap();
        let target = format!(
            "clean/{}.txt",
            path.strip_prefix("data/")
                .unwrap()
                .strip_suffix(".csv")
                .unwrap()
        );
        assert_eq!(
            (r["output"].as_str(), r["action"].as_str()),
            (Some(target.as_str()), Some("created"))
        );
        assert_eq!(
            fs::read(env.path(&target)).unwrap(),
            fs::read(env.path(path)).unwrap()
        );
    }
    assert!(temp_files(&env).is_empty(), "{:?}", temp_files(&env));
    // Everything is up to date: nothing is submitted.
    let out = run_slurm(&env, &args);
    out.assert_code(0)
        .assert_stderr_lacks("submitted Slurm job");
    let (records, _) = journal(&env, &out, &paths);
    assert!(file_records(&records)
        .iter()
        .all(|r| r["action"] == "up_to_date"));
}

#[test]
fn colliding_outputs_stop_a_slurm_run_before_its_plan() {
    let (env, _) = hive(30);
    for dry in [true, false] {
        let mut args = vec![
            "--executor",
            "slurm",
            "data",
            "-o",
            "flat/{/}",
            "--",
            "cp",
            "{}",
            "{out}",
        ];
        if dry {
            args.insert(0, "-n");
        } else if !slurm() {
            continue;
        }
        let out = run_slurm(&env, &args);
        out.assert_code(2)
            .assert_stderr_contains("both write 'flat/part-0.csv'")
            .assert_stderr_lacks("submitted Slurm job");
        assert!(
            !env.exists("flat") && !env.exists(".fanout"),
            "{}",
            out.dump()
        );
    }
}

#[test]
fn srun_steps_write_outputs_through_the_commit() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(6);
    let mut cmd = Command::new("salloc");
    cmd.args(["--quiet", "-n2", "--mem=1G", "--"])
        .arg(FANOUT)
        .args([
            "--executor",
            "srun",
            "--summary",
            "s.jsonl",
            "d",
            "-o",
            "o/{rel}.copy",
            "--",
            "cp",
            "{}",
            "{out}",
        ])
        .current_dir(env.root())
        .env_remove("SLURM_JOB_ID");
    let out = Bg::start(cmd).wait(SLURM_DEADLINE);
    out.assert_code(0).assert_no_panic();
    let (records, _) = journal(&env, &out, &paths);
    assert!(file_records(&records)
        .iter()
        .all(|r| r["action"] == "created"));
    for p in &paths {
        let rel = p.strip_prefix("d/").unwrap();
        assert_eq!(
            fs::read(env.path(format!("o/{rel}.copy"))).unwrap(),
            fs::read(env.path(p)).unwrap()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The plan directory is a trust boundary

/// The group and the user of the test's hostile group member, created if absent (we are root).
const MATE_GROUP: &str = "fanoutmates";
const MATE: &str = "fanoutmate";

fn ensure_group_member() {
    let known = |db: &str, name: &str| slurm_cmd("getent", &[db, name]).status.success();
    if !known("group", MATE_GROUP) {
        let out = slurm_cmd("groupadd", &[MATE_GROUP]);
        assert!(
            out.status.success() || known("group", MATE_GROUP),
            "groupadd: {out:?}"
        );
    }
    if !known("passwd", MATE) {
        let out = slurm_cmd(
            "useradd",
            &["-M", "-N", "-g", MATE_GROUP, "-s", "/bin/sh", MATE],
        );
        assert!(
            out.status.success() || known("passwd", MATE),
            "useradd: {out:?}"
        );
    }
}

/// Runs `sh -c script` as the group member.
fn as_mate(script: &str) -> std::process::Output {
    slurm_cmd(
        "setpriv",
        &[
            &format!("--reuid={MATE}"),
            &format!("--regid={MATE_GROUP}"),
            "--init-groups",
            "sh",
            "-c",
            script,
        ],
    )
}

/// fanout run through `sh -c 'umask 002; exec fanout …'`, as in a group project directory.
fn umask_002(env: &TestEnv, args: &[&str]) -> Command {
    let inner = env.command(args);
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"umask 002; exec "$0" "$@""#])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(env.root())
        .env_remove("NO_COLOR");
    cmd
}

/// A tree in a group project directory: setgid, group-writable, the group member's group.
fn group_tree() -> (TestEnv, Vec<String>) {
    ensure_group_member();
    let (env, paths) = flat(4);
    for d in [env.root().to_path_buf(), env.path("d"), env.path("out")] {
        let out = slurm_cmd("chgrp", &[MATE_GROUP, d.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o2777)).unwrap();
    }
    (env, paths)
}

/// Item 1 of the Slurm trust-boundary issue: a `.fanout` that another user made is refused
/// before anything is written or submitted.
#[test]
fn a_fanout_directory_another_user_owns_is_refused() {
    if !slurm() {
        return;
    }
    let (env, _) = group_tree();
    let made = as_mate(&format!("mkdir -m 777 {}/.fanout", env.root().display()));
    assert!(made.status.success(), "{made:?}");
    let args = [
        "--executor",
        "slurm",
        "--shards",
        "2",
        "d",
        "--",
        "sh",
        "-c",
        "true",
        "_",
        "{}",
    ];
    let out = Bg::start(umask_002(&env, &args)).wait(SLURM_DEADLINE);
    out.assert_code(2).assert_no_panic();
    let err = out.stderr_str();
    assert_eq!(err.trim().lines().count(), 1, "one line\n{}", out.dump());
    assert!(err.contains(".fanout"), "{}", out.dump());
    assert!(jobs_in(env.root()).is_empty(), "nothing submitted");
    let inside = fs::read_dir(env.path(".fanout")).unwrap().count();
    assert_eq!(inside, 0, "nothing written into the other user's directory");
    // A --plan-dir another user can write is refused the same way.
    let made = as_mate(&format!(
        "mkdir -m 777 {}/shared-plan",
        env.root().display()
    ));
    assert!(made.status.success(), "{made:?}");
    let mut args = args.to_vec();
    args.splice(0..0, ["--plan-dir", "shared-plan"]);
    let out = Bg::start(umask_002(&env, &args)).wait(SLURM_DEADLINE);
    out.assert_code(2).assert_no_panic();
    assert_eq!(out.stderr_str().trim().lines().count(), 1, "{}", out.dump());
    assert!(out.stderr_str().contains("shared-plan"), "{}", out.dump());
    assert!(jobs_in(env.root()).is_empty(), "nothing submitted");
}

/// Item 1: under umask 002 in a group directory, the plan is private, and a plan changed while
/// its array pends — by a group member, or by anyone with the submitter's own access — never
/// runs: every file is reported with the reason, and the run fails.
#[test]
fn a_plan_changed_while_its_array_pends_never_runs() {
    if !slurm() {
        return;
    }
    let (env, paths) = group_tree();
    let args = [
        "--executor",
        "slurm",
        "--shards",
        "2",
        "--slurm-arg=--hold",
        "--summary",
        "s.jsonl",
        "d",
        "--",
        "sh",
        "-c",
        r#"echo "$1" >> out/ran"#,
        "_",
        "{}",
    ];
    let mut run = Bg::start(umask_002(&env, &args));
    let job = wait_for_job(&env);
    let plans: Vec<PathBuf> = fs::read_dir(env.path(".fanout"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(plans.len(), 1, "{plans:?}");
    let plan = &plans[0];
    use std::os::unix::fs::MetadataExt;
    for (p, mode) in [
        (env.path(".fanout"), 0o700),
        (plan.clone(), 0o700),
        (plan.join("inputs"), 0o700),
        (plan.join("records"), 0o700),
        (plan.join("plan.json"), 0o600),
        (plan.join("job.sh"), 0o600),
        (plan.join("inputs/shard-0.jsonl"), 0o600),
    ] {
        let md = fs::symlink_metadata(&p).unwrap();
        assert_eq!(md.mode() & 0o7777, mode, "{}", p.display());
    }
    // The name cannot be guessed from the time and the process id alone.
    let name = plan.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.split('-').count() >= 4, "{name}");
    // The group member's edit: the command writes a mark.
    let text = fs::read_to_string(plan.join("plan.json")).unwrap();
    let evil = text.replace(r#"echo \"$1\" >> out/ran"#, "id > out/pwned");
    assert_ne!(evil, text, "the command is in plan.json as written");
    let staged = env.path("evil.json");
    fs::write(&staged, &evil).unwrap();
    let by_mate = as_mate(&format!(
        "cp {} {}/plan.json",
        staged.display(),
        plan.display()
    ));
    assert!(!by_mate.status.success(), "a group member wrote the plan");
    // Then the same edit with the submitter's own access.
    fs::write(plan.join("plan.json"), &evil).unwrap();
    let released = slurm_cmd("scontrol", &["release", &job]);
    assert!(released.status.success(), "{released:?}");
    let out = run.wait(SLURM_DEADLINE);
    out.assert_no_panic();
    assert!(
        !env.exists("out/pwned"),
        "the edited command ran\n{}",
        out.dump()
    );
    assert!(!env.exists("out/ran"), "a job ran from a changed plan");
    assert_ne!(out.code, Some(0), "{}", out.dump());
    let (records, st) = journal(&env, &out, &paths);
    for (p, s) in &st {
        assert!(["failed", "not_started"].contains(&s.as_str()), "{p}: {s}");
    }
    for r in file_records(&records) {
        let reason = r["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("changed since it was submitted"), "{r}");
    }
}

// ---------------------------------------------------------------------------------------------
// A killed submitter

/// Item 2 of the Slurm issue: the submitting fanout is SIGKILLed while its array runs, and the
/// run is resumed at once. The journal names the array as soon as it is submitted; the resume
/// refuses while that array still runs, then takes in what it finished: no file is transformed
/// twice.
#[test]
fn a_killed_submitter_is_resumed_without_transforming_a_file_twice() {
    if !slurm() {
        return;
    }
    let (env, paths) = flat(8);
    let job = r#"cat "$1" > "$2"; echo x >> "$2"; sleep 1"#;
    let args = |resume: bool, summary: &'static str| {
        let mut a = vec!["-i", "--executor", "slurm", "--shards", "2"];
        if resume {
            a.extend(["--resume", "run.jsonl"]);
        }
        a.extend([
            "--summary",
            summary,
            "d",
            "--",
            "sh",
            "-c",
            job,
            "_",
            "{}",
            "{out}",
        ]);
        a
    };
    let mut run = spawn_slurm(&env, &args(false, "run.jsonl"));
    let job_id = wait_for_job(&env);
    let started = wait_until(Duration::from_secs(45), || {
        fs::read_to_string(env.path("run.jsonl")).is_ok_and(|t| t.contains("\"status\":\"ok\""))
    });
    assert!(started, "no file finished (job {job_id})");
    run.signal("KILL");
    let killed = run.wait(SLURM_DEADLINE);
    assert_eq!(killed.signal, Some(9));
    assert!(
        !live_tasks(&job_id).is_empty(),
        "the array ended too soon for the test"
    );
    // The journal of the killed run names its array and plan directory.
    let records = read_summary(env.path("run.jsonl"));
    let array = records
        .iter()
        .find(|r| r["type"] == "slurm_array")
        .unwrap_or_else(|| panic!("no slurm_array line: {records:#?}"));
    assert_eq!(array["slurm_job_id"], job_id.as_str());
    assert!(Path::new(array["plan_dir"].as_str().unwrap()).is_dir());
    // Resumed at once: refused while the array runs.
    let out = run_slurm(&env, &args(true, "run2.jsonl"));
    out.assert_code(2).assert_no_panic();
    let err = out.stderr_str();
    assert_eq!(err.trim().lines().count(), 1, "{}", out.dump());
    assert!(err.contains(&job_id), "{}", out.dump());
    assert!(!env.exists("run2.jsonl"), "nothing written");
    let ended = wait_until(SLURM_DEADLINE, || live_tasks(&job_id).is_empty());
    assert!(ended, "the orphaned array did not end");
    // Once it ended: what it finished is taken in, the rest runs.
    let out = run_slurm(&env, &args(true, "run2.jsonl"));
    out.assert_code(0).assert_no_panic();
    for p in &paths {
        assert_eq!(
            fs::read_to_string(env.path(p)).unwrap(),
            format!("{p}\nx\n"),
            "{p} was transformed once\n{}",
            out.dump()
        );
    }
    let records = read_summary(env.path("run2.jsonl"));
    assert_counts_add_up(&records);
    let st = statuses(&records);
    assert_eq!(st.keys().cloned().collect::<Vec<_>>(), paths);
    assert!(st.values().any(|s| s == "skipped"), "{st:#?}");
}

// ---------------------------------------------------------------------------------------------
// srun inside an allocation: its real memory

/// The `--mem=` of a record's srun command line, in MiB.
fn step_mem_mib(r: &Value) -> u64 {
    let argv = r["command"].as_array().unwrap_or_else(|| panic!("{r}"));
    let mem = argv
        .iter()
        .filter_map(|w| w.as_str()?.strip_prefix("--mem="))
        .next()
        .unwrap_or_else(|| panic!("no --mem: {r}"));
    mem.trim_end_matches('M').parse().unwrap()
}

/// Item 3: under `salloc -n 2` with `--mem=512M`, `--mem-per-cpu=256M`, or no memory option (the
/// cluster's DefMemPerCPU=512, so 1 GiB), every step asks at most what the allocation holds on a node,
/// the budget is the allocation's memory, and every file runs; a `--mem-per-job` that no
/// step could get is refused up front.
#[test]
fn srun_steps_ask_for_no_more_memory_than_the_allocation_has() {
    if !slurm() {
        return;
    }
    // On the two-node test cluster (one CPU each) the two tasks take both nodes.
    let nodes: u64 = if idle_nodes() >= 2 { 2 } else { 1 };
    for (mem, node_mib, total_mib) in [
        (Some("--mem=512M"), 512, 512 * nodes),
        (Some("--mem-per-cpu=256M"), 512 / nodes, 512),
        (None, 1024 / nodes, 1024),
    ] {
        let (env, paths) = flat(4);
        let mut cmd = Command::new("salloc");
        cmd.args(["--quiet", "-n", "2"]);
        cmd.args(mem);
        cmd.arg("--")
            .arg(FANOUT)
            .args([
                "--executor",
                "srun",
                "--summary",
                "s.jsonl",
                "d",
                "--",
                "sh",
                "-c",
                "sleep 1",
                "_",
                "{}",
            ])
            .current_dir(env.root())
            .env_remove("SLURM_JOB_ID");
        let out = Bg::start(cmd).wait(SLURM_DEADLINE);
        out.assert_code(0).assert_no_panic();
        let (records, st) = journal(&env, &out, &paths);
        assert!(st.values().all(|s| s == "ok"), "{mem:?}: {st:#?}");
        for r in file_records(&records) {
            assert!(step_mem_mib(&r) <= node_mib, "{mem:?}: {r}");
        }
        let fin = final_record(&records);
        assert_eq!(
            int(&fin, "mem_limit_bytes") as u64,
            total_mib << 20,
            "{mem:?}: the budget is the allocation's memory: {fin}"
        );
    }
    // A job that cannot fit at all: refused before anything runs.
    let (env, _) = flat(1);
    let mut cmd = Command::new("salloc");
    cmd.args(["--quiet", "-n", "1", "--mem=256M", "--"])
        .arg(FANOUT)
        .args([
            "--executor",
            "srun",
            "--mem-per-job",
            "1G",
            "d",
            "--",
            "true",
        ])
        .current_dir(env.root())
        .env_remove("SLURM_JOB_ID");
    let out = Bg::start(cmd).wait(SLURM_DEADLINE);
    out.assert_code(2).assert_no_panic();
    out.assert_stderr_contains("--mem-per-job");
}

/// Item 4: `--slurm-arg=--mem-bind=local` is not a memory size: fanout's `--mem` stays (the
/// dry run shows what would be submitted).
#[test]
fn a_mem_bind_slurm_arg_keeps_fanouts_mem() {
    let (env, _) = flat(2);
    let bin = env.mkdir("bin");
    std::os::unix::fs::symlink("/bin/sh", bin.join("sh")).unwrap();
    let run = |extra: &str| {
        let mut cmd = env.command(&[
            "-n",
            "--executor",
            "slurm",
            extra,
            "--mem-per-job",
            "700M",
            "d",
            "--",
            "sh",
            "-c",
            "true",
        ]);
        cmd.env("PATH", &bin);
        let out = Bg::start(cmd).wait(Duration::from_secs(30));
        out.assert_code(0).assert_no_panic();
        out.stdout_lines()
            .into_iter()
            .find(|l| l.starts_with("# sbatch "))
            .unwrap_or_else(|| panic!("no sbatch line\n{}", out.dump()))
    };
    let line = run("--slurm-arg=--mem-bind=local");
    assert!(line.contains("'--mem=764M'"), "{line}");
    assert!(line.contains("'--mem-bind=local'"), "{line}");
    // A memory size of the user's own replaces it.
    let line = run("--slurm-arg=--mem-per-cpu=2G");
    assert!(!line.contains("'--mem="), "{line}");
    assert!(line.contains("'--mem-per-cpu=2G'"), "{line}");
}

/// Item 6: under `--executor srun`, `--timeout` and SIGTERM give a job its `--kill-grace`, as
/// locally: the step's processes get SIGTERM, and a job that traps it runs its handler (which
/// writes a mark and exits 7).
#[test]
fn srun_steps_get_sigterm_and_their_grace() {
    if !slurm() {
        return;
    }
    let job = r#"trap 'echo handled > "out/h-$(basename "$1")"; exit 7' TERM; echo up > "out/u-$(basename "$1")"; sleep 60 & wait"#;
    for stop in ["timeout", "sigterm"] {
        let (env, paths) = flat(1);
        let mut fanout = vec![
            FANOUT,
            "--executor",
            "srun",
            "--kill-grace",
            "10s",
            "--summary",
            "s.jsonl",
        ];
        if stop == "timeout" {
            fanout.extend(["--timeout", "3s"]);
        }
        fanout.extend(["d", "--", "sh", "-c", job, "_", "{}"]);
        // fanout in the background of the allocation's shell, its pid in a file.
        let script = r#""$@" & echo $! > fanout.pid; wait $!"#;
        let mut cmd = Command::new("salloc");
        cmd.args([
            "--quiet",
            "-n",
            "1",
            "--mem=512M",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(&fanout)
        .current_dir(env.root())
        .env_remove("SLURM_JOB_ID");
        let mut run = Bg::start(cmd);
        let up = wait_until(Duration::from_secs(30), || env.exists("out/u-f00"));
        assert!(up, "{stop}: the job never started");
        if stop == "sigterm" {
            let pid = fs::read_to_string(env.path("fanout.pid")).unwrap();
            let st = Command::new("kill")
                .args(["-TERM", pid.trim()])
                .status()
                .unwrap();
            assert!(st.success());
        }
        let out = run.wait(SLURM_DEADLINE);
        out.assert_no_panic();
        assert!(
            env.exists("out/h-f00"),
            "{stop}: the job's TERM handler did not run\n{}",
            out.dump()
        );
        let records = read_summary(env.path("s.jsonl"));
        let r = &file_records(&records)[0];
        assert_eq!(r["path"], paths[0].as_str());
        assert_eq!(r["exit_code"], 7, "{stop}: {r}");
        let want = if stop == "timeout" {
            "timeout"
        } else {
            "interrupted"
        };
        assert_eq!(r["status"], want, "{stop}: {r}");
    }
}

/// Objects on the cluster: the plan carries each object's listed version, every array task
/// stages its objects on its own node (no shared file system for the data) and writes them back
/// with conditional uploads; the journal has each object's record.
#[test]
fn objects_in_a_bucket_run_on_the_cluster() {
    if !slurm() {
        return;
    }
    // The two-node cluster's nodes each have a network namespace of their own on a bridge
    // (.ci/slurm-cluster.sh): the store listens there too, at this machine's address on it.
    let store = if idle_nodes() > 1 {
        crate::servers::SeaweedFs::start_at("0.0.0.0", BRIDGE_HOST)
    } else {
        crate::servers::SeaweedFs::start()
    };
    let Some(store) = store else {
        return;
    };
    store.mkbucket("lake");
    for i in 0..6 {
        store.put(
            "lake",
            &format!("d/part-{i}.txt"),
            format!("b{i}\na{i}\n").as_bytes(),
            &[],
        );
    }
    let env = TestEnv::new(&[], &[]);
    let mut cmd = env.command(&[
        "--executor",
        "slurm",
        "--shards",
        "3",
        "-i",
        "--summary",
        "s.jsonl",
        "s3://lake/d/",
        "--",
        "sh",
        "-c",
        "sort {} > {out}",
    ]);
    store.apply(&mut cmd);
    let out = Bg::start(cmd).wait(SLURM_DEADLINE);
    assert_eq!(
        out.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..6 {
        let body = store
            .get("lake", &format!("d/part-{i}.txt"))
            .expect("the object");
        assert_eq!(String::from_utf8_lossy(&body), format!("a{i}\nb{i}\n"));
    }
    let records = read_summary(env.path("s.jsonl"));
    let files: Vec<&Value> = records.iter().filter(|r| r["type"] == "file").collect();
    assert_eq!(files.len(), 6);
    for r in &files {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["action"], "replaced", "{r}");
        assert!(
            r["path"].as_str().unwrap().starts_with("s3://lake/d/part-"),
            "{r}"
        );
        assert!(r["etag"].is_string() && r["output_etag"].is_string(), "{r}");
        assert_eq!(r["down_bytes"], 6, "{r}");
    }
    // On the two-node cluster the tasks ran on both nodes, each reaching the store itself.
    let fin = final_record(&records);
    let nodes: BTreeSet<String> = shards(&fin)
        .iter()
        .filter_map(|s| s["node"].as_str().map(str::to_string))
        .collect();
    assert!(nodes.is_subset(&cluster_nodes()), "{nodes:?}");
    if idle_nodes() > 1 {
        assert!(
            nodes.len() > 1,
            "3 tasks on an idle two-node cluster all ran on {nodes:?}"
        );
    }
}
