//! Hostile file names: each reaches the job as one byte-identical argv element, in direct mode,
//! in `-s` shell mode and from stdin, and nothing in a name is ever executed.

use crate::harness::*;

/// Names that break naive `sh -c "cmd {}"` pipelines. Raw bytes: one is not UTF-8.
pub fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"with space.txt".to_vec(),
        b"two  spaces ".to_vec(),
        b"it's.txt".to_vec(),
        b"dq\"uote\".txt".to_vec(),
        b"$(touch PWNED).txt".to_vec(),
        b"`touch PWNED`.txt".to_vec(),
        b"semi;touch PWNED;.txt".to_vec(),
        b"amp&&touch PWNED.txt".to_vec(),
        b"pipe|touch PWNED.txt".to_vec(),
        b"redir>PWNED.txt".to_vec(),
        b"new\nline.txt".to_vec(),
        b"tab\there.txt".to_vec(),
        b"-leading-dash.txt".to_vec(),
        b"{}".to_vec(),
        b"{.}x{#}{{".to_vec(),
        b"star*.txt".to_vec(),
        b"q?.txt".to_vec(),
        b"back\\slash.txt".to_vec(),
        b"$HOME.txt".to_vec(),
        b"~tilde.txt".to_vec(),
        b"bad\xff\xfebytes.txt".to_vec(),
        "caf\u{e9}.txt".as_bytes().to_vec(),
    ]
}

/// A tree with every hostile name under `d/`.
pub fn hostile_env() -> TestEnv {
    hostile_env_where(|_| true)
}

/// A tree with the hostile names under `d/` that `keep` accepts.
pub fn hostile_env_where(keep: impl Fn(&[u8]) -> bool) -> TestEnv {
    let env = TestEnv::new(&["d"], &[]);
    for name in hostile_names().into_iter().filter(|n| keep(n)) {
        let mut rel = b"d/".to_vec();
        rel.extend(&name);
        env.write_bytes_name(&rel, b"x");
    }
    env
}

fn with_prefix(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend(name);
    v
}

#[track_caller]
fn assert_not_pwned(env: &TestEnv) {
    for p in ["PWNED", "d/PWNED", "PWNED.txt", "d/PWNED.txt"] {
        assert!(!env.exists(p), "{p} was created: a file name was executed");
    }
}

fn expected(f: impl Fn(&[u8]) -> Argv) -> Vec<Argv> {
    let mut v: Vec<Argv> = hostile_names().iter().map(|n| f(n)).collect();
    v.sort();
    v
}

/// A base name as a word of its own: `./` before a leading `-`.
fn dashed(n: &[u8]) -> Vec<u8> {
    if n.first() == Some(&b'-') {
        [b"./".as_slice(), n].concat()
    } else {
        n.to_vec()
    }
}

#[test]
fn direct_mode_passes_each_name_byte_identical() {
    let env = hostile_env();
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let out = env.run(&[
        "-H",
        "d",
        "--",
        dump.as_str(),
        out_dir.as_str(),
        "{}",
        "{/}",
        "pre-{/}-post",
    ]);
    out.assert_ok();
    let got = read_argv_dumps(&out_dir);
    let want = expected(|n| {
        vec![
            with_prefix(b"d/", n),
            // A value that begins a word cannot pass for an option: `./-name`.
            dashed(n),
            [b"pre-".as_slice(), n, b"-post"].concat(),
        ]
    });
    assert!(
        got == want,
        "argv differs\n--- got ---\n{}\n--- want ---\n{}\n{}",
        show_argvs(&got),
        show_argvs(&want),
        out.dump()
    );
    assert_not_pwned(&env);
}

#[test]
fn shell_mode_passes_each_name_byte_identical() {
    let env = hostile_env();
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let script = format!("{dump} {out_dir} {{}} {{/}} pre-{{/}}-post");
    let out = env.run(&["-s", "-H", "d", "--", script.as_str()]);
    out.assert_ok();
    let got = read_argv_dumps(&out_dir);
    let want = expected(|n| {
        vec![
            with_prefix(b"d/", n),
            // A value that begins a word cannot pass for an option: `./-name`.
            dashed(n),
            [b"pre-".as_slice(), n, b"-post"].concat(),
        ]
    });
    assert!(
        got == want,
        "argv differs\n--- got ---\n{}\n--- want ---\n{}\n{}",
        show_argvs(&got),
        show_argvs(&want),
        out.dump()
    );
    assert_not_pwned(&env);
}

