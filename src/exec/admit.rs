//! Admission and the memory safety net.
//!
//! A job starts only when a worker is free (`-j`) and its memory fits in the room left, counted
//! two ways, both of which must hold:
//! - against the budget: the reservations of running jobs (a job that outgrew its reservation
//!   at what it is now expected to reach) plus the new job's;
//! - against the real limit (cgroup or machine), measured: available memory minus what running
//!   jobs are still expected to grow (expected peak minus what they use now) minus the reserve.
//!
//! Among the inputs waiting for room the one that fits it best (the largest that fits) goes
//! first, so smaller inputs may pass a large one; an input passed over `BYPASS_LIMIT` times,
//! and at the tail of the run the heaviest, gets the room reserved: others start only where
//! they do not delay it (`Gate::head`).
//!
//! In `auto` mode the reservation is the learned prediction plus a margin learned from how far
//! jobs went above their predictions; running jobs whose memory holds steady while they sleep
//! teach the model too, and running jobs are sized again when it changes. Until a first job
//! has been measured, at most two jobs start, each reserving a cautious prior (at least 1 GiB).
//! A job larger than the whole budget runs alone rather than waiting forever.
//!
//! The safety net (`watch`, after each memory sample) catches what predictions miss: when the
//! room below the real limit or the budget runs out, the youngest running job is paused
//! (SIGSTOP to its process group) and resumed (SIGCONT) once there is room for it again; only
//! when pausing cannot help (every job left is paused and none fits, or the real limit is still
//! about to be reached with every job but the oldest paused) is the youngest job stopped for
//! good and run again from scratch.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::net::{decide, steady, Action, Room};
use super::sampler::{Eviction, JobView, Sampler};
use crate::cancel::Cancel;
use crate::memory::{Fit, Meter, Model};

/// Jobs that may run at once before any job has been measured (`auto`).
const START_JOBS: usize = 2;
/// How often admission re-reads available memory at most.
const GUARD_EVERY: Duration = Duration::from_millis(50);
/// How long the first admission waits for the workers to bring their inputs, when it is to
/// choose the lightest among them (inputs of 1 MiB or more, nothing measured yet).
const SETTLE: Duration = Duration::from_millis(20);
/// Inputs lighter than this are not started out of order to learn from them sooner.
const LIGHT_FIRST_MIN: u64 = 1 << 20;
/// A waiting input passed over this many times gets the room reserved. (A bound in time would
/// turn every run of long jobs into first come, first served.)
const BYPASS_LIMIT: u32 = 8;

/// How long a waiting input lets one taken before it arrive, at most.
const TRANSIT_WAIT: Duration = Duration::from_millis(20);

/// An input on its way from the queue to admission (see `Gate::take`), numbered in the order
/// inputs were taken.
pub(crate) struct Ticket<'a> {
    gate: &'a Gate,
    seq: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // Its input never asked for admission: whoever waited for it need not wait longer.
        let mut state = self.gate.state.lock().expect("gate");
        state.in_transit.remove(&self.seq);
        Gate::wake_first(&state);
    }
}

/// How a job comes to admission: for the first time, or again after the safety net stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Fresh,
    /// Run again with at least `floor` reserved; its room is reserved at once (nothing passes
    /// it while it waits).
    Requeued {
        floor: u64,
    },
}

/// A waiting input's place in the start order: the lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Place {
    /// Input order: by job (or batch) number.
    InOrder(u64),
    /// `--order largest-first`: the heaviest first, then by job number.
    HeaviestFirst(std::cmp::Reverse<u64>, u64),
}

/// Where jobs run: here, or on other machines (`--executor srun`), where nothing is learned
/// from local peaks, local available memory does not matter and reservations become srun's
/// `--mem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Local,
    Remote,
}

/// Which waiting input starts first while nothing is measured yet (`auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstStarts {
    /// The lightest waiting input: it ends soonest and teaches the model.
    Lightest,
    /// The first by place (`--order largest-first`: the user chose the start order).
    ByPlace,
}

/// What the gate is set up with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateSettings {
    /// Bytes the reservations of running jobs may add up to.
    pub budget: u64,
    /// Jobs at once (`-j`).
    pub jobs: usize,
    /// Fixed reservation per job; `None`: learn (`auto`).
    pub per_job: Option<u64>,
    /// Available memory new jobs leave free.
    pub reserve: u64,
    pub placement: Placement,
    pub first_starts: FirstStarts,
}

