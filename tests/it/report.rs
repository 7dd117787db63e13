//! `fanout report`: the page made from a journal, what it refuses, and the page in a real
//! browser (headless Chromium: mandatory with FANOUT_BROWSER_TESTS=1, as in CI; skipped with a
//! message when no Chromium is installed otherwise).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// The JSON the page carries, read back out of it.
fn page_data(html: &str) -> Value {
    let start = r#"<script id="data" type="application/json">"#;
    let block = html
        .split(start)
        .nth(1)
        .expect("the page has its data block");
    let json = block.split("</script>").next().unwrap();
    serde_json::from_str(json).expect("the data block is JSON")
}

/// A small run with failures: `n` files, every third one fails with a message on stderr.
fn small_run(env: &TestEnv, n: usize) -> Output {
    for i in 0..n {
        let code = if i % 3 == 2 { 3 } else { 0 };
        env.write(format!("in/f{i:02}.txt"), format!("{code}\n"));
    }
    env.script(
        "job.sh",
        "#!/bin/sh\nsleep 0.05\ncode=$(cat \"$1\")\n[ \"$code\" = 0 ] || echo \"$1: bad value $code\" >&2\nexit \"$code\"\n",
    );
    env.run(&[
        "--summary",
        "run.jsonl",
        "-j",
        "3",
        "in",
        "--",
        "./job.sh",
        "{}",
    ])
}

#[test]
fn a_run_becomes_one_self_contained_page() {
    let env = TestEnv::new(&[], &[]);
    small_run(&env, 7).assert_code(1);
    let out = env.run(&["report", "run.jsonl"]);
    out.assert_ok()
        .assert_stderr_contains("report of 7 files written to run.html");
    let html = std::fs::read_to_string(env.path("run.html")).unwrap();
    // Nothing is loaded from elsewhere: no external script, style, image or font.
    for needle in [
        "<script src",
        "<link",
        "<img",
        "@import",
        "url(",
        "https://",
    ] {
        assert!(!html.contains(needle), "the page refers to {needle}");
    }
    let data = page_data(&html);
    assert_eq!(data["jobs"]["path"].as_array().unwrap().len(), 7);
    assert_eq!(data["counts"]["ok"], 5);
    assert_eq!(data["counts"]["failed"], 2);
    assert_eq!(data["incomplete"], Value::Null);
    assert_eq!(data["summary"]["total"], 7);
    // One lane per worker slot, each job in the lane of its slot.
    let records = typed_records(env.path("run.jsonl"));
    assert_eq!(data["lanes"].as_array().unwrap().len(), 3);
    for (i, r) in records.iter().enumerate() {
        let lane = data["jobs"]["lane"][i].as_u64().unwrap() as usize;
        assert_eq!(data["lanes"][lane], format!("slot {}", r.slot.unwrap()));
        assert_eq!(data["jobs"]["path"][i], r.path.as_str());
    }
    let tails: Vec<&str> = data["jobs"]["tail"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tails.len(), 2, "{tails:?}");
    assert!(
        tails.iter().all(|t| t.ends_with("bad value 3")),
        "{tails:?}"
    );

    // -o names the page; `-o -` writes it to standard output.
    env.run(&["report", "run.jsonl", "-o", "elsewhere/page.html"])
        .assert_code(2)
        .assert_stderr_contains("cannot write the report elsewhere/page.html");
    env.mkdir("elsewhere");
    env.run(&["report", "-o", "elsewhere/page.html", "run.jsonl"])
        .assert_ok();
    assert_eq!(
        std::fs::read_to_string(env.path("elsewhere/page.html")).unwrap(),
        html
    );
    // The journal is never overwritten by its page, under any name.
    let journal = std::fs::read(env.path("run.jsonl")).unwrap();
    env.symlink("run.jsonl", "link.html");
    for o in ["run.jsonl", "./run.jsonl", "link.html"] {
        env.run(&["report", "run.jsonl", "-o", o])
            .assert_code(2)
            .assert_stderr_contains("names the journal itself");
    }
    assert_eq!(std::fs::read(env.path("run.jsonl")).unwrap(), journal);
    let piped = env.run(&["report", "run.jsonl", "-o", "-"]);
    piped.assert_ok();
    assert_eq!(piped.stdout_str(), html);
}

