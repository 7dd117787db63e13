//! Remote datasets (issue 23) against real object-store servers: SeaweedFS for the races and
//! conditional writes, moto as a second S3 (it answers a failed precondition differently),
//! Azurite for `az://`, and rclone's `serve s3` as a store that ignores conditions.
//!
//! Each test starts its own server (tests/it/servers.rs); without the servers installed
//! (`bash .ci/servers.sh`) a test prints one `skipped:` line and returns, and fails under
//! `CI=true`. Objects are set up and checked with an independent client (objtool.py, boto3).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    final_record, int, journal_lines, read_summary, run_command, wait_until, Output, Running,
    TestEnv,
};
use crate::servers::{self, Azurite, Moto, SeaweedFs, Server};

/// A server, a bucket layout and a directory fanout runs in (with `stage/` for `--stage-dir`).
struct Lake {
    s: Server,
    env: TestEnv,
}

impl Lake {
    fn on(server: Option<Server>) -> Option<Lake> {
        let s = server?;
        let env = TestEnv::new(&["stage"], &[]);
        Some(Lake { s, env })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.env.command(args);
        self.s.apply(&mut c);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run_command(self.cmd(args), None)
    }

    fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_command(self.cmd(args), Some(stdin))
    }

    fn spawn(&self, args: &[&str]) -> Running {
        Running::start(self.cmd(args))
    }

    fn journal(&self, name: &str) -> Vec<Value> {
        read_summary(self.env.path(name))
    }

    fn stage(&self) -> String {
        self.env.path("stage").display().to_string()
    }

    /// Files left in the stage directory (fanout's private run directories are removed).
    fn staged_files(&self) -> Vec<PathBuf> {
        self.env
            .list_files()
            .into_iter()
            .filter(|p| p.starts_with("stage"))
            .collect()
    }

    fn put(&self, bucket: &str, key: &str, body: &str) -> String {
        self.s.put(bucket, key, body.as_bytes(), &[])
    }

    /// Writes several objects with one client (objtool starts one per object: slow).
    fn put_all(&self, bucket: &str, objects: &[(&str, &str)]) -> BTreeMap<String, String> {
        if self.s.api() == servers::Api::Azure {
            return objects
                .iter()
                .map(|(key, body)| ((*key).to_string(), self.put(bucket, key, body)))
                .collect();
        }
        let spec = serde_json::json!({
            "bucket": bucket,
            "put": objects.iter().map(|(k, b)| serde_json::json!([k, b])).collect::<Vec<_>>(),
        });
        serde_json::from_value(self.batch(&spec)).unwrap()
    }

    /// Every object of `bucket` (S3): key → its text (lossy), read with one client.
    fn texts(&self, bucket: &str) -> BTreeMap<String, String> {
        if self.s.api() == servers::Api::Azure {
            return self
                .s
                .ls(bucket, "")
                .iter()
                .map(|o| {
                    let key = o["key"].as_str().unwrap();
                    (key.to_string(), self.text(bucket, key))
                })
                .collect();
        }
        let v = self.batch(&serde_json::json!({"bucket": bucket, "read": true}));
        serde_json::from_value(v).unwrap()
    }

    fn batch(&self, spec: &Value) -> Value {
        let mut cmd = Command::new(servers::python().unwrap());
        cmd.args(["-c", BATCH]);
        self.s.apply(&mut cmd);
        let out = run_command(cmd, Some(spec.to_string().as_bytes()));
        out.assert_ok();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn text(&self, bucket: &str, key: &str) -> String {
        let bytes = self
            .s
            .get(bucket, key)
            .unwrap_or_else(|| panic!("{bucket}/{key} is missing"));
        String::from_utf8(bytes).unwrap()
    }

    /// key → etag of every object of `bucket`.
    fn etags(&self, bucket: &str) -> BTreeMap<String, String> {
        self.s
            .ls(bucket, "")
            .into_iter()
            .map(|o| {
                (
                    o["key"].as_str().unwrap().to_string(),
                    o["etag"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// One boto3 client for many objects (Lake::put_all, Lake::texts): a JSON spec on stdin,
/// `{"bucket", "put": [[key, text]...]}` or `{"bucket", "read": true}`.
const BATCH: &str = r#"
import boto3, botocore.config, json, os, sys
c = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
    config=botocore.config.Config(s3={"addressing_style": "path"}))
spec = json.load(sys.stdin)
out = {}
for key, body in spec.get("put", []):
    out[key] = c.put_object(Bucket=spec["bucket"], Key=key, Body=body.encode())["ETag"]
if spec.get("read"):
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=spec["bucket"]):
        for o in page.get("Contents", []):
            body = c.get_object(Bucket=spec["bucket"], Key=o["Key"])["Body"].read()
            out[o["Key"]] = body.decode("utf-8", "replace")
print(json.dumps(out))
"#;

/// `sh -c SCRIPT _ ARGS...` as fanout's command.
fn sh<'a>(script: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--", "sh", "-c", script, "_"];
    v.extend_from_slice(args);
    v
}

fn with<'a>(front: &[&'a str], back: &[&'a str]) -> Vec<&'a str> {
    front.iter().chain(back).copied().collect()
}

/// The file records by path.
fn by_path(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .filter(|r| r["type"] == "file")
        .map(|r| (r["path"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// path → status of the file records.
fn statuses(records: &[Value]) -> BTreeMap<String, String> {
    by_path(records)
        .into_iter()
        .map(|(p, r)| (p, r["status"].as_str().unwrap().to_string()))
        .collect()
}

/// The paths of the jobs that ran and succeeded.
fn ran(records: &[Value]) -> Vec<String> {
    statuses(records)
        .into_iter()
        .filter(|(_, s)| s == "ok")
        .map(|(p, _)| p)
        .collect()
}

fn sorted_lines(out: &Output) -> Vec<String> {
    let mut v = out.stdout_lines();
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

/// One line on standard error, and exit 2, well before the check's time limit.
#[track_caller]
fn assert_one_line_exit_2(out: &Output, within: Duration) -> String {
    out.assert_code(2).assert_no_panic();
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line on stderr:{}", out.dump());
    assert!(
        out.elapsed < within,
        "took {:?}, not under {within:?}",
        out.elapsed
    );
    lines[0].clone()
}

const UPPER: &str = r#"tr a-z A-Z < "$1" > "$2""#;

// ---------------------------------------------------------------------------------------------
// Listing, filters, placeholders

/// The keys the listing tests use: a "directory" `data/`, its neighbours `data2/` and
/// `data.csv`, hidden segments, a key with a space.
fn listing_lake(l: &Lake) {
    l.s.mkbucket("lake");
    let keys = [
        "data/a.csv",
        "data/notes.txt",
        "data/sub/b.csv",
        "data/sub/deep/c.csv",
        "data/sub/with space.csv",
        "data/.hid/d.csv",
        "data/sub/.e.csv",
        "data2/z.csv",
        "data.csv",
    ];
    let bodies: Vec<String> = keys.iter().map(|k| format!("{k}\n")).collect();
    let objects: Vec<(&str, &str)> = keys
        .iter()
        .copied()
        .zip(bodies.iter().map(String::as_str))
        .collect();
    l.put_all("lake", &objects);
}

fn urls(keys: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| format!("s3://lake/{k}")).collect();
    v.sort();
    v
}

fn listing_cases(l: &Lake) {
    let visible = [
        "data/a.csv",
        "data/notes.txt",
        "data/sub/b.csv",
        "data/sub/deep/c.csv",
        "data/sub/with space.csv",
    ];
    let echo = ["--", "echo", "{url}"];
    for root in ["s3://lake/data", "s3://lake/data/"] {
        let out = l.run(&with(&[root], &echo));
        out.assert_ok();
        assert_eq!(sorted_lines(&out), urls(&visible), "root {root}");
    }
    let out = l.run(&with(&["-e", "csv", "s3://lake/data"], &echo));
    out.assert_ok();
    let csv: Vec<&str> = visible
        .iter()
        .copied()
        .filter(|k| k.ends_with(".csv"))
        .collect();
    assert_eq!(sorted_lines(&out), urls(&csv), "-e csv");

    let out = l.run(&with(&["-g", "sub/**/*.csv", "s3://lake/data/"], &echo));
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        urls(&[
            "data/sub/b.csv",
            "data/sub/deep/c.csv",
            "data/sub/with space.csv"
        ]),
        "-g"
    );

    let out = l.run(&with(&["--max-depth", "1", "s3://lake/data/"], &echo));
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        urls(&["data/a.csv", "data/notes.txt"]),
        "--max-depth 1"
    );
    let out = l.run(&with(&["--max-depth", "2", "s3://lake/data/"], &echo));
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        urls(&[
            "data/a.csv",
            "data/notes.txt",
            "data/sub/b.csv",
            "data/sub/with space.csv"
        ]),
        "--max-depth 2"
    );

    let out = l.run(&with(&["-H", "-e", "csv", "s3://lake/data"], &echo));
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        urls(&[
            "data/.hid/d.csv",
            "data/a.csv",
            "data/sub/.e.csv",
            "data/sub/b.csv",
            "data/sub/deep/c.csv",
            "data/sub/with space.csv"
        ]),
        "-H"
    );
}

#[test]
fn a_root_names_the_keys_under_it_and_filters_apply_to_keys() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    listing_lake(&l);
    listing_cases(&l);

    // {rel} and {rel.}: the key below the root's prefix; {url} as the key is (a space stays).
    let out = l.run(&[
        "-g",
        "sub/*.csv",
        "s3://lake/data",
        "--",
        "echo",
        "{rel}|{rel.}|{url}",
    ]);
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        strings(&[
            "sub/b.csv|sub/b|s3://lake/data/sub/b.csv",
            "sub/with space.csv|sub/with space|s3://lake/data/sub/with space.csv",
        ])
    );

    // An object's URL is one input; so is a root that names a single object.
    let out = l.run(&["s3://lake/data.csv", "--", "echo", "{url}", "{rel}"]);
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["s3://lake/data.csv data.csv"]);

    // URLs on standard input, mixed with a local file.
    l.env.write("local.txt", "local\n");
    let out = l.run_stdin(
        &["-", "--", "echo", "{url}"],
        b"s3://lake/data.csv\ns3://lake/data/sub/b.csv\n",
    );
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        urls(&["data.csv", "data/sub/b.csv"]),
        "stdin"
    );
}