/// What a job asks admission for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    pub weight: u64,
    pub place: Place,
    pub admission: Admission,
}

/// What a job was granted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permit {
    pub reserved: u64,
    /// The model's prediction of its peak, without margin (`auto`, once something is learned).
    pub predicted: Option<u64>,
    /// It exceeds the whole budget and runs alone.
    pub alone: bool,
    /// Its worker slot (`{%}`), 1..=jobs, unique among running jobs.
    pub slot: usize,
}

/// Admission and the safety net's decisions.
///
/// Lock order: `Gate::state`, then the sampler's registry (`Sampler::registry`), then the live
/// board's slots. The gate calls the sampler with its state locked (`room`, `watch`); the
/// sampler never calls the gate, and calls the board only with its registry locked.
///
/// Waiting inputs sleep on their own threads (park) and are woken one at a time, each by whoever
/// changed what admission depends on: a released job wakes the first waiting input, and a
/// waiting input that finds another chosen wakes that one. No thread wakes to find nothing to do,
/// and every wait has a timeout all the same.
pub(crate) struct Gate {
    settings: GateSettings,
    created: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    reserved: u64,
    /// Running jobs by slot: what was reserved for them and why.
    held: HashMap<usize, Held>,
    /// Counts the changes of the model, so that reservations are sized again after one.
    learned: u64,
    running: usize,
    max_running: usize,
    model: Model,
    meter: Option<Meter>,
    checked: Option<Instant>,
    /// Available memory at the last reading.
    available: u64,
    /// A job ended since that reading: it may be low (read again when that matters).
    freed: bool,
    /// Readings taken for admission.
    readings: u64,
    /// Inputs waiting for admission.
    waiting: Vec<Waiter>,
    /// The thread of each waiting input, by its id (woken with `unpark`).
    sleepers: Vec<(u64, Thread)>,
    next_waiter: u64,
    /// Slots given back, and the next never used.
    free_slots: BTreeSet<usize>,
    next_slot: usize,
    /// The safety net has jobs paused: nothing new starts.
    net_paused: bool,
    /// Inputs taken by workers that have not asked for admission yet, by ticket.
    in_transit: BTreeSet<u64>,
    next_ticket: u64,
    /// A worker found no input left to take: every input left is waiting, or on its way.
    drained: bool,
    /// Jobs started so far.
    starts: u64,
    /// Times the safety net paused a job, and stopped one to run it again.
    pauses: u64,
    evictions: u64,
    /// A waiting input found no room while fewer than `-j` jobs ran: memory held it back.
    held_by_memory: bool,
    /// Workers beyond `-j` idle until inputs are worth holding ahead (see `hold_ahead`).
    idle: Vec<Thread>,
    /// The inputs ended (or the run stopped taking them): idle workers leave.
    inputs_ended: bool,
}

/// A running job as admission sized it.
#[derive(Debug, Clone, Copy)]
struct Held {
    weight: u64,
    reserved: u64,
    /// The model's bare prediction when it was admitted, if any.
    predicted: Option<u64>,
    /// The least it may reserve (a job run again after the safety net stopped it).
    floor: u64,
    /// `State::learned` when its reservation was last sized.
    sized: u64,
    /// The peak the model last learned from it while it ran.
    taught: u64,
    /// Its place among the jobs started (the first is 0).
    started: u64,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    id: u64,
    weight: u64,
    want: u64,
    place: Place,
    bypassed: u32,
}

impl Gate {
    pub(crate) fn new(settings: GateSettings, meter: Meter) -> Gate {
        Gate {
            settings,
            state: Mutex::new(State {
                meter: Some(meter),
                next_slot: 1,
                ..State::default()
            }),
            created: Instant::now(),
        }
    }

    /// The reservation and the model's bare prediction for a job of `weight`.
    fn reservation_in(&self, state: &State, weight: u64) -> (u64, Option<u64>) {
        match (self.settings.per_job, state.model.predict(weight)) {
            (None, Some(want)) => (want, state.model.predict_raw(weight)),
            (per_job, _) => (crate::memory::first_reservation(per_job, weight), None),
        }
    }

