//! Trust boundaries (#21): no other user can steer what fanout reads or writes. Another user's
//! leftovers beside a journal, links that another user planted, `{out}` in a directory others
//! can write, and the metadata (ACLs, extended attributes) a commit must keep.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::harness::*;
use crate::inplace_hostile::{as_nobody, chmod, is_root};

/// Item 5: `nobody` plants a replacement of root's journal in a sticky shared directory, with
/// a forged `ok` record for a file that failed. `--resume` must not skip that file, must say
/// that it ignored the planted file, and the forged record must not enter the journal.
#[test]
fn resume_ignores_a_journal_leftover_another_user_planted() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the leftover is planted by nobody)");
        return;
    }
    let env = TestEnv::new(&["shared"], &[("in/a.txt", "a\n"), ("in/b.txt", "b\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("in"), 0o755);
    chmod(&env.path("shared"), 0o1777);
    // First run: b fails.
    let job = [
        "sh",
        "-c",
        "test ! -e fail-$(basename \"$1\") && touch ran-$(basename \"$1\")",
        "_",
        "{}",
    ];
    env.write("fail-b.txt", "");
    let first = [
        &["--summary", "shared/run.jsonl", "-k", "in", "--"][..],
        &job[..],
    ]
    .concat();
    env.run(&first).assert_code(1);
    assert!(!env.exists("ran-b.txt"));
    fs::remove_file(env.path("fail-b.txt")).unwrap();
    // nobody forges an `ok` record for b, with b's size and time, as a leftover of root's run.
    let b = fs::metadata(env.path("in/b.txt")).unwrap();
    let forged = format!(
        "{{\"type\":\"file\",\"v\":1,\"job\":2,\"path\":\"in/b.txt\",\"status\":\"ok\",\"file_size\":{},\"file_mtime_ns\":{}}}\n",
        b.size(),
        b.mtime() * 1_000_000_000 + b.mtime_nsec()
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let plant = format!(
        "printf '%s' '{forged}' > '{}/.run.jsonl.fanout-journal-AbCdEfGh'",
        env.path("shared").display()
    );
    let Some(mut attacker) = as_nobody(&plant) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    assert!(attacker.status().unwrap().success());
    let planted = env.path("shared/.run.jsonl.fanout-journal-AbCdEfGh");
    assert_eq!(fs::metadata(&planted).unwrap().uid(), 65534);
    let again = [
        &[
            "--resume",
            "shared/run.jsonl",
            "--summary",
            "shared/run.jsonl",
            "-k",
            "in",
            "--",
        ][..],
        &job[..],
    ]
    .concat();
    let out = env.run(&again);
    out.assert_ok()
        .assert_stderr_contains("--resume: ignored")
        .assert_stderr_contains(".run.jsonl.fanout-journal-AbCdEfGh (owned by another user)");
    assert!(
        env.exists("ran-b.txt"),
        "b was skipped on a forged record\n{}",
        out.dump()
    );
    let records = file_records(&read_summary(env.path("shared/run.jsonl")));
    let b = record_for(&records, "in/b.txt");
    assert_eq!(b["status"], "ok", "{b}");
    assert!(
        b["duration_ms"].is_number(),
        "b's record is not its own run's: {b}"
    );
    // Not fanout's: left where it is, not removed by root.
    assert!(planted.exists(), "another user's file was removed");
}

/// Starts `nobody` waiting (10 s at most) for the job to write its `{out}` path into `note`
/// (as `ps` would show it), then planting a link to `victim` at that name.
fn plant_link_at_out(env: &TestEnv, victim: &std::path::Path) -> Option<std::process::Child> {
    let script = format!(
        r#"cd '{}' || exit 1
i=0
while [ ! -s note ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
[ -s note ] || exit 3
ln -s '{}' "$(cat note)""#,
        env.root().display(),
        victim.display()
    );
    let mut cmd = as_nobody(&script)?;
    Some(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The job of the symlink tests: it says where it writes, leaves the attacker a second,
/// then writes `{out}` by its path, as any shell redirect does.
const SLOW_JOB: [&str; 6] = [
    "sh",
    "-c",
    r#"echo "$2" > note; sleep 1; tr a-z A-Z <"$1" >"$2""#,
    "_",
    "{}",
    "{out}",
];

fn secret(env: &TestEnv) -> std::path::PathBuf {
    let secret = env.write("secret", "root only\n");
    chmod(&secret, 0o600);
    secret
}

/// Item 1: root runs `-i` on another user's 0775 directory, where that user plants a link at
/// `{out}`'s name while the job runs. fanout refuses before anything runs (exit 2, naming the
/// directory and the flag), so the root-only file cannot be reached; fed on stdin, the file
/// gets a `failed` record saying why.
#[test]
fn in_place_refuses_a_directory_another_user_owns() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the attacker runs as nobody)");
        return;
    }
    let env = TestEnv::new(&["w"], &[("w/a.txt", "abc\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("w"), 0o775);
    std::os::unix::fs::chown(env.path("w"), Some(65534), Some(65534)).unwrap();
    let victim = secret(&env);
    let Some(mut attacker) = plant_link_at_out(&env, &victim) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    let out = env.run(&[&["-i", "w", "--"][..], &SLOW_JOB[..]].concat());
    let _ = attacker.kill();
    let _ = attacker.wait();
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "root only\n",
        "{}",
        out.dump()
    );
    out.assert_code(2)
        .assert_stderr_contains("w belongs to user id 65534")
        .assert_stderr_contains("--allow-shared-dirs");
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.dump());
    assert_eq!(fs::read_to_string(env.path("w/a.txt")).unwrap(), "abc\n");
    // From stdin nothing is known before the walk: a record per file says why.
    let out = env.run_stdin(
        &[
            &["-i", "-", "--summary", "s.jsonl", "--"][..],
            &SLOW_JOB[..],
        ]
        .concat(),
        b"w/a.txt\n",
    );
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "w/a.txt");
    assert_eq!(r["status"], "failed", "{r}");
    let why = r["reason"].as_str().unwrap();
    assert!(
        why.contains("belongs to user id 65534") && why.contains("--allow-shared-dirs"),
        "{r}"
    );
    assert!(!env.exists("note"), "the job ran");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root only\n");
}

/// Item 1, `-o`: a target directory another user can write is refused before anything runs.
#[test]
fn output_refuses_a_target_directory_others_can_write() {
    let env = TestEnv::new(&["shared/out"], &[("in/a.txt", "abc\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("shared"), 0o777);
    let out = env.run(&["in", "-o", "shared/out/new/{/}", "--", "cp", "{}", "{out}"]);
    out.assert_code(2)
        .assert_stderr_contains("shared can be written by other users (mode 777, not sticky)")
        .assert_stderr_contains("--allow-shared-dirs");
    assert!(!env.exists("shared/out/new"));
    env.run(&[
        "in",
        "--allow-shared-dirs",
        "-o",
        "shared/out/new/{/}",
        "--",
        "cp",
        "{}",
        "{out}",
    ])
    .assert_ok();
    assert_eq!(
        fs::read_to_string(env.path("shared/out/new/a.txt")).unwrap(),
        "abc\n"
    );
}

/// Item 1, a sticky shared directory (root's, mode 1777, as /tmp): fanout runs there, and
/// takes `{out}`'s name before the job starts, so `nobody` cannot plant a link at it.
#[test]
fn in_a_sticky_directory_out_cannot_be_planted() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the attacker runs as nobody)");
        return;
    }
    let env = TestEnv::new(&["w"], &[("w/a.txt", "abc\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("w"), 0o1777);
    let victim = secret(&env);
    let Some(mut attacker) = plant_link_at_out(&env, &victim) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    let out = env.run(&[&["-i", "w", "--"][..], &SLOW_JOB[..]].concat());
    let planted = attacker.wait().unwrap();
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "root only\n",
        "{}",
        out.dump()
    );
    assert!(!planted.success(), "the attacker's link was made");
    out.assert_ok();
    assert_eq!(fs::read_to_string(env.path("w/a.txt")).unwrap(), "ABC\n");
}

/// Item 4: as root, a link owned by `nobody` to a root-only file is not followed, whether the
/// path comes on stdin or from a `-L` walk, whether the link is the file's name or a directory
/// on its path; a link of `nobody` to `nobody`'s own file is; `--allow-foreign-links` follows
/// both.
#[test]
fn root_does_not_follow_another_users_link_to_a_file_they_cannot_write() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the links belong to nobody)");
        return;
    }
    let env = TestEnv::new(
        &["top/bobdir", "rootonly"],
        &[
            ("rootonly/rootfile.txt", "root\n"),
            ("pub/own.txt", "bob\n"),
        ],
    );
    chmod(&env.path("pub"), 0o755);
    chmod(env.root(), 0o755);
    chmod(&env.path("rootonly"), 0o700);
    let rootfile = env.path("rootonly/rootfile.txt");
    let bob = |p: &str| {
        let path = env.path(p);
        std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
    };
    std::os::unix::fs::symlink(&rootfile, env.path("top/bobdir/x.txt")).unwrap();
    // A directory link too: top/bobdir/d -> rootonly, so top/bobdir/d/rootfile.txt.
    std::os::unix::fs::symlink(env.path("rootonly"), env.path("top/bobdir/d")).unwrap();
    // nobody's link to nobody's own file (in root's directory) is followed.
    std::os::unix::fs::symlink(env.path("pub/own.txt"), env.path("top/bobdir/own.txt")).unwrap();
    for p in [
        "top/bobdir",
        "top/bobdir/x.txt",
        "top/bobdir/d",
        "top/bobdir/own.txt",
        "pub/own.txt",
    ] {
        bob(p);
    }
    let upper = [
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"tr a-z A-Z <"$1" >"$2""#,
        "_",
        "{}",
        "{out}",
    ];
    let all = b"top/bobdir/x.txt\ntop/bobdir/d/rootfile.txt\ntop/bobdir/own.txt\n";
    // By default nothing is read through nobody's directory at all: nobody could swap what
    // the job reads while it runs.
    let out = env.run_stdin(&[&["-i", "-"][..], &upper[..]].concat(), all);
    out.assert_code(1);
    let records = read_summary(env.path("s.jsonl"));
    for p in [
        "top/bobdir/x.txt",
        "top/bobdir/d/rootfile.txt",
        "top/bobdir/own.txt",
    ] {
        let r = record_for(&records, p);
        assert_eq!(r["status"], "failed", "{r}");
        let why = r["reason"].as_str().unwrap();
        assert!(
            why.contains("belongs to user id 65534") && why.contains("--allow-shared-dirs"),
            "{r}"
        );
    }
    assert_eq!(
        fs::read_to_string(&rootfile).unwrap(),
        "root\n",
        "{}",
        out.dump()
    );
    assert_eq!(
        fs::read_to_string(env.path("pub/own.txt")).unwrap(),
        "bob\n"
    );
    // With that rule relaxed, the link rule still holds: a link of nobody's to a file nobody
    // cannot write is not followed (as the name, or as a directory on the path); one to
    // nobody's own file is.
    let shared = ["-i", "--allow-shared-dirs", "-"];
    let out = env.run_stdin(&[&shared[..], &upper[..]].concat(), all);
    out.assert_code(1);
    assert_eq!(
        fs::read_to_string(&rootfile).unwrap(),
        "root\n",
        "{}",
        out.dump()
    );
    let records = read_summary(env.path("s.jsonl"));
    for p in ["top/bobdir/x.txt", "top/bobdir/d/rootfile.txt"] {
        let r = record_for(&records, p);
        assert_eq!(r["status"], "failed", "{r}");
        let why = r["reason"].as_str().unwrap();
        assert!(
            why.contains("symbolic link of user id 65534, who cannot write")
                && why.contains("--allow-foreign-links"),
            "{r}"
        );
    }
    assert_eq!(record_for(&records, "top/bobdir/own.txt")["status"], "ok");
    assert_eq!(
        fs::read_to_string(env.path("pub/own.txt")).unwrap(),
        "BOB\n"
    );
    // The same with -L on a walk.
    let out = env.run(&[&["-i", "--allow-shared-dirs", "-L", "top"][..], &upper[..]].concat());
    out.assert_code(1);
    assert_eq!(
        fs::read_to_string(&rootfile).unwrap(),
        "root\n",
        "{}",
        out.dump()
    );
    // Both rules relaxed: the link is followed.
    env.run_stdin(
        &[
            &["-i", "--allow-shared-dirs", "--allow-foreign-links", "-"][..],
            &upper[..],
        ]
        .concat(),
        b"top/bobdir/x.txt\n",
    )
    .assert_ok();
    assert_eq!(fs::read_to_string(&rootfile).unwrap(), "ROOT\n");
}

/// Fresh look: root's `-o` job reads `{}` by its path. In nobody's directory, nobody could
/// swap the input for a link to a root-only file while the job reads it (and back before
/// fanout looks again), and root would copy that file into the new target: refused up front
/// for a walk (exit 2) and per file from stdin.
#[test]
fn root_does_not_read_through_another_users_directory() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the directory belongs to nobody)");
        return;
    }
    let env = TestEnv::new(&["bobdir", "out"], &[("bobdir/y.txt", "bob\n")]);
    chmod(env.root(), 0o755);
    std::os::unix::fs::chown(env.path("bobdir"), Some(65534), Some(65534)).unwrap();
    let victim = secret(&env);
    let Some(mut attacker) = plant_link_at(&env, &victim, "bobdir/y.txt") else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    // The job reads a second after it said so, and takes another second to end: nobody
    // swaps the input for a link in between, and puts it back before fanout looks again.
    let slow_cp = [
        "--",
        "sh",
        "-c",
        r#"echo go > note; sleep 1; cat "$1" >"$2"; sleep 1"#,
        "_",
        "{}",
        "{out}",
    ];
    let out = env.run_stdin(
        &[
            &["-", "-o", "out/{/}", "--summary", "s.jsonl"][..],
            &slow_cp[..],
        ]
        .concat(),
        b"bobdir/y.txt\n",
    );
    let _ = attacker.kill();
    let _ = attacker.wait();
    assert!(
        fs::read_to_string(env.path("out/y.txt")).map_or(true, |t| t != "root only\n"),
        "root's job copied the root-only file into the target\n{}",
        out.dump()
    );
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "bobdir/y.txt");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("change what the job reads"),
        "{r}"
    );
    let out = env.run(&[&["bobdir", "-o", "out/{/}"][..], &slow_cp[..]].concat());
    out.assert_code(2)
        .assert_stderr_contains("-o as root: bobdir belongs to user id 65534")
        .assert_stderr_contains("--allow-shared-dirs");
}

