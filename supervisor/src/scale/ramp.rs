//! The ramp: how far the worker count jumps when the queue is deep and the
//! CPU far under its target. Like TCP's slow start, it doubles each
//! decision until a limit (memory, the budget, the maximum) or a weaker
//! signal (a shallower queue, more CPU) stops it.

use super::policy::{Readings, ScalePolicy, GROW_MARGIN};

/// How many workers to add at once, or `None` when the signal is only
/// marginal and the gradual path (one at a time, with hysteresis) decides.
/// `room`: the workers memory and the budget still allow.
pub(super) fn step(current: u32, r: &Readings, p: &ScalePolicy, room: u32) -> Option<u32> {
    let grow_line = p.target_cpu - GROW_MARGIN;
    // Far under: half the way from idle to the line the gradual path grows
    // under, so a reading near that line never jumps.
    let far = r.cpu_total < grow_line / 2.0;
    // Deep: enough queued beyond what idle workers take to keep twice as
    // many busy, so every new worker finds a job.
    let deep = r.queue_depth.saturating_sub(u64::from(r.idle)) >= u64::from(current.max(1));
    if !far || !deep || current >= p.max {
        return None;
    }
    // Doubling at most doubles docmill's own share, and that share is
    // under half the line: the projected load stays under it, so the CPU
    // needs no cap of its own here.
    let n = current.max(1).min(p.max - current).min(room);
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::super::policy::tests::{calm, policy, GIB};
    use super::super::policy::{decide, Profile, ScaleState};
    use super::*;

    /// Workers sleeping on documents: a deep queue, the CPU all but idle.
    fn deep_idle() -> Readings {
        Readings {
            cpu_total: 4.0,
            cpu_own: 2.0,
            queue_depth: 1_500,
            ..calm()
        }
    }

    /// Decisions `interval_ms` apart from `start` workers, the readings
    /// unchanged; the count after each.
    fn ramp_from(start: u32, r: &Readings, p: &ScalePolicy, decisions: usize) -> Vec<u32> {
        let mut st = ScaleState::default();
        let mut n = start;
        (0..decisions)
            .map(|i| {
                if let Some(d) = decide(n, r, p, &mut st, i as i64 * 5_000) {
                    n = d.target;
                }
                n
            })
            .collect()
    }

    #[test]
    fn a_deep_idle_queue_doubles_each_decision_up_to_the_maximum() {
        let p = policy(Profile::Background);
        // No streak, and no cool-down between ramp steps: decisions 5 s
        // apart under a 10 s cool-down.
        let mut p10 = p.clone();
        p10.cooldown_ms = 10_000;
        assert_eq!(ramp_from(2, &deep_idle(), &p10, 4), vec![4, 8, 12, 12]);
        let d = decide(2, &deep_idle(), &p, &mut ScaleState::default(), 0).unwrap();
        assert_eq!(d.target, 4);
        assert!(!d.may_kill_busy);
        assert!(d.reason.contains("ramp up by 2"), "{}", d.reason);
        // Under batch too, judged by the machine's whole load.
        assert_eq!(
            ramp_from(3, &deep_idle(), &policy(Profile::Batch), 3),
            vec![6, 12, 12]
        );
    }

    #[test]
    fn limits_cap_the_jump() {
        let p = policy(Profile::Background);
        let r = deep_idle();
        let table: &[(&str, u32, Option<u32>)] = &[
            // (case, room, step from 4)
            ("plenty", 100, Some(4)),
            ("memory for three", 3, Some(3)),
            ("memory for one", 1, Some(1)),
            ("no memory", 0, None),
        ];
        for (case, room, want) in table {
            assert_eq!(step(4, &r, &p, *room), *want, "{case}");
        }
        assert_eq!(step(10, &r, &p, 100), Some(2), "the maximum");
        assert_eq!(step(12, &r, &p, 100), None, "at the maximum");

        // Through decide: free memory for three more 500 MiB workers.
        let mut r = deep_idle();
        r.worker_rss = 500 << 20;
        r.available_mem = p.min_free + 3 * (500 << 20) + (100 << 20);
        assert_eq!(ramp_from(4, &r, &p, 1), vec![7]);
        // A 6 GiB budget at 1 GiB per worker holds 5.
        let mut p = policy(Profile::Background);
        p.budget = Some(6 * GIB);
        assert_eq!(ramp_from(2, &deep_idle(), &p, 3), vec![4, 5, 5]);
    }

    #[test]
    fn a_shallow_queue_or_a_marginal_cpu_takes_the_gradual_path() {
        let p = policy(Profile::Background);
        let shallow = Readings {
            queue_depth: 5,
            idle: 2,
            ..deep_idle()
        };
        assert_eq!(step(4, &shallow, &p, 100), None);
        // Three queued beyond the idle ones: +1 after two readings.
        assert_eq!(ramp_from(4, &shallow, &p, 3), vec![4, 5, 5]);
        // CPU between half the grow line and the line: +1 with hysteresis,
        // as before the ramp.
        let marginal = Readings {
            cpu_total: 40.0,
            cpu_own: 30.0,
            ..deep_idle()
        };
        assert_eq!(step(4, &marginal, &p, 100), None);
        let mut st = ScaleState::default();
        assert_eq!(decide(4, &marginal, &p, &mut st, 0), None);
        assert_eq!(decide(4, &marginal, &p, &mut st, 5_000).unwrap().target, 5);
    }

    #[test]
    fn after_a_shrink_the_ramp_waits_out_the_cool_down() {
        let p = policy(Profile::Background);
        let mut st = ScaleState::default();
        assert_eq!(decide(2, &deep_idle(), &p, &mut st, 0).unwrap().target, 4);
        // Another program takes the machine: critical, minus two at once.
        let busy = Readings {
            cpu_total: 95.0,
            ..deep_idle()
        };
        assert_eq!(decide(4, &busy, &p, &mut st, 1_000).unwrap().target, 2);
        // It stops; within the cool-down the count holds, then ramps.
        assert_eq!(decide(2, &deep_idle(), &p, &mut st, 2_000), None);
        assert_eq!(decide(2, &deep_idle(), &p, &mut st, 5_000), None);
        assert_eq!(
            decide(2, &deep_idle(), &p, &mut st, 6_000).unwrap().target,
            4
        );
    }

    #[test]
    fn over_target_while_ramping_still_shrinks_gradually() {
        let p = policy(Profile::Background);
        let mut st = ScaleState::default();
        assert_eq!(decide(2, &deep_idle(), &p, &mut st, 0).unwrap().target, 4);
        let over = Readings {
            cpu_total: 78.0,
            cpu_own: 70.0,
            ..deep_idle()
        };
        // Over the target: a streak of two and the cool-down, as before.
        assert_eq!(decide(4, &over, &p, &mut st, 1_000), None);
        assert_eq!(decide(4, &over, &p, &mut st, 2_000), None);
        assert_eq!(decide(4, &over, &p, &mut st, 5_000).unwrap().target, 3);
    }
}