    /// Waits until a job of `weight` may start; `None` if the run stops admitting meanwhile.
    /// `place` is its place in the start order (ties among waiting inputs go to the lower).
    pub(crate) fn admit(
        &self,
        ask: Ask,
        ticket: Option<Ticket<'_>>,
        cancel: &Cancel,
        sampler: &Sampler,
    ) -> Option<Permit> {
        let Ask {
            weight, admission, ..
        } = ask;
        let arrived = Instant::now();
        let floor = match admission {
            Admission::Fresh => 0,
            Admission::Requeued { floor } => floor,
        };
        let mut state = self.state.lock().expect("gate");
        let (id, seq) = Self::enqueue(&mut state, ask, ticket);
        loop {
            if cancel.no_new_jobs() {
                state.waiting.retain(|w| w.id != id);
                state.sleepers.retain(|(w, _)| *w != id);
                // The others leave too.
                state.sleepers.iter().for_each(|(_, t)| t.unpark());
                return None;
            }
            let (want, predicted) = self.reservation_in(&state, weight);
            let want = want.max(floor);
            if let Some(w) = state.waiting.iter_mut().find(|w| w.id == id) {
                w.want = want;
            }
            // An input taken before this one may be on its way (its weight being read): give it
            // a moment, so that inputs start in order where memory does not decide.
            let in_transit = state.in_transit.first().is_some_and(|&t| t < seq)
                && arrived.elapsed() < TRANSIT_WAIT;
            let chosen = self.pick(&mut state, sampler, in_transit, id);
            if chosen == Some(id) {
                let held = Held {
                    weight,
                    reserved: want,
                    predicted,
                    floor,
                    sized: state.learned,
                    taught: 0,
                    started: 0,
                };
                let slot = Self::grant(&mut state, id, held);
                state.sleepers.retain(|(w, _)| *w != id);
                if state.running < self.settings.jobs {
                    // There may be room for another.
                    Self::wake_first(&state);
                }
                return Some(Permit {
                    reserved: want,
                    predicted,
                    alone: want > self.settings.budget,
                    slot,
                });
            }
            let wait = if in_transit {
                Duration::from_millis(2)
            } else if self.settling() {
                SETTLE / 4
            } else {
                Duration::from_millis(100)
            };
            drop(state);
            std::thread::park_timeout(wait);
            state = self.state.lock().expect("gate");
        }
    }

    /// Input `id` waits now: its thread is woken when it may start, and its ticket (if any)
    /// arrives with it, in the same step. Returns the ticket's number; without one (a batch, a
    /// job run again) every input in transit counts as taken before it.
    fn arrive(state: &mut State, id: u64, ticket: Option<Ticket<'_>>) -> u64 {
        state.sleepers.push((id, std::thread::current()));
        ticket.map_or(u64::MAX, |ticket| {
            let seq = ticket.seq;
            state.in_transit.remove(&seq);
            std::mem::forget(ticket);
            seq
        })
    }

    /// Which waiting input starts now (none while one taken before is `in_transit`); wakes it
    /// if it is not `me`, and the idle workers once memory decides.
    fn pick(&self, state: &mut State, sampler: &Sampler, in_transit: bool, me: u64) -> Option<u64> {
        let chosen = if in_transit {
            None
        } else {
            self.choose(state, sampler)
        };
        if state.held_by_memory && !state.idle.is_empty() {
            // Memory decides now: the idle workers bring inputs to choose from.
            state.idle.drain(..).for_each(|t| t.unpark());
        }
        if let Some(other) = chosen.filter(|&c| c != me) {
            Self::wake(state, other);
        }
        chosen
    }

    /// For a worker beyond `-j`: waits until inputs are worth holding ahead of the free slots,
    /// true then, false once the inputs have ended. They are while nothing has been measured
    /// yet (`auto`: the lightest starts first) and once memory has held an input back (the
    /// best fit starts first). Otherwise no input waits for memory: jobs start in order, each
    /// from the worker whose job just ended, without waking another thread.
    pub(crate) fn hold_ahead(&self) -> bool {
        let mut state = self.state.lock().expect("gate");
        loop {
            let learning = self.settings.per_job.is_none()
                && state.model.observations() == 0
                && self.settings.placement == Placement::Local;
            if state.inputs_ended {
                return false;
            }
            if learning || state.held_by_memory {
                return true;
            }
            let me = std::thread::current();
            state.idle.push(me.clone());
            drop(state);
            std::thread::park_timeout(Duration::from_secs(1));
            state = self.state.lock().expect("gate");
            state.idle.retain(|t| t.id() != me.id());
        }
    }