/// `-o` as root through root's own link to a file in another user's directory: that user can
/// swap the file the link leads to while the job reads `{}`, so the directory the link
/// resolves into is held to the same rule as an input's own directory.
#[test]
fn root_does_not_read_through_its_own_link_into_another_users_directory() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the directory belongs to nobody)");
        return;
    }
    let env = TestEnv::new(&["bobdir", "mine", "out"], &[("bobdir/y.txt", "bob\n")]);
    chmod(env.root(), 0o755);
    std::os::unix::fs::chown(env.path("bobdir"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(env.path("bobdir/y.txt"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::symlink("../bobdir/y.txt", env.path("mine/l.txt")).unwrap();
    let victim = secret(&env);
    let Some(mut attacker) = plant_link_at(&env, &victim, "bobdir/y.txt") else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    let slow_cp = [
        "--",
        "sh",
        "-c",
        r#"echo go > note; sleep 1; cat "$1" >"$2"; sleep 1"#,
        "_",
        "{}",
        "{out}",
    ];
    let out = env.run_stdin(
        &[
            &["-", "-o", "out/{/}", "--summary", "s.jsonl"][..],
            &slow_cp[..],
        ]
        .concat(),
        b"mine/l.txt\n",
    );
    let _ = attacker.kill();
    let _ = attacker.wait();
    assert!(
        fs::read_to_string(env.path("out/l.txt")).map_or(true, |t| t != "root only\n"),
        "root's job copied the root-only file into the target\n{}",
        out.dump()
    );
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "mine/l.txt");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("change what the job reads"),
        "{r}"
    );
    // Named on the command line, the link is refused before anything runs, as the file it
    // leads to is.
    let out = env.run(&[&["mine/l.txt", "-o", "out/{/}"][..], &slow_cp[..]].concat());
    out.assert_code(2)
        .assert_stderr_contains("-o as root:")
        .assert_stderr_contains("bobdir belongs to user id 65534")
        .assert_stderr_contains("--allow-shared-dirs");
}

/// Starts `nobody` waiting (10 s at most) for the job's `note`, then swapping `rel` (in a
/// directory of theirs) for a link to `victim`.
fn plant_link_at(
    env: &TestEnv,
    victim: &std::path::Path,
    rel: &str,
) -> Option<std::process::Child> {
    let script = format!(
        r#"cd '{}' || exit 1
i=0
while [ ! -s note ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done
[ -s note ] || exit 3
mv '{rel}' '{rel}.keep' && ln -s '{}' '{rel}'
sleep 1.5
rm '{rel}' && mv '{rel}.keep' '{rel}'"#,
        env.root().display(),
        victim.display()
    );
    let mut cmd = as_nobody(&script)?;
    Some(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn tool(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .current_dir(env.root())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Whether the test directory's file system takes ACLs and user attributes: mandatory in CI.
fn acls_supported(env: &TestEnv) -> bool {
    let what = "it sets and reads ACLs and extended attributes (Debian's acl and attr)";
    for program in ["setfacl", "getfacl", "setfattr", "getfattr"] {
        if !tool_or_skip(program, what, false) {
            return false;
        }
    }
    env.write("probe", "");
    let ok = tool(env, &["setfacl", "-m", "u:1000:rw", "probe"]).0
        && tool(env, &["setfattr", "-n", "user.probe", "-v", "1", "probe"]).0;
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI: the test directory's file system must take ACLs and user extended attributes"
        );
        eprintln!("skipped: the test directory's file system takes no ACLs or user attributes");
    }
    ok
}

/// Item 2: `-i` keeps the file's POSIX ACL (its mask too, so the group gains nothing) and its
/// `user.*` and (as root) `trusted.*` attributes; `-o` replacing a target keeps the target's;
/// file capabilities are not carried, and the record says so.
#[test]
fn in_place_and_output_keep_acls_and_extended_attributes() {
    let env = TestEnv::new(
        &[],
        &[
            ("a.txt", "abc\n"),
            ("in/b.txt", "new\n"),
            ("out/b.txt", "old\n"),
        ],
    );
    if !acls_supported(&env) {
        return;
    }
    let root = is_root();
    for f in ["a.txt", "out/b.txt"] {
        chmod(&env.path(f), 0o600);
        assert!(
            tool(
                &env,
                &["setfacl", "-m", "user:1000:rw,group::---,mask::rw-", f]
            )
            .0
        );
        assert!(tool(&env, &["setfattr", "-n", "user.origin", "-v", "keep-me", f]).0);
        if root {
            assert!(tool(&env, &["setfattr", "-n", "trusted.t", "-v", "x", f]).0);
        }
    }
    let acl_a = tool(&env, &["getfacl", "-cn", "a.txt"]).1;
    let acl_b = tool(&env, &["getfacl", "-cn", "out/b.txt"]).1;
    assert!(
        acl_a.contains("user:1000:rw-") && acl_a.contains("mask::rw-"),
        "{acl_a}"
    );
    env.run(&[
        "-i",
        "a.txt",
        "--",
        "sh",
        "-c",
        r#"tr a-z A-Z <"$1" >"$2""#,
        "_",
        "{}",
        "{out}",
    ])
    .assert_ok();
    env.run(&["in", "-o", "out/{/}", "--", "cp", "{}", "{out}"])
        .assert_ok();
    assert_eq!(fs::read_to_string(env.path("a.txt")).unwrap(), "ABC\n");
    assert_eq!(fs::read_to_string(env.path("out/b.txt")).unwrap(), "new\n");
    assert_eq!(tool(&env, &["getfacl", "-cn", "a.txt"]).1, acl_a);
    assert_eq!(tool(&env, &["getfacl", "-cn", "out/b.txt"]).1, acl_b);
    for f in ["a.txt", "out/b.txt"] {
        let mode = fs::metadata(env.path(f)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o660, "{f}: the mask stays the group bits");
        let (ok, attrs) = tool(&env, &["getfattr", "-d", "-m", "-", f]);
        assert!(
            ok && attrs.contains("user.origin=\"keep-me\""),
            "{f}: {attrs}"
        );
        if root {
            assert!(attrs.contains("trusted.t=\"x\""), "{f}: {attrs}");
        }
    }
    // File capabilities and the integrity hash: not carried, and said.
    let caps = "its part on file capabilities sets them (Debian's libcap2-bin)";
    if root
        && tool_or_skip("setcap", caps, false)
        && tool_or_skip("getcap", caps, false)
        && tool(&env, &["setcap", "cap_net_raw+ep", "a.txt"]).0
    {
        let ima = tool(
            &env,
            &["setfattr", "-n", "security.ima", "-v", "0x0401", "a.txt"],
        )
        .0;
        let out = env.run(&[
            "-i",
            "a.txt",
            "--summary",
            "s.jsonl",
            "--",
            "sh",
            "-c",
            r#"cat "$1" >"$2""#,
            "_",
            "{}",
            "{out}",
        ]);
        out.assert_ok();
        assert_eq!(
            tool(&env, &["getcap", "a.txt"]).1.trim(),
            "",
            "capabilities kept"
        );
        let r = record_for(&read_summary(env.path("s.jsonl")), "a.txt");
        let why = r["reason"].as_str().unwrap_or("");
        assert!(
            why.starts_with("not kept: ") && why.contains("security.capability (file capabilities"),
            "{r}"
        );
        if ima {
            assert!(
                why.contains("security.ima (it vouches for the old content)"),
                "{r}"
            );
            let (_, attrs) = tool(&env, &["getfattr", "-d", "-m", "-", "a.txt"]);
            assert!(!attrs.contains("security.ima"), "{attrs}");
        }
        assert_eq!(tool(&env, &["getfacl", "-cn", "a.txt"]).1, acl_a);
    }
}

/// Fresh look: `--summary shared/run.jsonl` in a sticky shared directory, where `nobody`
/// planted `run.jsonl` as a link to a root-only file, or as a file of theirs: root's journal
/// goes through neither (exit 2, one line), and the root-only file is untouched.
#[test]
fn the_journal_is_not_written_through_another_users_link_or_into_their_file() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the link belongs to nobody)");
        return;
    }
    let env = TestEnv::new(&["shared"], &[("in/a.txt", "a\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("shared"), 0o1777);
    let victim = secret(&env);
    let plant = format!(
        "ln -s '{}' '{}/run.jsonl' && printf 'mine' > '{}/theirs.jsonl'",
        victim.display(),
        env.path("shared").display(),
        env.path("shared").display()
    );
    let Some(mut attacker) = as_nobody(&plant) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    assert!(attacker.status().unwrap().success());
    let out = env.run(&["--summary", "shared/run.jsonl", "in", "--", "true"]);
    out.assert_code(2)
        .assert_stderr_contains("symbolic link of user id 65534");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root only\n");
    // Resuming from and writing to the same path: the journal replaces the file the path
    // names, never through nobody's link (here to an empty root-only file).
    fs::write(&victim, "").unwrap();
    let out = env.run(&[
        "--resume",
        "shared/run.jsonl",
        "--summary",
        "shared/run.jsonl",
        "in",
        "--",
        "true",
    ]);
    out.assert_code(2)
        .assert_stderr_contains("symbolic link of user id 65534");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "");
    assert!(fs::symlink_metadata(env.path("shared/run.jsonl"))
        .unwrap()
        .is_symlink());
    let out = env.run(&["--summary", "shared/theirs.jsonl", "in", "--", "true"]);
    out.assert_code(2)
        .assert_stderr_contains("a file of user id 65534 in a directory other users can write");
    assert_eq!(
        fs::read_to_string(env.path("shared/theirs.jsonl")).unwrap(),
        "mine"
    );
    // A link of one's own, and /dev/stdout, are followed as before.
    std::os::unix::fs::symlink(env.path("mine.jsonl"), env.path("shared/own.jsonl")).unwrap();
    env.run(&["--summary", "shared/own.jsonl", "in", "--", "true"])
        .assert_ok();
    // The `run` line, the file's record, the final record.
    assert_eq!(read_summary(env.path("mine.jsonl")).len(), 3);
    let out = env.run(&["-q", "--summary", "/dev/stdout", "in", "--", "true"]);
    out.assert_ok();
    assert!(
        out.stdout_str().contains("\"type\":\"summary\""),
        "{}",
        out.dump()
    );
}

/// The journal is never written into another user's FIFO planted in a shared directory
/// (they would read it; and an open for writing would wait for a reader), nor through a link
/// of one's own in a directory another user can change (they could swap it for theirs between
/// the look and the open).
#[test]
fn the_journal_is_not_written_into_a_planted_fifo_nor_through_a_swappable_link() {
    if !is_root() {
        eprintln!("skipped: this test needs root (the FIFO belongs to nobody)");
        return;
    }
    let env = TestEnv::new(&["sticky", "open"], &[("in/a.txt", "a\n")]);
    chmod(env.root(), 0o755);
    chmod(&env.path("sticky"), 0o1777);
    chmod(&env.path("open"), 0o777);
    let plant = format!("mkfifo '{}/run.jsonl'", env.path("sticky").display());
    let Some(mut attacker) = as_nobody(&plant) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    assert!(attacker.status().unwrap().success());
    env.run(&["--summary", "sticky/run.jsonl", "in", "--", "true"])
        .assert_code(2)
        .assert_stderr_contains("a FIFO of user id 65534 in a directory other users can write");
    // Root's own link, in a directory anyone can write and that is not sticky.
    let victim = secret(&env);
    fs::write(&victim, "").unwrap();
    std::os::unix::fs::symlink(&victim, env.path("open/run.jsonl")).unwrap();
    for args in [
        &["--summary", "open/run.jsonl"][..],
        &["--resume", "open/run.jsonl", "--summary", "open/run.jsonl"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["in", "--", "true"]);
        env.run(&all)
            .assert_code(2)
            .assert_stderr_contains("another user could swap it");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "", "{all:?}");
    }
}

/// Fresh look: the inode flags `chattr` sets (here `d`, no dump) stay with a rewritten file;
/// an immutable file is not replaced (the original stays, the record says why).
#[test]
fn in_place_keeps_file_flags_and_leaves_an_immutable_file() {
    let env = TestEnv::new(&[], &[("a.txt", "abc\n"), ("i.txt", "keep\n")]);
    let what = "it sets and reads inode flags (e2fsprogs)";
    if !tool_or_skip("chattr", what, false) || !tool_or_skip("lsattr", what, false) {
        return;
    }
    if !tool(&env, &["chattr", "+d", "a.txt"]).0 {
        eprintln!("skipped: the test directory's file system takes no inode flags");
        return;
    }
    let upper = [
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"tr a-z A-Z <"$1" >"$2""#,
        "_",
        "{}",
        "{out}",
    ];
    env.run(&[&["-i", "a.txt"][..], &upper[..]].concat())
        .assert_ok();
    assert_eq!(fs::read_to_string(env.path("a.txt")).unwrap(), "ABC\n");
    let (_, flags) = tool(&env, &["lsattr", "a.txt"]);
    assert!(
        flags.split_whitespace().next().unwrap().contains('d'),
        "{flags}"
    );
    if tool(&env, &["chattr", "+i", "i.txt"]).0 {
        let out = env.run(&[&["-i", "i.txt"][..], &upper[..]].concat());
        let _ = tool(&env, &["chattr", "-i", "i.txt"]);
        out.assert_code(1);
        assert_eq!(fs::read_to_string(env.path("i.txt")).unwrap(), "keep\n");
        let r = record_for(&read_summary(env.path("s.jsonl")), "i.txt");
        assert_eq!(
            (&r["status"], &r["action"]),
            (&"failed".into(), &"kept".into()),
            "{r}"
        );
    }
}

/// Fresh look: not as root, the new file gets the input's group when fanout's user is in it
/// (it used to get the user's own group, silently: the group's permissions went to another
/// group); when it cannot, and the mode gives the group any permission, the original stays.
#[test]
fn a_user_rewrite_keeps_the_files_group_or_keeps_the_file() {
    if !is_root() {
        eprintln!("skipped: this test needs root (it runs fanout as nobody, in group users)");
        return;
    }
    let env = TestEnv::new(&["w"], &[("w/a.txt", "abc\n"), ("w/b.txt", "xyz\n")]);
    chmod(env.root(), 0o755);
    for p in ["w", "w/a.txt", "w/b.txt"] {
        std::os::unix::fs::chown(env.path(p), Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(env.path("w/a.txt"), None, Some(100)).unwrap();
    std::os::unix::fs::chown(env.path("w/b.txt"), None, Some(0)).unwrap();
    for p in ["w/a.txt", "w/b.txt"] {
        chmod(&env.path(p), 0o640);
    }
    chmod(&env.path("w"), 0o755);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--groups=100", FANOUT])
        .args(["-i", "w", "--summary", "w/s.jsonl", "--", "sh", "-c"])
        .args([r#"tr a-z A-Z <"$1" >"$2""#, "_", "{}", "{out}"])
        .current_dir(env.root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let a = fs::metadata(env.path("w/a.txt")).unwrap();
    assert_eq!(
        fs::read_to_string(env.path("w/a.txt")).unwrap(),
        "ABC\n",
        "{err}"
    );
    assert_eq!((a.gid(), a.mode() & 0o777), (100, 0o640), "{err}");
    let b = fs::metadata(env.path("w/b.txt")).unwrap();
    assert_eq!(
        fs::read_to_string(env.path("w/b.txt")).unwrap(),
        "xyz\n",
        "{err}"
    );
    assert_eq!(b.gid(), 0);
    let r = record_for(&read_summary(env.path("w/s.jsonl")), "w/b.txt");
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("the file's group 0 cannot be given"),
        "{r}"
    );
}

/// Fresh look: `-o` replacing a target gives the new file no more permissions than the
/// target had (a target made private stays private); a new target keeps the command's mode.
#[test]
fn output_keeps_a_private_target_private() {
    let env = TestEnv::new(
        &[],
        &[
            ("in/a.txt", "new\n"),
            ("in/b.txt", "new\n"),
            ("out/a.txt", "old\n"),
        ],
    );
    chmod(&env.path("out/a.txt"), 0o600);
    env.sh(r#"umask 022; "$FANOUT" in -o 'out/{/}' -- cp {} {out}"#)
        .assert_ok();
    let mode = |p: &str| fs::metadata(env.path(p)).unwrap().mode() & 0o7777;
    assert_eq!(fs::read_to_string(env.path("out/a.txt")).unwrap(), "new\n");
    assert_eq!(mode("out/a.txt"), 0o600);
    assert_eq!(mode("out/b.txt"), 0o644);
}
