//! The fork/exec floor: `floor -j K DIR -- CMD [ARGS]`.
//! Lists the regular files under DIR (recursively, std::fs only), then K
//! threads pull indexes from an atomic counter and run `CMD ARGS FILE`,
//! waiting for each. No ignore rules, no output capture, no summary.
use std::path::{Path, PathBuf};
use std::process::{exit, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), out),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
}

fn resolve(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: floor -j K DIR -- CMD [ARGS]");
        exit(2)
    };
    let (jobs, dir, cmd) = match args.iter().position(|a| a == "--") {
        Some(3) if args[0] == "-j" && args.len() > 4 => match args[1].parse::<usize>() {
            Ok(j) if j > 0 => (j, &args[2], &args[4..]),
            _ => usage(),
        },
        _ => usage(),
    };
    // Resolve the program on PATH once, as a runner should: a bare name would make every
    // child search PATH itself (one failed execve per directory before the right one).
    let program = resolve(&cmd[0]);
    let mut files = Vec::new();
    walk(Path::new(dir), &mut files);
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let st = Command::new(&program).args(&cmd[1..]).arg(f).stdin(Stdio::null()).status();
                if !matches!(st, Ok(s) if s.success()) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    exit(if failed.load(Ordering::Relaxed) > 0 { 1 } else { 0 });
}
