//! Reading directories ahead of the ordered walk (walk.rs) once it has had to wait for the
//! file system, and the ignore files neither may open when they are FIFOs or devices.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ignore::WalkBuilder;

/// The ignore files the walk reads in a directory.
const IGNORE_FILES: [&str; 3] = [".gitignore", ".ignore", ".git/info/exclude"];

/// An ignore file in `dir` that is a FIFO or a device (links followed, as the reader does):
/// opening it could block, reading it could never end.
pub(crate) fn special_ignore_file(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    IGNORE_FILES.iter().map(|name| dir.join(name)).find(|path| {
        std::fs::metadata(path).is_ok_and(|md| {
            let t = md.file_type();
            t.is_fifo() || t.is_char_device() || t.is_block_device()
        })
    })
}

/// Reads directories ahead of the ordered walk, in parallel, once the walk has had to wait
/// for the file system (a cold cache, a network file system, where each directory read is a
/// round trip). It is `ignore`'s parallel walker with the walk's own rules (hidden files,
/// ignore files, globs, depth, links), whose entries are thrown away: the ordered walk then
/// finds the directories in the kernel's caches. Order and job numbers come from the ordered
/// walk alone, so they are the same whether or not anything was read ahead. On a warm cache
/// the walk never waits and nothing is read twice. `FANOUT_READ_AHEAD=always` starts it at
/// once, `never` not at all.
pub(crate) struct ReadAhead {
    /// The parallel walker, until it is started.
    builder: Option<WalkBuilder>,
    /// Tells the read-ahead to stop: set when the ordered walk ends.
    quit: Arc<AtomicBool>,
    /// Directory reads of the ordered walk so far, and the slow ones.
    reads: u32,
    slow: u32,
    /// How often the walk's thread had given up its core when it last read a directory.
    waits: Option<u64>,
    /// The last directory read, not judged yet, and the entries handed on since.
    last_read: Option<Duration>,
    pub(crate) entries: u32,
}

impl ReadAhead {
    /// Elsewhere, a read longer than this waited for the file system (a warm one takes µs)...
    const SLOW: Duration = Duration::from_micros(500);
    /// Slow directory reads before reading ahead: at least this many, and at least half of
    /// all reads so far. The first reads decide: a cold or remote file system makes every
    /// read slow; a busy CPU that preempts the walk does not start it.
    const SLOW_READS: u32 = 2;
    /// Where the walk's thread is known to give up its core (Linux), a read during which it
    /// did, longer than this, waited for the file system (a disk, a server); one preempted for
    /// a busy CPU did not give it up.
    const BLOCKED: Duration = Duration::from_micros(100);
    /// ... and longer than this per entry (a warm read takes well under 1 µs per entry).
    const PER_ENTRY: Duration = Duration::from_micros(5);

    pub(crate) fn new(builder: &WalkBuilder, check_ignore_files: bool) -> ReadAhead {
        let when = std::env::var_os("FANOUT_READ_AHEAD");
        let mut ahead = ReadAhead {
            builder: None,
            quit: Arc::new(AtomicBool::new(false)),
            reads: 0,
            slow: 0,
            waits: crate::os::thread_waits(),
            last_read: None,
            entries: 0,
        };
        if when.as_deref() == Some(std::ffi::OsStr::new("never")) {
            return ahead;
        }
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut b = builder.clone();
        // Reading is waiting, not computing: more threads than cores.
        b.threads((2 * cpus).clamp(4, 16))
            // As the ordered walk: never a plan directory, never a directory whose ignore
            // file would block a reader (that one reports it).
            .filter_entry(move |e| {
                e.depth() == 0
                    || !e.file_type().is_some_and(|t| t.is_dir())
                    || (e.file_name() != ".fanout"
                        && !(check_ignore_files && special_ignore_file(e.path()).is_some()))
            });
        ahead.builder = Some(b);
        if when.as_deref() == Some(std::ffi::OsStr::new("always")) {
            ahead.start();
        }
        ahead
    }

    /// The ordered walk took `took` to read a directory: judged at once where the thread's
    /// waits are known, else once its entries have been counted (with the next read).
    pub(crate) fn read_dir(&mut self, took: Duration) {
        if self.builder.is_none() {
            return;
        }
        match crate::os::thread_waits() {
            Some(now) => {
                self.reads += 1;
                let blocked = self.waits.is_some_and(|before| now > before);
                self.waits = Some(now);
                if blocked && took >= Self::BLOCKED {
                    self.slow += 1;
                }
            }
            None => {
                if let Some(last) = self.last_read.replace(took) {
                    self.judge(last);
                }
            }
        }
        if self.slow >= Self::SLOW_READS && 2 * self.slow >= self.reads {
            self.start();
        }
    }

    /// Without the thread's waits: a read of `self.entries` entries that took `took` waited
    /// for the file system when long, and long for its size (large warm ones take a while).
    fn judge(&mut self, took: Duration) {
        self.reads += 1;
        let entries = self.entries.max(1);
        self.entries = 0;
        if took >= Self::SLOW && took >= Self::PER_ENTRY * entries {
            self.slow += 1;
        }
    }

    fn start(&mut self) {
        let Some(builder) = self.builder.take() else {
            return;
        };
        let quit = Arc::clone(&self.quit);
        // Not joined: a reader blocked in the file system must not hold up the run's end;
        // it stops at its next entry, or with the process.
        let _ = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                builder.build_parallel().run(|| {
                    let quit = Arc::clone(&quit);
                    Box::new(move |_| {
                        if quit.load(Ordering::Relaxed) {
                            ignore::WalkState::Quit
                        } else {
                            ignore::WalkState::Continue
                        }
                    })
                });
            });
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
    }
}
