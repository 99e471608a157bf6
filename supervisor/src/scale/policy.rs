//! The scaling decision, as a pure function of readings and policy: no
//! processes, no clocks inside (time comes in as `now_ms`). Each rule of the
//! plan is one branch, tested by its own table row.

use serde::Serialize;

use super::ramp;

/// Named sets of thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Profile {
    /// Leave the machine usable: hold total CPU near 70%, throttle hard
    /// above 85%, counting docmill's own load.
    Background,
    /// Use the whole machine: only other programs' load makes docmill
    /// yield; its own load never throttles it.
    Batch,
    /// The plan's fallback mode: the minimum worker count, generous limits.
    Conservative,
}

impl Profile {
    pub fn parse(s: &str) -> Result<Profile, String> {
        match s {
            "background" => Ok(Profile::Background),
            "batch" => Ok(Profile::Batch),
            "conservative" => Ok(Profile::Conservative),
            _ => Err(format!(
                "unknown profile {s:?}: expected background, batch or conservative"
            )),
        }
    }

    /// The name `--profile` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Background => "background",
            Profile::Batch => "batch",
            Profile::Conservative => "conservative",
        }
    }

    /// (target, critical) CPU percent.
    pub fn cpu_thresholds(self) -> (f32, f32) {
        match self {
            Profile::Background | Profile::Conservative => (70.0, 85.0),
            // Only other programs' load counts under batch; 100% can never
            // be exceeded, so batch throttles gradually, never in a rush.
            Profile::Batch => (90.0, 100.0),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScalePolicy {
    pub profile: Profile,
    pub min: u32,
    pub max: u32,
    pub target_cpu: f32,
    pub critical_cpu: f32,
    /// Keep at least this much memory available to the rest of the machine.
    pub min_free: u64,
    /// Whole-run cap on resident memory (supervisor and workers), if any.
    pub budget: Option<u64>,
    /// The address-space limit each worker runs under.
    pub worker_limit: u64,
    /// Changes at least this far apart (emergencies excepted).
    pub cooldown_ms: i64,
    /// A non-emergency condition must hold this many decisions in a row.
    pub hysteresis: u32,
    /// Failure share of recent jobs above which a rising rate scales down.
    pub error_rate: f32,
}

/// What the sampler saw since the last decision.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Readings {
    pub cores: u32,
    /// The whole machine's CPU use, 0-100.
    pub cpu_total: f32,
    /// docmill's own share of it (supervisor, workers, engines), 0-100.
    pub cpu_own: f32,
    pub available_mem: u64,
    /// Resident memory of docmill's whole process tree.
    pub tree_rss: u64,
    /// Resident memory of one worker, measured (largest seen lately).
    pub worker_rss: u64,
    /// Highest descriptor use among the supervisor and the workers, 0-1.
    pub fd_usage: f32,
    pub queue_depth: u64,
    pub idle: u32,
    pub recent_jobs: u32,
    pub recent_failures: u32,
}

/// Memory of past decisions, for hysteresis, cool-down and trends.
#[derive(Clone, Debug, Default)]
pub struct ScaleState {
    pub last_change_ms: Option<i64>,
    up_streak: u32,
    down_streak: u32,
    prev_error_rate: f32,
    /// The last change was a ramp step: the next may follow without the
    /// cool-down, as long as the signal stays strong.
    ramping: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub target: u32,
    pub reason: String,
    /// Memory pressure may stop a busy worker (its job is requeued, not
    /// counted); CPU reasons never do.
    pub may_kill_busy: bool,
}

/// Per-worker memory the plan assumes before anything is measured.
pub const INITIAL_ESTIMATE: u64 = 500 << 20;

/// The plan's `calculate_initial_workers`: 70% of the cores, fewer under
/// load, no more than memory allows, within the bounds.
pub fn initial_workers(p: &ScalePolicy, cores: u32, cpu_percent: f32, available: u64) -> u32 {
    if p.profile == Profile::Conservative {
        return p.min.max(1);
    }
    let base = (cores as f32 * 0.7) as u32;
    let by_load = if cpu_percent < 30.0 {
        base.min(cores.saturating_sub(2))
    } else if cpu_percent < 60.0 {
        base.min(cores / 2)
    } else {
        (cores / 4).max(2)
    };
    let by_memory = (available / INITIAL_ESTIMATE) as u32;
    by_load
        .min(by_memory)
        .min(budget_count(p))
        .clamp(p.min, p.max)
}

/// How many workers the budget holds at their address-space limit.
fn budget_count(p: &ScalePolicy) -> u32 {
    match p.budget {
        Some(b) if p.worker_limit > 0 => {
            (b.saturating_sub(SUPERVISOR_RESERVE) / p.worker_limit) as u32
        }
        _ => u32::MAX,
    }
}

/// Growth happens only under `target - GROW_MARGIN` percent CPU, so the
/// workers it adds do not push the load over the target at once.
pub(super) const GROW_MARGIN: f32 = 20.0;

/// Memory kept aside for the supervisor inside a budget.
pub const SUPERVISOR_RESERVE: u64 = 128 << 20;

/// Workers the machine's free memory allows beyond `current`, from the
/// measured (or assumed) size of one worker.
fn memory_room(r: &Readings, p: &ScalePolicy) -> u32 {
    let estimate = if r.worker_rss > 0 {
        r.worker_rss
    } else {
        INITIAL_ESTIMATE
    };
    (r.available_mem.saturating_sub(p.min_free) / estimate.max(1)) as u32
}

/// Decides whether to change the worker count. `None`: keep it.
pub fn decide(
    current: u32,
    r: &Readings,
    p: &ScalePolicy,
    st: &mut ScaleState,
    now_ms: i64,
) -> Option<Decision> {
    let clamp = |n: u32| n.clamp(p.min, p.max);
    if current < p.min || current > p.max {
        return change(
            st,
            now_ms,
            clamp(current),
            format!("back within bounds {}..{}", p.min, p.max),
            false,
        );
    }
    if p.profile == Profile::Conservative {
        return None;
    }
    let cooled = st
        .last_change_ms
        .is_none_or(|t| now_ms - t >= p.cooldown_ms);
    // Under batch, docmill's own load is not a reason to yield.
    let cpu = match p.profile {
        Profile::Batch => (r.cpu_total - r.cpu_own).max(0.0),
        _ => r.cpu_total,
    };
    let error_rate = if r.recent_jobs > 0 {
        r.recent_failures as f32 / r.recent_jobs as f32
    } else {
        0.0
    };
    // "Rising" includes staying high: a run where most attempts keep
    // crashing should keep shedding workers, not stop after one step.
    let rising_errors = error_rate > p.error_rate && error_rate >= st.prev_error_rate;
    st.prev_error_rate = error_rate;

    // Emergencies: act at once, whatever the streaks and the cool-down.
    let over_budget = p.budget.is_some_and(|b| r.tree_rss > b - b / 10);
    if r.available_mem < p.min_free || over_budget {
        if current > p.min {
            let why = if over_budget {
                format!("memory {} MiB near the budget", r.tree_rss >> 20)
            } else {
                format!(
                    "available memory {} MiB under the {} MiB floor",
                    r.available_mem >> 20,
                    p.min_free >> 20
                )
            };
            return change(st, now_ms, clamp(current - 1), why, true);
        }
        return None;
    }
    if cpu > p.critical_cpu && current > p.min {
        return change(
            st,
            now_ms,
            clamp(current.saturating_sub(2)),
            format!("CPU {cpu:.0}% over the critical {:.0}%", p.critical_cpu),
            false,
        );
    }
    if r.fd_usage > 0.8 && current > p.min {
        return change(
            st,
            now_ms,
            clamp(current - 1),
            format!("descriptor use {:.0}% over 80%", r.fd_usage * 100.0),
            false,
        );
    }

    // Gradual moves: the condition must persist, and changes are spaced.
    let down_reason = if cpu > p.target_cpu {
        Some(format!(
            "CPU {cpu:.0}% over the target {:.0}%",
            p.target_cpu
        ))
    } else if rising_errors {
        Some(format!("error rate rising to {:.0}%", error_rate * 100.0))
    } else {
        None
    };
    let room = memory_room(r, p).min(budget_count(p).saturating_sub(current));
    // A strong signal grows at once, by up to the current count; a
    // marginal one takes the gradual path below. After any other change the ramp waits
    // out the cool-down, so a shrink is never undone by the next reading.
    if down_reason.is_none() && (cooled || st.ramping) {
        if let Some(step) = ramp::step(current, r, p, room) {
            let why = format!(
                "CPU {:.0}% far under the {:.0}% target, {} queued: ramp up by {step}",
                r.cpu_total, p.target_cpu, r.queue_depth
            );
            let d = change(st, now_ms, current + step, why, false);
            st.ramping = true;
            return d;
        }
    }
    let up_reason = (r.cpu_total < p.target_cpu - GROW_MARGIN
        && room > 0
        && r.queue_depth > u64::from(r.idle)
        && current < p.max)
        .then(|| {
            format!(
                "CPU {:.0}% under {:.0}%, {} queued, memory for {room} more",
                r.cpu_total,
                p.target_cpu - GROW_MARGIN,
                r.queue_depth
            )
        });
    match (down_reason, up_reason) {
        (Some(why), _) if current > p.min => {
            st.up_streak = 0;
            st.down_streak += 1;
            if st.down_streak >= p.hysteresis && cooled {
                return change(st, now_ms, current - 1, why, false);
            }
        }
        (None, Some(why)) => {
            st.down_streak = 0;
            st.up_streak += 1;
            if st.up_streak >= p.hysteresis && cooled {
                return change(st, now_ms, current + 1, why, false);
            }
        }
        _ => {
            st.up_streak = 0;
            st.down_streak = 0;
        }
    }
    None
}

fn change(
    st: &mut ScaleState,
    now_ms: i64,
    target: u32,
    reason: String,
    may_kill_busy: bool,
) -> Option<Decision> {
    st.last_change_ms = Some(now_ms);
    st.ramping = false;
    st.up_streak = 0;
    st.down_streak = 0;
    Some(Decision {
        target,
        reason,
        may_kill_busy,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::scale) const GIB: u64 = 1 << 30;

    pub(in crate::scale) fn policy(profile: Profile) -> ScalePolicy {
        let (target_cpu, critical_cpu) = profile.cpu_thresholds();
        ScalePolicy {
            profile,
            min: 2,
            max: 12,
            target_cpu,
            critical_cpu,
            min_free: 3 * GIB / 2,
            budget: None,
            worker_limit: GIB,
            cooldown_ms: 5_000,
            hysteresis: 2,
            error_rate: 0.3,
        }
    }

    pub(in crate::scale) fn calm() -> Readings {
        Readings {
            cores: 14,
            cpu_total: 30.0,
            cpu_own: 20.0,
            available_mem: 16 * GIB,
            tree_rss: GIB,
            worker_rss: 200 << 20,
            fd_usage: 0.1,
            queue_depth: 100,
            idle: 0,
            recent_jobs: 10,
            recent_failures: 0,
        }
    }

    /// Runs `decide` twice (the hysteresis) with time far apart.
    fn settle(current: u32, r: &Readings, p: &ScalePolicy) -> Option<Decision> {
        let mut st = ScaleState::default();
        decide(current, r, p, &mut st, 0).or_else(|| decide(current, r, p, &mut st, 100_000))
    }

    #[test]
    fn initial_count_follows_the_plan() {
        let p = policy(Profile::Background);
        // 14 cores, idle: min(70% of 14 = 9, 14 - 2) = 9.
        assert_eq!(initial_workers(&p, 14, 10.0, 64 * GIB), 9);
        // Medium load: min(9, 7).
        assert_eq!(initial_workers(&p, 14, 45.0, 64 * GIB), 7);
        // High load: max(2, 14 / 4).
        assert_eq!(initial_workers(&p, 14, 90.0, 64 * GIB), 3);
        // Memory: 2 GiB / 500 MB = 4.
        assert_eq!(initial_workers(&p, 14, 10.0, 2 * GIB), 4);
        // Fewer cores than the floor: the floor holds.
        assert_eq!(initial_workers(&p, 2, 10.0, 64 * GIB), 2);
        // The cap.
        assert_eq!(initial_workers(&p, 64, 0.0, 512 * GIB), 12);
        assert_eq!(
            initial_workers(&policy(Profile::Conservative), 14, 0.0, 64 * GIB),
            2
        );
    }

    #[test]
    fn room_to_grow_adds_one() {
        let d = settle(4, &calm(), &policy(Profile::Background)).unwrap();
        assert_eq!(d.target, 5);
        assert!(!d.may_kill_busy);
    }

    #[test]
    fn no_growth_without_queue_or_memory_or_below_target() {
        let p = policy(Profile::Background);
        let mut r = calm();
        r.queue_depth = 2;
        r.idle = 2;
        assert_eq!(settle(4, &r, &p), None, "queue drained by the idle workers");
        let mut r = calm();
        r.available_mem = p.min_free + (100 << 20);
        assert_eq!(settle(4, &r, &p), None, "no memory for another worker");
        let mut r = calm();
        r.cpu_total = 60.0;
        assert_eq!(
            settle(4, &r, &p),
            None,
            "between target - 20 and target: hold"
        );
        assert_eq!(settle(12, &calm(), &p), None, "at the maximum");
    }

    #[test]
    fn over_target_reduces_by_one() {
        let mut r = calm();
        r.cpu_total = 78.0;
        let d = settle(6, &r, &policy(Profile::Background)).unwrap();
        assert_eq!(d.target, 5);
    }

    #[test]
    fn over_critical_throttles_by_two_at_once() {
        let mut r = calm();
        r.cpu_total = 95.0;
        let mut st = ScaleState::default();
        let d = decide(6, &r, &policy(Profile::Background), &mut st, 0).unwrap();
        assert_eq!(d.target, 4, "emergency needs no streak");
        let d = decide(
            3,
            &r,
            &policy(Profile::Background),
            &mut ScaleState::default(),
            0,
        )
        .unwrap();
        assert_eq!(d.target, 2, "never below the minimum");
        assert_eq!(
            decide(
                2,
                &r,
                &policy(Profile::Background),
                &mut ScaleState::default(),
                0
            ),
            None
        );
    }

    #[test]
    fn batch_ignores_its_own_load_but_yields_to_others() {
        let p = policy(Profile::Batch);
        let mut r = calm();
        r.cpu_total = 100.0;
        r.cpu_own = 98.0;
        assert_eq!(settle(6, &r, &p), None, "its own load");
        r.cpu_own = 0.0;
        assert_eq!(
            settle(6, &r, &p).unwrap().target,
            5,
            "another program's load: gradually"
        );
    }

    #[test]
    fn memory_pressure_and_budget() {
        let p = policy(Profile::Background);
        let mut r = calm();
        r.available_mem = GIB;
        let d = decide(5, &r, &p, &mut ScaleState::default(), 0).unwrap();
        assert_eq!(d.target, 4);
        assert!(d.may_kill_busy);
        let mut p = policy(Profile::Background);
        p.budget = Some(4 * GIB);
        let mut r = calm();
        r.tree_rss = 4 * GIB - (100 << 20);
        assert_eq!(
            decide(3, &r, &p, &mut ScaleState::default(), 0)
                .unwrap()
                .target,
            2
        );
        // The budget also caps growth: (4 GiB - reserve) / 1 GiB = 3 workers.
        let r = calm();
        assert_eq!(settle(3, &r, &p), None);
        assert_eq!(initial_workers(&p, 14, 0.0, 64 * GIB), 3);
    }

    #[test]
    fn descriptors_and_errors_scale_down() {
        let p = policy(Profile::Background);
        let mut r = calm();
        r.fd_usage = 0.9;
        assert_eq!(
            decide(5, &r, &p, &mut ScaleState::default(), 0)
                .unwrap()
                .target,
            4
        );
        let mut st = ScaleState::default();
        let mut r = calm();
        r.recent_failures = 2;
        assert_eq!(
            decide(5, &r, &p, &mut st, 0),
            None,
            "20% is under the limit"
        );
        r.recent_failures = 5;
        assert_eq!(
            decide(5, &r, &p, &mut st, 10_000),
            None,
            "first sign: streak of one"
        );
        r.recent_failures = 6;
        assert_eq!(decide(5, &r, &p, &mut st, 20_000).unwrap().target, 4);
    }

    #[test]
    fn hysteresis_and_cooldown_stop_flapping() {
        let p = policy(Profile::Background);
        let mut st = ScaleState::default();
        let mut over = calm();
        over.cpu_total = 78.0;
        // One high reading is not enough.
        assert_eq!(decide(6, &over, &p, &mut st, 0), None);
        // A low one in between resets the streak.
        assert_eq!(decide(6, &calm(), &p, &mut st, 1_000), None);
        assert_eq!(decide(6, &over, &p, &mut st, 2_000), None);
        assert_eq!(decide(6, &over, &p, &mut st, 3_000).unwrap().target, 5);
        // Within the cool-down nothing changes, even with a streak.
        assert_eq!(decide(5, &calm(), &p, &mut st, 4_000), None);
        assert_eq!(decide(5, &calm(), &p, &mut st, 5_000), None);
        assert_eq!(decide(5, &calm(), &p, &mut st, 8_100).unwrap().target, 6);
    }

    #[test]
    fn bounds_and_conservative() {
        let p = policy(Profile::Background);
        assert_eq!(
            decide(1, &calm(), &p, &mut ScaleState::default(), 0)
                .unwrap()
                .target,
            2
        );
        assert_eq!(
            decide(20, &calm(), &p, &mut ScaleState::default(), 0)
                .unwrap()
                .target,
            12
        );
        assert_eq!(settle(2, &calm(), &policy(Profile::Conservative)), None);
    }
}
