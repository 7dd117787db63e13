//! In-place rewrites against a hostile or odd directory (#13): another user swapping `{out}`
//! for a symbolic link while root runs `-i`, set-id bits, names that only look like fanout's
//! temporary files, special files beside the inputs, several names of one file, and names
//! near the file system's limit.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// `nobody` and `nogroup`: the unprivileged user of the race test.
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// The hidden temporary files (`.NAME.fanout-…`) directly in `dir`.
fn temps_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with('.') && name.contains(".fanout-")
        })
        .collect();
    found.sort();
    found
}

/// Leaves a real temporary file of a dead run beside `rel` (a regular file): fanout is killed
/// with SIGKILL by the job right after it wrote `{out}`. Returns the temporary file's path.
pub fn stale_temp(env: &TestEnv, rel: &str) -> PathBuf {
    let dir = env.path(rel).parent().unwrap().to_path_buf();
    let before = temps_in(&dir);
    env.run(&[
        "-i",
        rel,
        "--",
        "sh",
        "-c",
        r#"cp "$1" "$2"; kill -9 $PPID"#,
        "_",
        "{}",
        "{out}",
    ]);
    let left: Vec<PathBuf> = temps_in(&dir)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(
        left.len(),
        1,
        "no temporary file left beside {rel}: {left:?}"
    );
    left[0].clone()
}

/// Runs fanout with a deadline of 20 s, killing it when it is still running then: a hang
/// fails the test instead of stalling the suite.
fn run_within_20s(env: &TestEnv, args: &[&str]) -> Output {
    let mut run = env.spawn(args);
    if !wait_until(Duration::from_secs(20), || run.has_exited()) {
        run.signal("KILL");
        let out = run.wait();
        panic!("fanout still ran after 20 s (hung)\n{}", out.dump());
    }
    run.wait()
}

/// A command that runs `script` as `nobody`, or None when this machine has no way to.
pub fn as_nobody(script: &str) -> Option<Command> {
    for (tool, args) in [
        (
            "setpriv",
            &["--reuid=nobody", "--regid=nogroup", "--clear-groups"][..],
        ),
        ("runuser", &["-u", "nobody", "--"][..]),
    ] {
        let found = Command::new(tool)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if found {
            let mut cmd = Command::new(tool);
            cmd.args(args).args(["sh", "-c", script]);
            return Some(cmd);
        }
    }
    None
}

/// Item 1: root rewrites files in a directory that `nobody` owns, while `nobody` swaps every
/// `{out}` it sees for a symbolic link to a root-only file. The root file must never change
/// owner or mode, and a file replaced by a symbolic link must never be reported `replaced`.
#[test]
fn root_in_place_never_gives_a_swapped_out_target_to_another_user() {
    if !is_root() {
        eprintln!(
            "skipped: this race test needs root (it runs fanout as root and an attacker as nobody)"
        );
        return;
    }
    let env = TestEnv::new(&["w"], &[]);
    chmod(env.root(), 0o755);
    let secret = env.write("secret", "root only\n");
    chmod(&secret, 0o600);
    let w = env.path("w");
    chown_nobody(&w);
    // The attacker keeps moving each `{out}` aside, putting a symbolic link in its place and
    // moving it back, so that any step fanout takes by name sometimes meets the link.
    let swap = format!(
        r#"cd '{}' || exit 1
while :; do
  for f in .f*.fanout-*; do
    case "$f" in *.keep) continue ;; esac
    [ -L "$f" ] && continue
    [ -f "$f" ] || continue
    mv -fT "$f" "$f.keep" && ln -sfn '{}' "$f" && mv -fT "$f.keep" "$f"
  done
done"#,
        w.display(),
        secret.display()
    );
    let Some(mut attacker) = as_nobody(&swap) else {
        eprintln!("skipped: neither setpriv nor runuser can run a command as nobody");
        return;
    };
    let mut attacker = attacker
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut attacked = 0;
    let mut failures = Vec::new();
    // Ten rounds at least, and more (up to 40) until the attacker has won a swap: on a loaded
    // machine it may need more tries to hit the window, and a run that never met the race
    // would prove nothing.
    for round in 0..40 {
        if !failures.is_empty() || (round >= 10 && attacked > 0) {
            break;
        }
        for i in 0..40 {
            let f = w.join(format!("f{i}.txt"));
            let _ = fs::remove_file(&f);
            fs::write(&f, format!("line {i}\n")).unwrap();
            chown_nobody(&f);
            chmod(&f, 0o644);
        }
        let _ = fs::remove_file(env.path("s.jsonl"));
        // `w` is nobody's: only with the rule relaxed does fanout write there at all; the
        // commit itself must still never be steered.
        env.run(&[
            "-i",
            "--allow-shared-dirs",
            "-j",
            "2",
            "w",
            "--summary",
            "s.jsonl",
            "--",
            "sh",
            "-c",
            r#"cp "$1" "$2"; sleep 0.05"#,
            "_",
            "{}",
            "{out}",
        ]);
        let md = fs::metadata(&secret).unwrap();
        if md.uid() != 0 || md.gid() != 0 || md.mode() & 0o7777 != 0o600 {
            failures.push(format!(
                "round {round}: the root-only file became {}:{} mode {:o}",
                md.uid(),
                md.gid(),
                md.mode() & 0o7777
            ));
            std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
            chmod(&secret, 0o600);
        }
        for r in file_records(&read_summary(env.path("s.jsonl"))) {
            let path = env.path(r["path"].as_str().unwrap());
            let is_link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            if r["action"] == "replaced" && is_link {
                failures.push(format!("round {round}: replaced with a symbolic link: {r}"));
            }
            if r["action"] != "replaced" {
                attacked += 1;
            }
        }
    }
    let _ = attacker.kill();
    let _ = attacker.wait();
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "root only\n",
        "the root-only file's content changed"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        attacked > 0,
        "the attacker never managed a swap: the race was not exercised"
    );
}

