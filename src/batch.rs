//! Batches (`-X/--batch`): which inputs share one command. This module owns the grouping
//! only: the argument-size limit (measured as xargs measures it), the `--batch-size` cap and
//! the sizing rule that keeps every job slot busy to the end of a run. It runs nothing and
//! writes no record; the executors turn each batch into one process and one record per input.
//!
//! The sizing rule (README, "Batches"): inputs wait in a window of up to `window(jobs)` inputs.
//! A batch is formed when the window is full or discovery has ended, and takes
//! ⌈waiting / (2 × jobs)⌉ inputs (at least one), fewer if `--batch-size` or the argument-size
//! limit says so. While discovery runs, batches are large (the window is full); once it has
//! ended they shrink as the inputs run out, down to single files for the last few, so no slot
//! is left with a large batch while the others idle. The rule looks only at the inputs, not at
//! the clock, so a dry run and a real run form the same batches; only a producer that pauses
//! for longer than `STALL` (a slow pipe) has its waiting inputs formed into batches at once,
//! so their jobs do not wait for inputs that may never come.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::input::Input;
use crate::template::Template;

/// Bytes kept free below the argument-size limit, as xargs keeps them (its `-s` default is
/// ARG_MAX - environment - 2048).
const HEADROOM: usize = 2048;
/// How long a pausing producer may keep waiting inputs from running.
const STALL: Duration = Duration::from_millis(200);

/// How a batched run groups its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batching {
    /// `--batch-size`: at most this many inputs per command.
    pub size: Option<usize>,
    /// Bytes one command's arguments may take: the system's limit on arguments and
    /// environment together, less this process's environment (which every job inherits) and
    /// a head-room.
    pub arg_limit: usize,
    /// `--split-failed`: a failed batch's files run again in halves to find the ones that fail.
    pub split_failed: bool,
}

impl Batching {
    /// The grouping of this system and environment, with an optional `--batch-size`.
    pub(crate) fn new(size: Option<usize>, split_failed: bool) -> Batching {
        Batching {
            size,
            split_failed,
            arg_limit: crate::os::arg_max()
                .saturating_sub(environment_bytes())
                .saturating_sub(HEADROOM),
        }
    }
}

/// What the environment takes of the argument area: each `KEY=value`, its NUL and its pointer,
/// and the closing pointer.
fn environment_bytes() -> usize {
    let ptr = std::mem::size_of::<usize>();
    std::env::vars_os()
        .map(|(k, v)| k.len() + 1 + v.len() + 1 + ptr)
        .sum::<usize>()
        + ptr
}

/// Inputs that run as one command. `number` is 1-based in the order batches are formed (the
/// value of `{#}`).
#[derive(Debug)]
pub(crate) struct Batch {
    pub number: u64,
    pub inputs: Vec<Input>,
}

impl Batch {
    /// The paths of the batch, in order.
    pub(crate) fn rels(&self) -> Vec<Option<usize>> {
        self.inputs.iter().map(|i| i.rel_at).collect()
    }

    /// The paths of the batch, in order.
    pub(crate) fn paths(&self) -> Vec<&Path> {
        self.inputs.iter().map(|i| i.path.as_path()).collect()
    }
}

/// How many inputs wait to be grouped: enough that batches are large while discovery runs,
/// few enough that memory stays flat.
fn window(jobs: usize) -> usize {
    (jobs * 1024).clamp(8192, 16_384)
}

/// Groups the inputs from `inputs` into batches and hands each to `send`, in order, until the
/// inputs end or `send` returns false.
pub(crate) fn form(
    batching: &Batching,
    template: &Template,
    jobs: usize,
    inputs: &Receiver<Input>,
    send: &mut dyn FnMut(Batch) -> bool,
) {
    let window = window(jobs);
    let fixed = template.batch_fixed_cost();
    let mut waiting: VecDeque<Input> = VecDeque::with_capacity(window);
    let mut ended = false;
    let mut number = 0;
    loop {
        // Fill the window (or reach the end); a producer that pauses lets what waits go on.
        let mut stalled = false;
        while !ended && waiting.len() < window {
            let next = if waiting.is_empty() {
                inputs.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                inputs.recv_timeout(STALL)
            };
            match next {
                Ok(input) => waiting.push_back(input),
                Err(RecvTimeoutError::Disconnected) => ended = true,
                Err(RecvTimeoutError::Timeout) => {
                    stalled = true;
                    break;
                }
            }
        }
        // Full window: one batch, then fill again. At the end, or after a stall, everything
        // that waits is formed (sizes shrink as it runs out).
        loop {
            if waiting.is_empty() {
                if ended {
                    return;
                }
                break;
            }
            number += 1;
            let batch = take(batching, template, fixed, jobs, &mut waiting);
            if !send(Batch {
                number,
                inputs: batch,
            }) {
                return;
            }
            if !(ended || stalled) {
                break;
            }
        }
    }
}