/// A flat prefix of several pages (S3 pages 1,000 keys) is listed in key ranges at once
/// (`start-after`); every key comes once, with the keys of a "directory" among them.
fn flat_listing_case(l: &Lake) {
    l.s.mkbucket("flat");
    let mut keys: Vec<String> = (0..2000)
        .map(|n| format!("d/part-{n:05}.parquet"))
        .collect();
    keys.extend((0..500u64).map(|n| format!("d/{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))));
    keys.extend((0..100).map(|n| format!("d/part-01000.parquet.dir/x{n}")));
    let objects: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "")).collect();
    l.put_all("flat", &objects);
    let out = l.run(&["-X", "s3://flat/d/", "--", "printf", "%s\\n", "{url}"]);
    out.assert_ok();
    let listed = out.stdout_lines();
    let mut want: Vec<String> = keys.iter().map(|k| format!("s3://flat/{k}")).collect();
    want.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(got.len(), want.len(), "every key once");
    assert!(got == want, "the keys listed are the keys");
}

#[test]
fn a_flat_prefix_of_several_pages_lists_every_key_once() {
    if let Some(l) = Lake::on(SeaweedFs::start()) {
        flat_listing_case(&l);
    }
    if let Some(l) = Lake::on(Moto::start()) {
        flat_listing_case(&l);
    }
}

#[test]
fn listing_and_placeholders_on_moto() {
    let Some(l) = Lake::on(Moto::start()) else {
        return;
    };
    listing_lake(&l);
    listing_cases(&l);
}

#[test]
fn a_staged_copy_is_made_only_for_a_command_that_reads_it() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    let etag = l.put("lake", "data/x/one.csv", "1,2\n");
    l.put("lake", "data/two.txt", "two\n");
    let stage = l.stage();
    let out = l.run(&with(
        &[
            "-k",
            "-j",
            "1",
            "--stage-dir",
            &stage,
            "--summary",
            "j.jsonl",
        ],
        &with(
            &["s3://lake/data/"],
            &sh(
                r#"printf '%s|%s|%s|' "$2" "$3" "$4"; cat "$1""#,
                &["{}", "{/}", "{/.}", "{rel}"],
            ),
        ),
    ));
    out.assert_ok();
    assert_eq!(
        out.stdout_lines(),
        // In key order: `two.txt` sorts before `x/`.
        ["two.txt|two|two.txt|two", "one.csv|one|x/one.csv|1,2"]
    );
    let records = by_path(&l.journal("j.jsonl"));
    let one = &records["s3://lake/data/x/one.csv"];
    assert_eq!(one["status"], "ok");
    assert_eq!(one["etag"], etag.as_str(), "{one}");
    assert_eq!(int(one, "file_size"), 4);
    assert_eq!(int(one, "down_bytes"), 4, "{one}");
    assert!(one["down_ms"].is_u64(), "{one}");
    assert!(one["up_bytes"].is_null(), "nothing uploaded: {one}");
    assert_eq!(
        l.staged_files(),
        Vec::<PathBuf>::new(),
        "staged copies removed"
    );

    // Only {url}: nothing is downloaded.
    let out = l.run(&[
        "--stage-dir",
        &stage,
        "--summary",
        "u.jsonl",
        "s3://lake/data/",
        "--",
        "echo",
        "{url}",
    ]);
    out.assert_ok();
    for (path, r) in by_path(&l.journal("u.jsonl")) {
        assert_eq!(r["status"], "ok", "{path}");
        assert!(
            r["down_bytes"].is_null() || r["down_bytes"] == 0,
            "no download for {path}: {r}"
        );
    }

    // -X: each object of a batch is staged in its own directory, under its own name.
    let out = l.run(&with(
        &["-X", "--stage-dir", &stage, "s3://lake/data/"],
        &sh(r#"for f; do printf '%s\n' "$f"; done"#, &["{}"]),
    ));
    out.assert_ok();
    let paths = out.stdout_lines();
    assert_eq!(paths.len(), 2, "{}", out.dump());
    let names: Vec<&str> = paths
        .iter()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert!(
        names.contains(&"one.csv") && names.contains(&"two.txt"),
        "{paths:?}"
    );
    let dirs: Vec<&str> = paths
        .iter()
        .map(|p| p.rsplit_once('/').unwrap().0)
        .collect();
    assert_ne!(
        dirs[0], dirs[1],
        "each object in its own directory: {paths:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// In place, conflicts

fn in_place_rewrites(l: &Lake) {
    l.s.mkbucket("lake");
    let before = l.put_all(
        "lake",
        &[("data/a.csv", "alpha\n"), ("data/b/b.csv", "beta\n")],
    );
    let stage = l.stage();
    let out = l.run(&with(
        &[
            "-i",
            "--stage-dir",
            &stage,
            "--summary",
            "j.jsonl",
            "s3://lake/data",
        ],
        &sh(UPPER, &["{}", "{out}"]),
    ));
    out.assert_ok();
    let now = l.texts("lake");
    assert_eq!(
        now.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("data/a.csv", "ALPHA\n"), ("data/b/b.csv", "BETA\n")],
        "replaced, and nothing else written (no probe object, no temporary key)"
    );
    let journal = l.journal("j.jsonl");
    let records = by_path(&journal);
    for (key, etag) in &before {
        let url = format!("s3://lake/{key}");
        let r = &records[&url];
        let head = l.s.head("lake", key).unwrap();
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["action"], "replaced", "{r}");
        assert_eq!(r["etag"], etag.as_str(), "the listed ETag: {r}");
        assert_eq!(r["output_etag"], head["etag"], "the written ETag: {r}");
        assert_ne!(r["output_etag"], r["etag"]);
        let size = int(r, "file_size");
        assert_eq!(int(r, "down_bytes"), size, "{r}");
        assert_eq!(int(r, "up_bytes"), size, "{r}");
        assert!(r["down_ms"].is_u64() && r["up_ms"].is_u64(), "{r}");
        assert!(r["kept_output"].is_null(), "{r}");
        // Provenance: the source (itself), the version that was read, the command.
        let meta = &head["metadata"];
        assert_eq!(meta["fanout-source"], url.as_str(), "{head}");
        let version = meta["fanout-source-version"].as_str().unwrap();
        assert!(
            version.contains(etag.trim_matches('"')) && version.contains(&format!("size={size}")),
            "{version} names {etag}"
        );
        assert!(
            meta["fanout-command"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{head}"
        );
    }
    let fin = final_record(&journal);
    assert_eq!(int(&fin, "ok"), 2, "{fin}");
    assert!(fin.get("conflict").is_none_or(|c| c == 0), "{fin}");
    assert_eq!(l.staged_files(), Vec::<PathBuf>::new());
    // The typed record reads back.
    let typed = crate::harness::typed_records(l.env.path("j.jsonl"));
    assert!(typed
        .iter()
        .all(|r| r.etag.is_some() && r.output_etag.is_some()));
}

#[test]
fn in_place_replaces_objects_with_provenance_on_seaweedfs() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    in_place_rewrites(&l);
}

#[test]
fn in_place_replaces_objects_with_provenance_on_moto() {
    let Some(l) = Lake::on(Moto::start()) else {
        return;
    };
    in_place_rewrites(&l);
}

/// A job that says it started, then waits for `go` before writing its output.
const WAIT_THEN_UPPER: &str = r#"touch "$3/started.$(basename "$1")"; while [ ! -e "$3/go" ]; do sleep 0.05; done; tr a-z A-Z < "$1" > "$2""#;

/// Runs `args` (a job running WAIT_THEN_UPPER) and, once the jobs announce themselves,
/// calls `meanwhile`, then lets them finish.
fn race(l: &Lake, args: &[&str], jobs: usize, meanwhile: impl FnOnce()) -> Output {
    let sig = l.env.out_dir("sig");
    let mut full: Vec<&str> = args.to_vec();
    full.extend(sh(WAIT_THEN_UPPER, &["{}", "{out}", &sig]));
    let mut running = l.spawn(&full);
    let started = || fs::read_dir(&sig).map_or(0, |d| d.filter_map(Result::ok).count()) >= jobs;
    if !wait_until(Duration::from_secs(20), started) {
        panic!("the jobs did not start:{}", running.wait().dump());
    }
    meanwhile();
    fs::write(Path::new(&sig).join("go"), "").unwrap();
    running.wait()
}

fn second_writer_in_place(l: &Lake) {
    l.s.mkbucket("lake");
    l.put_all(
        "lake",
        &[("data/a.csv", "alpha\n"), ("data/b.csv", "beta\n")],
    );
    let stage = l.stage();
    let args = [
        "-i",
        "-j",
        "2",
        "--stage-dir",
        &stage,
        "--summary",
        "j.jsonl",
        "s3://lake/data/",
    ];
    let out = race(l, &args, 2, || {
        l.put("lake", "data/a.csv", "the other writer\n");
    });
    out.assert_code(1).assert_no_panic();
    // The other writer's object stays; the job's output is kept and named.
    let now = l.texts("lake");
    assert_eq!(now["data/a.csv"], "the other writer\n");
    assert_eq!(now["data/b.csv"], "BETA\n");
    let journal = l.journal("j.jsonl");
    let records = by_path(&journal);
    let a = &records["s3://lake/data/a.csv"];
    assert_eq!(a["status"], "conflict", "{a}");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("changed by someone else"),
        "{a}"
    );
    let kept = PathBuf::from(a["kept_output"].as_str().expect("kept_output"));
    assert!(kept.starts_with(l.env.path("stage")), "{}", kept.display());
    let parent = kept
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    assert!(
        parent.starts_with("fanout-conflict-job"),
        "{}",
        kept.display()
    );
    assert_eq!(kept.file_name().unwrap(), "a.csv");
    assert_eq!(fs::read_to_string(&kept).unwrap(), "ALPHA\n");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains(&*kept.to_string_lossy()),
        "the reason names the kept output: {a}"
    );
    assert!(a["output_etag"].is_null(), "{a}");
    assert_eq!(records["s3://lake/data/b.csv"]["status"], "ok");
    let fin = final_record(&journal);
    assert_eq!(int(&fin, "conflict"), 1, "{fin}");
    assert_eq!(int(&fin, "ok"), 1, "{fin}");
    // The summary line on stderr counts it.
    assert!(out.stderr_str().contains("1 conflict"), "{}", out.dump());
}

