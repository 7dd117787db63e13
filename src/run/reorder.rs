//! `--keep-order`: finished jobs wait for their turn. Their output moves to one spill file
//! meanwhile, so holding back thousands of jobs costs neither memory nor a descriptor each. A
//! job without output does not wait: its record goes on at once (so a run that is killed still
//! has the record of every job that finished), and only its place in the order is kept.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use crate::executor::Done;
use crate::output::Spool;

/// Where one stream of a held-back job's output is.
enum Held {
    None,
    Spool(Spool),
    /// `(offset, length)` in the spill file.
    Spilled(u64, u64),
}

/// A finished job waiting for its turn.
struct Waiting {
    done: Done,
    stdout: Held,
    stderr: Held,
}

/// The jobs held back, and the job number the order waits for.
pub(super) struct Reorder {
    /// Finished jobs waiting for their turn (`None`: a job without output, already out).
    held: BTreeMap<u64, Option<Waiting>>,
    next: u64,
    spill: Option<File>,
    spill_len: u64,
}

impl Default for Reorder {
    fn default() -> Reorder {
        Reorder {
            held: BTreeMap::new(),
            next: 1,
            spill: None,
            spill_len: 0,
        }
    }
}

impl Reorder {
    /// Takes a finished job; `emit` gets every job whose turn has come, in order.
    pub(super) fn accept(&mut self, done: Done, emit: &mut dyn FnMut(Done)) {
        if done.record.job == self.next {
            self.next += 1;
            emit(done);
            while let Some(w) = self.held.remove(&self.next) {
                self.next += 1;
                if let Some(w) = w {
                    emit(self.unspill(w));
                }
            }
            if self.held.is_empty() && self.spill_len > 0 {
                // Nothing held: the spill file starts over.
                if let Some(f) = &self.spill {
                    let _ = f.set_len(0);
                }
                self.spill_len = 0;
            }
        } else if [&done.stdout, &done.stderr]
            .into_iter()
            .all(|s| s.as_ref().is_none_or(|s| s.len() == 0))
        {
            let job = done.record.job;
            emit(done);
            self.held.insert(job, None);
        } else {
            let job = done.record.job;
            let waiting = self.hold(done);
            self.held.insert(job, Some(waiting));
        }
    }

    /// How many jobs are held, and the job number the order waits for.
    pub(super) fn state(&self) -> (usize, u64) {
        (self.held.len(), self.next)
    }

    /// Everything still held (only if job numbers had gaps), in order.
    pub(super) fn drain(&mut self, emit: &mut dyn FnMut(Done)) {
        for w in std::mem::take(&mut self.held).into_values().flatten() {
            emit(self.unspill(w));
        }
    }

    /// Moves a held-back job's output to the spill file (or keeps it in memory if the spill
    /// file cannot be written).
    fn hold(&mut self, mut done: Done) -> Waiting {
        let stdout = self.spill(done.stdout.take());
        let stderr = self.spill(done.stderr.take());
        Waiting {
            done,
            stdout,
            stderr,
        }
    }

    fn spill(&mut self, spool: Option<Spool>) -> Held {
        let Some(mut spool) = spool.filter(|s| s.len() > 0) else {
            return Held::None;
        };
        if self.spill.is_none() {
            match tempfile::tempfile() {
                Ok(f) => self.spill = Some(f),
                Err(_) => return Held::Spool(spool),
            }
        }
        let Some(file) = self.spill.as_mut() else {
            return Held::Spool(spool);
        };
        let at = self.spill_len;
        let written = file
            .seek(SeekFrom::Start(at))
            .and_then(|_| spool.write_to(file));
        match written {
            Ok(()) => {
                let len = file.stream_position().map_or(0, |end| end - at);
                self.spill_len = at + len;
                Held::Spilled(at, len)
            }
            Err(_) => Held::Spool(spool),
        }
    }

    fn unspill(&mut self, w: Waiting) -> Done {
        let Waiting {
            mut done,
            stdout,
            stderr,
        } = w;
        done.stdout = self.take_back(stdout);
        done.stderr = self.take_back(stderr);
        done
    }

    fn take_back(&mut self, held: Held) -> Option<Spool> {
        match held {
            Held::None => None,
            Held::Spool(s) => Some(s),
            Held::Spilled(at, len) => {
                let file = self.spill.as_mut()?;
                let mut spool = Spool::default();
                let copied = file
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| io::copy(&mut file.take(len), &mut spool));
                if let Err(err) = copied {
                    spool.error = Some(format!("could not keep the job's output: {err}"));
                }
                Some(spool)
            }
        }
    }
}
