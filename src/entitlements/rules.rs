//! The ledger's arithmetic as pure functions: what one request takes from the
//! period's allowance and from credits, what is left, which grants pay, and
//! which period a moment falls in. The database code (`ledger`) only reads
//! the inputs and writes the answer.

use chrono::{DateTime, Datelike, TimeZone, Utc};

/// Where an account stands on one feature, as read under the account's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The plan's allowance for the period (the count for a counted feature);
    /// `None`: unlimited.
    pub allowance: Option<i64>,
    /// Of it, used or held already.
    pub used: i64,
    /// Credits spendable now: granted, unexpired, not taken back, not held.
    pub credits: i64,
    /// Credits one unit costs beyond the allowance; `None`: credits do not apply.
    pub credits_per_unit: Option<i64>,
}

/// What one use of `amount` units takes: units of allowance, and credits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub allowance: i64,
    pub credits: i64,
}

impl Standing {
    /// Units of allowance not used yet (`None`: unlimited).
    pub fn allowance_left(&self) -> Option<i64> {
        self.allowance.map(|a| (a - self.used).max(0))
    }

    /// Units still available: the allowance left and what credits buy.
    pub fn remaining(&self) -> Option<i64> {
        let left = self.allowance_left()?;
        let bought = match self.credits_per_unit {
            Some(rate) if rate > 0 => self.credits.max(0) / rate,
            _ => 0,
        };
        Some(left.saturating_add(bought))
    }

    /// How `amount` units are paid for: the period's allowance first, then
    /// credits; `None` when they do not cover it (nothing may be taken).
    pub fn split(&self, amount: i64) -> Option<Split> {
        if amount < 1 {
            return None;
        }
        let Some(left) = self.allowance_left() else {
            return Some(Split {
                allowance: amount,
                credits: 0,
            });
        };
        let allowance = left.min(amount);
        let rest = amount - allowance;
        if rest == 0 {
            return Some(Split {
                allowance,
                credits: 0,
            });
        }
        let rate = self.credits_per_unit.filter(|rate| *rate > 0)?;
        let credits = rest.checked_mul(rate)?;
        (credits <= self.credits).then_some(Split { allowance, credits })
    }

    /// The standing once `split` is taken.
    pub fn after(&self, split: Split) -> Standing {
        Standing {
            used: self.used + split.allowance,
            credits: self.credits - split.credits,
            ..*self
        }
    }
}

/// A grant with credits left, as `draw` needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantLeft {
    pub id: i64,
    pub remaining: i64,
    /// Unix seconds; `None`: never expires.
    pub expires_at: Option<i64>,
}

/// Which grants pay `cost` credits, and how much each: the soonest to expire
/// first, grants that never expire last, older before newer; `None` when
/// together they hold less.
pub fn draw(grants: &[GrantLeft], cost: i64) -> Option<Vec<(i64, i64)>> {
    let mut order: Vec<&GrantLeft> = grants.iter().filter(|g| g.remaining > 0).collect();
    order.sort_by_key(|g| (g.expires_at.is_none(), g.expires_at, g.id));
    let mut left = cost;
    let mut taken = Vec::new();
    for grant in order {
        if left == 0 {
            break;
        }
        let take = grant.remaining.min(left);
        taken.push((grant.id, take));
        left -= take;
    }
    (left == 0).then_some(taken)
}

/// A billing period, `[start, end)` in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

/// The period metered use counts in at `now`: the subscription's current
/// period when there is one (rolled forward by its own length while a renewal
/// Stripe has made is not applied yet), else the calendar month in UTC.
pub fn period(subscription: Option<(i64, i64)>, now: i64) -> Period {
    match subscription {
        Some((start, end)) if end > start => {
            if now < end {
                return Period { start, end };
            }
            let length = end - start;
            let skipped = (now - end) / length;
            let start = end + skipped * length;
            Period {
                start,
                end: start + length,
            }
        }
        _ => calendar_month(now),
    }
}