#[test]
fn a_second_writer_mid_job_is_a_conflict_on_seaweedfs() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    second_writer_in_place(&l);
}

#[test]
fn a_second_writer_mid_job_is_a_conflict_on_moto() {
    let Some(l) = Lake::on(Moto::start()) else {
        return;
    };
    second_writer_in_place(&l);
}

/// -o to a store: a target created by someone else while the job ran is not overwritten; a
/// target that existed and changed meanwhile neither.
#[test]
fn a_target_created_or_changed_mid_job_is_a_conflict() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("raw");
    l.s.mkbucket("clean");
    l.put_all("raw", &[("a.csv", "alpha\n"), ("b.csv", "beta\n")]);
    l.put("clean", "b.csv", "old beta\n");
    let stage = l.stage();
    let args = [
        "-o",
        "s3://clean/{rel}",
        "-j",
        "2",
        "--stage-dir",
        &stage,
        "--summary",
        "j.jsonl",
        "s3://raw/",
    ];
    let out = race(&l, &args, 2, || {
        l.put_all(
            "clean",
            &[
                ("a.csv", "made meanwhile\n"),
                ("b.csv", "changed meanwhile\n"),
            ],
        );
    });
    out.assert_code(1).assert_no_panic();
    let clean = l.texts("clean");
    assert_eq!(clean["a.csv"], "made meanwhile\n");
    assert_eq!(clean["b.csv"], "changed meanwhile\n");
    let records = by_path(&l.journal("j.jsonl"));
    let a = &records["s3://raw/a.csv"];
    let b = &records["s3://raw/b.csv"];
    assert_eq!(
        (&a["status"], &b["status"]),
        (&"conflict".into(), &"conflict".into())
    );
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("created by someone else"),
        "{a}"
    );
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("changed by someone else"),
        "{b}"
    );
    for (r, body) in [(a, "ALPHA\n"), (b, "BETA\n")] {
        let kept = r["kept_output"].as_str().expect("kept_output");
        assert_eq!(fs::read_to_string(kept).unwrap(), body);
    }
    assert_eq!(l.text("raw", "a.csv"), "alpha\n", "the source is untouched");
}

// ---------------------------------------------------------------------------------------------
// -u and provenance