/// Item 7: as root, the new file keeps the old mode including set-user-id and set-group-id.
#[test]
fn root_in_place_keeps_setuid_and_setgid_bits() {
    if !is_root() {
        eprintln!("skipped: only root can give a file to another owner with set-id bits");
        return;
    }
    let env = TestEnv::new(&[], &[("w/suid", "#!/bin/sh\n"), ("w/sgid", "#!/bin/sh\n")]);
    for (name, mode) in [("w/suid", 0o6755), ("w/sgid", 0o2755)] {
        chown_nobody(&env.path(name));
        chmod(&env.path(name), mode);
    }
    env.run(&[
        "-i",
        "w",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"{ cat "$1"; echo true; } > "$2""#,
        "_",
        "{}",
        "{out}",
    ])
    .assert_code(0);
    for (name, mode) in [("w/suid", 0o6755), ("w/sgid", 0o2755)] {
        let md = fs::metadata(env.path(name)).unwrap();
        assert_eq!(
            fs::read_to_string(env.path(name)).unwrap(),
            "#!/bin/sh\ntrue\n"
        );
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (NOBODY, NOBODY, mode),
            "{name}: owner or mode not kept (mode {:o})",
            md.mode() & 0o7777
        );
    }
}

/// Item 4: the sweep removes only regular files that fanout provably made and whose run is
/// gone; look-alike names, directories and symbolic links stay, and no name makes it panic.
#[test]
fn the_sweep_keeps_everything_fanout_did_not_provably_create() {
    let env = TestEnv::new(
        &[],
        &[
            ("w/cache", "c\n"),
            ("w/notes.md", "n\n"),
            ("w/a.txt", "a\n"),
            ("w/b.txt", "b\n"),
            ("w/c.txt", "c\n"),
            ("w/.cache.fanout-2024-06/sub/keep.txt", "keep\n"),
            ("w/.notes.fanout-7-1.md", "my notes\n"),
            ("w/.fanout-1-1", "odd\n"),
            ("w/..fanout-1-1", "odd\n"),
            ("w/.x.fanout-4194304-1-zzzzzzzz.txt", "odd\n"),
        ],
    );
    // Real leftovers of a killed run: one stays a file (swept), one is turned into a
    // directory and one into a symbolic link (both kept: fanout never made those).
    let stale = stale_temp(&env, "w/a.txt");
    let as_dir = stale_temp(&env, "w/b.txt");
    fs::remove_file(&as_dir).unwrap();
    fs::create_dir(&as_dir).unwrap();
    fs::write(as_dir.join("inside.txt"), "inside\n").unwrap();
    let as_link = stale_temp(&env, "w/c.txt");
    fs::remove_file(&as_link).unwrap();
    std::os::unix::fs::symlink("notes.md", &as_link).unwrap();
    let out = run_within_20s(&env, &["-i", "w", "--", "cp", "{}", "{out}"]);
    out.assert_code(0).assert_no_panic();
    assert!(!stale.exists(), "a real stale temporary file was not swept");
    for kept in [
        "w/.cache.fanout-2024-06/sub/keep.txt",
        "w/.notes.fanout-7-1.md",
        "w/.fanout-1-1",
        "w/..fanout-1-1",
        "w/.x.fanout-4194304-1-zzzzzzzz.txt",
        "w/notes.md",
    ] {
        assert!(env.exists(kept), "{kept} was removed\n{}", out.dump());
    }
    assert!(
        as_dir.join("inside.txt").exists(),
        "a directory was removed"
    );
    assert!(
        fs::symlink_metadata(&as_link).is_ok(),
        "a symbolic link was removed"
    );
}