#[test]
fn shell_mode_each_value_is_one_word() {
    // {/.} of every hostile name reaches the script as one word after the literal `x`.
    let env = hostile_env();
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let out = env.run(&[
        "-s",
        "-H",
        "d",
        "--",
        dump.as_str(),
        out_dir.as_str(),
        "x",
        "{/.}",
    ]);
    out.assert_ok();
    let got = read_argv_dumps(&out_dir);
    assert_eq!(got.len(), hostile_names().len(), "{}", show_argvs(&got));
    for argv in &got {
        assert_eq!(argv.len(), 2, "one word per value: {}", show_argvs(&got));
        assert_eq!(argv[0], b"x");
    }
    assert_not_pwned(&env);
}

#[test]
fn stdin_paths_pass_byte_identical() {
    let env = hostile_env();
    let out_dir = env.out_dir("out");
    let dump = fixture("argv-dump.sh");
    let mut input = Vec::new();
    for n in hostile_names() {
        input.extend(with_prefix(b"d/", &n));
        input.push(0);
    }
    let out = env.run_stdin(
        &["-0", "-", "--", dump.as_str(), out_dir.as_str(), "{}"],
        &input,
    );
    out.assert_ok();
    let got = read_argv_dumps(&out_dir);
    let want = expected(|n| vec![with_prefix(b"d/", n)]);
    assert!(
        got == want,
        "argv differs\n--- got ---\n{}\n--- want ---\n{}\n{}",
        show_argvs(&got),
        show_argvs(&want),
        out.dump()
    );
    assert_not_pwned(&env);
}

#[test]
fn names_at_the_root_with_implicit_dot() {
    // No PATH: paths carry no `./` prefix, except a leading dash gets one.
    let env = TestEnv::new(&[], &[]);
    for n in hostile_names() {
        env.write_bytes_name(&n, b"x");
    }
    let out_dir = env.out_dir(".out"); // hidden: not walked
    let dump = fixture("argv-dump.sh");
    let out = env.run(&["--", dump.as_str(), out_dir.as_str(), "{}"]);
    out.assert_ok();
    let got = read_argv_dumps(&out_dir);
    let want = expected(|n| {
        if n.starts_with(b"-") {
            vec![with_prefix(b"./", n)]
        } else {
            vec![n.to_vec()]
        }
    });
    assert!(
        got == want,
        "argv differs\n--- got ---\n{}\n--- want ---\n{}\n{}",
        show_argvs(&got),
        show_argvs(&want),
        out.dump()
    );
    assert_not_pwned(&env);
}

#[test]
fn summary_keeps_non_utf8_path_lossless() {
    use base64::Engine;
    let env = TestEnv::new(&[], &[("d/plain.txt", "")]);
    let raw = b"d/bad\xffname.txt";
    env.write_bytes_name(raw, b"");
    let out = env.run(&["--summary", "s.jsonl", "d", "--", "true"]);
    out.assert_ok();
    let recs = read_summary(env.path("s.jsonl"));
    assert_counts_add_up(&recs);
    let files = file_records(&recs);
    let bad: Vec<&serde_json::Value> = files
        .iter()
        .filter(|r| r.get("path_b64").is_some_and(|v| !v.is_null()))
        .collect();
    assert_eq!(
        bad.len(),
        1,
        "exactly the non-UTF-8 path has path_b64: {recs:#?}"
    );
    let rec = bad[0];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rec["path_b64"].as_str().unwrap())
        .expect("path_b64 is standard base64");
    assert_eq!(decoded, raw, "path_b64 must hold the exact bytes: {rec}");
    let lossy = rec["path"].as_str().unwrap();
    assert!(
        lossy.starts_with("d/bad") && lossy.ends_with("name.txt") && lossy.contains('\u{fffd}'),
        "path holds a lossy form: {rec}"
    );
    let plain = record_for(&recs, "d/plain.txt");
    assert!(
        plain.get("path_b64").is_none_or(serde_json::Value::is_null),
        "UTF-8 path needs no path_b64: {plain}"
    );
    // The command array is present and lossy too.
    assert!(rec["command"].is_array(), "{rec}");
    assert_eq!(rec["status"], "ok", "{rec}");
}