    /// A worker found the inputs ended (or leaves): idle workers leave too.
    pub(crate) fn inputs_ended(&self) {
        let mut state = self.state.lock().expect("gate");
        state.inputs_ended = true;
        state.idle.drain(..).for_each(|t| t.unpark());
    }

    /// Wakes the first waiting input in the start order: it starts if it is chosen, or wakes
    /// the one that is.
    fn wake_first(state: &State) {
        if let Some(w) = state.waiting.iter().min_by_key(|w| (w.place, w.id)) {
            Self::wake(state, w.id);
        }
    }

    /// Wakes waiting input `id`.
    fn wake(state: &State, id: u64) {
        if let Some((_, thread)) = state.sleepers.iter().find(|(w, _)| *w == id) {
            thread.unpark();
        }
    }

    /// Counts an input as waiting (arrived, if it was on its way; see `arrive`): returns its
    /// waiter id and its ticket's number.
    fn enqueue(state: &mut State, ask: Ask, ticket: Option<Ticket<'_>>) -> (u64, u64) {
        let id = state.next_waiter;
        state.next_waiter += 1;
        state.waiting.push(Waiter {
            id,
            weight: ask.weight,
            want: 0,
            place: ask.place,
            bypassed: match ask.admission {
                Admission::Fresh => 0,
                Admission::Requeued { .. } => BYPASS_LIMIT,
            },
        });
        (id, Self::arrive(state, id, ticket))
    }

    /// Starts waiting input `id` as `held`: those it passed count a bypass. Returns its slot.
    fn grant(state: &mut State, id: u64, mut held: Held) -> usize {
        let me = state.waiting.iter().position(|w| w.id == id).expect("me");
        let me = state.waiting.remove(me);
        for w in state.waiting.iter_mut().filter(|w| w.place <= me.place) {
            w.bypassed += 1;
        }
        state.reserved += held.reserved;
        state.running += 1;
        state.max_running = state.max_running.max(state.running);
        let slot = match state.free_slots.pop_first() {
            Some(s) => s,
            None => {
                state.next_slot += 1;
                state.next_slot - 1
            }
        };
        held.started = state.starts;
        state.starts += 1;
        state.held.insert(slot, held);
        slot
    }

    /// Which waiting input may start now, if any.
    fn choose(&self, state: &mut State, sampler: &Sampler) -> Option<u64> {
        let learning = self.settings.per_job.is_none()
            && state.model.observations() == 0
            && self.settings.placement == Placement::Local;
        let first = state
            .waiting
            .iter()
            .min_by_key(|w| (w.place, w.id))
            .copied();
        // The lightest waiting input, when it is much lighter than the next in order.
        let lightest = |state: &State| {
            let first = first?;
            let light = state
                .waiting
                .iter()
                .min_by_key(|w| (w.weight, w.place, w.id))?;
            (first.weight >= LIGHT_FIRST_MIN && light.weight < first.weight / 2)
                .then_some((light.id, light.want))
        };
        let light_first = learning && self.settings.first_starts == FirstStarts::Lightest;
        if state.running == 0 {
            if light_first && first.is_some_and(|w| w.weight >= LIGHT_FIRST_MIN) && self.settling()
            {
                // Let the other workers bring their inputs: the lightest is to go first.
                return None;
            }
            // Nothing runs: the next starts, even if it needs more than the whole budget.
            return light_first
                .then(|| lightest(state).map(|(id, _)| id))
                .flatten()
                .or(first.map(|w| w.id));
        }
        // Until a first job has been measured, start few: at most two at once.
        let ramp = if learning { START_JOBS } else { usize::MAX };
        if state.running >= self.settings.jobs.min(ramp) || state.net_paused {
            return None;
        }
        let room = self.room(state, sampler);
        if let Some((id, want)) = light_first.then(|| lightest(state)).flatten() {
            let fits = want <= room;
            state.held_by_memory |= !fits;
            return fits.then_some(id);
        }
        // An input that waited too long, or at the tail the heaviest, goes first; others pass
        // it only where they do not delay it.
        let (head, fill) = match Self::head(state, room) {
            Some((head, _)) if head.want <= room => return Some(head.id),
            Some((head, fill)) => {
                state.held_by_memory = true;
                (Some(head.id), fill)
            }
            None => (None, room),
        };
        let chosen = state
            .waiting
            .iter()
            .filter(|w| Some(w.id) != head && w.want <= fill)
            .max_by(|a, b| a.want.cmp(&b.want).then(b.place.cmp(&a.place)))
            .map(|w| w.id);
        if chosen.is_none() && !state.waiting.is_empty() {
            state.held_by_memory = true;
        }
        chosen
    }