/// Item 5: a special file beside the inputs (a FIFO where a stale temporary file's input
/// was, another among the inputs) never blocks the walk or the sweep.
#[test]
fn fifos_beside_the_inputs_never_block_the_sweep_or_the_walk() {
    let env = TestEnv::new(&[], &[("w/p", "p\n"), ("w/a.txt", "a\n")]);
    let stale = stale_temp(&env, "w/p");
    fs::remove_file(env.path("w/p")).unwrap();
    for fifo in ["w/p", "w/q.txt"] {
        let made = Command::new("mkfifo").arg(env.path(fifo)).status().unwrap();
        assert!(made.success());
    }
    let out = run_within_20s(
        &env,
        &["-i", "w", "--summary", "s.jsonl", "--", "cp", "{}", "{out}"],
    );
    out.assert_code(0);
    assert_eq!(
        record_for(&read_summary(env.path("s.jsonl")), "w/a.txt")["action"],
        "replaced"
    );
    // Its input is not a regular file: fanout cannot tell that the temporary file is its own.
    assert!(stale.exists());
}

/// Item 6: every name the user's paths reach gets a record, also a second name of a file
/// (a hard link, or a symbolic link followed with -L); the file is rewritten once.
#[test]
fn every_name_of_a_file_gets_a_record_and_the_file_is_rewritten_once() {
    let env = TestEnv::new(&[], &[("d1/a.txt", "abc\n"), ("one/x.txt", "xyz\n")]);
    env.mkdir("d2");
    fs::hard_link(env.path("d1/a.txt"), env.path("d2/a.txt")).unwrap();
    fs::hard_link(env.path("one/x.txt"), env.path("one/y.txt")).unwrap();
    // `rev` twice gives the input back: a file rewritten twice would show it.
    let rev = r#"rev < "$1" > "$2""#;
    let out = env.run(&[
        "-i",
        "d1",
        "d2",
        "one",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        rev,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    let records = read_summary(env.path("s.jsonl"));
    assert_eq!(file_records(&records).len(), 4, "{records:?}");
    assert_eq!(record_for(&records, "d1/a.txt")["action"], "replaced");
    let second = record_for(&records, "d2/a.txt");
    assert_eq!(second["status"], "skipped", "{second}");
    assert_eq!(second["action"], "kept", "{second}");
    let why = second["reason"].as_str().unwrap();
    assert!(
        why.contains("d1/a.txt") && why.contains("old content"),
        "{why}"
    );
    assert_eq!(fs::read_to_string(env.path("d1/a.txt")).unwrap(), "cba\n");
    assert_eq!(fs::read_to_string(env.path("d2/a.txt")).unwrap(), "abc\n");
    // Two names in one directory: one is rewritten, the other says why it was not (never a
    // lock conflict with itself).
    let x = record_for(&records, "one/x.txt");
    let y = record_for(&records, "one/y.txt");
    assert_eq!(x["action"], "replaced", "{x}");
    assert_eq!(y["status"], "skipped", "{y}");
    assert!(y["reason"].as_str().unwrap().contains("one/x.txt"), "{y}");

    // A symbolic link followed with -L: the file behind it is rewritten once.
    let env = TestEnv::new(&[], &[("d/real.txt", "abc\n")]);
    env.symlink("real.txt", "d/link.txt");
    env.run(&[
        "-i",
        "-L",
        "d",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        rev,
        "_",
        "{}",
        "{out}",
    ])
    .assert_code(0);
    let records = read_summary(env.path("s.jsonl"));
    assert_eq!(file_records(&records).len(), 2, "{records:?}");
    assert_eq!(fs::read_to_string(env.path("d/real.txt")).unwrap(), "cba\n");
    let skipped: Vec<_> = file_records(&records)
        .into_iter()
        .filter(|r| r["status"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{records:?}");
    assert!(
        skipped[0]["reason"].as_str().unwrap().contains("same file"),
        "{}",
        skipped[0]
    );
}

/// A job that makes `{out}` another name of the input (`ln {} {out}`) replaced nothing: it is
/// not reported `replaced`, and no temporary file is left.
#[test]
fn an_out_linked_to_the_input_is_refused_and_removed() {
    let env = TestEnv::new(&[], &[("w/a.txt", "a\n")]);
    let out = env.run(&["-i", "w", "--summary", "s.jsonl", "--", "ln", "{}", "{out}"]);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "w/a.txt");
    assert_eq!(r["action"], "kept", "{r}");
    assert_eq!(r["status"], "invalid_output", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("link"), "{r}");
    assert!(
        temps_in(&env.path("w")).is_empty(),
        "{:?}",
        temps_in(&env.path("w"))
    );
    assert_eq!(fs::read_to_string(env.path("w/a.txt")).unwrap(), "a\n");
    assert_eq!(fs::metadata(env.path("w/a.txt")).unwrap().nlink(), 1);
}

/// A name near the file system's limit (255 bytes) can still be rewritten: its `{out}` name
/// is shortened, and a leftover of it is still recognised and swept.
#[test]
fn a_250_byte_name_is_rewritten_and_its_leftover_swept() {
    let name = format!("{}.csv", "n".repeat(246));
    assert_eq!(name.len(), 250);
    let rel = format!("w/{name}");
    let env = TestEnv::new(&[], &[(rel.as_str(), "b\na\n"), ("w/z.csv", "z\n")]);
    let out = env.run(&[
        "-i",
        &rel,
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        r#"sort "$1" > "$2""#,
        "_",
        "{}",
        "{out}",
    ]);
    out.assert_code(0);
    assert_eq!(
        record_for(&read_summary(env.path("s.jsonl")), &rel)["action"],
        "replaced"
    );
    assert_eq!(fs::read_to_string(env.path(&rel)).unwrap(), "a\nb\n");
    let stale = stale_temp(&env, &rel);
    let temp_name = stale.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        temp_name.len() <= 255 && temp_name.ends_with(".csv"),
        "{temp_name}"
    );
    env.run(&["-i", "w/z.csv", "--", "cp", "{}", "{out}"])
        .assert_code(0)
        .assert_stderr_contains("removed 1 temporary file");
    assert!(!stale.exists());
}

/// The run's own `{out}` written as a directory is removed only where no other user can
/// write: elsewhere another user could have moved any tree to that name.
#[test]
fn an_out_directory_in_a_shared_directory_is_left_and_said() {
    let env = TestEnv::new(&[], &[("w/a.txt", "a\n")]);
    chmod(&env.path("w"), 0o1777);
    let out = env.run(&[
        "-i",
        "w",
        "--summary",
        "s.jsonl",
        "--",
        "sh",
        "-c",
        // In a directory others can write, {out} is taken (an empty file) before the job.
        r#"rm -f "$1" && mkdir "$1" && echo x > "$1/x""#,
        "_",
        "{out}",
    ]);
    out.assert_code(1);
    let r = record_for(&read_summary(env.path("s.jsonl")), "w/a.txt");
    assert_eq!(r["status"], "invalid_output", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("left in place"),
        "{r}"
    );
    let left = temps_in(&env.path("w"));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].join("x").exists());
}

