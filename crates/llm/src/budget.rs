//! Hard token budgets per call, per task and per run. A call is reserved against every limit
//! before it is sent and refused if it could pass one, so a limit is never overrun by the calls
//! ponder chose to make; only a server that reports more tokens than the reservation allowed for
//! (a prompt estimate that was too low) can push usage past it, and that overshoot is recorded.
//!
//! This module only does the accounting. The client decides the estimate (prompt estimate +
//! `max_tokens * n`) and settles each reservation with the usage the server reported.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::types::Usage;

/// Token limits, counting prompt plus completion tokens. `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The most one call (all its samples) may reserve.
    pub per_call: Option<u64>,
    /// The most all calls made for one task (one issue) may use.
    pub per_task: Option<u64>,
    /// The most all calls of the run may use.
    pub per_run: Option<u64>,
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Call,
    Task,
    Run,
}

impl Scope {
    /// Where this limit is set: the `[budget]` key of ponder.toml and the command-line option.
    pub fn option(self) -> &'static str {
        match self {
            Scope::Call => {
                "max_tokens_per_call ([budget] in ponder.toml, or --max-tokens-per-call)"
            }
            Scope::Task => {
                "max_tokens_per_task ([budget] in ponder.toml, or --max-tokens-per-task)"
            }
            Scope::Run => "max_tokens_per_run ([budget] in ponder.toml, or --max-tokens-per-run)",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Call => "call",
            Scope::Task => "task",
            Scope::Run => "run",
        })
    }
}

/// A call was not sent because it could have passed a token limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct BudgetExceeded {
    pub scope: Scope,
    /// The limit, in tokens.
    pub limit: u64,
    /// Tokens already used in this scope by settled calls (0 for `Call`).
    pub used: u64,
    /// Tokens held by calls of this scope still in flight (0 for `Call`).
    pub reserved: u64,
    /// What the refused call would have reserved.
    pub requested: u64,
}

impl BudgetExceeded {
    fn message(&self) -> String {
        let estimate = "prompt estimate + max_tokens × n";
        match self.scope {
            Scope::Call => format!(
                "token budget per call exceeded: the call could use {} tokens ({estimate}) but \
                 the limit per call is {}; raise {} or lower max_tokens or n",
                self.requested,
                self.limit,
                self.scope.option()
            ),
            scope => format!(
                "token budget per {scope} exceeded: the call could use {} tokens ({estimate}), \
                 and {} of the {}-token limit are used and {} reserved by calls in flight, \
                 leaving {}; raise {} or lower max_tokens or n",
                self.requested,
                self.used,
                self.limit,
                self.reserved,
                self.limit
                    .saturating_sub(self.used.saturating_add(self.reserved)),
                scope.option()
            ),
        }
    }
}

/// What one scope (a task or the run) has spent and holds.
#[derive(Debug, Default)]
struct Ledger {
    used: Usage,
    reserved: u64,
}

impl Ledger {
    /// Refuses `requested` if it could pass `limit` on top of what is used and held.
    fn check(
        &self,
        scope: Scope,
        limit: Option<u64>,
        requested: u64,
    ) -> Result<(), BudgetExceeded> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let used = self.used.total();
        if used.saturating_add(self.reserved).saturating_add(requested) > limit {
            return Err(BudgetExceeded {
                scope,
                limit,
                used,
                reserved: self.reserved,
                requested,
            });
        }
        Ok(())
    }

    fn settle(&mut self, reserved: u64, actual: &Usage) {
        self.reserved = self.reserved.saturating_sub(reserved);
        add_usage(&mut self.used, actual);
    }

    fn remaining(&self, limit: Option<u64>) -> Option<u64> {
        limit.map(|l| l.saturating_sub(self.used.total().saturating_add(self.reserved)))
    }
}

fn add_usage(total: &mut Usage, more: &Usage) {
    // `Usage::add` saturates: counts come from servers, and a garbage report must not panic.
    total.add(more);
}

