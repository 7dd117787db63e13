//! Watching a run: the job lines under the bar on a terminal (under a pseudo-terminal here),
//! and `--status-every` lines when standard error is not a terminal.

use std::process::Command;

use crate::harness::*;

/// Runs fanout with all three standard streams on a pseudo-terminal of 40 rows and 120
/// columns; the transcript is its stdout.
fn on_a_terminal(env: &TestEnv, args: &[&str]) -> Output {
    const PTY: &str = r#"
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PTY)
        .arg(FANOUT)
        .args(args)
        .current_dir(env.root())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::null());
    run_command(cmd, None)
}

/// Each job says what it is doing on stderr as a redrawn line (`\r`), works a while, then
/// prints its result.
const JOB: &str = r#"printf 'reading\r' >&2; sleep 0.2; printf 'working on %s\r' "${1##*/}" >&2; sleep 1.5; echo "RESULT $1""#;

#[test]
fn job_lines_show_each_running_job_and_its_latest_stderr_line() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let out = on_a_terminal(&env, &["-j", "2", "d", "--", "sh", "-c", JOB, "_", "{}"]);
    out.assert_ok();
    let text = out.stdout_str();
    let first_result = text
        .find("RESULT ")
        .unwrap_or_else(|| panic!("no job output\n{}", out.dump()));
    let live = &text[..first_result];
    for name in ["a.txt", "b.txt"] {
        // The job line: slot, elapsed, memory, path, then the latest line after its last `\r`.
        let line = live
            .split(['\r', '\n'])
            .find(|l| l.contains(&format!("d/{name}  working on {name}")))
            .unwrap_or_else(|| {
                panic!("no job line for d/{name} with its stderr while it ran\n{text:?}")
            });
        assert!(
            line.contains("[1]") || line.contains("[2]"),
            "no slot: {line:?}"
        );
        assert!(line.contains("s "), "no elapsed time: {line:?}");
    }
    // The bar moved with the records, and each job's output is still printed whole.
    assert!(text.contains("2/2"), "the bar never showed 2/2\n{text:?}");
    for name in ["a.txt", "b.txt"] {
        assert!(text.contains(&format!("RESULT d/{name}")), "{text:?}");
    }
    // On a terminal the end report is coloured (`--color auto`): ok in green.
    assert!(
        text.contains("2 files: \u{1b}[32m2 ok\u{1b}[0m"),
        "{text:?}"
    );
}

#[test]
fn no_job_lines_keeps_only_the_bar() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", ""), ("d/b.txt", "")]);
    let out = on_a_terminal(
        &env,
        &[
            "--no-job-lines",
            "-j",
            "2",
            "d",
            "--",
            "sh",
            "-c",
            JOB,
            "_",
            "{}",
        ],
    );
    out.assert_ok();
    let text = out.stdout_str();
    assert!(!text.contains("  working on"), "job lines drawn: {text:?}");
    assert!(!text.contains("[1]"), "job lines drawn: {text:?}");
    assert!(text.contains("2/2"), "no bar: {text:?}");
    // --no-progress: neither bar nor lines.
    let out = on_a_terminal(
        &env,
        &[
            "--no-progress",
            "-j",
            "2",
            "d",
            "--",
            "sh",
            "-c",
            JOB,
            "_",
            "{}",
        ],
    );
    out.assert_ok();
    let text = out.stdout_str();
    assert!(!text.contains("[1]") && !text.contains("eta"), "{text:?}");
}

#[test]
fn status_every_prints_status_lines_when_stderr_is_not_a_terminal() {
    let env = TestEnv::new(&["d"], &[("d/a.txt", ""), ("d/b.txt", ""), ("d/c.txt", "")]);
    let out = env.run(&[
        "--status-every",
        "250ms",
        "-j",
        "2",
        "d",
        "--",
        "sh",
        "-c",
        r#"case "$1" in *a.txt) exit 3;; esac; sleep 1.2"#,
        "_",
        "{}",
    ]);
    out.assert_code(1);
    let status: Vec<String> = out
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("fanout: status: "))
        .collect();
    assert!(status.len() >= 2, "want status lines\n{}", out.dump());
    // a.txt fails at once; b.txt and c.txt run on: one done and failed, a rate and an ETA, the
    // longest-running job named with its time.
    let line = status
        .iter()
        .find(|l| l.contains("1/3 done, 2 running, 1 failed"))
        .unwrap_or_else(|| panic!("no line while b and c run\n{}", out.dump()));
    assert!(line.contains(" jobs/s, eta "), "{line}");
    assert!(!line.contains("eta unknown"), "{line}");
    assert!(line.contains("; longest running: d/b.txt for "), "{line}");

    // Without the option, no status lines; with a bad value, a usage error.
    let quiet = env.run(&["-j", "2", "d", "--", "true"]);
    quiet.assert_ok().assert_stderr_lacks("status:");
    env.run(&["--status-every", "0", "d", "--", "true"])
        .assert_code(2)
        .assert_stderr_contains("--status-every");
    env.run(&["--status-every", "soon", "d", "--", "true"])
        .assert_code(2);
}
