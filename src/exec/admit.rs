//! Admission: a job starts only when a worker is free (`-j`), its memory reservation fits in
//! what is left of the budget, and the machine has more available memory than the reserve.
//!
//! In `auto` mode the reservation comes from the learned model. Until a first job has finished
//! and been measured, at most two jobs start, each reserving a cautious prior (at least 1 GiB).
//! A job larger than the whole budget runs alone rather than waiting forever.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::sampler::Sampler;
use crate::cancel::Cancel;
use crate::memory::{Fit, Meter, Model};

/// Jobs that may run at once before any job has been measured (`auto`).
const START_JOBS: usize = 2;
/// How often the live guard re-reads available memory at most.
const GUARD_EVERY: Duration = Duration::from_millis(50);

/// What a job was granted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permit {
    pub reserved: u64,
    /// It exceeds the whole budget and runs alone.
    pub alone: bool,
}

pub(crate) struct Gate {
    budget: u64,
    jobs: usize,
    /// Fixed reservation per job; `None`: learn (`auto`).
    per_job: Option<u64>,
    reserve: u64,
    /// Jobs run on other machines (`--executor srun`): nothing is learned from local peaks and
    /// local available memory does not matter; reservations become srun's `--mem`.
    remote: bool,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Default)]
struct State {
    reserved: u64,
    running: usize,
    max_running: usize,
    model: Model,
    meter: Option<Meter>,
    guard_checked: Option<Instant>,
    guard_ok: bool,
    /// Workers waiting for admission (a release wakes them only if there are any).
    waiting: usize,
}

impl Gate {
    pub(crate) fn new(
        budget: u64,
        jobs: usize,
        per_job: Option<u64>,
        reserve: u64,
        meter: Meter,
        remote: bool,
    ) -> Gate {
        Gate {
            budget,
            jobs,
            per_job,
            reserve,
            remote,
            state: Mutex::new(State {
                meter: Some(meter),
                guard_ok: true,
                ..State::default()
            }),
            freed: Condvar::new(),
        }
    }

    fn reservation_in(&self, state: &State, weight: u64) -> u64 {
        match self.per_job {
            Some(fixed) => fixed,
            None => state
                .model
                .predict(weight)
                .unwrap_or_else(|| crate::memory::prior(weight)),
        }
    }

    /// Waits until a job of `weight` may start; `None` if the run stops admitting meanwhile.
    pub(crate) fn admit(&self, weight: u64, cancel: &Cancel, sampler: &Sampler) -> Option<Permit> {
        let mut state = self.state.lock().expect("gate");
        loop {
            if cancel.no_new_jobs() {
                return None;
            }
            let want = self.reservation_in(&state, weight);
            // Until a first job has been measured, start few: at most two at once.
            let ramp = if self.per_job.is_none() && state.model.observations() == 0 && !self.remote
            {
                START_JOBS
            } else {
                usize::MAX
            };
            let fits = state.running == 0
                || (state.running < self.jobs.min(ramp)
                    // A running job that outgrew its reservation counts at its real size.
                    && state.reserved + sampler.excess() + want <= self.budget
                    && self.guard(&mut state));
            if fits {
                state.reserved += want;
                state.running += 1;
                state.max_running = state.max_running.max(state.running);
                return Some(Permit {
                    reserved: want,
                    alone: want > self.budget,
                });
            }
            state.waiting += 1;
            state = self
                .freed
                .wait_timeout(state, Duration::from_millis(100))
                .expect("gate")
                .0;
            state.waiting -= 1;
        }
    }

    /// A job ended: give back its reservation and learn from its peak.
    pub(crate) fn release(&self, permit: Permit, weight: u64, peak: Option<u64>) {
        let mut state = self.state.lock().expect("gate");
        state.reserved = state.reserved.saturating_sub(permit.reserved);
        state.running -= 1;
        if let Some(peak) = peak {
            state.model.observe(weight, peak);
        }
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.freed.notify_all();
        }
    }

    /// The live guard: is available memory above the reserve? Re-read at most every 50 ms.
    fn guard(&self, state: &mut State) -> bool {
        if self.remote {
            return true;
        }
        let stale = state
            .guard_checked
            .is_none_or(|t| t.elapsed() >= GUARD_EVERY);
        if stale {
            if let Some(meter) = state.meter.as_mut() {
                state.guard_ok = meter.snapshot().available >= self.reserve;
            }
            state.guard_checked = Some(Instant::now());
        }
        state.guard_ok
    }

    pub(crate) fn max_running(&self) -> usize {
        self.state.lock().expect("gate").max_running
    }

    pub(crate) fn fit(&self) -> Option<Fit> {
        self.state.lock().expect("gate").model.fit()
    }

    pub(crate) fn budget(&self) -> u64 {
        self.budget
    }
}
