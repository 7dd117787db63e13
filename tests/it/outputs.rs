//! New datasets from old ones (`-o TEMPLATE`, `{rel}`, `{rel.}`, `-u`): a target is absent, the
//! previous complete version or the new verified one; collisions stop the run before anything
//! ran; one run's targets are never the next run's inputs; make's freshness rule.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;
use crate::pq;

/// `raw/` as a small hive-partitioned CSV dataset: two partitions, each with `part-0.csv`.
fn hive() -> TestEnv {
    TestEnv::new(
        &[],
        &[
            ("raw/year=2023/part-0.csv", "a,b\n1,2\n"),
            ("raw/year=2024/part-0.csv", "a,b\n3,4\n5,6\n"),
            ("raw/year=2024/part-1.csv", "a,b\n7,8\n"),
        ],
    )
}

fn temporaries(env: &TestEnv) -> Vec<PathBuf> {
    env.list_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".fanout-"))
        .collect()
}

fn summary_of(env: &TestEnv, name: &str) -> Vec<serde_json::Value> {
    file_records(&read_summary(env.path(name)))
}

fn by_path<'a>(records: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("no record for {path} in {records:?}"))
}

#[test]
fn mirrored_targets_are_created_then_replaced() {
    let env = hive();
    let args = [
        "--summary",
        "s.jsonl",
        "raw",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "cp",
        "{}",
        "{out}",
    ];
    env.run(&args).assert_ok();
    assert_eq!(
        fs::read_to_string(env.path("clean/year=2024/part-0.txt")).unwrap(),
        "a,b\n3,4\n5,6\n"
    );
    let records = summary_of(&env, "s.jsonl");
    assert_eq!(records.len(), 3);
    let r = by_path(&records, "raw/year=2023/part-0.csv");
    assert_eq!(r["output"], "clean/year=2023/part-0.txt");
    assert_eq!(r["action"], "created");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["verify"], "exists");
    // Without -u every input runs again, and replaces its target.
    env.run(&args).assert_ok();
    let records = summary_of(&env, "s.jsonl");
    assert!(
        records.iter().all(|r| r["action"] == "replaced"),
        "{records:?}"
    );
    assert!(temporaries(&env).is_empty(), "{:?}", temporaries(&env));
}

#[test]
fn collisions_stop_the_run_before_anything_ran() {
    let env = hive();
    let out = env.run(&[
        "raw",
        "-o",
        "flat/{/}",
        "--",
        "sh",
        "-c",
        "touch ran; cp \"$1\" \"$2\"",
        "sh",
        "{}",
        "{out}",
    ]);
    out.assert_code(2)
        .assert_stderr_contains("'raw/year=2023/part-0.csv' and 'raw/year=2024/part-0.csv' both write 'flat/part-0.csv'")
        .assert_stderr_contains("nothing was run");
    assert!(!env.exists("ran") && !env.exists("flat"));
    // The dry run finds them too.
    env.run(&["-n", "raw", "-o", "flat/{/}", "--", "cp", "{}", "{out}"])
        .assert_code(2)
        .assert_stdout_empty();
}

#[test]
fn a_target_that_is_an_input_is_a_collision() {
    let env = TestEnv::new(&[], &[("d/a.csv", "1\n"), ("d/a.txt", "2\n")]);
    env.run(&["d", "-o", "{.}.txt", "--", "cp", "{}", "{out}"])
        .assert_code(2)
        .assert_stderr_contains("'d/a.txt' (the target of 'd/a.csv') is an input");
    assert_eq!(fs::read_to_string(env.path("d/a.txt")).unwrap(), "2\n");
}

#[test]
fn placeholders_never_lead_a_relative_template_out_of_its_directory() {
    let env = TestEnv::new(&["w"], &[("x.csv", "1\n"), ("w/y.csv", "2\n")]);
    let abs = env.path("x.csv");
    let stdin = format!("../x.csv\n{}\ny.csv\n", abs.display());
    // {rel} of a path with `..` or an absolute one is its base name.
    let mut cmd = env.command(&["-", "-o", "out/{rel}", "--", "cp", "{}", "{out}"]);
    cmd.current_dir(env.path("w"));
    let out = run_command(cmd, Some(stdin.as_bytes()));
    out.assert_code(2)
        .assert_stderr_contains("both write 'out/x.csv'");
    let mut cmd = env.command(&["-", "-o", "out/{rel}", "--", "cp", "{}", "{out}"]);
    cmd.current_dir(env.path("w"));
    run_command(cmd, Some(b"../x.csv\ny.csv\n")).assert_ok();
    assert_eq!(fs::read_to_string(env.path("w/out/x.csv")).unwrap(), "1\n");
    assert_eq!(fs::read_to_string(env.path("w/out/y.csv")).unwrap(), "2\n");
    // {} bringing `..` into a template that begins with a directory: refused, nothing runs.
    let mut cmd = env.command(&[
        "-",
        "-o",
        "out/{}",
        "--",
        "sh",
        "-c",
        "touch ran",
        "sh",
        "{out}",
    ]);
    cmd.current_dir(env.path("w"));
    run_command(cmd, Some(b"../x.csv\n"))
        .assert_code(2)
        .assert_stderr_contains("holds `..`");
    assert!(!env.exists("w/ran") && !env.exists("x.csv/ran"));
}

