//! What the page shows, as one JSON value: the run's numbers, the lanes of the timeline and
//! the jobs as columns (one array per field, so 100,000 jobs stay a few megabytes and the
//! page's script reads them without building an object each).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::read::Journal;
use crate::record::{JobRecord, Status};

/// The longest stderr tail the page keeps per job, in characters.
const TAIL_CHARS: usize = 400;

/// The page's data for `journal`, named `title`.
pub(crate) fn build(journal: &Journal, title: &str) -> Value {
    let files = &journal.files;
    let lanes = Lanes::assign(files);
    let mut counts = BTreeMap::new();
    for r in files {
        *counts.entry(r.status.name()).or_insert(0u64) += 1;
    }
    let column = |f: &dyn Fn(&JobRecord) -> Value| Value::Array(files.iter().map(f).collect());
    let status_index = |s: Status| Status::ALL.iter().position(|x| *x == s).unwrap_or(0);
    let jobs = json!({
        "job": column(&|r| json!(r.job)),
        "path": column(&|r| json!(r.path)),
        "status": column(&|r| json!(status_index(r.status))),
        "start": column(&|r| json!(r.started_ms.filter(|_| r.duration_ms.is_some()))),
        "dur": column(&|r| json!(r.duration_ms)),
        "down": column(&|r| json!(r.down_ms)),
        "downb": column(&|r| json!(r.down_bytes)),
        "up": column(&|r| json!(r.up_ms)),
        "upb": column(&|r| json!(r.up_bytes)),
        "rss": column(&|r| json!(r.peak_rss_bytes)),
        "res": column(&|r| json!(r.mem_reserved_bytes)),
        "code": column(&|r| json!(r.exit_code)),
        "sig": column(&|r| json!(r.signal)),
        "attempts": column(&|r| json!(r.attempts)),
        "tail": column(&|r| json!(r.stderr_tail.as_deref().map(shorten))),
        "reason": column(&|r| json!(r.reason.as_deref().map(shorten))),
        "lane": Value::Array(lanes.of_job.iter().map(|l| json!(l)).collect()),
    });
    let end = files
        .iter()
        .filter_map(|r| Some(r.started_ms? + r.duration_ms?))
        .max()
        .unwrap_or(0);
    let summary = journal.summary.clone().map(Value::Object);
    let incomplete = if journal.complete() {
        Value::Null
    } else if journal.cut_short {
        json!("the journal ends in the middle of a record: the run was stopped before it finished (a crash or SIGKILL)")
    } else {
        json!("the journal has no final record: the run was stopped before it finished, or is still running")
    };
    json!({
        "title": title,
        "statuses": Status::ALL.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "failure": Status::ALL.iter().map(|s| s.is_failure() && *s != Status::NotStarted).collect::<Vec<_>>(),
        "counts": counts,
        "summary": summary.unwrap_or(Value::Object(Map::new())),
        "run": run_line(journal.run.as_ref()),
        "incomplete": incomplete,
        "unreadable": journal.unreadable,
        "end_ms": end,
        "lanes": lanes.names,
        "slurm": files.iter().any(|r| r.shard.is_some()),
        "jobs": jobs,
    })
}

/// What the header says of the run: its `run` line, with the command line as one string a
/// shell would read back (each word quoted as needed). A word that is not UTF-8 shows as
/// lossy text (its bytes are in the journal's `argv_b64`). `null` for journals without it.
fn run_line(run: Option<&Map<String, Value>>) -> Value {
    let Some(run) = run else {
        return Value::Null;
    };
    let mut out = run.clone();
    if let Some(argv) = run.get("argv").and_then(Value::as_array) {
        let words: Vec<String> = argv
            .iter()
            .map(|w| {
                let w = w.as_str().unwrap_or("");
                shlex::try_quote(w).map_or_else(|_| format!("{w:?}"), std::borrow::Cow::into_owned)
            })
            .collect();
        out.insert("command_line".into(), json!(words.join(" ")));
        out.insert("argv_lossy".into(), json!(run.contains_key("argv_b64")));
    }
    Value::Object(out)
}

/// At most `TAIL_CHARS` characters, the end kept.
fn shorten(s: &str) -> String {
    let n = s.chars().count();
    if n <= TAIL_CHARS {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - TAIL_CHARS).collect();
    format!("…{tail}")
}