/// A run of batches (`-X`) writes each command's facts once, in a `batch` line, and a short
/// line per file (journal format version 2): the page still has every file with its batch's
/// status, exit code and stderr line.
#[test]
fn a_batched_run_s_files_have_their_batch_s_facts_on_the_page() {
    let env = TestEnv::new(&[], &[]);
    for i in 0..12 {
        env.write(format!("in/f{i:02}"), if i == 6 { "bad" } else { "ok" });
    }
    env.script(
        "check.sh",
        "#!/bin/sh\nfor f; do [ \"$(cat \"$f\")\" = ok ] || { echo \"$f: bad\" >&2; exit 3; }; done\n",
    );
    env.run(&[
        "-X",
        "--batch-size",
        "4",
        "-j",
        "2",
        "--summary",
        "run.jsonl",
        "in",
        "--",
        "./check.sh",
    ])
    .assert_code(1);
    let lines = journal_lines(env.path("run.jsonl"));
    assert!(lines.iter().any(|l| l["type"] == "batch"), "{lines:?}");
    env.run(&["report", "run.jsonl"]).assert_ok();
    let data = page_data(&std::fs::read_to_string(env.path("run.html")).unwrap());
    let jobs = &data["jobs"];
    let statuses = data["statuses"].as_array().unwrap();
    let status = |k: usize| statuses[jobs["status"][k].as_u64().unwrap() as usize].clone();
    let paths = jobs["path"].as_array().unwrap();
    assert_eq!(paths.len(), 12);
    // The records as a reader joins them, for comparison.
    let records = read_summary(env.path("run.jsonl"));
    let failed_batch = int(&record_for(&records, "in/f06"), "batch");
    for (k, path) in paths.iter().enumerate() {
        let r = record_for(&records, path.as_str().unwrap());
        assert_eq!(status(k), r["status"], "{path}");
        assert_eq!(jobs["code"][k], r["exit_code"], "{path}");
        assert_eq!(jobs["tail"][k], r["stderr_tail"], "{path}");
        if int(&r, "batch") == failed_batch {
            assert_eq!(
                (status(k), jobs["code"][k].clone()),
                ("failed".into(), 3.into())
            );
            assert_eq!(jobs["tail"][k], "in/f06: bad", "{path}");
        } else {
            assert_eq!(status(k), "ok", "{path}");
        }
    }
    assert_eq!(
        data["counts"]["failed"].as_u64(),
        Some(int(&record_for(&records, "in/f06"), "batch_size") as u64)
    );
}

