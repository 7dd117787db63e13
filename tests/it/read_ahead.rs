//! The walk's order: directories read ahead in parallel (when the file system is slow, or
//! `FANOUT_READ_AHEAD=always`) leave the order and the job numbers as they are.

use crate::harness::*;

/// Directories read ahead in parallel change nothing in the order: the dry run and a real run
/// list the files of a tree with many directories in the ordered walk's order, with the same
/// job numbers, whether directories are read ahead or not.
#[test]
fn reading_ahead_keeps_the_walk_order_and_job_numbers() {
    let env = TestEnv::new(&[], &[]);
    let mut want = Vec::new();
    for d in 0..100 {
        for leaf in ["a", "b", "s0/a", "s0/b", "s1/a"] {
            let rel = format!("t/d{d:03}/{leaf}");
            env.write(&rel, "");
            want.push(rel);
        }
    }
    let run = |read_ahead: &str, args: &[&str]| {
        let mut c = env.command(args);
        c.env("FANOUT_READ_AHEAD", read_ahead);
        run_command(c, None)
    };
    let numbered: Vec<String> = want
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{} {p}", i + 1))
        .collect();
    for read_ahead in ["never", "always"] {
        let dry = run(read_ahead, &["-n", "t", "--", "echo", "{#}", "{}"]);
        dry.assert_ok();
        let listed: Vec<String> = dry
            .stdout_lines()
            .iter()
            .map(|l| l.strip_prefix("echo ").unwrap_or(l).to_string())
            .collect();
        assert_eq!(listed, numbered, "dry run, read-ahead {read_ahead}");
        let real = run(
            read_ahead,
            &["-k", "-j", "2", "t", "--", "echo", "{#}", "{}"],
        );
        real.assert_ok();
        assert_eq!(
            real.stdout_lines(),
            numbered,
            "real run, read-ahead {read_ahead}"
        );
    }
}