    /// The waiting input whose room is reserved, if any: the first passed over `BYPASS_LIMIT`
    /// times (or run again after the safety net stopped it), else at the tail of the run (a
    /// worker found no input left to take, and none is on its way) the heaviest, so that the
    /// largest jobs do not start last. With it, the room others may take without delaying its
    /// start, as if running jobs ended in the order they started (EASY backfilling): what is
    /// left over once enough of them ended for it to fit.
    fn head(state: &State, room: u64) -> Option<(Waiter, u64)> {
        let starved = state
            .waiting
            .iter()
            .filter(|w| w.bypassed >= BYPASS_LIMIT)
            .min_by_key(|w| (w.place, w.id));
        let tail = || {
            (state.drained && state.in_transit.is_empty())
                .then(|| {
                    state
                        .waiting
                        .iter()
                        .max_by(|a, b| a.want.cmp(&b.want).then(b.place.cmp(&a.place)))
                })
                .flatten()
        };
        let head = *starved.or_else(tail)?;
        let mut running: Vec<&Held> = state.held.values().collect();
        running.sort_by_key(|h| h.started);
        let mut free = room;
        for h in running {
            if free >= head.want {
                break;
            }
            free += h.reserved;
        }
        Some((head, room.min(free.saturating_sub(head.want))))
    }

    /// The first moments of the run, while workers are still taking their inputs.
    fn settling(&self) -> bool {
        self.settings.first_starts == FirstStarts::Lightest && self.created.elapsed() < SETTLE
    }

    /// The room for a new job: the lesser of the budget's and the real limit's.
    fn room(&self, state: &mut State, sampler: &Sampler) -> u64 {
        let held = sampler.holding();
        let committed = state.reserved + held.over;
        let budget_room = self.settings.budget.saturating_sub(committed);
        if self.settings.placement == Placement::Remote {
            return budget_room;
        }
        // Admitted jobs the sampler does not know yet will grow by their whole reservation.
        let unseen = state.reserved.saturating_sub(held.reserved);
        let real_room = |available: u64| {
            available
                .saturating_sub(held.growth + unseen)
                .saturating_sub(self.settings.reserve)
        };
        // A reading older than GUARD_EVERY is read again. One taken before a job ended is read
        // again only when some waiting input does not fit by it: memory freed since can only
        // add room, and most runs of small jobs never need a reading per job.
        let need = state.waiting.iter().map(|w| w.want).max().unwrap_or(0);
        let stale = state.checked.is_none_or(|t| t.elapsed() >= GUARD_EVERY)
            || (state.freed && budget_room.min(real_room(state.available)) < need);
        if stale {
            if let Some(meter) = state.meter.as_mut() {
                state.available = meter.snapshot().available;
                state.readings += 1;
            }
            state.checked = Some(Instant::now());
            state.freed = false;
        }
        budget_room.min(real_room(state.available))
    }

    /// A worker found no input left to take: from now on the inputs waiting are the last.
    pub(crate) fn drained(&self) {
        self.state.lock().expect("gate").drained = true;
    }

