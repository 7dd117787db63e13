//! The memory safety net's rule: what to do (pause, resume, stop for good) from the running
//! jobs' memory and the room left, and when a running job's memory has held steady. Pure
//! functions of what the sampler saw; the gate (admit.rs) acts on them.

use std::time::{Duration, Instant};

use super::sampler::JobView;

/// How long a pause may last while no running job uses CPU time (see `stalled`). Long enough
/// that jobs which hold memory while they wait for time (sleeping, polling slowly) usually end
/// first; short enough that a run deadlocked by a pause goes on soon.
pub(super) const STALL: Duration = Duration::from_secs(10);

/// The memory situation the safety net acts on, bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Room {
    /// Available below the real limit (cgroup or machine).
    pub real: i64,
    /// The budget minus what the running jobs use (negative: over it).
    pub budget: i64,
    pub reserve: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    Nothing,
    Pause(i32),
    PauseAll(Vec<i32>),
    Resume(i32),
    /// Stop it for good to free memory, and run it again later.
    Evict(i32),
    /// Stop a paused job for good, and run it again later: the running jobs make no progress
    /// (they may wait for something it holds, such as a lock).
    Unstick(i32),
}

/// The safety net's rule, for jobs oldest first. The real limit is near when less than half
/// the reserve is available (pause the youngest), about to be reached below a quarter (pause
/// all but the oldest at once; if they are already, stop the youngest for good); the budget is
/// exceeded when the jobs use more than it. The last job running
/// is never paused or stopped: there is nothing to wait for. No pause lasts forever: when a
/// job has been paused for `STALL` and no running job has used CPU time for as long, the
/// youngest paused job is stopped for good and run again later (see `stalled`).
pub(super) fn decide(jobs: &[JobView], room: Room, now: Instant) -> Action {
    if jobs.len() <= 1 {
        return match jobs.first() {
            Some(j) if j.paused() => Action::Resume(j.pgid),
            _ => Action::Nothing,
        };
    }
    let youngest = jobs.last().expect("jobs");
    let running: Vec<&JobView> = jobs.iter().filter(|j| !j.paused()).collect();
    let paused: Vec<&JobView> = jobs.iter().filter(|j| j.paused()).collect();
    if let Some(stuck) = stalled(&running, &paused, now) {
        return Action::Unstick(stuck);
    }
    if room.real < room.reserve / 4 {
        // The limit is about a sampling interval away: stop every job's growth but the
        // oldest's at once, and if that was already done, free memory.
        return match running.len() {
            2.. => Action::PauseAll(running[1..].iter().map(|j| j.pgid).collect()),
            _ => Action::Evict(youngest.pgid),
        };
    }
    let pressure = room.real < room.reserve / 2 || room.budget < 0;
    if pressure {
        return match running.len() {
            // Pause the youngest of those still running, keeping the oldest going.
            2.. => Action::Pause(running.last().expect("running").pgid),
            // One still runs: its end will free memory.
            1 => Action::Nothing,
            // All paused and still no room: pausing cannot help.
            _ => Action::Evict(paused.last().expect("paused").pgid),
        };
    }
    let Some(oldest) = paused.first() else {
        return Action::Nothing;
    };
    let growth = oldest.expect.saturating_sub(oldest.current) as i64;
    if room.real - room.reserve >= growth && room.budget >= growth {
        Action::Resume(oldest.pgid)
    } else if running.is_empty() {
        // Nothing running will free memory: give the room of the youngest to the others.
        Action::Evict(paused.last().expect("paused").pgid)
    } else {
        Action::Nothing
    }
}

/// How long a running job's memory must have held steady before the model learns from it, at
/// least; and at least half as long as it was active before.
pub(super) const STEADY: Duration = Duration::from_millis(300);

/// Whether a running job's memory has stopped growing, as far as its samples tell: it has held
/// its peak, asleep, for `STEADY` and for half as long as it was growing or running before.
pub(super) fn steady(j: &JobView, now: Instant) -> bool {
    let active = j.active.saturating_duration_since(j.started);
    !j.paused() && j.peak > 0 && now.saturating_duration_since(j.active) >= STEADY.max(active / 2)
}

