//! `--tag`: every line of a job's output, stdout and stderr, starts with its input path and a
//! tab, whatever the name holds and however the output ends.

use crate::harness::*;
use crate::hostile::{hostile_env, hostile_names};

/// The tag fanout gives a path: its bytes, or a `$'…'` word when it holds a control byte.
fn expected_tag(path: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    if path.iter().any(|&b| b < 0x20 || b == 0x7f) {
        t.extend_from_slice(b"$'");
        for &b in path {
            match b {
                b'\n' => t.extend_from_slice(b"\\n"),
                b'\t' => t.extend_from_slice(b"\\t"),
                b'\\' => t.extend_from_slice(b"\\\\"),
                b'\'' => t.extend_from_slice(b"\\'"),
                b => t.push(b),
            }
        }
        t.push(b'\'');
    } else {
        t.extend_from_slice(path);
    }
    t.push(b'\t');
    t
}

/// Splits output into lines (each ends with `\n`: `--tag` ends an unterminated last line).
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "tagged output must end with a newline: {:?}",
        String::from_utf8_lossy(bytes)
    );
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn every_line_of_both_streams_starts_with_the_path_and_a_tab() {
    let env = hostile_env();
    // Two lines and an unterminated third on stdout, one line on stderr.
    let out = env.run(&[
        "--tag",
        "-j",
        "3",
        "d",
        "--",
        "sh",
        "-c",
        r#"printf 'first\nsecond\nno newline'; printf 'oops\n' >&2"#,
        "_",
        "{}",
    ]);
    out.assert_ok();
    let names = hostile_names();
    let mut want_out = Vec::new();
    let mut want_err = Vec::new();
    for name in &names {
        let mut path = b"d/".to_vec();
        path.extend(name);
        let tag = expected_tag(&path);
        for text in [&b"first"[..], b"second", b"no newline"] {
            want_out.push([tag.clone(), text.to_vec()].concat());
        }
        want_err.push([tag.clone(), b"oops".to_vec()].concat());
    }
    let mut got_out = lines(&out.stdout);
    got_out.sort();
    want_out.sort();
    assert_eq!(got_out, want_out, "{}", out.dump());
    let mut got_err: Vec<Vec<u8>> = lines(&out.stderr)
        .into_iter()
        .filter(|l| !l.starts_with(b"fanout: "))
        .collect();
    got_err.sort();
    want_err.sort();
    assert_eq!(got_err, want_err, "{}", out.dump());
    // Each job's lines stay together (output never interleaves): three in a row per job.
    let all = lines(&out.stdout);
    for chunk in all.chunks(3) {
        let tab = |l: &Vec<u8>| l[..l.iter().rposition(|&b| b == b'\t').unwrap()].to_vec();
        assert!(
            chunk.iter().all(|l| tab(l) == tab(&chunk[0])),
            "{}",
            out.dump()
        );
    }
}

#[test]
fn tags_work_with_keep_order_and_with_one_job() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", "A\n"), ("d/b.txt", "B1\nB2")]);
    for args in [&["--tag", "-k", "-j", "2"][..], &["--tag", "-j", "1"]] {
        let mut full = args.to_vec();
        // b first finishes first: -k must still print a first.
        full.extend([
            "d",
            "--",
            "sh",
            "-c",
            r#"case "$1" in *a.txt) sleep 0.3;; esac; cat "$1""#,
            "_",
            "{}",
        ]);
        let out = env.run(&full);
        out.assert_ok();
        assert_eq!(
            out.stdout_str(),
            "d/a.txt\tA\nd/b.txt\tB1\nd/b.txt\tB2\n",
            "{args:?}\n{}",
            out.dump()
        );
    }
}

#[test]
fn without_tag_output_is_unchanged_and_the_dry_run_is_not_tagged() {
    let env = TestEnv::new(&["d"], &[("d/b.txt", "B1\nB2")]);
    let out = env.run(&["-j", "2", "d", "--", "cat", "{}"]);
    out.assert_ok();
    assert_eq!(out.stdout_str(), "B1\nB2");
    let dry = env.run(&["--tag", "-n", "d", "--", "cat", "{}"]);
    dry.assert_ok();
    assert_eq!(dry.stdout_str(), "cat d/b.txt\n", "{}", dry.dump());
}