#[test]
fn a_failing_job_leaves_the_previous_target_byte_identical() {
    let env = hive();
    env.write("clean/year=2023/part-0.txt", "previous\n");
    let out = env.run(&[
        "--summary",
        "s.jsonl",
        "raw",
        "-g",
        "year=2023/**",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "sh",
        "-c",
        "echo partial > \"$1\"; exit 3",
        "sh",
        "{out}",
    ]);
    out.assert_code(1);
    assert_eq!(
        fs::read_to_string(env.path("clean/year=2023/part-0.txt")).unwrap(),
        "previous\n"
    );
    let r = by_path(&summary_of(&env, "s.jsonl"), "raw/year=2023/part-0.csv").clone();
    assert_eq!(r["action"], "kept");
    assert_eq!(r["output"], "clean/year=2023/part-0.txt");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("target left as it was"),
        "{r}"
    );
    assert!(temporaries(&env).is_empty());
}

#[test]
fn parquet_targets_of_csv_inputs_are_checked_alone() {
    let env = hive();
    pq::write(&env.path("good.parquet"), &[1, 2, 3]);
    env.write("clean/year=2024/part-0.parquet", "previous");
    // Not parquet: kept out, the previous target stays.
    let out = env.run(&[
        "--summary",
        "s.jsonl",
        "raw",
        "-o",
        "clean/{rel.}.parquet",
        "--",
        "sh",
        "-c",
        "echo not parquet > \"$1\"",
        "sh",
        "{out}",
    ]);
    out.assert_code(1);
    let records = summary_of(&env, "s.jsonl");
    let r = by_path(&records, "raw/year=2024/part-0.csv");
    assert_eq!(r["status"], "invalid_output");
    assert!(
        r["verify"]
            .as_str()
            .unwrap()
            .starts_with("parquet (output only: the input is not parquet): "),
        "{r}"
    );
    assert_eq!(
        fs::read(env.path("clean/year=2024/part-0.parquet")).unwrap(),
        b"previous"
    );
    assert!(!env.exists("clean/year=2023/part-0.parquet"));
    // Sound parquet with rows passes; the record says what was compared.
    env.run(&[
        "--summary",
        "s.jsonl",
        "raw",
        "-o",
        "clean/{rel.}.parquet",
        "--",
        "cp",
        "good.parquet",
        "{out}",
    ])
    .assert_ok();
    let records = summary_of(&env, "s.jsonl");
    let r = by_path(&records, "raw/year=2024/part-0.csv");
    assert_eq!(r["action"], "replaced");
    assert_eq!(r["rows_out"], 3);
    assert_eq!(
        r["verify"],
        "parquet (output only: the input is not parquet)"
    );
    assert_eq!(
        by_path(&records, "raw/year=2023/part-0.csv")["action"],
        "created"
    );
    assert!(temporaries(&env).is_empty());
}