/// The youngest paused job, when pausing has stalled the run: some job has been paused for
/// `STALL` and none of the running ones has used CPU time for as long. They may be waiting for
/// something a paused job holds (a lock, a pipe it is to write): waiting longer cannot help.
fn stalled(running: &[&JobView], paused: &[&JobView], now: Instant) -> Option<i32> {
    let longest = paused.iter().filter_map(|j| j.paused_since).min()?;
    let idle = |t: Instant| now.saturating_duration_since(t) >= STALL;
    (idle(longest) && running.iter().all(|j| idle(j.progressed)))
        .then(|| paused.last().map(|j| j.pgid))
        .flatten()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::exec) const MIB: u64 = 1 << 20;

    pub(in crate::exec) fn ago(s: f64) -> Instant {
        Instant::now()
            .checked_sub(Duration::from_secs_f64(s))
            .unwrap()
    }

    pub(in crate::exec) fn job(
        pgid: i32,
        age_s: u64,
        current: u64,
        expect: u64,
        paused: bool,
    ) -> JobView {
        JobView {
            pgid,
            slot: pgid as usize,
            started: ago(age_s as f64),
            peak: current * MIB,
            active: ago(age_s as f64),
            current: current * MIB,
            expect: expect * MIB,
            paused_since: paused.then(|| ago(0.5)),
            progressed: ago(0.1),
        }
    }

    fn decide(jobs: &[JobView], room: Room) -> Action {
        super::decide(jobs, room, Instant::now())
    }

    fn room(real: i64, budget: i64) -> Room {
        Room {
            real: real * MIB as i64,
            budget: budget * MIB as i64,
            reserve: 400 * MIB as i64,
        }
    }

    #[test]
    fn the_youngest_is_paused_when_the_limit_nears() {
        let jobs = [
            job(10, 9, 900, 1000, false),
            job(11, 5, 600, 700, false),
            job(12, 1, 900, 1350, false),
        ];
        assert_eq!(decide(&jobs, room(1000, 500)), Action::Nothing);
        assert_eq!(decide(&jobs, room(150, 500)), Action::Pause(12));
        // Over the budget, with the real limit far away, too.
        assert_eq!(decide(&jobs, room(5000, -10)), Action::Pause(12));
        // The youngest already paused: the next youngest, never the oldest.
        let mut two = jobs;
        two[2].paused_since = Some(ago(0.5));
        assert_eq!(decide(&two, room(150, 500)), Action::Pause(11));
        two[1].paused_since = Some(ago(0.5));
        assert_eq!(decide(&two, room(150, 500)), Action::Nothing);
    }

    #[test]
    fn a_paused_job_resumes_when_there_is_room_for_its_growth() {
        let jobs = [job(10, 9, 900, 1000, false), job(12, 1, 900, 1350, true)];
        // 450 MiB still to grow: needs the reserve (400) + 450 available.
        assert_eq!(decide(&jobs, room(800, 2000)), Action::Nothing);
        assert_eq!(decide(&jobs, room(900, 2000)), Action::Resume(12));
        // ...and as much below the budget.
        assert_eq!(decide(&jobs, room(900, 400)), Action::Nothing);
        // The oldest paused job goes first.
        let three = [
            job(10, 9, 900, 1000, false),
            job(11, 5, 100, 150, true),
            job(12, 1, 900, 1350, true),
        ];
        assert_eq!(decide(&three, room(900, 2000)), Action::Resume(11));
    }

    #[test]
    fn the_youngest_is_stopped_for_good_only_when_pausing_cannot_help() {
        // Every job paused, no room for any: the youngest gives way.
        let jobs = [job(11, 5, 900, 1350, true), job(12, 1, 900, 1350, true)];
        assert_eq!(decide(&jobs, room(600, 2000)), Action::Evict(12));
        assert_eq!(decide(&jobs, room(150, 2000)), Action::Evict(12));
        // The real limit about to be reached: every job but the oldest paused at once, then,
        // if that was not enough, the youngest stopped.
        let running = [
            job(10, 7, 900, 1000, false),
            job(11, 5, 900, 1350, false),
            job(12, 1, 900, 1350, false),
        ];
        assert_eq!(
            decide(&running, room(50, 2000)),
            Action::PauseAll(vec![11, 12])
        );
        let mut stopped = running;
        stopped[1].paused_since = Some(ago(0.5));
        stopped[2].paused_since = Some(ago(0.5));
        assert_eq!(decide(&stopped, room(50, 2000)), Action::Evict(12));
        // One job left is never stopped, and resumes if it was paused: it runs alone.
        assert_eq!(decide(&jobs[..1], room(50, -500)), Action::Resume(11));
        assert_eq!(decide(&running[..1], room(50, -500)), Action::Nothing);
    }

    /// The scenario of a paused job holding a lock an older job waits for: over the budget the
    /// youngest is paused, the oldest (blocked) uses no CPU. Within `STALL` nothing happens;
    /// past it, with no CPU used by the running job for as long, the paused one is stopped for
    /// good. A running job that uses CPU keeps the pause going.
    #[test]
    fn a_pause_that_stalls_the_running_jobs_ends() {
        let over = room(5000, -100);
        let mut jobs = [job(10, 9, 150, 150, false), job(12, 5, 150, 150, true)];
        assert_eq!(decide(&jobs, over), Action::Nothing);
        jobs[1].paused_since = Some(ago(10.5));
        assert_eq!(
            decide(&jobs, over),
            Action::Nothing,
            "the oldest ran lately"
        );
        jobs[0].progressed = ago(10.2);
        assert_eq!(decide(&jobs, over), Action::Unstick(12));
        // Of several paused, the youngest goes.
        let three = [
            JobView {
                progressed: ago(11.0),
                ..job(10, 9, 150, 150, false)
            },
            JobView {
                paused_since: Some(ago(11.0)),
                ..job(11, 7, 150, 150, true)
            },
            job(12, 5, 150, 150, true),
        ];
        assert_eq!(decide(&three, over), Action::Unstick(12));
    }

    #[test]
    fn memory_holds_steady_once_it_stopped_growing_for_a_while() {
        let now = Instant::now();
        let mut j = job(10, 2, 300, 1024, false);
        // Active for 0.2 s, steady since 1.8 s.
        j.active = j.started + Duration::from_millis(200);
        assert!(steady(&j, now));
        // Active until 0.1 s ago: not yet.
        j.active = ago(0.1);
        assert!(!steady(&j, now));
        // Active for 1.6 s, steady for 0.4 s: half as long as it was active is 0.8 s.
        j.active = ago(0.4);
        assert!(!steady(&j, now));
        j.active = ago(0.9);
        assert!(steady(&j, now));
        // Paused, or never sampled: nothing to learn.
        j.paused_since = Some(ago(0.5));
        assert!(!steady(&j, now));
        let mut never = job(11, 2, 0, 1024, false);
        never.active = ago(1.5);
        assert!(!steady(&never, now));
    }
}