    /// A worker took an input from the queue: until the ticket is dropped (when its job asks
    /// for admission, or never will), inputs taken after it wait a moment for it.
    pub(crate) fn take(&self) -> Ticket<'_> {
        let mut state = self.state.lock().expect("gate");
        let seq = state.next_ticket;
        state.next_ticket += 1;
        state.in_transit.insert(seq);
        Ticket { gate: self, seq }
    }

    /// A job ended: give back its reservation and learn from its peak (not from a job the
    /// safety net stopped: its peak is not a whole job's).
    pub(crate) fn release(&self, permit: Permit, weight: u64, peak: Option<u64>) {
        let mut state = self.state.lock().expect("gate");
        // Sized again while it ran, perhaps: what is reserved for it now goes back.
        let reserved = state
            .held
            .remove(&permit.slot)
            .map_or(permit.reserved, |h| h.reserved);
        state.reserved = state.reserved.saturating_sub(reserved);
        state.running -= 1;
        state.free_slots.insert(permit.slot);
        // Memory was freed: the last reading may be low (see `room`).
        state.freed = true;
        state.model.settle(permit.slot);
        state.learned += 1;
        if let Some(peak) = peak {
            state.model.observe(weight, peak);
            if let Some(predicted) = permit.predicted {
                state.model.observe_error(predicted, peak);
            }
        }
        Self::wake_first(&state);
    }

    /// The safety net, after each memory sample: pauses, resumes or stops a job for good.
    pub(crate) fn watch(&self, sampler: &Sampler, cancel: &Cancel) {
        if self.settings.placement == Placement::Remote {
            return;
        }
        if cancel.stopping() {
            sampler.resume_all();
            return;
        }
        let mut state = self.state.lock().expect("gate");
        // Read with the state locked: no slot of these jobs is given to another meanwhile.
        let jobs = sampler.jobs();
        let available = match state.meter.as_mut() {
            Some(meter) => meter.snapshot().available,
            None => return,
        };
        let now = Instant::now();
        let freed = self.per_job_is_learned() && {
            Self::learn_from_running(&mut state, &jobs, now);
            Self::size_again(&mut state, &jobs, sampler, now)
        };
        state.available = available;
        state.checked = Some(Instant::now());
        state.freed = false;
        let used: u64 = jobs.iter().map(|j| j.current).sum();
        let room = Room {
            real: available as i64,
            budget: self.settings.budget as i64 - used as i64,
            reserve: self.settings.reserve as i64,
        };
        let action = decide(&jobs, room, now);
        match action {
            Action::Pause(pgid) => {
                if sampler.pause(pgid) {
                    state.pauses += 1;
                }
            }
            Action::PauseAll(pgids) => {
                for pgid in pgids {
                    if sampler.pause(pgid) {
                        state.pauses += 1;
                    }
                }
            }
            Action::Resume(pgid) => {
                sampler.resume(pgid);
            }
            Action::Evict(pgid) => {
                if sampler.evict(pgid, Eviction::Memory) {
                    state.evictions += 1;
                }
            }
            Action::Unstick(pgid) => {
                if sampler.evict(pgid, Eviction::Stalled) {
                    state.evictions += 1;
                }
            }
            Action::Nothing => {}
        }
        let was = state.net_paused;
        state.net_paused = sampler.jobs().iter().any(JobView::paused);
        if (was && !state.net_paused) || freed {
            // Jobs may start again, or fit now.
            Self::wake_first(&state);
        }
    }

    /// Whether reservations are learned (`auto`), not fixed by `--mem-per-job`.
    fn per_job_is_learned(&self) -> bool {
        self.settings.per_job.is_none()
    }

    /// Learns from running jobs whose memory has held steady (see `steady`) a provisional
    /// point each, so that the model need not wait for a first job to end. Returns whether
    /// the model changed.
    fn learn_from_running(state: &mut State, jobs: &[JobView], now: Instant) -> bool {
        let mut changed = false;
        for j in jobs.iter().filter(|j| steady(j, now)) {
            let Some(held) = state.held.get_mut(&j.slot) else {
                continue;
            };
            if j.peak > held.taught {
                held.taught = j.peak;
                state.model.observe_running(j.slot, held.weight, j.peak);
                if let Some(predicted) = held.predicted {
                    state.model.observe_running_error(j.slot, predicted, j.peak);
                }
                changed = true;
            }
        }
        if changed {
            state.learned += 1;
        }
        changed
    }

    /// Sizes the reservations of running jobs again after the model changed: what a job of
    /// its weight would reserve now, and at least what it reached with the margin (a job that
    /// outgrew its reservation only once its memory holds steady). Returns whether any
    /// reservation shrank.
    fn size_again(state: &mut State, jobs: &[JobView], sampler: &Sampler, now: Instant) -> bool {
        let mut shrank = false;
        let margin = state.model.margin();
        for j in jobs.iter().filter(|j| !j.paused()) {
            let learned = state.learned;
            let Some(held) = state.held.get(&j.slot).copied() else {
                continue;
            };
            let outgrown = j.expect > held.reserved;
            if held.sized == learned || (outgrown && !steady(j, now)) {
                continue;
            }
            let Some(predicted) = state.model.predict(held.weight) else {
                continue;
            };
            let reached = j.peak + (j.peak as f64 * margin) as u64;
            let want = predicted.max(reached).max(held.floor);
            let entry = state.held.get_mut(&j.slot).expect("held");
            entry.sized = learned;
            if want == held.reserved
                || (!outgrown && want.abs_diff(held.reserved) <= held.reserved / 64)
            {
                continue;
            }
            entry.reserved = want;
            state.reserved = state.reserved.saturating_sub(held.reserved) + want;
            shrank |= want < held.reserved;
            sampler.reserve_again(j.pgid, want);
        }
        shrank
    }

    pub(crate) fn max_running(&self) -> usize {
        self.state.lock().expect("gate").max_running
    }

    pub(crate) fn fit(&self) -> Option<Fit> {
        self.state.lock().expect("gate").model.fit()
    }

    /// The margin added to predictions now (`auto`).
    pub(crate) fn margin(&self) -> Option<f64> {
        let state = self.state.lock().expect("gate");
        (self.settings.per_job.is_none() && state.model.observations() > 0)
            .then(|| state.model.margin())
    }

    /// How often the safety net paused a job and stopped one to run it again.
    pub(crate) fn net_counts(&self) -> (u64, u64) {
        let state = self.state.lock().expect("gate");
        (state.pauses, state.evictions)
    }

    /// Whether memory ever kept an input waiting while fewer than `-j` jobs ran.
    pub(crate) fn held_by_memory(&self) -> bool {
        self.state.lock().expect("gate").held_by_memory
    }

    pub(crate) fn budget(&self) -> u64 {
        self.settings.budget
    }

    pub(crate) fn reserve(&self) -> u64 {
        self.settings.reserve
    }
}

