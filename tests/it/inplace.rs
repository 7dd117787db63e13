//! In-place rewrites (`-i`, `{out}`, `--verify`, `--force`): the original is replaced only by a
//! verified output and is otherwise byte-identical; nothing is left behind in the dataset.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;
use crate::pq;

/// A tree with `n` parquet files under `d/` (ids shuffled) and, under `alt/`, a sorted
/// version of each: a transform that "sorts" copies `alt/NAME` to `{out}`.
fn dataset(n: usize) -> TestEnv {
    let env = TestEnv::new(&["d/year=2024", "alt"], &[]);
    for i in 0..n {
        let ids: Vec<i64> = (0..(10 + i as i64)).rev().collect();
        pq::write(&env.path(format!("d/year=2024/p{i}.parquet")), &ids);
        let mut sorted = ids.clone();
        sorted.sort();
        pq::write(&env.path(format!("alt/p{i}.parquet")), &sorted);
    }
    env
}

fn snapshot(env: &TestEnv) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    env.list_files()
        .into_iter()
        .filter(|p| p.starts_with("d"))
        .map(|p| {
            let bytes = fs::read(env.path(&p)).unwrap();
            (p, bytes)
        })
        .collect()
}

fn temp_files(env: &TestEnv) -> Vec<std::path::PathBuf> {
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

const SORT: &str = r#"cp "alt/$(basename "$1")" "$2""#;

#[test]
fn verified_output_replaces_the_input_with_its_permissions() {
    let env = dataset(3);
    let p0 = env.path("d/year=2024/p0.parquet");
    fs::set_permissions(&p0, fs::Permissions::from_mode(0o640)).unwrap();
    let out = env.run(&[
        "-i",
        "-j",
        "2",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        SORT,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    for i in 0..3 {
        assert_eq!(
            fs::read(env.path(format!("d/year=2024/p{i}.parquet"))).unwrap(),
            fs::read(env.path(format!("alt/p{i}.parquet"))).unwrap(),
            "p{i} was not replaced"
        );
    }
    assert_eq!(
        fs::metadata(&p0).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let records = read_summary(env.path("s.jsonl"));
    let r = record_for(&records, "d/year=2024/p1.parquet");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["action"], "replaced");
    assert_eq!(r["rows_in"], 11);
    assert_eq!(r["rows_out"], 11);
    assert_eq!(r["verify"], "parquet");
    assert!(r["input_bytes"].as_u64().unwrap() > 0);
    assert!(r["output_bytes"].as_u64().unwrap() > 0);
    assert!(temp_files(&env).is_empty(), "{:?}", temp_files(&env));
}

#[test]
fn out_is_hidden_beside_the_input_with_its_extension() {
    let env = dataset(1);
    let log = env.out_dir("log");
    let out = env.run(&[
        "-i",
        "d",
        "--",
        "sh",
        "-c",
        &format!(r#"echo "$2" > {log}/out; cp "$1" "$2""#),
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    let written = fs::read_to_string(format!("{log}/out")).unwrap();
    let written = Path::new(written.trim());
    assert_eq!(written.parent().unwrap(), Path::new("d/year=2024"));
    let name = written.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(".p0.fanout-") && name.ends_with(".parquet"),
        "{name}"
    );
}

#[test]
fn failures_keep_the_original_byte_identical_and_remove_the_temporary_file() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "exit 1 after writing half",
            &[],
            r#"head -c 300 "alt/$(basename "$1")" > "$2"; exit 1"#,
        ),
        (
            "killed by a signal",
            &[],
            r#"cp "alt/$(basename "$1")" "$2"; kill -9 $$"#,
        ),
        ("writes nothing", &[], "true"),
        ("writes garbage", &[], r#"echo garbage > "$2""#),
        (
            "writes a truncated file",
            &[],
            r#"head -c 200 "alt/$(basename "$1")" > "$2""#,
        ),
        (
            "times out",
            &["--timeout", "0.3", "--kill-grace", "0.1"],
            r#"cp "$1" "$2"; sleep 5"#,
        ),
    ];
    for (what, flags, script) in cases {
        let env = dataset(2);
        let before = snapshot(&env);
        let mut args: Vec<&str> = vec!["-i", "-j", "2", "d", "--summary", "s.jsonl"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", script, "_", "{}", "{out}"]);
        let out = env.run(&args);
        out.assert_code(1);
        assert_eq!(
            snapshot(&env),
            before,
            "{what}: an original changed\n{}",
            out.dump()
        );
        assert!(
            temp_files(&env).is_empty(),
            "{what}: left {:?}",
            temp_files(&env)
        );
        for r in file_records(&read_summary(env.path("s.jsonl"))) {
            assert_eq!(r["action"], "kept", "{what}: {r}");
            assert_ne!(r["status"], "ok", "{what}: {r}");
        }
    }
}

#[test]
fn verify_modes_catch_what_they_promise() {
    let env = dataset(1);
    let target = "d/year=2024/p0.parquet";
    // Ten rows like the input's count, but a renamed column / nulls / fewer rows.
    pq::write_named(
        &env.path("alt/renamed.parquet"),
        "label",
        &(0..10).collect::<Vec<_>>(),
        &[Some("x"); 10],
    );
    pq::write_named(
        &env.path("alt/nulls.parquet"),
        "name",
        &(0..10).collect::<Vec<_>>(),
        &[None; 10],
    );
    pq::write(&env.path("alt/fewer.parquet"), &[1, 2, 3]);
    let run = |mode: &str, src: &str| {
        let cp = format!("cp alt/{src} \"$1\"");
        env.run(&[
            "-i",
            "--verify",
            mode,
            target,
            "--summary",
            "s.jsonl",
            "--",
            "sh",
            "-c",
            &cp,
            "_",
            "{out}",
        ])
    };
    let verdict = |mode: &str, src: &str| {
        let before = fs::read(env.path(target)).unwrap();
        let out = run(mode, src);
        let r = record_for(&read_summary(env.path("s.jsonl")), target);
        let after = fs::read(env.path(target)).unwrap();
        if r["status"] == "invalid_output" {
            out.assert_code(1);
            assert_eq!(before, after, "{mode}/{src}: original changed");
        }
        // Restore the original for the next case.
        fs::write(env.path(target), &before).unwrap();
        (
            r["status"].as_str().unwrap().to_string(),
            r["verify"].as_str().unwrap_or("").to_string(),
        )
    };
    let (s, v) = verdict("parquet-schema", "renamed.parquet");
    assert_eq!(s, "invalid_output");
    assert!(v.contains("schema changed"), "{v}");
    assert_eq!(verdict("parquet", "renamed.parquet").0, "ok");
    let (s, v) = verdict("parquet-nulls", "nulls.parquet");
    assert_eq!(s, "invalid_output");
    assert!(v.contains("gained nulls"), "{v}");
    assert_eq!(verdict("parquet", "nulls.parquet").0, "ok");
    let (s, v) = verdict("parquet", "fewer.parquet");
    assert_eq!(s, "invalid_output");
    assert!(v.contains("row count changed from 10 to 3"), "{v}");
    assert_eq!(verdict("parquet-readable", "fewer.parquet").0, "ok");
}

#[test]
fn an_out_written_as_a_directory_is_refused_and_removed() {
    let env = dataset(1);
    let before = snapshot(&env);
    let out = env.run(&[
        "-i",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"mkdir "$1" && cp "alt/p0.parquet" "$1/part-0.parquet""#,
        "_",
        "{out}",
    ]);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/year=2024/p0.parquet");
    assert_eq!(r["status"], "invalid_output");
    assert!(r["verify"].as_str().unwrap().contains("directory"), "{r}");
    assert_eq!(snapshot(&env), before);
    assert!(temp_files(&env).is_empty(), "{:?}", temp_files(&env));
    // Only a run removes its own {out} tree: the sweep never removes a directory (#13).
    env.mkdir("d/year=2024/.p0.fanout-4194304-1.parquet");
    env.write("d/year=2024/.p0.fanout-4194304-1.parquet/x.parquet", "x");
    env.run(&["-i", "d", "--", "cp", "{}", "{out}"])
        .assert_code(0);
    assert!(env.exists("d/year=2024/.p0.fanout-4194304-1.parquet/x.parquet"));
}

#[test]
fn non_parquet_inputs_default_to_exists() {
    let env = TestEnv::new(&[], &[("a.csv", "x,y\n1,2\n"), ("b.csv", "x,y\n3,4\n")]);
    let out = env.run(&[
        "-i",
        "a.csv",
        "b.csv",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"[ "$1" = a.csv ] && sort "$1" > "$2" || : > "$2""#,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(1);
    let records = read_summary(env.path("s.jsonl"));
    assert_eq!(record_for(&records, "a.csv")["action"], "replaced");
    let b = record_for(&records, "b.csv");
    assert_eq!(b["status"], "invalid_output");
    assert!(b["verify"].as_str().unwrap().contains("empty"), "{b}");
    assert_eq!(fs::read_to_string(env.path("b.csv")).unwrap(), "x,y\n3,4\n");
    // --verify none accepts the empty output.
    env.run(&[
        "-i",
        "--verify",
        "none",
        "b.csv",
        "--",
        "cp",
        "/dev/null",
        "{out}",
    ])
    .assert_code(0);
    assert_eq!(fs::read(env.path("b.csv")).unwrap(), b"");
}

#[test]
fn a_corrupt_parquet_input_is_invalid_input_and_not_run() {
    let env = dataset(1);
    env.write("d/bad.parquet", "id,name\n1,x\n");
    let out = env.run(&[
        "-i",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"touch "$1.ran"; cp "$1" "$2""#,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/bad.parquet");
    assert_eq!(r["status"], "invalid_input");
    assert!(r["reason"].as_str().unwrap().contains("parquet"), "{r}");
    assert!(
        !env.exists("d/bad.parquet.ran"),
        "the job ran on an invalid input"
    );
    assert!(env.exists("d/year=2024/p0.parquet.ran"));
}

#[test]
fn read_only_inputs_are_skipped_unless_forced() {
    let env = dataset(1);
    let p = env.path("d/year=2024/p0.parquet");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
    let before = fs::read(&p).unwrap();
    let out = env.run(&[
        "-i",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        SORT,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/year=2024/p0.parquet");
    assert_eq!(r["status"], "skipped");
    assert!(r["reason"].as_str().unwrap().contains("--force"), "{r}");
    assert_eq!(fs::read(&p).unwrap(), before);
    env.run(&[
        "-i", "--force", "d", "--", "sh", "-c", SORT, "_", "{}", "{out}",
    ])
    .assert_code(0);
    assert_eq!(
        fs::read(&p).unwrap(),
        fs::read(env.path("alt/p0.parquet")).unwrap()
    );
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o444
    );
}

#[test]
fn a_symlinked_input_rewrites_its_target_and_stays_a_link() {
    let env = dataset(1);
    env.mkdir("links");
    env.symlink("../d/year=2024/p0.parquet", "links/p0.parquet");
    let out = env.run(&[
        "-i",
        "links/p0.parquet",
        "--",
        "sh",
        "-c",
        SORT,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    assert!(fs::symlink_metadata(env.path("links/p0.parquet"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(env.path("d/year=2024/p0.parquet")).unwrap(),
        fs::read(env.path("alt/p0.parquet")).unwrap()
    );
    assert!(temp_files(&env).is_empty());
}

#[test]
fn an_input_changed_while_its_job_ran_is_not_replaced() {
    let env = TestEnv::new(&[], &[("a.txt", "one\n")]);
    let out = env.run(&[
        "-i",
        "a.txt",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"echo new > "$2"; sleep 0.05; echo more >> "$1""#,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "a.txt");
    assert_eq!(r["status"], "failed");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("changed while the job ran"),
        "{r}"
    );
    assert_eq!(
        fs::read_to_string(env.path("a.txt")).unwrap(),
        "one\nmore\n"
    );
    assert!(temp_files(&env).is_empty());
}

#[test]
fn two_runs_never_rewrite_the_same_file_at_once() {
    let env = dataset(1);
    let mut first = env.spawn(&[
        "-i",
        "d",
        "--",
        "sh",
        "-c",
        &format!("sleep 1; {SORT}"),
        "_",
        "{}",
        "{out}",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let second = env.run(&[
        "-i",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        SORT,
        "_",
        "{}",
        "{out}",
    ]);
    second.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/year=2024/p0.parquet");
    assert_eq!(r["status"], "not_started");
    assert!(
        r["reason"].as_str().unwrap().contains("another fanout run"),
        "{r}"
    );
    first.wait().assert_code(0);
    assert!(temp_files(&env).is_empty());
}

#[test]
fn flags_that_need_in_place_are_usage_errors() {
    let env = dataset(1);
    env.run(&["-i", "d", "--", "cp", "{}", "/tmp/x"])
        .assert_code(2)
        .assert_stderr_contains("{out}");
    env.run(&["d", "--", "cp", "{}", "{out}"])
        .assert_code(2)
        .assert_stderr_contains("--in-place");
    env.run(&["--verify", "parquet", "d", "--", "true"])
        .assert_code(2);
    env.run(&["--force", "d", "--", "true"]).assert_code(2);
    env.run(&["-i", "--verify", "bogus", "d", "--", "cp", "{}", "{out}"])
        .assert_code(2);
}

#[test]
fn dry_run_shows_out_and_the_replacement_and_creates_nothing() {
    let env = dataset(2);
    let before = env.list_files();
    let out = env.run(&["-n", "-i", "d", "--", "cp", "{}", "{out}"]);
    out.assert_code(0);
    let lines = out.stdout_lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("cp 'd/year=2024/p0.parquet' 'd/year=2024/.p0.fanout-"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("# then replaces 'd/year=2024/p0.parquet'")
            && lines[0].ends_with("replaying this line does not)"),
        "{}",
        lines[0]
    );
    assert_eq!(env.list_files(), before);
}

#[test]
fn stale_temporary_files_of_dead_runs_are_removed_and_reported() {
    let env = dataset(1);
    // A run killed right after its job wrote {out}.
    let stale = crate::inplace_hostile::stale_temp(&env, "d/year=2024/p0.parquet");
    let out = env.run(&["-i", "d", "--", "sh", "-c", SORT, "_", "{}", "{out}"]);
    out.assert_code(0)
        .assert_stderr_contains("removed 1 temporary file");
    assert!(temp_files(&env).is_empty());
    // Temporary names are never taken as inputs, even with -H.
    fs::write(&stale, "half").unwrap();
    let listed = env.run(&["-n", "-H", "d", "--", "echo"]);
    assert!(
        !listed.stdout_str().contains(".fanout-"),
        "{}",
        listed.dump()
    );
}

#[test]
fn retries_touch_the_original_at_most_once() {
    let env = dataset(1);
    let counter = env.out_dir("count");
    let script = format!(
        r#"n=$(cat {counter}/n 2>/dev/null || echo 0); echo $((n+1)) > {counter}/n; cp "alt/$(basename "$1")" "$2"; [ "$n" -ge 1 ]"#
    );
    let out = env.run(&[
        "-i",
        "--retries",
        "2",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        &script,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    let r = record_for(&read_summary(env.path("s.jsonl")), "d/year=2024/p0.parquet");
    assert_eq!(r["attempts"], 2);
    assert_eq!(r["action"], "replaced");
    assert!(temp_files(&env).is_empty());
}

#[test]
fn sigint_mid_run_keeps_every_original_whole() {
    let env = dataset(6);
    let before = snapshot(&env);
    let mut run = env.spawn(&[
        "-i",
        "-j",
        "2",
        "d",
        "--summary",
        "s.jsonl",
        "--kill-grace",
        "0.2",
        "--",
        "sh",
        "-c",
        &format!("{SORT}; sleep 5"),
        "_",
        "{}",
        "{out}",
    ]);
    assert!(wait_until(Duration::from_secs(10), || temp_files(&env)
        .len()
        == 2));
    run.signal("INT");
    run.wait().assert_code(130);
    assert_eq!(snapshot(&env), before);
    assert!(temp_files(&env).is_empty(), "{:?}", temp_files(&env));
    let fin = final_record(&read_summary(env.path("s.jsonl")));
    assert_eq!(fin["interrupted"], 2);
    assert_eq!(fin["not_started"], 4);
}

/// SIGKILL fanout at varying moments, again and again: every file is always either its
/// original or the complete new version, and a later run cleans up and finishes the job.
#[test]
fn crash_loop_with_sigkill_never_leaves_a_half_written_file() {
    let env = dataset(50);
    let originals = snapshot(&env);
    let sorted: Vec<Vec<u8>> = (0..50)
        .map(|i| fs::read(env.path(format!("alt/p{i}.parquet"))).unwrap())
        .collect();
    // Write the output in two halves with a pause, so a kill often lands mid-write.
    let slow = r#"f="alt/$(basename "$1")"; head -c 100 "$f" > "$2"; sleep 0.01; tail -c +101 "$f" >> "$2""#;
    for iteration in 0..50u64 {
        let mut run = env.spawn(&[
            "-i", "-j", "2", "d", "--", "sh", "-c", slow, "_", "{}", "{out}",
        ]);
        std::thread::sleep(Duration::from_millis(20 + (iteration * 37) % 200));
        run.signal("KILL");
        let _ = run.wait();
        // Jobs of the killed run may still be finishing their writes; they never rename.
        std::thread::sleep(Duration::from_millis(30));
        for (i, (path, original)) in originals.iter().enumerate() {
            let now = fs::read(env.path(path)).unwrap();
            let idx: usize = path.file_stem().unwrap().to_str().unwrap()[1..]
                .parse()
                .unwrap();
            assert!(
                now == *original || now == sorted[idx],
                "iteration {iteration}: {} is neither the original nor the new file (#{i})",
                path.display()
            );
        }
    }
    // A last run finishes everything and sweeps what the killed runs left.
    std::thread::sleep(Duration::from_millis(100));
    env.run(&[
        "-i", "-j", "2", "d", "--", "sh", "-c", slow, "_", "{}", "{out}",
    ])
    .assert_code(0);
    for (i, want) in sorted.iter().enumerate() {
        let now = fs::read(env.path(format!("d/year=2024/p{i}.parquet"))).unwrap();
        assert_eq!(&now, want);
    }
    assert!(temp_files(&env).is_empty(), "{:?}", temp_files(&env));
}
