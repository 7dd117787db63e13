//! The journal is a documented format: docs/journal.schema.json. The harness checks every
//! journal a test's run writes against it; here, the schema itself is held to account: it
//! refuses what it does not document, and a broad set of runs uses the optional fields it
//! documents.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::*;

/// The journal as lines, after checking it against the schema.
#[track_caller]
fn checked(env: &TestEnv, name: &str) -> Vec<Value> {
    let path = env.path(name);
    let n = validate_journal(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(n > 0, "{name} is empty");
    read_summary(&path)
}

#[test]
fn the_schema_refuses_what_it_does_not_document() {
    let env = TestEnv::new(&[], &[("in/a", "a")]);
    env.run(&["--summary", "run.jsonl", "in", "--", "cat"])
        .assert_ok();
    let records = checked(&env, "run.jsonl");
    let changed = |i: usize, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut r = records[i].as_object().unwrap().clone();
        f(&mut r);
        env.write("bad.jsonl", format!("{}\n", Value::Object(r)));
        validate_journal(&env.path("bad.jsonl"))
    };
    let file = records.iter().position(|r| r["type"] == "file").unwrap();
    let last = records.len() - 1;
    assert!(changed(file, &|_| {}).is_ok());
    assert!(changed(file, &|r| {
        r.insert("surprise".into(), 1.into());
    })
    .is_err());
    assert!(changed(file, &|r| {
        r.remove("status");
    })
    .is_err());
    assert!(changed(file, &|r| {
        r.insert("status".into(), "fine".into());
    })
    .is_err());
    assert!(changed(file, &|r| {
        r.insert("v".into(), 2.into());
    })
    .is_err());
    assert!(changed(last, &|r| {
        r.insert("extra_total".into(), 1.into());
    })
    .is_err());
    assert!(changed(last, &|r| {
        r.insert("type".into(), "summery".into());
    })
    .is_err());
    // Fields being added elsewhere are documented already.
    assert!(changed(file, &|r| {
        for (k, v) in [
            ("output", Value::from("out/a.csv")),
            ("action", "up_to_date".into()),
            ("batch", 3.into()),
            ("batch_size", 50.into()),
            ("paused_ms", 0.into()),
        ] {
            r.insert(k.into(), v);
        }
    })
    .is_ok());
}

#[test]
fn a_broad_set_of_runs_writes_only_documented_records() {
    let env = TestEnv::new(
        &[],
        &[
            ("in/ok1", "1"),
            ("in/ok2", "2"),
            ("in/fail", "3"),
            ("in/slow", "4"),
        ],
    );
    env.write_bytes_name(b"in/bad-\xff-name", "5");
    env.script(
        "job.sh",
        "#!/bin/sh\ncase \"$1\" in\n*fail) echo broken >&2; exit 4;;\n*slow) sleep 5;;\nesac\n",
    );
    let mut fields = BTreeSet::new();
    let mut seen = |records: &[Value]| {
        for r in records {
            fields.extend(r.as_object().unwrap().keys().cloned());
        }
    };
    // Failures, a timeout and a non-UTF-8 name, with retries.
    env.run(&[
        "--summary",
        "a.jsonl",
        "--timeout",
        "1",
        "--retries",
        "1",
        "in",
        "--",
        "./job.sh",
    ])
    .assert_code(1);
    let a = checked(&env, "a.jsonl");
    let statuses: BTreeSet<String> = file_records(&a)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["ok".into(), "failed".into(), "timeout".into()])
    );
    seen(&a);
    // Resumed: the files that were ok are skipped, the rest run again.
    env.run(&[
        "--summary",
        "a.jsonl",
        "--resume",
        "a.jsonl",
        "--timeout",
        "1",
        "in",
        "--",
        "./job.sh",
    ])
    .assert_code(1);
    seen(&checked(&env, "a.jsonl"));
    // Halted: files after the first failure are not started.
    env.run(&[
        "--summary",
        "b.jsonl",
        "-j",
        "1",
        "--halt",
        "soon",
        "in",
        "--",
        "./job.sh",
    ])
    .assert_code(1);
    let b = checked(&env, "b.jsonl");
    assert!(b.iter().any(|r| r["status"] == "not_started"));
    seen(&b);
    // In place: replaced, and a read-only file skipped.
    let inplace = env.mkdir("inplace");
    env.write("inplace/x.txt", "x");
    env.write("inplace/ro.txt", "r");
    std::fs::set_permissions(
        env.path("inplace/ro.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o444),
    )
    .unwrap();
    env.run(&[
        "--summary",
        "c.jsonl",
        "-i",
        inplace.to_str().unwrap(),
        "--",
        "cp",
        "{}",
        "{out}",
    ])
    .assert_ok();
    let c = checked(&env, "c.jsonl");
    assert!(c.iter().any(|r| r["action"] == "replaced"));
    assert!(c.iter().any(|r| r["status"] == "skipped"));
    seen(&c);
    // A dry run writes no journal.
    env.run(&["--summary", "d.jsonl", "-n", "in", "--", "cat"])
        .assert_ok();
    assert!(!env.exists("d.jsonl"));
    for field in [
        "v",
        "path_b64",
        "slot",
        "action",
        "input_bytes",
        "output_bytes",
        "verify",
        "timeline",
        "model",
        "walk_complete",
    ] {
        assert!(fields.contains(field), "no run wrote {field}: {fields:?}");
    }
}

#[test]
fn a_record_with_every_field_set_is_documented() {
    let env = TestEnv::new(&[], &[("in/a", "a")]);
    env.run(&["--summary", "run.jsonl", "in", "--", "cat"])
        .assert_ok();
    let mut r = typed_records(env.path("run.jsonl")).remove(0);
    r.path_b64 = Some("YQ==".into());
    r.signal = Some(9);
    r.stderr_tail = Some("boom".into());
    r.reason = Some("why".into());
    r.shard = Some(3);
    r.action = Some(fanout::record::Action::Replaced);
    r.input_bytes = Some(1);
    r.output_bytes = Some(1);
    r.rows_in = Some(1);
    r.rows_out = Some(1);
    r.verify = Some("parquet".into());
    // Serialised by fanout's own type: a field added to it without a place in the schema fails.
    env.write(
        "all.jsonl",
        format!("{}\n", serde_json::to_string(&r).unwrap()),
    );
    assert_eq!(validate_journal(&env.path("all.jsonl")), Ok(1));
}