fn update_bucket_to_bucket(l: &Lake) {
    l.s.mkbucket("raw");
    l.s.mkbucket("clean");
    l.put_all(
        "raw",
        &[
            ("x/1.csv", "row1\n"),
            ("x/2.csv", "row2\n"),
            ("x/3.csv", "row3\n"),
        ],
    );
    let stage = l.stage();
    let go = |journal: &str, script: &str| {
        let out = l.run(&with(
            &[
                "-u",
                "-o",
                "s3://clean/{rel.}.csv",
                "--stage-dir",
                &stage,
                "--summary",
                journal,
                "s3://raw/",
            ],
            &sh(script, &["{}", "{out}"]),
        ));
        out.assert_ok();
        ran(&l.journal(journal))
    };
    let all: Vec<String> = (1..=3).map(|n| format!("s3://raw/x/{n}.csv")).collect();
    assert_eq!(go("1.jsonl", UPPER), all);
    let head = l.s.head("clean", "x/2.csv").unwrap();
    assert_eq!(head["metadata"]["fanout-source"], "s3://raw/x/2.csv");

    assert_eq!(
        go("2.jsonl", UPPER),
        Vec::<String>::new(),
        "nothing changed"
    );
    let second = by_path(&l.journal("2.jsonl"));
    assert!(
        second.values().all(|r| r["status"] == "skipped"),
        "{second:#?}"
    );

    l.put("raw", "x/2.csv", "changed\n");
    assert_eq!(go("3.jsonl", UPPER), ["s3://raw/x/2.csv"]);
    let clean = l.texts("clean");
    assert_eq!(clean["x/1.csv"], "ROW1\n");
    assert_eq!(clean["x/2.csv"], "CHANGED\n");
    assert_eq!(go("4.jsonl", UPPER), Vec::<String>::new());

    // Another command: every target is stale.
    let lower = r#"tr A-Z a-z < "$1" > "$2""#;
    assert_eq!(go("5.jsonl", lower), all);
    assert_eq!(go("6.jsonl", lower), Vec::<String>::new());

    // A target without provenance (another tool's) is judged by time: newer is fresh...
    l.put("raw", "x/4.csv", "row4\n");
    std::thread::sleep(Duration::from_millis(1100));
    l.put("clean", "x/4.csv", "by hand\n");
    assert_eq!(go("7.jsonl", lower), Vec::<String>::new());
    // ... older is stale, and replaced.
    std::thread::sleep(Duration::from_millis(1100));
    l.put("raw", "x/4.csv", "ROW4 AGAIN\n");
    assert_eq!(go("8.jsonl", lower), ["s3://raw/x/4.csv"]);
    let clean = l.texts("clean");
    assert_eq!(
        clean.into_iter().collect::<Vec<_>>(),
        [
            ("x/1.csv".to_string(), "row1\n".to_string()),
            ("x/2.csv".to_string(), "changed\n".to_string()),
            ("x/3.csv".to_string(), "row3\n".to_string()),
            ("x/4.csv".to_string(), "row4 again\n".to_string()),
        ]
    );
}

#[test]
fn update_bucket_to_bucket_runs_only_what_changed_on_seaweedfs() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    update_bucket_to_bucket(&l);
}

#[test]
fn update_bucket_to_bucket_runs_only_what_changed_on_moto() {
    let Some(l) = Lake::on(Moto::start()) else {
        return;
    };
    update_bucket_to_bucket(&l);
}

fn xattr(path: &Path, name: &str) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::getxattr(path, name, &mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn update_local_to_bucket_and_bucket_to_local() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("clean");
    l.env.write("src/a.csv", "a\n");
    l.env.write("src/b/b.csv", "b\n");
    let stage = l.stage();
    let up = |journal: &str| {
        let out = l.run(&with(
            &[
                "-u",
                "-o",
                "s3://clean/up/{rel}",
                "--stage-dir",
                &stage,
                "--summary",
                journal,
                "src",
            ],
            &sh(UPPER, &["{}", "{out}"]),
        ));
        out.assert_ok();
        ran(&l.journal(journal))
    };
    assert_eq!(up("u1.jsonl"), ["src/a.csv", "src/b/b.csv"]);
    assert_eq!(l.text("clean", "up/b/b.csv"), "B\n");
    let head = l.s.head("clean", "up/a.csv").unwrap();
    let source = head["metadata"]["fanout-source"].as_str().unwrap();
    assert!(source.ends_with("/src/a.csv"), "{head}");
    assert!(
        head["metadata"]["fanout-source-version"]
            .as_str()
            .unwrap()
            .contains("inode="),
        "{head}"
    );
    assert_eq!(up("u2.jsonl"), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(20));
    l.env.write("src/b/b.csv", "bb\n");
    assert_eq!(up("u3.jsonl"), ["src/b/b.csv"]);
    assert_eq!(l.text("clean", "up/b/b.csv"), "BB\n");
    assert_eq!(up("u4.jsonl"), Vec::<String>::new());

    // Back down: objects to local files, with the provenance in extended attributes.
    let down = |journal: &str| {
        let out = l.run(&with(
            &[
                "-u",
                "-o",
                "down/{rel.}.txt",
                "--stage-dir",
                &stage,
                "--summary",
                journal,
                "s3://clean/up/",
            ],
            &sh(r#"tr A-Z a-z < "$1" > "$2""#, &["{}", "{out}"]),
        ));
        out.assert_ok();
        ran(&l.journal(journal))
    };
    assert_eq!(
        down("d1.jsonl"),
        ["s3://clean/up/a.csv", "s3://clean/up/b/b.csv"]
    );
    assert_eq!(
        fs::read_to_string(l.env.path("down/b/b.txt")).unwrap(),
        "bb\n"
    );
    let target = l.env.path("down/a.txt");
    assert_eq!(
        xattr(&target, "user.fanout.source").as_deref(),
        Some("s3://clean/up/a.csv")
    );
    let version = xattr(&target, "user.fanout.source-version").unwrap();
    let etag = l.s.head("clean", "up/a.csv").unwrap()["etag"]
        .as_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert!(version.contains(&etag), "{version} names {etag}");
    assert!(xattr(&target, "user.fanout.command").is_some());
    assert_eq!(down("d2.jsonl"), Vec::<String>::new());
    l.put("clean", "up/a.csv", "NEW\n");
    assert_eq!(down("d3.jsonl"), ["s3://clean/up/a.csv"]);
    assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
    assert_eq!(down("d4.jsonl"), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// --resume

const APPEND: &str = r#"{ cat "$1"; echo appended; } > "$2""#;

/// Drops the file record of `path` from a journal (as a crash before its line would).
fn lose_line(l: &Lake, from: &str, to: &str, path: &str) {
    let text = fs::read_to_string(l.env.path(from)).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            !(v["type"] == "file" && v["path"] == path)
        })
        .collect();
    assert_eq!(kept.len() + 1, text.lines().count(), "{path} was in {from}");
    fs::write(l.env.path(to), kept.join("\n") + "\n").unwrap();
}

/// With -X each object of a batch has a short journal line; it carries the object's own ETag
/// and download, so `--resume` keys batched objects by URL, size and ETag as it does single
/// jobs (an object rewritten with the same size within the second of its listing reruns).
#[test]
fn a_batch_s_short_lines_carry_each_object_s_etag_for_resume() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    let keys: Vec<String> = (0..6).map(|n| format!("d/{n}.txt")).collect();
    let objects: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "body\n")).collect();
    l.put_all("lake", &objects);
    let stage = l.stage();
    let batched = |journals: &[&str]| {
        // One slot: the sizing rule puts several objects in a command.
        let mut a = vec!["-X", "-j", "1", "--stage-dir", &stage];
        a.extend_from_slice(journals);
        a.push("s3://lake/d/");
        l.run(&with(&a, &["--", "cat", "{}"]))
    };
    batched(&["--summary", "x.jsonl"]).assert_ok();
    let lines = journal_lines(l.env.path("x.jsonl"));
    let short: Vec<&Value> = lines
        .iter()
        .filter(|r| r["type"] == "file" && r["v"] == 2)
        .collect();
    assert!(!short.is_empty(), "no batch of several objects: {lines:?}");
    let etags = l.etags("lake");
    for r in &short {
        let key = r["path"].as_str().unwrap().trim_start_matches("s3://lake/");
        assert_eq!(r["etag"].as_str(), Some(etags[key].as_str()), "{r}");
        assert_eq!(int(r, "down_bytes"), 5, "{r}");
        assert!(r["down_ms"].is_u64(), "{r}");
    }
    let records = l.journal("x.jsonl");
    assert_eq!(ran(&records).len(), 6);
    for r in records.iter().filter(|r| r["type"] == "file") {
        let key = r["path"].as_str().unwrap().trim_start_matches("s3://lake/");
        assert_eq!(r["etag"].as_str(), Some(etags[key].as_str()), "{r}");
    }

    // Nothing changed: nothing runs. One object rewritten, same size: it alone runs.
    let out = batched(&["--resume", "x.jsonl", "--summary", "x2.jsonl"]);
    out.assert_ok().assert_stdout_empty();
    l.put("lake", "d/3.txt", "BODY\n");
    let out = batched(&["--resume", "x.jsonl", "--summary", "x3.jsonl"]);
    out.assert_ok().assert_stdout_lines(&["BODY"]);
    assert_eq!(ran(&l.journal("x3.jsonl")), ["s3://lake/d/3.txt"]);
}