#[test]
fn parquet_inputs_are_compared_with_their_targets() {
    let env = TestEnv::new(&["d"], &[]);
    pq::write(&env.path("d/a.parquet"), &[3, 1, 2]);
    pq::write(&env.path("two.parquet"), &[1, 2]);
    env.run(&[
        "--summary",
        "s.jsonl",
        "d",
        "-o",
        "o/{rel}",
        "--",
        "cp",
        "{}",
        "{out}",
    ])
    .assert_ok();
    let r = by_path(&summary_of(&env, "s.jsonl"), "d/a.parquet").clone();
    assert_eq!(
        (r["rows_in"].as_i64(), r["rows_out"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(r["verify"], "parquet");
    let before = fs::read(env.path("o/a.parquet")).unwrap();
    env.run(&[
        "--summary",
        "s.jsonl",
        "d",
        "-o",
        "o/{rel}",
        "--",
        "cp",
        "two.parquet",
        "{out}",
    ])
    .assert_code(1);
    let r = by_path(&summary_of(&env, "s.jsonl"), "d/a.parquet").clone();
    assert_eq!(r["status"], "invalid_output");
    assert_eq!(fs::read(env.path("o/a.parquet")).unwrap(), before);
}

/// Sets a file's modification time to `2024-01-01 00:00:00.000000NNN`.
fn set_mtime_ns(path: &Path, ns: u32) {
    let out = std::process::Command::new("touch")
        .arg("-d")
        .arg(format!("2024-01-01 00:00:00.{ns:09}"))
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn update_follows_make_to_the_nanosecond() {
    let env = hive();
    let args = [
        "-u",
        "--summary",
        "s.jsonl",
        "raw",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "cp",
        "{}",
        "{out}",
    ];
    env.run(&args).assert_ok();
    assert!(summary_of(&env, "s.jsonl")
        .iter()
        .all(|r| r["action"] == "created"));
    env.run(&args).assert_ok();
    let records = summary_of(&env, "s.jsonl");
    for r in &records {
        assert_eq!(
            (&r["status"], &r["reason"], &r["action"]),
            (
                &"skipped".into(),
                &"up to date".into(),
                &"up_to_date".into()
            ),
            "{r}"
        );
    }
    assert_eq!(
        final_record(&read_summary(env.path("s.jsonl")))["skipped"],
        3
    );
    // One nanosecond newer than its target: stale. The same time: stale too (a coarse clock
    // stamps an edit in the same tick as the commit with the commit's time).
    set_mtime_ns(&env.path("clean/year=2023/part-0.txt"), 1);
    set_mtime_ns(&env.path("raw/year=2023/part-0.csv"), 2);
    set_mtime_ns(&env.path("clean/year=2024/part-0.txt"), 5);
    set_mtime_ns(&env.path("raw/year=2024/part-0.csv"), 5);
    env.run(&args).assert_ok();
    let records = summary_of(&env, "s.jsonl");
    assert_eq!(
        by_path(&records, "raw/year=2023/part-0.csv")["action"],
        "replaced"
    );
    assert_eq!(
        by_path(&records, "raw/year=2024/part-0.csv")["action"],
        "replaced"
    );
    // Target one nanosecond newer than its input: up to date.
    set_mtime_ns(&env.path("clean/year=2024/part-0.txt"), 6);
    env.run(&args).assert_ok();
    assert_eq!(
        by_path(&summary_of(&env, "s.jsonl"), "raw/year=2024/part-0.csv")["action"],
        "up_to_date"
    );
    // A missing target is stale.
    fs::remove_file(env.path("clean/year=2024/part-1.txt")).unwrap();
    let dry = env.run(&[&["-n"][..], &args[..]].concat());
    dry.assert_ok()
        .assert_stderr_contains("-u: 1 input stale (listed above), 2 up to date (not listed)");
    let lines = dry.stdout_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("cp 'raw/year=2024/part-1.csv' 'clean/year=2024/.part-1.fanout-")
            && lines[0].contains("  # then writes 'clean/year=2024/part-1.txt'"),
        "{}",
        lines[0]
    );
    assert!(!env.exists("clean/year=2024/part-1.txt"));
    env.run(&["-u", "x"]).assert_code(2);
}

#[test]
fn targets_inside_a_walked_root_are_not_inputs() {
    let env = hive();
    let args = [
        "--summary",
        "../s.jsonl",
        ".",
        "-o",
        "out/{rel}.copy",
        "--",
        "cp",
        "{}",
        "{out}",
    ];
    let mut cmd = env.command(&args);
    cmd.current_dir(env.path("raw"));
    run_command(cmd, None).assert_ok();
    let mut cmd = env.command(&args);
    cmd.current_dir(env.path("raw"));
    run_command(cmd, None).assert_ok();
    let records = summary_of(&env, "s.jsonl");
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(env.exists("raw/out/year=2024/part-1.csv.copy"));
    assert!(!env.exists("raw/out/out"));
}

#[test]
fn retries_start_from_an_empty_out_and_timeouts_write_nothing() {
    let env = TestEnv::new(&[], &[("d/a.csv", "1\n")]);
    // The first attempt leaves a partial {out} and fails; the second must not find it.
    let script = "if [ -e \"$1\" ]; then exit 9; fi; if [ ! -e tried ]; then touch tried; \
                  echo partial > \"$1\"; exit 1; fi; cp \"$2\" \"$1\"";
    env.run(&[
        "--summary",
        "s.jsonl",
        "--retries",
        "1",
        "d",
        "-o",
        "o/{rel}",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        "{out}",
        "{}",
    ])
    .assert_ok();
    let r = by_path(&summary_of(&env, "s.jsonl"), "d/a.csv").clone();
    assert_eq!(
        (r["attempts"].as_u64(), &r["action"]),
        (Some(2), &"created".into())
    );
    assert_eq!(fs::read_to_string(env.path("o/a.csv")).unwrap(), "1\n");
    env.run(&[
        "--summary",
        "s.jsonl",
        "--timeout",
        "0.3",
        "--kill-grace",
        "0",
        "d",
        "-o",
        "t/{rel}",
        "--",
        "sh",
        "-c",
        "echo partial > \"$1\"; sleep 30",
        "sh",
        "{out}",
    ])
    .assert_code(1);
    let r = by_path(&summary_of(&env, "s.jsonl"), "d/a.csv").clone();
    assert_eq!(
        (&r["status"], &r["action"]),
        (&"timeout".into(), &"kept".into())
    );
    assert!(!env.exists("t/a.csv"));
    assert!(temporaries(&env).is_empty(), "{:?}", temporaries(&env));
}

#[test]
fn resume_reruns_only_what_failed() {
    let env = hive();
    let run = |cmd: &str| {
        env.run(&[
            "--summary",
            "s.jsonl",
            "--resume",
            "s.jsonl",
            "raw",
            "-o",
            "c/{rel}",
            "--",
            "sh",
            "-c",
            cmd,
            "sh",
            "{}",
            "{out}",
        ])
    };
    env.write("s.jsonl", "");
    run("case $1 in *part-1*) exit 1;; esac; cp \"$1\" \"$2\"").assert_code(1);
    run("echo \"$1\" >> ran; cp \"$1\" \"$2\"").assert_ok();
    assert_eq!(
        fs::read_to_string(env.path("ran")).unwrap(),
        "raw/year=2024/part-1.csv\n"
    );
    assert!(env.exists("c/year=2024/part-1.csv"));
}

#[test]
fn a_killed_run_leaves_targets_whole_and_the_next_run_sweeps_its_temporary() {
    let env = hive();
    env.write("clean/year=2023/part-0.txt", "previous\n");
    let mut running = env.spawn(&[
        "-j",
        "1",
        "raw",
        "-g",
        "year=2023/**",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "sh",
        "-c",
        "echo $$ > job.pid; echo partial > \"$1\"; exec sleep 30",
        "sh",
        "{out}",
    ]);
    assert!(wait_until(Duration::from_secs(10), || {
        env.exists("job.pid") && temporaries(&env).len() == 1
    }));
    running.signal("KILL");
    // The job outlives fanout (it holds the test's pipes): stop it too.
    let pid = fs::read_to_string(env.path("job.pid")).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status();
    running.wait();
    assert_eq!(temporaries(&env).len(), 1);
    assert_eq!(
        fs::read_to_string(env.path("clean/year=2023/part-0.txt")).unwrap(),
        "previous\n"
    );
    // The target is older than its input: -u runs it, after sweeping the dead run's file.
    set_mtime_ns(&env.path("clean/year=2023/part-0.txt"), 0);
    env.run(&[
        "-u",
        "raw",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "cp",
        "{}",
        "{out}",
    ])
    .assert_ok()
    .assert_stderr_contains("removed 1 temporary file");
    assert!(temporaries(&env).is_empty(), "{:?}", temporaries(&env));
    assert_eq!(
        fs::read_to_string(env.path("clean/year=2023/part-0.txt")).unwrap(),
        "a,b\n1,2\n"
    );
}

#[test]
fn output_templates_are_checked_at_start() {
    let env = hive();
    for (args, says) in [
        (
            &["raw", "-o", "c/{rel}", "--", "cp", "{}", "x"][..],
            "{out}",
        ),
        (
            &["raw", "-o", "c/{%}", "--", "cp", "{}", "{out}"][..],
            "{%}",
        ),
        (
            &["raw", "-o", "c/", "--", "cp", "{}", "{out}"][..],
            "names a directory",
        ),
        (
            &["raw", "-i", "-o", "c/{rel}", "--", "cp", "{}", "{out}"][..],
            "cannot be used with",
        ),
        (
            &["raw", "--verify", "parquet", "--", "true"][..],
            "--verify goes with",
        ),
    ] {
        env.run(args).assert_code(2).assert_stderr_contains(says);
    }
    assert!(!env.exists("c"));
}

#[test]
fn a_link_at_the_target_is_replaced_never_written_through() {
    let env = TestEnv::new(&["o"], &[("d/a.csv", "new\n"), ("victim", "keep\n")]);
    env.symlink(env.path("victim"), "o/a.csv");
    env.run(&["d", "-o", "o/{rel}", "--", "cp", "{}", "{out}"])
        .assert_ok();
    assert_eq!(fs::read_to_string(env.path("victim")).unwrap(), "keep\n");
    let md = fs::symlink_metadata(env.path("o/a.csv")).unwrap();
    assert!(md.is_file(), "the target is a file of its own now");
    assert_eq!(fs::read_to_string(env.path("o/a.csv")).unwrap(), "new\n");
}

#[test]
fn a_target_that_is_not_utf8_is_recorded_exactly() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new(&[], &[]);
    env.write_bytes_name(b"d/caf\xe9 'x'.csv", "1\n");
    env.run(&[
        "--summary",
        "s.jsonl",
        "d",
        "-o",
        "o/{rel.}.txt",
        "--",
        "cp",
        "{}",
        "{out}",
    ])
    .assert_ok();
    let records = summary_of(&env, "s.jsonl");
    let b64 = records[0]["output_b64"].as_str().expect("output_b64");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes, b"o/caf\xe9 'x'.txt");
    assert!(env.path(std::ffi::OsStr::from_bytes(&bytes)).is_file());
}

#[test]
fn an_out_written_as_a_directory_is_refused_and_removed() {
    let env = hive();
    env.run(&[
        "--summary",
        "s.jsonl",
        "raw",
        "-o",
        "c/{rel}",
        "--",
        "sh",
        "-c",
        "mkdir \"$1\" && echo x > \"$1/part\"",
        "sh",
        "{out}",
    ])
    .assert_code(1);
    let records = summary_of(&env, "s.jsonl");
    assert!(records
        .iter()
        .all(|r| r["status"] == "invalid_output" && r["action"] == "kept"));
    assert!(temporaries(&env).is_empty(), "{:?}", temporaries(&env));
    assert!(!env.exists("c/year=2024/part-0.csv"));
}

#[test]
fn two_runs_at_once_each_commit_whole_targets_and_an_in_place_run_waits() {
    let env = hive();
    let slow = [
        "-j",
        "3",
        "raw",
        "-o",
        "c/{rel}",
        "--",
        "sh",
        "-c",
        ": > \"$2\"; sleep 1; cp \"$1\" \"$2\"",
        "sh",
        "{}",
        "{out}",
    ];
    let mut first = env.spawn(&slow);
    let mut second = env.spawn(&slow);
    // While the -o runs read the inputs (shared locks), an in-place run does not start on them.
    assert!(wait_until(Duration::from_secs(10), || temporaries(&env)
        .len()
        >= 4));
    let in_place = env.run(&[
        "--summary",
        "i.jsonl",
        "-i",
        "raw",
        "--",
        "cp",
        "{}",
        "{out}",
    ]);
    first.wait().assert_ok();
    second.wait().assert_ok();
    let records = summary_of(&env, "i.jsonl");
    let locked = records
        .iter()
        .filter(|r| {
            r["status"] == "not_started"
                && r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("making a new file from it")
        })
        .count();
    assert!(locked >= 2, "{records:?}\n{}", in_place.dump());
    for (input, target) in [
        ("raw/year=2023/part-0.csv", "c/year=2023/part-0.csv"),
        ("raw/year=2024/part-1.csv", "c/year=2024/part-1.csv"),
    ] {
        assert_eq!(
            fs::read(env.path(input)).unwrap(),
            fs::read(env.path(target)).unwrap()
        );
    }
    assert!(temporaries(&env).is_empty(), "{:?}", temporaries(&env));
}

#[test]
fn a_target_directory_swapped_for_a_link_while_the_job_runs_gets_nothing() {
    let env = TestEnv::new(&["elsewhere"], &[("d/a.csv", "1\n")]);
    // The job moves the target's directory away and puts a link to elsewhere/ in its place
    // before it writes {out}: the commit acts on the directory fanout opened, finds no {out}
    // there, and writes nothing through the link.
    let swap = "mv o/sub o/moved && ln -s ../elsewhere o/sub && cp \"$1\" \"$2\"";
    env.run(&[
        "--summary",
        "s.jsonl",
        "d",
        "-o",
        "o/sub/{rel}",
        "--",
        "sh",
        "-c",
        swap,
        "sh",
        "{}",
        "{out}",
    ])
    .assert_code(1);
    let r = by_path(&summary_of(&env, "s.jsonl"), "d/a.csv").clone();
    assert_eq!(
        (&r["status"], &r["action"]),
        (&"invalid_output".into(), &"kept".into()),
        "{r}"
    );
    assert!(!env.exists("elsewhere/a.csv") && !env.exists("o/moved/a.csv"));
}

#[test]
fn a_run_stopped_while_its_walk_is_held_exits_as_stopped() {
    let env = TestEnv::new(&[], &[("a/x.csv", "1\n"), ("b/x.csv", "2\n")]);
    // Colliding inputs, but standard input stays open: the walk is still held when SIGINT
    // comes, nothing runs, and the run ends as an interrupted one, not as a usage error.
    let out = env.sh(
        "( printf 'a/x.csv\\nb/x.csv\\n'; sleep 3 ) | \"$FANOUT\" - -o 'flat/{/}' -- cp {} {out} 2>err & \
         pid=$!; sleep 0.5; kill -INT $pid; wait $pid; echo \"rc=$?\"",
    );
    assert_eq!(out.stdout_str().trim(), "rc=130", "{}", out.dump());
    assert!(!env.exists("flat"));
}

#[test]
fn an_update_run_with_nothing_to_do_still_sweeps_a_dead_runs_temporary() {
    let env = hive();
    let mut running = env.spawn(&[
        "-j",
        "1",
        "raw",
        "-g",
        "year=2023/**",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "sh",
        "-c",
        "echo $$ > job.pid; echo partial > \"$1\"; exec sleep 30",
        "sh",
        "{out}",
    ]);
    assert!(wait_until(Duration::from_secs(10), || {
        env.exists("job.pid") && temporaries(&env).len() == 1
    }));
    running.signal("KILL");
    let pid = fs::read_to_string(env.path("job.pid")).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status();
    running.wait();
    // The target is made by other means (another run, or the killed run's command finishing
    // after a sweep): up to date, so no job will write in its directory again.
    env.write("clean/year=2023/part-0.txt", "a,b\n1,2\n");
    env.run(&[
        "-u",
        "raw",
        "-g",
        "year=2023/**",
        "-o",
        "clean/{rel.}.txt",
        "--",
        "cp",
        "{}",
        "{out}",
    ])
    .assert_ok()
    .assert_stderr_contains("removed 1 temporary file");
    assert!(temporaries(&env).is_empty(), "{:?}", temporaries(&env));
}

/// Only a regular file can be up to date: a directory (or a FIFO) at the target's name gets
/// the same record with `-u` as without it, never `skipped`.
#[test]
fn update_calls_only_a_file_up_to_date() {
    let env = hive();
    env.mkdir("clean/year=2023/part-0.txt");
    let args = |u: bool| {
        let mut a = vec![
            "--summary",
            "s.jsonl",
            "raw",
            "-o",
            "clean/{rel.}.txt",
            "--",
            "cp",
            "{}",
            "{out}",
        ];
        if u {
            a.insert(0, "-u");
        }
        a
    };
    let plain = env.run(&args(false));
    let without = summary_of(&env, "s.jsonl");
    let updating = env.run(&args(true));
    let with = summary_of(&env, "s.jsonl");
    assert_eq!(
        plain.code,
        updating.code,
        "{}\n{}",
        plain.dump(),
        updating.dump()
    );
    assert_ne!(updating.code, Some(0), "{}", updating.dump());
    let path = "raw/year=2023/part-0.csv";
    let (a, b) = (by_path(&without, path), by_path(&with, path));
    assert_ne!(b["status"], "skipped", "{b}");
    assert_eq!(
        (&a["status"], &a["reason"], &a["action"]),
        (&b["status"], &b["reason"], &b["action"]),
        "{path}"
    );
    assert!(env.path("clean/year=2023/part-0.txt").is_dir());
    // A FIFO made after the input is not a target either: it is replaced.
    let fifo = env.path("clean/year=2024/part-0.txt");
    fs::remove_file(&fifo).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    env.run(&args(true));
    let r = by_path(&summary_of(&env, "s.jsonl"), "raw/year=2024/part-0.csv").clone();
    assert_eq!(
        (&r["status"], &r["action"]),
        (&"ok".into(), &"replaced".into()),
        "{r}"
    );
    assert!(fifo.is_file());
}