/// The next batch from the front of `waiting`: ⌈waiting / (2 × jobs)⌉ inputs, within
/// `--batch-size` and the argument-size limit.
fn take(
    batching: &Batching,
    template: &Template,
    fixed: usize,
    jobs: usize,
    waiting: &mut VecDeque<Input>,
) -> Vec<Input> {
    let target = waiting.len().div_ceil(2 * jobs).max(1);
    let target = batching.size.map_or(target, |cap| target.min(cap));
    let mut used = fixed;
    let mut batch = Vec::with_capacity(target);
    while batch.len() < target {
        let Some(next) = waiting.front() else { break };
        let cost = template.batch_cost(&next.path, next.rel_at);
        // A single input over the limit still runs (alone): its job says why it failed.
        if !batch.is_empty() && used + cost > batching.arg_limit {
            break;
        }
        used += cost;
        batch.extend(waiting.pop_front());
    }
    batch
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use crossbeam_channel::bounded;

    use super::*;

    fn input(job: u64, path: &str) -> Input {
        Input {
            job,
            path: PathBuf::from(path),
            problem: None,
            weight: None,
            duplicate_of: None,
            seen: None,
            rel_at: None,
            target: None,
            remote: None,
        }
    }

    fn sizes(n: usize, jobs: usize, batching: &Batching, path: &str) -> Vec<usize> {
        let words: Vec<OsString> = ["wc", "-c"].iter().map(OsString::from).collect();
        let template = Template::parse(&words, false, false).unwrap();
        let (tx, rx) = bounded(n + 1);
        for j in 0..n {
            tx.send(input(j as u64 + 1, path)).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        let mut next_job = 1;
        form(batching, &template, jobs, &rx, &mut |b| {
            for i in &b.inputs {
                assert_eq!(i.job, next_job, "inputs stay in order");
                next_job += 1;
            }
            assert_eq!(b.number as usize, out.len() + 1);
            out.push(b.inputs.len());
            true
        });
        assert_eq!(next_job as usize, n + 1, "every input once");
        out
    }

    #[test]
    fn batches_shrink_towards_the_end_and_respect_the_caps() {
        let free = Batching {
            size: None,
            arg_limit: usize::MAX,
            split_failed: false,
        };
        let s = sizes(100, 2, &free, "f");
        assert_eq!(s[0], 25);
        assert_eq!(*s.last().unwrap(), 1);
        assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
        // Thousands waiting: no tiny batches until the very end.
        let s = sizes(100_000, 2, &free, "f");
        assert!(s.iter().filter(|&&n| n < 10).count() <= 12, "{s:?}");
        assert!(s[0] >= 1000);
        let capped = Batching {
            size: Some(7),
            arg_limit: usize::MAX,
            split_failed: false,
        };
        assert!(sizes(100, 2, &capped, "f").iter().all(|&n| n <= 7));
        // The argument-size limit: `wc -c` and the closing pointer, then 3 paths of 100 bytes.
        let p = std::mem::size_of::<usize>();
        let fixed = 2 + 1 + p + 2 + 1 + p + p;
        let tight = Batching {
            size: None,
            arg_limit: fixed + 3 * (100 + 1 + p),
            split_failed: false,
        };
        let long = "x".repeat(100);
        assert!(sizes(50, 1, &tight, &long).iter().all(|&n| n <= 3));
        // An input over the limit on its own still gets a batch (of one).
        let none = Batching {
            size: None,
            arg_limit: 10,
            split_failed: false,
        };
        assert!(sizes(5, 1, &none, &long).iter().all(|&n| n == 1));
    }
}