#[test]
fn a_journal_cut_short_by_a_crash_still_gives_a_page() {
    let env = TestEnv::new(&[], &[]);
    for i in 0..4 {
        env.write(format!("in/f{i}"), "x");
    }
    let sleep = fixture("sleep-then.sh");
    let mut run = env.spawn(&[
        "--summary",
        "run.jsonl",
        "-j",
        "1",
        "in",
        "--",
        sleep.as_str(),
        "0.4",
    ]);
    let journal = env.path("run.jsonl");
    // A file record written (the `run` line comes first, when the journal is created).
    assert!(wait_until(DEADLINE, || std::fs::read(&journal).is_ok_and(
        |b| b.windows(15).any(|w| w == br#"{"type":"file","#)
    )));
    run.signal("KILL");
    run.wait();
    // And a last line cut in the middle, as a crash during a write leaves it.
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(br#"{"type":"file","v":1,"job":4,"pa"#);
    std::fs::write(&journal, &bytes).unwrap();
    let out = env.run(&["report", "run.jsonl"]);
    out.assert_ok()
        .assert_stderr_contains("(incomplete journal)");
    let data = page_data(&std::fs::read_to_string(env.path("run.html")).unwrap());
    assert!(
        data["incomplete"]
            .as_str()
            .unwrap()
            .contains("middle of a record"),
        "{}",
        data["incomplete"]
    );
    assert!(!data["jobs"]["path"].as_array().unwrap().is_empty());
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn the_header_says_what_ran_where_and_when() {
    let env = TestEnv::new(&[], &[]);
    let before = unix_ms();
    small_run(&env, 4).assert_code(1);
    let after = unix_ms();
    // The journal's first line is the run's, written when it was created.
    let lines = read_summary(env.path("run.jsonl"));
    let run = &lines[0];
    assert_eq!(run["type"], "run", "{run}");
    assert_eq!(run["v"], 1);
    assert_eq!(run["executor"], "local");
    assert_eq!(run["fanout_version"], env!("CARGO_PKG_VERSION"));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(run["host"], host.trim());
    let cwd = std::fs::canonicalize(env.root()).unwrap();
    assert_eq!(run["cwd"], cwd.to_str().unwrap());
    let started = run["started_unix_ms"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&started),
        "{before} {started} {after}"
    );
    let argv: Vec<&str> = run["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(
        argv[1..],
        [
            "--summary",
            "run.jsonl",
            "-j",
            "3",
            "in",
            "--",
            "./job.sh",
            "{}"
        ]
    );
    assert!(run.get("argv_b64").is_none(), "{run}");
    // `--resume` reads the journal with its run line as before: every ok file is skipped.
    env.run(&[
        "--resume",
        "run.jsonl",
        "--summary",
        "again.jsonl",
        "-j",
        "3",
        "in",
        "--",
        "./job.sh",
        "{}",
    ])
    .assert_code(1);
    let again = typed_records(env.path("again.jsonl"));
    assert_eq!(
        again
            .iter()
            .filter(|r| r.status.name() == "skipped")
            .count(),
        3
    );

    env.run(&["report", "run.jsonl"]).assert_ok();
    let data = page_data(&std::fs::read_to_string(env.path("run.html")).unwrap());
    assert_eq!(
        data["run"]["command_line"],
        format!("{} --summary run.jsonl -j 3 in -- ./job.sh '{{}}'", argv[0])
    );
    assert_eq!(data["run"]["started_unix_ms"], started);
    assert_eq!(data["run"]["host"], host.trim());
}

#[test]
fn a_command_line_that_is_not_utf8_keeps_its_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new(&[], &[]);
    let dir = OsStr::from_bytes(b"caf\xe9");
    std::fs::create_dir(env.path(dir)).unwrap();
    std::fs::write(env.path(dir).join("a"), "x").unwrap();
    let args: [&OsStr; 6] = [
        "--summary".as_ref(),
        "run.jsonl".as_ref(),
        dir,
        "--".as_ref(),
        "true".as_ref(),
        "{}".as_ref(),
    ];
    env.run(&args).assert_ok();
    let run = &read_summary(env.path("run.jsonl"))[0];
    assert_eq!(run["argv"][3], "caf\u{fffd}", "{run}");
    use base64::Engine;
    let b64 = run["argv_b64"][3].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes, b"caf\xe9");
    assert_eq!(run["argv_b64"].as_array().unwrap().len(), 6 + 1);
    env.run(&["report", "run.jsonl"]).assert_ok();
    let html = std::fs::read_to_string(env.path("run.html")).unwrap();
    let data = page_data(&html);
    let line = data["run"]["command_line"].as_str().unwrap();
    assert!(
        line.ends_with("--summary run.jsonl 'caf\u{fffd}' -- true '{}'"),
        "{line}"
    );
    assert_eq!(data["run"]["argv_lossy"], true);
    if let Some(browser) = chromium() {
        let (dom, log) = load(&browser, &env, &env.path("run.html"));
        assert_rendered_without_errors(&dom, &log);
        assert!(dom.contains("caf\u{fffd}"), "{dom}");
    }
}

