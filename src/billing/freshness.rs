//! Which of two views of a subscription wins. Stripe delivers events at least once
//! and in any order, so a write must never replace newer state with older.

/// Events whose `created` lies this close to the stored state's time are too
/// close to order by clocks alone (Stripe emits several per second, and a state
/// read from the API carries our clock, not Stripe's): such a conflict is settled
/// by reading the subscription from Stripe.
pub const TIE_WINDOW_SECS: i64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A webhook event's object, as of the event's `created`.
    Event,
    /// Read from the API just now: the truth at that moment.
    Fetched,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write the incoming state, stamped with this time.
    Apply { stamp: i64 },
    /// Too close to call: read the subscription from Stripe and write that.
    Refetch,
    /// Older than what is stored (or identical): nothing to do.
    Ignore,
}

/// What is stored for the subscription, if anything.
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    pub stamp: i64,
    pub terminal: bool,
    /// The incoming state equals the stored one in every field we keep.
    pub same_state: bool,
}

pub fn decide(
    stored: Option<Stored>,
    incoming_at: i64,
    incoming_terminal: bool,
    source: Source,
) -> Decision {
    let Some(stored) = stored else {
        return Decision::Apply { stamp: incoming_at };
    };
    // Canceled and expired subscriptions never come back; a late "active" update
    // must not revive one.
    if stored.terminal && !incoming_terminal {
        return Decision::Ignore;
    }
    if incoming_terminal && !stored.terminal {
        return Decision::Apply {
            stamp: incoming_at.max(stored.stamp),
        };
    }
    if stored.same_state {
        // Nothing changes but the stamp: a newer event confirming the stored
        // state moves it forward, so older events that arrive later stay stale.
        return if incoming_at > stored.stamp {
            Decision::Apply { stamp: incoming_at }
        } else {
            Decision::Ignore
        };
    }
    match source {
        Source::Fetched => Decision::Apply {
            stamp: incoming_at.max(stored.stamp),
        },
        Source::Event if incoming_at > stored.stamp => Decision::Apply { stamp: incoming_at },
        Source::Event if incoming_at >= stored.stamp - TIE_WINDOW_SECS => Decision::Refetch,
        Source::Event => Decision::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(stamp: i64, status: &str) -> Stored {
        Stored {
            stamp,
            terminal: status == "canceled",
            same_state: false,
        }
    }

    #[test]
    fn first_sight_applies() {
        assert_eq!(
            decide(None, 100, false, Source::Event),
            Decision::Apply { stamp: 100 }
        );
    }

    #[test]
    fn newer_applies_older_is_ignored_ties_are_reread() {
        let s = Some(stored(100, "active"));
        assert_eq!(
            decide(s, 101, false, Source::Event),
            Decision::Apply { stamp: 101 }
        );
        assert_eq!(decide(s, 100, false, Source::Event), Decision::Refetch);
        assert_eq!(
            decide(s, 100 - TIE_WINDOW_SECS, false, Source::Event),
            Decision::Refetch
        );
        assert_eq!(
            decide(s, 100 - TIE_WINDOW_SECS - 1, false, Source::Event),
            Decision::Ignore
        );
    }

    #[test]
    fn identical_state_is_a_no_op() {
        let s = Stored {
            same_state: true,
            ..stored(100, "active")
        };
        assert_eq!(decide(Some(s), 100, false, Source::Event), Decision::Ignore);
        assert_eq!(
            decide(Some(s), 99, false, Source::Fetched),
            Decision::Ignore
        );
        // A newer event with the same content still moves the stamp forward.
        assert_eq!(
            decide(Some(s), 150, false, Source::Event),
            Decision::Apply { stamp: 150 }
        );
    }

    #[test]
    fn canceled_is_final() {
        assert_eq!(
            decide(Some(stored(100, "canceled")), 200, false, Source::Event),
            Decision::Ignore
        );
        assert_eq!(
            decide(Some(stored(100, "canceled")), 200, false, Source::Fetched),
            Decision::Ignore
        );
        assert_eq!(
            decide(Some(stored(300, "active")), 200, true, Source::Event),
            Decision::Apply { stamp: 300 }
        );
    }

    #[test]
    fn fetched_state_is_the_truth() {
        assert_eq!(
            decide(Some(stored(300, "active")), 200, false, Source::Fetched),
            Decision::Apply { stamp: 300 }
        );
    }
}