#[test]
fn resume_after_a_lost_journal_line_runs_nothing_twice() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    l.s.mkbucket("clean");
    l.put_all(
        "lake",
        &[
            ("data/a.txt", "a\n"),
            ("data/b.txt", "b\n"),
            ("data/c.txt", "c\n"),
        ],
    );
    let stage = l.stage();
    // In place: the job appends a line; twice would show.
    let inplace = |resume: Option<&str>, journal: &str| {
        let mut args = vec!["-i", "--stage-dir", &stage, "--summary", journal];
        if let Some(r) = resume {
            args.extend(["--resume", r]);
        }
        args.push("s3://lake/data/");
        let out = l.run(&with(&args, &sh(APPEND, &["{}", "{out}"])));
        out.assert_ok();
        ran(&l.journal(journal))
    };
    assert_eq!(inplace(None, "1.jsonl").len(), 3);
    lose_line(&l, "1.jsonl", "1-lost.jsonl", "s3://lake/data/b.txt");
    assert_eq!(
        inplace(Some("1-lost.jsonl"), "2.jsonl"),
        Vec::<String>::new()
    );
    let second = statuses(&l.journal("2.jsonl"));
    assert!(second.values().all(|s| s == "skipped"), "{second:?}");
    // The whole journal: nothing either.
    assert_eq!(inplace(Some("1.jsonl"), "3.jsonl"), Vec::<String>::new());
    let now = l.texts("lake");
    for k in ["a", "b", "c"] {
        assert_eq!(now[&format!("data/{k}.txt")], format!("{k}\nappended\n"));
    }
    // An object changed by someone since is run again (once).
    l.put("lake", "data/c.txt", "c2\n");
    assert_eq!(
        inplace(Some("3.jsonl"), "4.jsonl"),
        ["s3://lake/data/c.txt"]
    );
    assert_eq!(l.text("lake", "data/c.txt"), "c2\nappended\n");

    // To another bucket: the target's provenance proves the job done.
    let out_run = |resume: Option<&str>, journal: &str| {
        let mut args = vec![
            "-o",
            "s3://clean/{rel}",
            "--stage-dir",
            &stage,
            "--summary",
            journal,
        ];
        if let Some(r) = resume {
            args.extend(["--resume", r]);
        }
        args.push("s3://lake/data/");
        let out = l.run(&with(&args, &sh(APPEND, &["{}", "{out}"])));
        out.assert_ok();
        ran(&l.journal(journal))
    };
    assert_eq!(out_run(None, "o1.jsonl").len(), 3);
    lose_line(&l, "o1.jsonl", "o1-lost.jsonl", "s3://lake/data/a.txt");
    assert_eq!(
        out_run(Some("o1-lost.jsonl"), "o2.jsonl"),
        Vec::<String>::new()
    );
    assert_eq!(l.text("clean", "a.txt"), "a\nappended\nappended\n");
}

/// A Python process with the server's environment: for each bucket name on a line of its
/// input, one JSON line: every object of the bucket as key → whether its bytes are the `old`
/// or the `new` ones (else "other:LENGTH:TAIL"). One process, so checks are quick.
const CLASSIFY: &str = r#"
import boto3, botocore.config, hashlib, json, os, sys
c = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1",
    config=botocore.config.Config(s3={"addressing_style": "path"}))
for line in sys.stdin:
  bucket = line.strip()
  out = {}
  for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        body = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        n = int(o["Key"].split("/")[-1].split(".")[0])
        old = bytes([48 + n % 10]) * (1 << 20)
        if body == old:
            out[o["Key"]] = "old"
        elif body == old + b"done\n":
            out[o["Key"]] = "new"
        else:
            out[o["Key"]] = "other:%d:%s" % (len(body), body[-12:])
  print(json.dumps(out), flush=True)
"#;

struct Classify {
    child: std::process::Child,
    answers: std::io::BufReader<std::process::ChildStdout>,
}