#[cfg(test)]
mod tests {
    use super::super::net::tests::{ago, job, MIB};
    use super::*;

    /// A run of small jobs reads memory about once per `GUARD_EVERY`, not once per job: a
    /// reading taken before a job ended stands while every waiting input fits by it. (Every
    /// release used to make the next admission read /proc/meminfo and the cgroup's files.)
    #[test]
    fn memory_is_not_read_for_every_job() {
        let settings = GateSettings {
            budget: 1 << 40,
            jobs: 2,
            per_job: Some(MIB),
            reserve: 0,
            placement: Placement::Local,
            first_starts: FirstStarts::ByPlace,
        };
        let gate = Gate::new(settings, Meter::new());
        let sampler = Sampler::new(Instant::now(), None);
        let cancel = Cancel::new().expect("cancel");
        let ask = |n| Ask {
            weight: 10,
            place: Place::InOrder(n),
            admission: Admission::Fresh,
        };
        let start = Instant::now();
        let mut running = gate
            .admit(ask(0), None, &cancel, &sampler)
            .expect("admitted");
        for n in 1..200 {
            let next = gate
                .admit(ask(n), None, &cancel, &sampler)
                .expect("admitted");
            gate.release(running, 10, Some(MIB));
            running = next;
        }
        let allowed = 1 + (start.elapsed().as_millis() / GUARD_EVERY.as_millis()) as u64;
        let readings = gate.state.lock().unwrap().readings;
        assert!(
            readings <= allowed,
            "{readings} readings in {:?}",
            start.elapsed()
        );
    }

    fn held(weight: u64, reserved: u64) -> Held {
        Held {
            weight,
            reserved,
            predicted: None,
            floor: 0,
            sized: 0,
            taught: 0,
            started: 0,
        }
    }

