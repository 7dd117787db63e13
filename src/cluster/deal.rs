//! Dealing the inputs to run into array tasks: each is weighed (parquet footer, else size),
//! and they go heaviest first onto the lightest shard so far; each task's `--mem` follows from
//! the heaviest. Which inputs run is decided before (`triage`).

use super::plan::PlannedFile;
use super::plan::WORKER_MEM;
use crate::config::Config;
use crate::input::Input;
use crate::memory;

/// Array tasks when `--shards` is not given: min(files, this).
const DEFAULT_SHARDS: usize = 32;

/// The inputs dealt into shards.
pub(crate) struct Dealt {
    /// Each shard's files, in job order; none is empty.
    pub shards: Vec<Vec<PlannedFile>>,
    /// `--mem` of each task.
    pub task_mem: u64,
}

impl Dealt {
    /// Files in all shards.
    pub(crate) fn files(&self) -> usize {
        self.shards.iter().map(Vec::len).sum()
    }
}

/// Weighs `todo` and deals it into `--shards` shards (at most one per file).
pub(crate) fn deal(config: &Config, mut todo: Vec<Input>) -> Dealt {
    {
        use rayon::prelude::*;
        todo.par_iter_mut()
            .for_each(|i| i.weight = Some(crate::parquet::weight(&i.path)));
    }
    let count = config
        .slurm()
        .and_then(|s| s.shards)
        .unwrap_or(DEFAULT_SHARDS)
        .min(todo.len())
        .max(1);
    let heaviest = todo.iter().filter_map(|i| i.weight).max().unwrap_or(0);
    let per_job = memory::first_reservation(config.run.mem_per_job, heaviest);
    let budget = match config.mem_limit {
        Some(memory::Amount::Bytes(b)) => b,
        _ => per_job.saturating_mul(config.run.jobs as u64),
    };
    let task_mem = (budget + WORKER_MEM).div_ceil(1 << 20) << 20;
    Dealt {
        shards: assign(todo, count),
        task_mem,
    }
}

/// Deals inputs into `count` shards: heaviest first, each to the lightest shard so far. Each
/// shard keeps its files in job order.
fn assign(mut todo: Vec<Input>, count: usize) -> Vec<Vec<PlannedFile>> {
    todo.sort_by_key(|i| (std::cmp::Reverse(i.weight.unwrap_or(0)), i.job));
    let mut shards: Vec<(u64, Vec<PlannedFile>)> = vec![(0, Vec::new()); count];
    for input in todo {
        let w = input.weight.unwrap_or(0);
        let lightest = (0..count)
            .min_by_key(|&k| (shards[k].0, shards[k].1.len(), k))
            .expect("at least one shard");
        shards[lightest].0 += w.max(1);
        shards[lightest].1.push(PlannedFile {
            object: input.remote.as_deref().map(super::plan::PlannedObject::of),
            ..PlannedFile::new(input.job, &input.path, w, input.rel_at)
        });
    }
    shards
        .into_iter()
        .map(|(_, mut files)| {
            files.sort_by_key(|f| f.job);
            files
        })
        .filter(|files| !files.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn input(job: u64, w: u64) -> Input {
        Input {
            weight: Some(w),
            ..Input::new(job, PathBuf::from(format!("f{job}")))
        }
    }

    #[test]
    fn shards_are_balanced_by_weight_and_keep_job_order() {
        let todo = vec![
            input(1, 100),
            input(2, 10),
            input(3, 10),
            input(4, 80),
            input(5, 10),
        ];
        let shards = assign(todo, 2);
        let weight = |s: &Vec<PlannedFile>| s.iter().map(|f| f.weight_bytes).sum::<u64>();
        assert_eq!(shards.len(), 2);
        assert_eq!(weight(&shards[0]) + weight(&shards[1]), 210);
        assert!(weight(&shards[0]).abs_diff(weight(&shards[1])) <= 20);
        for s in &shards {
            assert!(s.windows(2).all(|w| w[0].job < w[1].job));
        }
    }

    #[test]
    fn more_shards_than_files_leaves_none_empty() {
        let shards = assign(vec![input(1, 0), input(2, 0)], 5);
        assert_eq!(shards.len(), 2);
    }
}