/// The timeline's lanes: one per worker slot (per array task and slot on Slurm), or, for
/// journals without slots, as few as hold the jobs without overlap.
struct Lanes {
    names: Vec<String>,
    /// The lane of each record; `None` for a record that did not run.
    of_job: Vec<Option<usize>>,
}

impl Lanes {
    fn assign(files: &[JobRecord]) -> Lanes {
        let ran = |r: &JobRecord| r.started_ms.is_some() && r.duration_ms.is_some();
        if files.iter().filter(|r| ran(r)).all(|r| r.slot.is_some()) {
            Lanes::by_slot(files, ran)
        } else {
            Lanes::packed(files, ran)
        }
    }

    fn by_slot(files: &[JobRecord], ran: impl Fn(&JobRecord) -> bool) -> Lanes {
        let key = |r: &JobRecord| (r.shard, r.slot.unwrap_or(0));
        let keys: std::collections::BTreeSet<_> =
            files.iter().filter(|r| ran(r)).map(key).collect();
        let index: BTreeMap<_, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let names = keys
            .iter()
            .map(|(shard, slot)| match shard {
                Some(t) => format!("task {t} · slot {slot}"),
                None => format!("slot {slot}"),
            })
            .collect();
        let of_job = files
            .iter()
            .map(|r| ran(r).then(|| index[&key(r)]))
            .collect();
        Lanes { names, of_job }
    }

    /// First fit by start time: a job takes the first lane free when it starts.
    fn packed(files: &[JobRecord], ran: impl Fn(&JobRecord) -> bool) -> Lanes {
        let mut order: Vec<usize> = (0..files.len()).filter(|i| ran(&files[*i])).collect();
        order.sort_by_key(|i| files[*i].started_ms);
        let mut free_at: Vec<u64> = Vec::new();
        let mut of_job = vec![None; files.len()];
        for i in order {
            let (start, dur) = (
                files[i].started_ms.unwrap_or(0),
                files[i].duration_ms.unwrap_or(0),
            );
            let lane = match free_at.iter().position(|t| *t <= start) {
                Some(l) => l,
                None => {
                    free_at.push(0);
                    free_at.len() - 1
                }
            };
            free_at[lane] = start + dur;
            of_job[i] = Some(lane);
        }
        let names = (1..=free_at.len()).map(|l| format!("lane {l}")).collect();
        Lanes { names, of_job }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ran(job: u64, slot: Option<u32>, start: u64, dur: u64) -> JobRecord {
        let mut r = JobRecord::new(job, Path::new(&format!("f{job}")), Status::Ok);
        r.slot = slot;
        r.started_ms = Some(start);
        r.duration_ms = Some(dur);
        r
    }

    #[test]
    fn lanes_follow_slots_and_tasks() {
        let mut a = ran(1, Some(2), 0, 10);
        a.shard = Some(1);
        let b = ran(2, Some(1), 0, 10);
        let c = JobRecord::new(3, Path::new("c"), Status::NotStarted);
        let lanes = Lanes::assign(&[a, b, c]);
        assert_eq!(lanes.names, ["slot 1", "task 1 · slot 2"]);
        assert_eq!(lanes.of_job, [Some(1), Some(0), None]);
    }

    #[test]
    fn without_slots_jobs_are_packed() {
        let lanes = Lanes::assign(&[
            ran(1, None, 0, 10),
            ran(2, None, 5, 10),
            ran(3, None, 10, 10),
        ]);
        assert_eq!(lanes.names.len(), 2);
        assert_eq!(lanes.of_job, [Some(0), Some(1), Some(0)]);
    }

    #[test]
    fn the_command_line_is_quoted_as_a_shell_reads_it() {
        let run: Map<String, Value> = serde_json::from_value(json!({
            "type": "run", "argv": ["fanout", "-s", "--", "wc -l {}", "it's"]
        }))
        .unwrap();
        let v = run_line(Some(&run));
        assert_eq!(v["command_line"], r#"fanout -s -- 'wc -l {}' "it's""#);
        assert_eq!(run_line(None), Value::Null);
    }

    #[test]
    fn long_tails_keep_their_end() {
        let s = "x".repeat(1000) + "END";
        let t = shorten(&s);
        assert!(t.ends_with("END") && t.chars().count() == TAIL_CHARS + 1);
    }
}