impl Classify {
    fn start(l: &Lake) -> Classify {
        let mut cmd = Command::new(servers::python().unwrap());
        cmd.args(["-c", CLASSIFY])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        l.s.apply(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let answers = std::io::BufReader::new(child.stdout.take().unwrap());
        Classify { child, answers }
    }

    fn bucket(&mut self, bucket: &str) -> BTreeMap<String, String> {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{bucket}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

impl Drop for Classify {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kill_9_mid_upload_never_shows_a_partial_object_and_resume_completes() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("big");
    let count = 16;
    let keys: Vec<String> = (0..count).map(|n| format!("d/{n}.bin")).collect();
    let bodies: Vec<String> = (0..count)
        .map(|n| {
            char::from(b'0' + (n % 10) as u8)
                .to_string()
                .repeat(1 << 20)
        })
        .collect();
    let objects: Vec<(&str, &str)> = keys
        .iter()
        .map(String::as_str)
        .zip(bodies.iter().map(String::as_str))
        .collect();
    l.put_all("big", &objects);
    let mut keys = keys.clone();
    keys.sort();
    let mut classify = Classify::start(&l);
    let stage = l.stage();
    let script = r#"sleep 0.1; { cat "$1"; echo done; } > "$2""#;
    let args = |resume: Option<&str>, journal: &str| -> Vec<String> {
        let mut a: Vec<String> = ["-i", "-j", "2", "--stage-dir", &stage, "--summary", journal]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        if let Some(r) = resume {
            a.extend(["--resume".to_string(), r.to_string()]);
        }
        a.push("s3://big/d/".into());
        a.extend(
            sh(script, &["{}", "{out}"])
                .iter()
                .map(|s| (*s).to_string()),
        );
        a
    };
    let started = Instant::now();
    let mut resume: Option<String> = None;
    let mut kills = 0;
    // Rounds killed after some objects were replaced and before all were.
    let (mut done, mut cut_short) = (0, 0);
    for round in 0..10 {
        let journal = format!("k{round}.jsonl");
        let argv = args(resume.as_deref(), &journal);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut running = l.spawn(&argv);
        // Kill once the run has replaced an object (so each round gets on), a varying moment
        // later: during downloads, jobs and uploads of the next objects.
        let path = l.env.path(&journal);
        let replaced = || fs::read_to_string(&path).is_ok_and(|j| j.contains(r#""status":"ok""#));
        wait_until(Duration::from_secs(10), || {
            replaced() || running.has_exited()
        });
        std::thread::sleep(Duration::from_millis(round * 23 % 120));
        if !running.has_exited() {
            running.signal("KILL");
            kills += 1;
        }
        let out = running.wait();
        let states = classify.bucket("big");
        assert_eq!(
            states.keys().cloned().collect::<Vec<_>>(),
            keys,
            "no other key appears (round {round}):{}",
            out.dump()
        );
        for (key, state) in &states {
            assert!(
                state == "old" || state == "new",
                "round {round}: {key} is {state}"
            );
        }
        let new = states.values().filter(|s| *s == "new").count();
        if new > done && new < count {
            cut_short += 1;
        }
        done = new;
        eprintln!("round {round}: {new} of {count} done");
        if l.env.path(&journal).exists() {
            resume = Some(journal);
        }
    }
    assert!(kills >= 5, "only {kills} runs were killed");
    assert!(cut_short >= 3, "only {cut_short} runs were killed mid-way");
    let argv = args(resume.as_deref(), "final.jsonl");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = l.run(&argv);
    out.assert_ok();
    let states = classify.bucket("big");
    assert!(
        states.values().all(|s| s == "new"),
        "every object transformed exactly once: {states:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the kill loop took {:?}",
        started.elapsed()
    );
}

/// A job that says it started (a file named after its object in `$3`), takes a moment, then
/// writes its input plus one line.
const ANNOUNCE_THEN_APPEND: &str =
    r#"touch "$3/$(basename "$1")"; sleep 0.4; { cat "$1"; echo appended; } > "$2""#;

/// The store dies (SIGKILL: connections refused) while jobs run: the affected jobs fail with
/// one line naming the store problem, after a few transfers in a row fail nothing new starts
/// (the rest are `not_started`, said once on stderr), the run exits 1 in bounded time, no
/// object is half-written; once the store is back, `--resume` finishes the run, each object
/// changed once.
#[test]
fn a_store_that_goes_away_mid_run_fails_its_jobs_and_resume_finishes_when_it_is_back() {
    let Some(mut l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    let count = 40;
    let keys: Vec<String> = (0..count).map(|n| format!("d/{n:02}.txt")).collect();
    let bodies: Vec<String> = (0..count).map(|n| format!("object {n}\n")).collect();
    let objects: Vec<(&str, &str)> = keys
        .iter()
        .map(String::as_str)
        .zip(bodies.iter().map(String::as_str))
        .collect();
    l.put_all("lake", &objects);
    let stage = l.stage();
    let sig = l.env.out_dir("sig");
    let args = |journals: &[&'static str]| -> Vec<String> {
        let mut a = vec!["-i", "-j", "2", "--stage-dir", &stage];
        a.extend_from_slice(journals);
        a.push("s3://lake/d/");
        a.extend(sh(ANNOUNCE_THEN_APPEND, &["{}", "{out}", &sig]));
        a.into_iter().map(str::to_string).collect()
    };
    let announced = || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&sig)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    let argv = args(&["--summary", "j1.jsonl"]);
    let mut running = l.spawn(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    // Some objects replaced, and a job running whose output is not written yet.
    let journal = l.env.path("j1.jsonl");
    let replaced =
        || fs::read_to_string(&journal).map_or(0, |j| j.matches(r#""status":"ok""#).count());
    let mid_run = wait_until(Duration::from_secs(20), || {
        let ok = replaced();
        ok >= 2 && announced().len() > ok
    });
    assert!(
        mid_run,
        "the run did not get going:{}",
        running.wait().dump()
    );
    l.s.kill();
    let killed = Instant::now();
    // Running::wait fails the test if fanout has not ended within its deadline.
    let out = running.wait();
    eprintln!(
        "the run ended {:?} after the store went away",
        killed.elapsed()
    );
    out.assert_code(1).assert_no_panic();
    let at_kill = announced();

    l.s.restart();
    let records = by_path(&l.journal("j1.jsonl"));
    let url = |key: &str| format!("s3://lake/{key}");
    let now = l.texts("lake");
    assert_eq!(
        now.keys().cloned().collect::<Vec<_>>(),
        keys,
        "no other key appears"
    );
    let mut failed = Vec::new();
    let mut not_started = 0;
    for (key, body) in keys.iter().zip(&bodies) {
        let r = records
            .get(&url(key))
            .unwrap_or_else(|| panic!("no record of {key}:{}", out.dump()));
        match r["status"].as_str().unwrap() {
            "ok" => assert_eq!(now[key], format!("{body}appended\n"), "{r}"),
            "failed" => {
                assert_eq!(
                    &now[key], body,
                    "a failed job leaves the object as it was: {r}"
                );
                let reason = r["reason"].as_str().unwrap_or_default();
                assert!(
                    !reason.contains('\n') && reason.contains("could not reach the store"),
                    "one line naming the store problem: {reason:?}"
                );
                failed.push(key.clone());
            }
            "not_started" => {
                assert_eq!(&now[key], body, "{r}");
                assert_eq!(
                    r["reason"], "not started: transfers in a row could not reach the store",
                    "{r}"
                );
                not_started += 1;
                failed.push(key.clone());
            }
            other => panic!("{key}: {other}: {r}"),
        }
    }
    let ok = count - failed.len();
    assert!(ok >= 2 && !failed.is_empty(), "{ok} ok, failed {failed:?}");
    // Nothing new started once the store was clearly gone: most of the 40 never tried.
    assert!(
        not_started >= count / 2,
        "{not_started} not started of {count}:{}",
        out.dump()
    );
    let told: Vec<String> = out
        .stderr_lines()
        .into_iter()
        .filter(|l| l.contains("transfers in a row could not reach the store"))
        .collect();
    assert_eq!(told.len(), 1, "said once:{}", out.dump());
    assert!(
        told[0].contains("starting nothing new") && told[0].contains("--resume"),
        "{told:?}"
    );
    // A job whose command had run when the store went away failed at its upload.
    let base = |key: &str| key.rsplit('/').next().unwrap().to_string();
    assert!(
        failed.iter().any(|k| at_kill.contains(&base(k))),
        "no job failed after its command ran: failed {failed:?}, started {at_kill:?}"
    );
    let fin = final_record(&l.journal("j1.jsonl"));
    assert_eq!(int(&fin, "ok"), ok as i64, "{fin}");
    assert_eq!(
        int(&fin, "failed"),
        (failed.len() - not_started) as i64,
        "{fin}"
    );
    assert_eq!(int(&fin, "not_started"), not_started as i64, "{fin}");
    assert_eq!(fin["stopped_by"], "store_unreachable", "{fin}");
    assert_eq!(l.staged_files(), Vec::<PathBuf>::new());

    // The store is back: resume runs exactly the failed jobs.
    fs::remove_dir_all(&sig).unwrap();
    fs::create_dir(&sig).unwrap();
    let argv = args(&["--resume", "j1.jsonl", "--summary", "j2.jsonl"]);
    let out = l.run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    out.assert_ok();
    let mut second: Vec<String> = ran(&l.journal("j2.jsonl"));
    second.sort();
    assert_eq!(
        second,
        failed.iter().map(|k| url(k)).collect::<Vec<_>>(),
        "{}",
        out.dump()
    );
    assert_eq!(
        announced(),
        failed.iter().map(|k| base(k)).collect::<Vec<_>>()
    );
    let now = l.texts("lake");
    for (key, body) in keys.iter().zip(&bodies) {
        assert_eq!(
            now[key],
            format!("{body}appended\n"),
            "{key}: one line appended"
        );
    }
    assert_eq!(l.staged_files(), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// Failing before any job: bucket, credentials, endpoint

#[test]
fn a_store_that_cannot_be_used_is_one_line_and_exit_2_before_any_job() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    l.put("lake", "data/a.csv", "a\n");
    let marker = l.env.path("ran");
    let marker = marker.to_str().unwrap();
    let touch = ["--", "touch", marker];
    let quick = Duration::from_secs(25);

    let out = l.run(&with(&["s3://no-such-bucket/data/"], &touch));
    let line = assert_one_line_exit_2(&out, quick);
    assert!(line.contains("no-such-bucket"), "{line}");

    let mut bad = l.cmd(&with(&["s3://lake/data/"], &touch));
    bad.env("AWS_SECRET_ACCESS_KEY", "wrong-secret");
    let out = run_command(bad, None);
    let line = assert_one_line_exit_2(&out, quick);
    assert!(line.contains("s3://lake"), "{line}");

    // Nothing to sign with, and no instance credentials to look for.
    let mut none = l.cmd(&with(&["s3://lake/data/"], &touch));
    none.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run_command(none, None);
    assert_one_line_exit_2(&out, quick);

    // A closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut gone = l.cmd(&with(&["s3://lake/data/"], &touch));
    gone.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    let out = run_command(gone, None);
    let line = assert_one_line_exit_2(&out, quick);
    assert!(line.contains("s3://lake"), "{line}");

    assert!(!Path::new(marker).exists(), "no job ran");

    // The same keys through an AWS profile (config and credentials files) work.
    l.env.write(
        "aws/config",
        format!(
            "[profile lake]\nregion = us-east-1\nendpoint_url = {}\n",
            l.s.endpoint()
        ),
    );
    l.env.write(
        "aws/credentials",
        format!(
            "[lake]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            l.s.access_key(),
            l.s.secret_key()
        ),
    );
    let mut profile = l.cmd(&["s3://lake/data/", "--", "echo", "{url}"]);
    profile
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env("AWS_PROFILE", "lake")
        .env("AWS_CONFIG_FILE", l.env.path("aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", l.env.path("aws/credentials"));
    let out = run_command(profile, None);
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["s3://lake/data/a.csv"]);
}

/// A key with a `..` segment cannot make `{rel}` climb out of `-o`'s directory: such keys are
/// refused by the listing (one line naming the key, exit 2 before any job), and nothing is
/// written anywhere.
#[test]
fn a_key_with_a_dot_dot_segment_never_writes_outside_the_output_directory() {
    let Some(l) = Lake::on(Moto::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    l.put_all(
        "lake",
        &[
            ("data/ok.txt", "ok\n"),
            ("data/x/../../../escape.txt", "x\n"),
        ],
    );
    l.env.mkdir("w/out");
    let out = l.run(&with(
        &["-o", "w/out/{rel}", "s3://lake/data/"],
        &["--", "cp", "{}", "{out}"],
    ));
    out.assert_code(2).assert_no_panic();
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.dump());
    out.assert_stderr_contains("..");
    let written: Vec<PathBuf> = l
        .env
        .list_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    assert_eq!(written, Vec::<PathBuf>::new(), "{}", out.dump());
}

/// The probe's sweep of stale probe objects (src/remote/store.rs, `stale_probe`) deletes
/// only keys named exactly as a probe is that both their name and the store say are over an
/// hour old: a probe of another run going on, a key old by its name alone (the store says it
/// was written now: the writer's clock was wrong) and the user's keys that merely begin like
/// a probe's all stay. (A key the store says is an hour old cannot be made here.)
#[test]
fn the_probe_s_sweep_leaves_what_is_not_a_stale_probe() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let kept = [
        format!("data/.fanout-probe-{now}-4243-00000000000000bb"),
        "data/.fanout-probe-1700000000-4242-00000000000000aa".to_string(),
        "data/.fanout-probe-notes.txt".to_string(),
        "data/.fanout-probe-dir/1700000000-4242-00000000000000aa".to_string(),
    ];
    let mut objects: Vec<(&str, &str)> = kept.iter().map(|k| (k.as_str(), "x\n")).collect();
    objects.push(("data/a.csv", "a\n"));
    l.put_all("lake", &objects);
    let stage = l.stage();
    let out = l.run(&with(
        &["-i", "--stage-dir", &stage, "s3://lake/data/"],
        &sh(UPPER, &["{}", "{out}"]),
    ));
    out.assert_ok();
    let mut want: Vec<String> = kept.to_vec();
    want.push("data/a.csv".into());
    want.sort();
    let keys: Vec<String> = l.texts("lake").into_keys().collect();
    assert_eq!(
        keys, want,
        "nothing but the probe's own object came and went"
    );
    assert_eq!(l.text("lake", "data/a.csv"), "A\n");
}

/// fanout's own anonymous memory (its heap), read from /proc.
fn rss_anon(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A large output is sent from a mapping of the staged file, never read into fanout's own
/// memory: four uploads of 256 MiB at once would otherwise hold 1 GiB beside the jobs the
/// memory budget admitted.
#[test]
fn a_large_output_is_uploaded_without_holding_it_in_memory() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc to read fanout's memory from");
        return;
    }
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    l.put("lake", "big.bin", "small\n");
    let stage = l.stage();
    let size: u64 = 256 << 20;
    let mut running = l.spawn(&with(
        &[
            "-i",
            "--stage-dir",
            &stage,
            "--summary",
            "j.jsonl",
            "s3://lake/big.bin",
        ],
        &sh(
            r#"head -c "$2" /dev/zero > "$1""#,
            &["{out}", &size.to_string()],
        ),
    ));
    let mut peak = 0;
    while !running.has_exited() {
        peak = peak.max(rss_anon(running.pid()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    running.wait().assert_ok();
    eprintln!("fanout's own memory peaked at {} MiB", peak >> 20);
    let r = &by_path(&l.journal("j.jsonl"))["s3://lake/big.bin"];
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(int(r, "up_bytes") as u64, size, "{r}");
    let listed = l.s.ls("lake", "");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["size"].as_u64(), Some(size), "{listed:?}");
    assert!(
        peak < 96 << 20,
        "fanout held {} MiB of its own while uploading {} MiB",
        peak >> 20,
        size >> 20
    );
}

// ---------------------------------------------------------------------------------------------
// Dry run

#[test]
fn a_dry_run_says_what_it_would_move_and_writes_nothing() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    l.s.mkbucket("clean");
    l.put_all("lake", &[("data/a.csv", "a\n"), ("data/b.csv", "b\n")]);
    l.put("clean", "b.csv", "old\n");
    let before = (l.etags("lake"), l.etags("clean"), l.s.buckets());
    let stage = l.stage();

    let out = l.run(&with(
        &["-n", "-i", "--stage-dir", &stage, "s3://lake/data/"],
        &sh(UPPER, &["{}", "{out}"]),
    ));
    out.assert_ok();
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 2, "{}", out.dump());
    // Ignore files do not apply to keys: the plan does not claim them.
    out.assert_stderr_contains("dry run: 2 jobs")
        .assert_stderr_lacks(".gitignore");
    for (line, key) in lines.iter().zip(["a.csv", "b.csv"]) {
        let url = format!("s3://lake/data/{key}");
        assert!(
            line.contains(&format!("# after downloading '{url}'")),
            "{line}"
        );
        assert!(
            line.contains(&format!("# then uploads to '{url}'")),
            "{line}"
        );
    }

    let out = l.run(&with(
        &["-n", "-o", "s3://clean/{rel}", "s3://lake/data/"],
        &sh(r#"echo "$1" > "$2""#, &["{url}", "{out}"]),
    ));
    out.assert_ok();
    let text = out.stdout_str();
    assert!(!text.contains("after downloading"), "only {{url}}: {text}");
    assert!(
        text.contains("# then uploads to 's3://clean/a.csv'"),
        "{text}"
    );
    assert!(
        text.contains("# then uploads to 's3://clean/b.csv'"),
        "{text}"
    );

    let after = (l.etags("lake"), l.etags("clean"), l.s.buckets());
    assert_eq!(before, after, "no write, no probe object left");
    assert_eq!(l.staged_files(), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// A store that ignores conditions: rclone serve s3

struct Rclone {
    child: std::process::Child,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Drop for Rclone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rclone {
    fn start() -> Option<Rclone> {
        let rclone = servers::program("rclone");
        if rclone.is_none() {
            assert!(!crate::harness::in_ci(), "rclone is required under CI=true");
            eprintln!("skipped: rclone tests need rclone (bash .ci/servers.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("root/lake/data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(rclone.unwrap())
            .args(["serve", "s3", "--config", "/dev/null", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--auth-key", "rclone-test-key,rclone-test-secret"])
            .arg(dir.path().join("root"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "rclone-test-key"),
            ("AWS_SECRET_ACCESS_KEY", "rclone-test-secret"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        let r = Rclone { child, dir, env };
        let up = wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "rclone serve s3 did not come up");
        Some(r)
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root").join(rel)
    }
}

#[test]
fn a_store_that_ignores_conditions_is_refused_unless_allowed() {
    let Some(r) = Rclone::start() else {
        return;
    };
    fs::write(r.file("lake/data/a.csv"), "alpha\n").unwrap();
    let env = TestEnv::new(&["stage"], &[]);
    let stage = env.path("stage").display().to_string();
    let cmd = |extra: &[&str]| {
        let mut args = vec!["-i", "--stage-dir", &stage];
        args.extend_from_slice(extra);
        args.push("s3://lake/data/");
        args.extend(sh(UPPER, &["{}", "{out}"]));
        let mut c = env.command(&args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("AWS_CONFIG_FILE", env.path("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", env.path("none"))
            .envs(r.env.iter().map(|(k, v)| (k, v)));
        c
    };
    let out = run_command(cmd(&[]), None);
    let line = assert_one_line_exit_2(&out, Duration::from_secs(25));
    assert!(line.contains("--allow-unconditional"), "{line}");
    assert_eq!(
        fs::read_to_string(r.file("lake/data/a.csv")).unwrap(),
        "alpha\n"
    );
    let left: Vec<_> = fs::read_dir(r.file("lake/data")).unwrap().collect();
    assert_eq!(left.len(), 1, "the probe object is deleted again");

    let out = run_command(cmd(&["--allow-unconditional"]), None);
    out.assert_ok();
    assert_eq!(
        fs::read_to_string(r.file("lake/data/a.csv")).unwrap(),
        "ALPHA\n"
    );

    // Reading alone needs no probe: a listing runs.
    let mut list = env.command(&["s3://lake/data/", "--", "echo", "{url}"]);
    list.envs(r.env.iter().map(|(k, v)| (k, v)))
        .env("AWS_CONFIG_FILE", env.path("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", env.path("none"));
    let out = run_command(list, None);
    out.assert_ok();
    assert_eq!(out.stdout_lines(), ["s3://lake/data/a.csv"]);
}

// ---------------------------------------------------------------------------------------------
// Azure (Azurite)

#[test]
fn azure_containers_list_and_take_conditional_writes() {
    let Some(l) = Lake::on(Azurite::start()) else {
        return;
    };
    l.s.mkbucket("lake");
    l.s.mkbucket("clean");
    l.put("lake", "data/a.csv", "alpha\n");
    l.put("lake", "data/sub/b.csv", "beta\n");
    l.put("lake", "data2/z.csv", "zed\n");
    let out = l.run(&["az://lake/data", "--", "echo", "{url}", "{rel}"]);
    out.assert_ok();
    assert_eq!(
        sorted_lines(&out),
        [
            "az://lake/data/a.csv a.csv",
            "az://lake/data/sub/b.csv sub/b.csv"
        ]
    );
    let stage = l.stage();
    let go = |journal: &str| {
        let out = l.run(&with(
            &[
                "-u",
                "-o",
                "az://clean/{rel}",
                "--stage-dir",
                &stage,
                "--summary",
                journal,
                "az://lake/data/",
            ],
            &sh(UPPER, &["{}", "{out}"]),
        ));
        out.assert_ok();
        ran(&l.journal(journal))
    };
    assert_eq!(go("1.jsonl").len(), 2);
    assert_eq!(l.text("clean", "sub/b.csv"), "BETA\n");
    let head = l.s.head("clean", "a.csv").unwrap();
    // Azure names metadata with C# identifiers: `fanout_source`.
    assert_eq!(
        head["metadata"]["fanout_source"], "az://lake/data/a.csv",
        "{head}"
    );
    assert_eq!(go("2.jsonl"), Vec::<String>::new());

    // In place, with a second writer meanwhile.
    let args = [
        "-i",
        "--stage-dir",
        &stage,
        "--summary",
        "i.jsonl",
        "az://lake/data/",
    ];
    let out = race(&l, &args, 2, || {
        l.put("lake", "data/a.csv", "other\n");
    });
    out.assert_code(1);
    assert_eq!(l.text("lake", "data/a.csv"), "other\n");
    assert_eq!(l.text("lake", "data/sub/b.csv"), "BETA\n");
    assert_eq!(
        statuses(&l.journal("i.jsonl")),
        BTreeMap::from([
            ("az://lake/data/a.csv".to_string(), "conflict".to_string()),
            ("az://lake/data/sub/b.csv".to_string(), "ok".to_string()),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Staging space

/// A small tmpfs (we run as root in CI; elsewhere the test skips), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> Option<SmallDisk> {
        fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: mounting a small tmpfs for --stage-dir needs root");
            return None;
        }
        Some(SmallDisk(at))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn staging_space_is_admitted_and_an_object_too_large_for_it_fails_clearly() {
    let Some(l) = Lake::on(SeaweedFs::start()) else {
        return;
    };
    let Some(disk) = SmallDisk::mount(l.env.path("small"), "4m") else {
        return;
    };
    l.s.mkbucket("lake");
    let mid = "m".repeat(1536 << 10);
    let big = "b".repeat(3 << 20);
    l.put_all(
        "lake",
        &[("d/a.txt", &mid), ("d/b.txt", &mid), ("d/big.txt", &big)],
    );
    let stage = disk.0.display().to_string();
    // Two jobs of 1.5 MB objects each hold 3 MB (object and output) of 3.8 MB: they take
    // turns; the 3 MB object can never fit.
    let out = l.run(&with(
        &[
            "-i",
            "-j",
            "2",
            "--transfers",
            "1",
            "--stage-dir",
            &stage,
            "--summary",
            "j.jsonl",
            "s3://lake/d/",
        ],
        &sh(UPPER, &["{}", "{out}"]),
    ));
    out.assert_code(1).assert_no_panic();
    let records = by_path(&l.journal("j.jsonl"));
    assert_eq!(records["s3://lake/d/a.txt"]["status"], "ok");
    assert_eq!(records["s3://lake/d/b.txt"]["status"], "ok");
    let failed = &records["s3://lake/d/big.txt"];
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("of staging space") && reason.contains("--stage-dir"),
        "{reason}"
    );
    let now = l.texts("lake");
    assert_eq!(now["d/a.txt"], "M".repeat(1536 << 10));
    assert_eq!(
        now["d/big.txt"], big,
        "the object too large is left as it was"
    );
}

// ---------------------------------------------------------------------------------------------
// Local paths that only start like a URL's scheme

/// Telling a URL from a local path must not trip over a multi-byte character where a scheme
/// would end (`s3://` is 5 bytes, `é` straddles bytes 5 and 6 of `d/caf…`). No server needed.
#[test]
fn local_paths_with_multibyte_characters_are_not_mistaken_for_urls() {
    let env = TestEnv::new(&[], &[("d/café.txt", "x\n"), ("ééé/a.txt", "y\n")]);
    let out = env.run_stdin(&["-", "--", "cat", "{}"], "d/café.txt\n".as_bytes());
    out.assert_ok().assert_no_panic();
    assert_eq!(out.stdout_lines(), ["x"]);
    let out = env.run(&["ééé", "--", "cat", "{}"]);
    out.assert_ok().assert_no_panic();
    assert_eq!(out.stdout_lines(), ["y"]);
}