#[test]
fn a_journal_without_the_run_line_still_renders() {
    let env = TestEnv::new(&[], &[]);
    small_run(&env, 4).assert_code(1);
    // As fanout wrote journals before the `run` line: the same records, without it.
    let text = std::fs::read_to_string(env.path("run.jsonl")).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(first.starts_with(r#"{"type":"run""#), "{first}");
    env.write("old.jsonl", rest);
    env.run(&["report", "old.jsonl"]).assert_ok();
    let html = std::fs::read_to_string(env.path("old.html")).unwrap();
    let data = page_data(&html);
    assert_eq!(data["run"], Value::Null);
    assert_eq!(data["jobs"]["path"].as_array().unwrap().len(), 4);
    // `--resume` reads it as before.
    env.run(&[
        "--resume",
        "old.jsonl",
        "--summary",
        "s.jsonl",
        "-j",
        "3",
        "in",
        "--",
        "./job.sh",
        "{}",
    ])
    .assert_code(1);
    if let Some(browser) = chromium() {
        let (dom, log) = load(&browser, &env, &env.path("old.html"));
        assert_rendered_without_errors(&dom, &log);
        assert!(dom.contains(r#"<div id="run" hidden="""#), "{dom}");
    }
}

#[test]
fn what_is_not_a_fanout_journal_is_refused_in_one_line() {
    let env = TestEnv::new(&[], &[("notes.txt", "hello\n"), ("empty.jsonl", "")]);
    env.write("other.jsonl", "{\"level\":\"info\",\"msg\":\"started\"}\n");
    env.write("data.parquet", b"PAR1\x00\x01\x02\xffPAR1");
    for name in ["notes.txt", "empty.jsonl", "other.jsonl", "data.parquet"] {
        let out = env.run(&["report", name]);
        out.assert_code(2)
            .assert_stderr_contains(&format!("{name} is not a fanout journal"))
            .assert_no_panic();
        assert_eq!(out.stderr_lines().len(), 1, "{}", out.dump());
    }
    env.run(&["report", "missing.jsonl"])
        .assert_code(2)
        .assert_stderr_contains("cannot read missing.jsonl");
    env.run(&["report"]).assert_code(2);
    assert!(!env.exists("notes.html") && !env.exists("other.html"));
}

#[test]
fn a_directory_named_report_is_still_a_path() {
    let env = TestEnv::new(&["report"], &[("report/a.txt", "from a\n")]);
    env.run(&["report", "--", "cat"])
        .assert_ok()
        .assert_stdout_lines(&["from a"]);
    env.run(&["-j", "1", "report", "--", "cat", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["from a"]);
}

/// Chromium, if installed (Debian's package is `chromium`); required with
/// FANOUT_BROWSER_TESTS=1 or in CI, skipped with one line otherwise.
fn chromium() -> Option<String> {
    let required = std::env::var("FANOUT_BROWSER_TESTS").is_ok_and(|v| v == "1");
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if on_path(name) {
            return Some(name.to_string());
        }
    }
    tool_or_skip(
        "chromium",
        "it loads fanout report's page headless",
        required,
    );
    None
}

/// Loads `page` in headless Chromium: the DOM after the page's script ran, and what Chromium
/// logged (console messages included).
fn load(browser: &str, env: &TestEnv, page: &Path) -> (String, String) {
    load_url(browser, env, &format!("file://{}", page.display()))
}

fn load_url(browser: &str, env: &TestEnv, url: &str) -> (String, String) {
    let profile = env.mkdir("chromium-profile");
    let out = run_command(
        {
            let mut c = Command::new("timeout");
            c.arg("60")
                .arg(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--enable-logging=stderr",
                    "--v=0",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("--dump-dom")
                .arg(url);
            c
        },
        None,
    );
    out.assert_ok();
    (out.stdout_str(), out.stderr_str())
}

/// What the page's script says about its run: rendered, and the errors it caught.
fn assert_rendered_without_errors(dom: &str, log: &str) {
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap_or_default();
    assert!(
        body.contains(r#"data-rendered="1""#),
        "not rendered: <body{body}>\n{log}"
    );
    assert!(!body.contains("data-errors"), "script errors: <body{body}>");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
}

#[test]
fn the_page_renders_in_chromium_with_a_bar_per_job() {
    let Some(browser) = chromium() else {
        return;
    };
    let env = TestEnv::new(&[], &[]);
    env.write("in/<img src=x onerror=alert(1)>.txt", "0\n");
    small_run(&env, 7).assert_code(1);
    env.run(&["report", "run.jsonl"]).assert_ok();
    let (dom, log) = load(&browser, &env, &env.path("run.html"));
    assert_rendered_without_errors(&dom, &log);
    let records = typed_records(env.path("run.jsonl"));
    assert_eq!(records.len(), 8);
    assert_eq!(dom.matches(r#"class="bar""#).count(), 8, "{dom}");
    for r in &records {
        let bar = format!(r#"data-status="{}""#, r.status.name());
        assert!(dom.contains(&bar), "no {bar}");
    }
    // A link to one job opens with its details: path, exit code, stderr.
    let failed = records.iter().find(|r| r.exit_code == Some(3)).unwrap();
    let url = format!(
        "file://{}#job={}",
        env.path("run.html").display(),
        failed.job
    );
    let (dom, log) = load_url(&browser, &env, &url);
    assert_rendered_without_errors(&dom, &log);
    let details = dom
        .split(r#"<div id="details""#)
        .nth(1)
        .and_then(|d| d.split("</section>").next())
        .unwrap();
    assert!(
        details.contains(&format!(r#"data-job="{}""#, failed.job)),
        "{details}"
    );
    assert!(details.contains(&failed.path), "{details}");
    assert!(details.contains("exit 3"), "{details}");
    assert!(details.contains("bad value 3"), "{details}");
    // That job's bar is marked in the timeline, and only that one.
    let selected: Vec<&str> = dom
        .match_indices(r#"class="bar selected""#)
        .map(|(i, _)| &dom[i..i + 300])
        .collect();
    assert_eq!(selected.len(), 1, "{dom}");
    assert!(
        selected[0].contains(&format!(r#"data-job="{}""#, failed.job)),
        "{}",
        selected[0]
    );
    assert!(dom.contains(r#"class="mark-box""#), "{dom}");
    // The header says what ran: the command line and when it started.
    let header = dom
        .split("<header>")
        .nth(1)
        .unwrap()
        .split("</header>")
        .next()
        .unwrap();
    assert!(
        header.contains("--summary run.jsonl -j 3 in -- ./job.sh"),
        "{header}"
    );
    let run = &read_summary(env.path("run.jsonl"))[0];
    let started = run["started_unix_ms"].as_u64().unwrap();
    let day = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", started / 1000),
            "+%Y-%m-%d %H:%M:%S UTC",
        ])
        .output()
        .unwrap();
    let day = String::from_utf8(day.stdout).unwrap();
    assert!(
        header.contains(&format!("started <b>{}</b>", day.trim())),
        "{header}"
    );
    assert!(header.contains("host <b>"), "{header}");
    // Hostile text stays text: a path with markup in it does not become markup.
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
        "{dom}"
    );
    assert!(!dom.contains("<img"));
}

/// A journal of `n` ok jobs (and a failed one in every 50) whose durations spread from 10 ms
/// to 150 ms, evenly on a log scale, with a few up to 900 ms: the shape that linear bins
/// squeezed into a few bars.
fn spread_journal(n: u64) -> String {
    let mut text = String::new();
    let mut clock = [0u64; 4];
    for job in 1..=n {
        let f = (job - 1) as f64 / n as f64;
        let dur = if job % 40 == 0 {
            150.0 + 750.0 * f
        } else {
            10.0 * 15f64.powf(f)
        } as u64;
        let status = if job % 50 == 0 { "failed" } else { "ok" };
        let slot = (job % 4) as usize;
        let start = clock[slot];
        clock[slot] += dur + 1;
        text.push_str(&format!(
            r#"{{"type":"file","v":1,"job":{job},"path":"p/{job}","status":"{status}","exit_code":0,"signal":null,"attempts":1,"duration_ms":{dur},"peak_rss_bytes":1000,"stdout_bytes":0,"stderr_bytes":0,"stderr_tail":null,"command":["c"],"reason":null,"file_size":1,"file_mtime_ns":1,"started_ms":{start},"slot":{},"weight_bytes":1,"mem_reserved_bytes":1000}}"#,
            slot + 1
        ));
        text.push('\n');
    }
    text
}

#[test]
fn durations_fall_in_log_bins_in_the_statuses_colours() {
    let Some(browser) = chromium() else {
        return;
    };
    let env = TestEnv::new(&[], &[]);
    let n = 296;
    env.write("spread.jsonl", spread_journal(n));
    validate_journal(&env.path("spread.jsonl")).unwrap();
    env.run(&["report", "spread.jsonl"]).assert_ok();
    let (dom, log) = load(&browser, &env, &env.path("spread.html"));
    assert_rendered_without_errors(&dom, &log);
    let histogram = dom
        .split(r#"<div id="histogram""#)
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    let bins: Vec<u64> = histogram
        .split(r#"data-jobs=""#)
        .skip(1)
        .map(|b| b.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(bins.iter().sum::<u64>(), n, "{histogram}");
    assert!(bins.len() > 3, "{bins:?}");
    // Log bins share the bulk out: no bin holds a quarter of the jobs.
    assert!(bins.iter().all(|b| *b * 4 < n), "{bins:?}");
    // One colour per status: the histogram's ok and failed are the timeline's.
    let fill = |html: &str, status: &str| -> String {
        let at = html
            .find(&format!(r#"data-status="{status}""#))
            .unwrap_or_else(|| panic!("no {status}"));
        let tag_start = html[..at].rfind('<').unwrap();
        let tag = &html[tag_start..at + html[at..].find('>').unwrap()];
        tag.split(r#"fill=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    let timeline = dom
        .split(r#"<div id="timeline""#)
        .nth(1)
        .unwrap()
        .split(r#"<div id="details""#)
        .next()
        .unwrap();
    for status in ["ok", "failed"] {
        assert_eq!(fill(timeline, status), fill(histogram, status), "{status}");
    }
    // "1 job", never "1 jobs"; one time unit on each axis.
    assert!(!dom.contains(" 1 jobs"), "{dom}");
    for chart in [timeline, histogram] {
        let units: std::collections::BTreeSet<&str> = chart
            .split(r#"class="tick">"#)
            .skip(1)
            .map(|t| t.split('<').next().unwrap().rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(units.len(), 1, "{units:?}");
    }
}

#[test]
fn many_jobs_are_drawn_on_a_canvas() {
    let Some(browser) = chromium() else {
        return;
    };
    let env = TestEnv::new(&[], &[]);
    let n = 6000;
    let mut text = String::new();
    for job in 1..=n {
        let status = if job % 100 == 0 { "failed" } else { "ok" };
        text.push_str(&format!(
            r#"{{"type":"file","v":1,"job":{job},"path":"d/<b>x</b>{job}.parquet","status":"{status}","exit_code":0,"signal":null,"attempts":1,"duration_ms":{},"peak_rss_bytes":1000,"stdout_bytes":0,"stderr_bytes":0,"stderr_tail":null,"command":["c"],"reason":null,"file_size":1,"file_mtime_ns":1,"started_ms":{},"slot":{},"weight_bytes":1,"mem_reserved_bytes":1000}}"#,
            10 + job % 7,
            job / 8 * 20,
            job % 8 + 1
        ));
        text.push('\n');
    }
    env.write("big.jsonl", &text);
    validate_journal(&env.path("big.jsonl")).unwrap();
    env.run(&["report", "big.jsonl"]).assert_ok();
    let (dom, log) = load(&browser, &env, &env.path("big.html"));
    assert_rendered_without_errors(&dom, &log);
    assert!(dom.contains(&format!(r#"data-bars="{n}""#)));
    assert!(dom.contains("<canvas"));
    assert_eq!(dom.matches(r#"class="bar""#).count(), 0);
    assert!(!dom.contains("<b>x</b>"));
    assert!(dom.contains("Failed files (60)"));
}

#[test]
fn a_retried_job_spans_its_last_attempt() {
    let env = TestEnv::new(&[], &[("in/a", ""), ("in/b", "")]);
    env.script("job.sh", "#!/bin/sh\nsleep 0.3\nexit 1\n");
    env.run(&[
        "--summary",
        "run.jsonl",
        "-j",
        "1",
        "--retries",
        "1",
        "in",
        "--",
        "./job.sh",
    ])
    .assert_code(1);
    let records = typed_records(env.path("run.jsonl"));
    let a = records.iter().find(|r| r.path == "in/a").unwrap();
    let b = records.iter().find(|r| r.path == "in/b").unwrap();
    assert_eq!((a.attempts, b.attempts), (2, 2));
    // The first file's first attempt took 0.3 s from the run's start: its record starts after
    // that, where its last attempt began, so start + duration is where the job really was.
    let (a_start, a_end) = (
        a.started_ms.unwrap(),
        a.started_ms.unwrap() + a.duration_ms.unwrap(),
    );
    assert!(a_start >= 250, "{records:#?}");
    let b_start = b.started_ms.unwrap();
    assert!(b_start >= a_end + 250, "{records:#?}");
}

/// The page holds what the journal holds (stderr lines may carry tokens): it gets no more
/// permissions than the journal, and the umask is honoured.
#[test]
fn the_page_is_no_more_readable_than_its_journal() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new(&[], &[]);
    small_run(&env, 3);
    let mode = |p: &str| std::fs::metadata(env.path(p)).unwrap().permissions().mode() & 0o777;
    let chmod = |m: u32| {
        std::fs::set_permissions(env.path("run.jsonl"), std::fs::Permissions::from_mode(m))
            .unwrap();
    };
    // Under umask 077, a 0644 journal gives a 0600 page.
    chmod(0o644);
    let out = env.sh("umask 077; \"$FANOUT\" report run.jsonl");
    out.assert_ok();
    assert_eq!(mode("run.html"), 0o600, "umask 077\n{}", out.dump());
    // A 0600 journal gives a 0600 page under umask 022, and replacing a 0644 page too.
    std::fs::set_permissions(env.path("run.html"), std::fs::Permissions::from_mode(0o644)).unwrap();
    chmod(0o600);
    env.sh("umask 022; \"$FANOUT\" report run.jsonl")
        .assert_ok();
    assert_eq!(mode("run.html"), 0o600, "0600 journal");
    // A 0640 journal, umask 022: 0640.
    chmod(0o640);
    env.sh("umask 022; \"$FANOUT\" report run.jsonl -o other.html")
        .assert_ok();
    assert_eq!(mode("other.html"), 0o640, "0640 journal");
}
