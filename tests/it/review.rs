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