fn calendar_month(now: i64) -> Period {
    let at = DateTime::<Utc>::from_timestamp(now, 0).unwrap_or_default();
    let first = |year: i32, month: u32| {
        Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .map_or(0, |t| t.timestamp())
    };
    let (next_year, next_month) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    Period {
        start: first(at.year(), at.month()),
        end: first(next_year, next_month),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(allowance: Option<i64>, used: i64, credits: i64, rate: Option<i64>) -> Standing {
        Standing {
            allowance,
            used,
            credits,
            credits_per_unit: rate,
        }
    }

    #[test]
    fn allowance_first_then_credits() {
        // (allowance, used, credits, rate, amount) -> split
        type Row = (Option<i64>, i64, i64, Option<i64>, i64, Option<(i64, i64)>);
        let table: &[Row] = &[
            (Some(10), 0, 0, None, 10, Some((10, 0))),
            (Some(10), 0, 0, None, 11, None),
            (Some(10), 9, 5, Some(1), 3, Some((1, 2))),
            (Some(10), 10, 5, Some(2), 2, Some((0, 4))),
            (Some(10), 10, 5, Some(2), 3, None),
            (Some(10), 12, 5, Some(1), 5, Some((0, 5))), // over-used (plan went down)
            (Some(0), 0, 5, None, 1, None),              // credits do not apply
            (None, 1_000_000, 0, None, 7, Some((7, 0))), // unlimited
            (Some(10), 0, 0, None, 0, None),             // nothing to take
            (Some(0), 0, i64::MAX, Some(i64::MAX), 2, None), // no overflow
        ];
        for &(allowance, used, credits, rate, amount, expected) in table {
            let got = standing(allowance, used, credits, rate)
                .split(amount)
                .map(|s| (s.allowance, s.credits));
            assert_eq!(
                got, expected,
                "{allowance:?} {used} {credits} {rate:?} {amount}"
            );
        }
    }

    #[test]
    fn remaining_counts_what_credits_buy() {
        assert_eq!(standing(Some(10), 4, 0, None).remaining(), Some(6));
        assert_eq!(standing(Some(10), 4, 7, Some(2)).remaining(), Some(9));
        assert_eq!(standing(Some(10), 14, 0, None).remaining(), Some(0));
        assert_eq!(standing(None, 4, 0, None).remaining(), None);
    }

    #[test]
    fn draws_the_soonest_to_expire_first() {
        let grants = [
            GrantLeft {
                id: 1,
                remaining: 5,
                expires_at: None,
            },
            GrantLeft {
                id: 2,
                remaining: 3,
                expires_at: Some(200),
            },
            GrantLeft {
                id: 3,
                remaining: 4,
                expires_at: Some(100),
            },
            GrantLeft {
                id: 4,
                remaining: 0,
                expires_at: Some(50),
            },
        ];
        assert_eq!(draw(&grants, 2), Some(vec![(3, 2)]));
        assert_eq!(draw(&grants, 8), Some(vec![(3, 4), (2, 3), (1, 1)]));
        assert_eq!(draw(&grants, 12), Some(vec![(3, 4), (2, 3), (1, 5)]));
        assert_eq!(draw(&grants, 13), None);
        assert_eq!(draw(&grants, 0), Some(vec![]));
    }

    use proptest::prelude::*;

    proptest! {
        /// `split` allows exactly what `remaining` says is left, and takes
        /// the allowance first.
        #[test]
        fn split_agrees_with_remaining(
            allowance in proptest::option::of(0i64..5_000),
            used in 0i64..6_000,
            credits in 0i64..5_000,
            rate in proptest::option::of(1i64..5),
            amount in 1i64..8_000,
        ) {
            let s = standing(allowance, used, credits, rate);
            match (s.split(amount), s.remaining()) {
                (Some(split), Some(left)) => {
                    prop_assert!(amount <= left);
                    prop_assert_eq!(split.allowance, s.allowance_left().unwrap().min(amount));
                    prop_assert_eq!(split.credits, (amount - split.allowance) * rate.unwrap_or(0));
                    prop_assert!(split.credits <= credits);
                    prop_assert_eq!(s.after(split).remaining(), Some(left - amount));
                }
                (None, Some(left)) => prop_assert!(amount > left),
                (Some(split), None) => prop_assert_eq!(split, Split { allowance: amount, credits: 0 }),
                (None, None) => prop_assert!(false, "unlimited refused {}", amount),
            }
        }

        /// `draw` pays exactly the cost from what the grants hold, never more
        /// than one holds, or refuses when together they hold less.
        #[test]
        fn draw_pays_exactly(
            grants in proptest::collection::vec((0i64..500, proptest::option::of(0i64..10)), 0..8),
            cost in 0i64..3_000,
        ) {
            let grants: Vec<GrantLeft> = grants
                .into_iter()
                .enumerate()
                .map(|(i, (remaining, expires_at))| GrantLeft { id: i as i64, remaining, expires_at })
                .collect();
            let held: i64 = grants.iter().map(|g| g.remaining).sum();
            match draw(&grants, cost) {
                Some(taken) => {
                    prop_assert!(cost <= held);
                    prop_assert_eq!(taken.iter().map(|(_, t)| t).sum::<i64>(), cost);
                    for (id, take) in &taken {
                        prop_assert!(*take > 0 && *take <= grants[*id as usize].remaining);
                    }
                }
                None => prop_assert!(cost > held),
            }
        }

        /// A ledger of tracks and grants against a one-number model (a budget
        /// of allowance plus credits, at one credit a unit): every decision
        /// agrees, and neither the allowance nor any grant goes below zero.
        #[test]
        fn a_ledger_of_tracks_matches_a_budget(
            allowance in 0i64..200,
            ops in proptest::collection::vec((any::<bool>(), 1i64..60, proptest::option::of(0i64..5)), 1..60),
        ) {
            let mut used = 0i64;
            let mut grants: Vec<GrantLeft> = Vec::new();
            let mut budget = allowance;
            for (is_grant, amount, expires) in ops {
                if is_grant {
                    grants.push(GrantLeft { id: grants.len() as i64, remaining: amount, expires_at: expires });
                    budget += amount;
                    continue;
                }
                let credits: i64 = grants.iter().map(|g| g.remaining).sum();
                let s = standing(Some(allowance), used, credits, Some(1));
                let decided = s.split(amount);
                prop_assert_eq!(decided.is_some(), amount <= budget, "amount {} budget {}", amount, budget);
                if let Some(split) = decided {
                    used += split.allowance;
                    for (id, take) in draw(&grants, split.credits).expect("covered") {
                        grants[id as usize].remaining -= take;
                    }
                    budget -= amount;
                }
                prop_assert!(used <= allowance);
                prop_assert!(grants.iter().all(|g| g.remaining >= 0));
                prop_assert_eq!(
                    (allowance - used) + grants.iter().map(|g| g.remaining).sum::<i64>(),
                    budget
                );
            }
        }
    }

    #[test]
    fn periods() {
        let day = 86_400;
        let start = 1_800_000_000;
        let end = start + 30 * day;
        // Inside, before the start (the emulator's clock runs ahead), rolled on.
        assert_eq!(
            period(Some((start, end)), start + day),
            Period { start, end }
        );
        assert_eq!(
            period(Some((start, end)), start - day),
            Period { start, end }
        );
        assert_eq!(
            period(Some((start, end)), end),
            Period {
                start: end,
                end: end + 30 * day
            }
        );
        assert_eq!(
            period(Some((start, end)), end + 65 * day),
            Period {
                start: end + 60 * day,
                end: end + 90 * day
            }
        );
        // No subscription: the calendar month in UTC, December into January.
        let dec = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp();
        let p = period(None, dec);
        assert_eq!(
            p.start,
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            p.end,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(period(Some((end, start)), dec), p); // nonsense period: calendar
    }
}