/// Item 5, the walk: an ignore file that is a FIFO would block the walk for ever when read.
/// Its directory is not walked, with a walk error that says why; the rest runs.
#[test]
fn a_fifo_as_an_ignore_file_never_blocks_the_walk() {
    let env = TestEnv::new(&[], &[("d/a.txt", "a\n"), ("d/sub/b.txt", "b\n")]);
    let made = Command::new("mkfifo")
        .arg(env.path("d/sub/.gitignore"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = run_within_20s(&env, &["d", "--", "echo"]);
    out.assert_code(1)
        .assert_stdout_sorted(&["d/a.txt"])
        .assert_stderr_contains("d/sub/.gitignore is not a regular file");
    // Without ignore files nothing reads it: the directory is walked.
    run_within_20s(&env, &["-I", "d", "--", "echo"])
        .assert_code(0)
        .assert_stdout_sorted(&["d/a.txt", "d/sub/b.txt"]);
}

/// The sweep of a directory finishes before any job of the run locks an input there: a
/// leftover is never kept because the run itself holds its input.
#[test]
fn every_leftover_of_a_directory_is_swept_by_a_parallel_run() {
    let files: Vec<(String, String)> = (0..8)
        .map(|i| (format!("w/f{i}.txt"), format!("{i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let env = TestEnv::new(&[], &refs);
    // One run killed while all eight jobs have written their {out}.
    env.run(&[
        "-i",
        "-j",
        "8",
        "--mem-per-job",
        "1M",
        "w",
        "--",
        "sh",
        "-c",
        r#"cp "$1" "$2"; sleep 1; kill -9 $PPID"#,
        "_",
        "{}",
        "{out}",
    ]);
    assert_eq!(temps_in(&env.path("w")).len(), 8);
    env.run(&["-i", "-j", "4", "w", "--", "cp", "{}", "{out}"])
        .assert_code(0)
        .assert_stderr_contains("removed 8 temporary file");
    assert!(
        temps_in(&env.path("w")).is_empty(),
        "{:?}",
        temps_in(&env.path("w"))
    );
}