// A panic elsewhere cannot leave a ledger half-updated (updates are plain additions done after
// every check), so a poisoned lock is still safe to use.
fn lock(m: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct RunShared {
    limits: Limits,
    ledger: Mutex<Ledger>,
}

/// The budget of a whole run, shared by all its tasks. Cloning shares it.
#[derive(Debug, Clone)]
pub struct RunBudget {
    shared: Arc<RunShared>,
}

impl RunBudget {
    pub fn new(limits: Limits) -> Self {
        RunBudget {
            shared: Arc::new(RunShared {
                limits,
                ledger: Mutex::new(Ledger::default()),
            }),
        }
    }

    /// No limits; usage is still counted.
    pub fn unlimited() -> Self {
        RunBudget::new(Limits::default())
    }

    /// A new task with its own per-task allowance, charging also to this run.
    pub fn task(&self) -> TaskBudget {
        TaskBudget {
            shared: Arc::new(TaskShared {
                run: Arc::clone(&self.shared),
                ledger: Mutex::new(Ledger::default()),
            }),
        }
    }

    /// Usage of all settled calls of the run.
    pub fn used(&self) -> Usage {
        lock(&self.shared.ledger).used
    }

    /// Tokens held by the run's calls in flight.
    pub fn reserved(&self) -> u64 {
        lock(&self.shared.ledger).reserved
    }

    /// Tokens the run may still reserve, `None` without a run limit.
    pub fn remaining(&self) -> Option<u64> {
        lock(&self.shared.ledger).remaining(self.shared.limits.per_run)
    }

    pub fn limits(&self) -> Limits {
        self.shared.limits
    }
}

#[derive(Debug)]
struct TaskShared {
    run: Arc<RunShared>,
    ledger: Mutex<Ledger>,
}

/// The budget of one task. Cloning shares it (e.g. among the task's parallel samples).
#[derive(Debug, Clone)]
pub struct TaskBudget {
    shared: Arc<TaskShared>,
}

impl TaskBudget {
    /// Reserves `estimate` tokens for one call against the call, task and run limits at once.
    ///
    /// Refused if any limit would be passed by what is used plus what calls in flight hold plus
    /// `estimate`; a call that fits exactly is accepted. Both ledgers are locked together (always
    /// run first, then task, so no two calls can deadlock), so concurrent reservations can never
    /// add up past a limit.
    pub fn reserve(&self, estimate: u64) -> Result<Reservation, BudgetExceeded> {
        let run = &self.shared.run;
        let limits = run.limits;
        if let Some(limit) = limits.per_call.filter(|&l| estimate > l) {
            return Err(BudgetExceeded {
                scope: Scope::Call,
                limit,
                used: 0,
                reserved: 0,
                requested: estimate,
            });
        }
        let mut run_ledger = lock(&run.ledger);
        let mut task_ledger = lock(&self.shared.ledger);
        task_ledger.check(Scope::Task, limits.per_task, estimate)?;
        run_ledger.check(Scope::Run, limits.per_run, estimate)?;
        task_ledger.reserved = task_ledger.reserved.saturating_add(estimate);
        run_ledger.reserved = run_ledger.reserved.saturating_add(estimate);
        Ok(Reservation {
            task: Arc::clone(&self.shared),
            amount: estimate,
            open: true,
        })
    }

    /// Usage of the task's settled calls.
    pub fn used(&self) -> Usage {
        lock(&self.shared.ledger).used
    }

    /// Tokens held by the task's calls in flight.
    pub fn reserved(&self) -> u64 {
        lock(&self.shared.ledger).reserved
    }

    /// Tokens the next call of this task may reserve under the task and run limits (the call
    /// limit aside), `None` if neither is set. Lets a caller shrink `max_tokens` or stop early.
    pub fn remaining(&self) -> Option<u64> {
        let run = &self.shared.run;
        let run_left = lock(&run.ledger).remaining(run.limits.per_run);
        let task_left = lock(&self.shared.ledger).remaining(run.limits.per_task);
        match (run_left, task_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn limits(&self) -> Limits {
        self.shared.run.limits
    }
}

/// Tokens held for one call in flight. [`settle`](Reservation::settle) it with what the server
/// reported; dropping it unsettled (the call failed or was cancelled before any usage was
/// known) releases the hold and charges nothing.
#[derive(Debug)]
#[must_use = "a reservation holds budget until it is settled or dropped"]
pub struct Reservation {
    task: Arc<TaskShared>,
    amount: u64,
    /// Cleared once released, so Drop after settle does nothing.
    open: bool,
}

impl Reservation {
    /// The tokens this reservation holds.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Replaces the hold with the usage `actual` in the task and the run. `actual` may exceed
    /// the estimate (a prompt estimate can be low); it is recorded in full, so the overshoot
    /// shows in `used` and later calls are refused accordingly.
    pub fn settle(mut self, actual: &Usage) {
        self.release(actual);
    }

    fn release(&mut self, actual: &Usage) {
        if !self.open {
            return;
        }
        self.open = false;
        let mut run_ledger = lock(&self.task.run.ledger);
        let mut task_ledger = lock(&self.task.ledger);
        task_ledger.settle(self.amount, actual);
        run_ledger.settle(self.amount, actual);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release(&Usage::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_prompt_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    fn limits(per_call: Option<u64>, per_task: Option<u64>, per_run: Option<u64>) -> Limits {
        Limits {
            per_call,
            per_task,
            per_run,
        }
    }

    #[test]
    fn types_are_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RunBudget>();
        assert_send_sync::<TaskBudget>();
        assert_send_sync::<Reservation>();
    }

    #[test]
    fn exact_fit_is_accepted_and_one_more_refused() {
        let run = RunBudget::new(limits(None, None, Some(1_000)));
        let task = run.task();
        let r = task.reserve(600).unwrap();
        r.settle(&usage(500, 100));
        task.reserve(400).unwrap().settle(&usage(300, 100));
        assert_eq!(run.used().total(), 1_000);
        assert_eq!(run.remaining(), Some(0));
        let err = task.reserve(1).unwrap_err();
        assert_eq!(
            err,
            BudgetExceeded {
                scope: Scope::Run,
                limit: 1_000,
                used: 1_000,
                reserved: 0,
                requested: 1
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("per run") && msg.contains("--max-tokens-per-run"),
            "{msg}"
        );
        // A zero-token call still fits at the limit.
        task.reserve(0).unwrap().settle(&Usage::default());
    }

    #[test]
    fn in_flight_reservations_count() {
        let run = RunBudget::new(limits(None, Some(1_000), None));
        let task = run.task();
        let held = task.reserve(700).unwrap();
        let err = task.reserve(301).unwrap_err();
        assert_eq!((err.scope, err.used, err.reserved), (Scope::Task, 0, 700));
        assert!(err.to_string().contains("700 reserved"), "{err}");
        let fits = task.reserve(300).unwrap();
        assert_eq!(task.remaining(), Some(0));
        drop(fits);
        drop(held);
        assert_eq!(task.reserved(), 0);
        assert_eq!(run.reserved(), 0);
    }

    #[test]
    fn per_call_refusal() {
        let run = RunBudget::new(limits(Some(4_096), None, None));
        let task = run.task();
        let err = task.reserve(4_097).unwrap_err();
        assert_eq!(
            (err.scope, err.limit, err.requested),
            (Scope::Call, 4_096, 4_097)
        );
        let msg = err.to_string();
        assert!(
            msg.contains("--max-tokens-per-call") && msg.contains("lower max_tokens or n"),
            "{msg}"
        );
        // Refusal holds nothing.
        assert_eq!(run.reserved(), 0);
        task.reserve(4_096).unwrap().settle(&usage(96, 4_000));
        // The call limit is per call, not cumulative.
        task.reserve(4_096).unwrap().settle(&usage(96, 4_000));
        assert_eq!(task.used().total(), 8_192);
    }

    #[test]
    fn drop_releases_and_charges_nothing() {
        let run = RunBudget::new(limits(None, Some(100), Some(100)));
        let task = run.task();
        {
            let _r = task.reserve(100).unwrap();
            assert!(task.reserve(1).is_err());
            assert_eq!(run.reserved(), 100);
        }
        assert_eq!(run.reserved(), 0);
        assert_eq!(task.reserved(), 0);
        assert_eq!(run.used(), Usage::default());
        task.reserve(100).unwrap().settle(&usage(10, 90));
    }

    #[test]
    fn overshoot_is_recorded_and_blocks_later_calls() {
        let run = RunBudget::new(limits(None, Some(1_000), Some(10_000)));
        let task = run.task();
        let r = task.reserve(500).unwrap();
        let actual = Usage {
            prompt_tokens: 900,
            completion_tokens: 300,
            cached_prompt_tokens: 512,
            reasoning_tokens: 200,
        };
        r.settle(&actual);
        assert_eq!(task.used(), actual);
        assert_eq!(run.used(), actual);
        assert_eq!(task.reserved(), 0);
        assert_eq!(task.remaining(), Some(0));
        let err = task.reserve(0).unwrap_err();
        assert_eq!((err.scope, err.used), (Scope::Task, 1_200));
        assert!(err.to_string().contains("leaving 0"), "{err}");
    }

    #[test]
    fn usage_categories_accumulate_separately() {
        let run = RunBudget::unlimited();
        let task = run.task();
        for _ in 0..3 {
            task.reserve(10_000).unwrap().settle(&Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cached_prompt_tokens: 64,
                reasoning_tokens: 5,
            });
        }
        let expected = Usage {
            prompt_tokens: 300,
            completion_tokens: 60,
            cached_prompt_tokens: 192,
            reasoning_tokens: 15,
        };
        assert_eq!(task.used(), expected);
        assert_eq!(run.used(), expected);
        assert_eq!(run.remaining(), None);
        assert_eq!(task.remaining(), None);
        assert_eq!(run.limits(), Limits::default());
        // Garbage counts saturate instead of overflowing.
        task.reserve(u64::MAX)
            .unwrap()
            .settle(&usage(u64::MAX, u64::MAX));
        assert_eq!(run.used().prompt_tokens, u64::MAX);
    }

    #[test]
    fn tasks_have_their_own_limit_but_share_the_run() {
        let run = RunBudget::new(limits(None, Some(600), Some(1_000)));
        let (a, b, c) = (run.task(), run.task(), run.task());
        a.reserve(600).unwrap().settle(&usage(500, 100));
        assert_eq!(a.reserve(1).unwrap_err().scope, Scope::Task);
        // Task b starts fresh, but only 400 are left in the run.
        assert_eq!(b.remaining(), Some(400));
        assert_eq!(b.reserve(401).unwrap_err().scope, Scope::Run);
        b.reserve(400).unwrap().settle(&usage(300, 100));
        assert_eq!(c.reserve(1).unwrap_err().scope, Scope::Run);
        assert_eq!(a.used().total(), 600);
        assert_eq!(b.used().total(), 400);
        assert_eq!(c.used().total(), 0);
        assert_eq!(run.used().total(), 1_000);
        // A cloned task handle is the same task.
        let a2 = a.clone();
        assert_eq!(a2.used().total(), 600);
    }

    /// Runs `threads` threads that all reserve `estimate` at once (a barrier lines them up),
    /// check the run is never over its limit, then settle with `actual`. Returns the successes.
    fn hammer(run: &RunBudget, threads: usize, estimate: u64, actual: u64) -> u64 {
        let limit = run.limits().per_run.unwrap();
        let successes = AtomicU64::new(0);
        let barrier = Barrier::new(threads);
        std::thread::scope(|s| {
            for i in 0..threads {
                let (run, successes, barrier) = (run, &successes, &barrier);
                s.spawn(move || {
                    // One task per thread: only the run limit binds, and every reserve contends
                    // for the run's lock.
                    let task = run.task();
                    barrier.wait();
                    if let Ok(r) = task.reserve(estimate) {
                        successes.fetch_add(1, Ordering::SeqCst);
                        let ledger = lock(&run.shared.ledger);
                        assert!(ledger.used.total() + ledger.reserved <= limit);
                        drop(ledger);
                        if i % 2 == 0 {
                            std::thread::yield_now();
                        }
                        r.settle(&usage(actual / 2, actual - actual / 2));
                    }
                    let ledger = lock(&run.shared.ledger);
                    assert!(ledger.used.total() + ledger.reserved <= limit);
                });
            }
        });
        successes.into_inner()
    }

    #[test]
    fn concurrent_reservations_never_pass_the_run_limit() {
        for _ in 0..20 {
            let run = RunBudget::new(limits(None, None, Some(2_000)));
            let ok = hammer(&run, 64, 100, 100);
            assert_eq!(ok, 20);
            assert_eq!(run.used().total(), 2_000);
            assert_eq!(run.reserved(), 0);
        }
    }

    #[test]
    fn concurrent_reservations_on_one_task() {
        let run = RunBudget::new(limits(None, Some(1_000), Some(2_000)));
        let task = run.task();
        let ok = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                let (task, ok) = (&task, &ok);
                s.spawn(move || {
                    if let Ok(r) = task.reserve(100) {
                        ok.fetch_add(1, Ordering::SeqCst);
                        r.settle(&usage(60, 40));
                    }
                });
            }
        });
        assert_eq!(ok.into_inner(), 10);
        assert_eq!(task.used().total(), 1_000);
        assert_eq!(run.used().total(), 1_000);
    }

    #[test]
    fn cheaper_calls_than_estimated_let_more_through() {
        // Concurrently: every success costs 50, so between 20 (all in flight at once) and 39
        // (fully one after another) get through, and usage never passes the limit.
        let run = RunBudget::new(limits(None, None, Some(2_000)));
        let ok = hammer(&run, 64, 100, 50);
        assert!((20..=39).contains(&ok), "{ok}");
        assert_eq!(run.used().total(), 50 * ok);
        assert!(run.used().total() <= 2_000);

        // Deterministically: 20 held at once fill the run; settled at 50 each they free 1,000.
        let run = RunBudget::new(limits(None, None, Some(2_000)));
        let task = run.task();
        let held: Vec<Reservation> = (0..20).map(|_| task.reserve(100).unwrap()).collect();
        assert!(task.reserve(100).is_err());
        for r in held {
            r.settle(&usage(30, 20));
        }
        assert_eq!(run.used().total(), 1_000);
        for _ in 0..10 {
            task.reserve(100).unwrap().settle(&usage(50, 50));
        }
        assert!(task.reserve(1).is_err());
        assert_eq!(run.used().total(), 2_000);
    }
}