    /// Two jobs on the prior (1 GiB each): once their memory holds steady the model learns
    /// from them and their reservations shrink to what they reached with the margin; a job
    /// run again keeps its floor.
    #[test]
    fn running_jobs_are_learned_from_and_sized_again() {
        let sampler = Sampler::new(Instant::now(), None);
        let mut state = State::default();
        let mut a = job(1, 2, 213, 1024, false);
        let mut b = job(2, 2, 305, 1024, false);
        for j in [&mut a, &mut b] {
            j.active = ago(1.5);
        }
        state.held.insert(1, held(200 << 10, 1024 * MIB));
        state.held.insert(
            2,
            Held {
                floor: 900 * MIB,
                ..held(292 << 10, 1024 * MIB)
            },
        );
        state.reserved = 2048 * MIB;
        let now = Instant::now();
        assert!(Gate::learn_from_running(&mut state, &[a, b], now));
        assert_eq!(state.model.observations(), 2);
        // Learned once: the same peaks teach nothing new.
        assert!(!Gate::learn_from_running(&mut state, &[a, b], now));
        assert!(Gate::size_again(&mut state, &[a, b], &sampler, now));
        let (ra, rb) = (state.held[&1].reserved, state.held[&2].reserved);
        assert!((213 * MIB..260 * MIB).contains(&ra), "{ra}");
        assert_eq!(rb, 900 * MIB, "the floor of a job run again stays");
        assert_eq!(state.reserved, ra + rb);
        // Nothing learned since: nothing sized again.
        assert!(!Gate::size_again(&mut state, &[a, b], &sampler, now));
        // Still growing, outgrown: its reservation waits until its memory holds steady.
        let mut c = job(3, 1, 700, 1050, false);
        c.active = ago(0.05);
        state.held.insert(3, held(300 << 10, 400 * MIB));
        state.reserved += 400 * MIB;
        state.learned += 1;
        Gate::size_again(&mut state, &[a, b, c], &sampler, now);
        assert_eq!(state.held[&3].reserved, 400 * MIB);
        c.active = ago(0.6);
        state.learned += 1;
        Gate::size_again(&mut state, &[a, b, c], &sampler, now);
        assert!(
            state.held[&3].reserved >= 700 * MIB,
            "{}",
            state.held[&3].reserved
        );
    }

    /// At the tail the heaviest input goes first, and one passed over too often at any time;
    /// a lighter one passes it only where it would not delay it, if the running jobs end in
    /// the order they started.
    #[test]
    fn at_the_tail_the_heaviest_goes_first_and_lighter_ones_fill_around_it() {
        let waiter = |id: u64, want: u64| Waiter {
            id,
            weight: want,
            want: want * MIB,
            place: Place::InOrder(id),
            bypassed: 0,
        };
        let mut state = State {
            waiting: vec![waiter(1, 300), waiter(2, 2000), waiter(3, 500)],
            ..State::default()
        };
        let mut first = held(0, 1000 * MIB);
        first.started = 0;
        let mut second = held(0, 1500 * MIB);
        second.started = 1;
        state.held.insert(1, first);
        state.held.insert(2, second);
        assert!(
            Gate::head(&state, 800 * MIB).is_none(),
            "inputs still to come"
        );
        state.drained = true;
        let (head, fill) = Gate::head(&state, 800 * MIB).unwrap();
        assert_eq!(head.id, 2);
        // Both running jobs must end for it to fit (3300 MiB): all the room is for others.
        assert_eq!(fill, 800 * MIB);
        // The first to end frees enough (2300 MiB): others may take 300 MiB of it.
        state.held.get_mut(&1).unwrap().reserved = 1500 * MIB;
        assert_eq!(Gate::head(&state, 800 * MIB).unwrap().1, 300 * MIB);
        // An input on its way may be the heaviest.
        state.in_transit.insert(1);
        assert!(Gate::head(&state, 800 * MIB).is_none());
        // One passed over too often goes first, at any time; a job run alone (it needs more
        // than all the running jobs hold) is passed by none.
        state.drained = false;
        state.waiting[2].bypassed = BYPASS_LIMIT;
        let (head, fill) = Gate::head(&state, 100 * MIB).unwrap();
        assert_eq!((head.id, fill), (3, 100 * MIB));
        state.waiting[2].want = 4000 * MIB;
        assert_eq!(Gate::head(&state, 800 * MIB).unwrap().1, 0);
    }
}
