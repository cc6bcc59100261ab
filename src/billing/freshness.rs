//! Which of two views of a subscription wins. Stripe delivers events at least once
//! and in any order, so a write must never replace newer state with older.
//!
//! Times are always Stripe's: an event's `created`, or for a state read from the
//! API a Stripe time it is known to be at least as new as. Our own clock is never
//! compared with Stripe's, because Stripe's may run far ahead of it (test clocks,
//! the emulator's time control) or behind it (a test clock frozen in the past).

/// Events whose `created` lies this close to the stored state's time are too
/// close to order by clocks alone (Stripe emits several per second): such a
/// conflict is settled by reading the subscription from Stripe.
pub const TIE_WINDOW_SECS: i64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A webhook event's object, as of the event's `created`.
    Event,
    /// Read from the API: the truth at some Stripe time no earlier than the one
    /// given with it (which is all we can know of Stripe's clock when reading).
    Fetched,
}

/// How the stored stamp relates to the stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// The state is an event's, at exactly this Stripe time.
    Exact,
    /// The state was read from Stripe at this Stripe time or later: an event
    /// created after the stamp may still be older than the state.
    ReadAfter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write the incoming state with this stamp.
    Apply { stamp: i64, kind: Stamp },
    /// Cannot be ordered from what we know: read the subscription from Stripe and
    /// write that.
    Refetch,
    /// Older than what is stored (or identical): nothing to do.
    Ignore,
}

/// What is stored for the subscription, if anything.
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    pub stamp: i64,
    pub kind: Stamp,
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
    let kind = match source {
        Source::Event => Stamp::Exact,
        Source::Fetched => Stamp::ReadAfter,
    };
    let Some(stored) = stored else {
        return Decision::Apply {
            stamp: incoming_at,
            kind,
        };
    };
    // Canceled and expired subscriptions never come back; a late "active" update
    // must not revive one.
    if stored.terminal && !incoming_terminal {
        return Decision::Ignore;
    }
    if incoming_terminal && !stored.terminal {
        return Decision::Apply {
            stamp: incoming_at.max(stored.stamp),
            kind,
        };
    }
    if stored.same_state {
        // Nothing changes but the stamp: a newer event confirming the stored
        // state moves it forward, so older events that arrive later stay stale.
        // One of the read state's own second makes its stamp exact.
        let confirms = match stored.kind {
            Stamp::Exact => incoming_at > stored.stamp,
            Stamp::ReadAfter => incoming_at >= stored.stamp,
        };
        return if source == Source::Event && confirms {
            Decision::Apply {
                stamp: incoming_at,
                kind: Stamp::Exact,
            }
        } else {
            Decision::Ignore
        };
    }
    match (source, stored.kind) {
        (Source::Fetched, _) => Decision::Apply {
            stamp: incoming_at.max(stored.stamp),
            kind,
        },
        (Source::Event, Stamp::Exact) if incoming_at > stored.stamp => Decision::Apply {
            stamp: incoming_at,
            kind,
        },
        // A read state is newer than its stamp by an unknown amount of Stripe's
        // time, so a differing event after it cannot be ordered by clocks.
        (Source::Event, Stamp::ReadAfter) if incoming_at > stored.stamp => Decision::Refetch,
        (Source::Event, _) if incoming_at >= stored.stamp - TIE_WINDOW_SECS => Decision::Refetch,
        (Source::Event, _) => Decision::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(stamp: i64, status: &str) -> Stored {
        Stored {
            stamp,
            kind: Stamp::Exact,
            terminal: status == "canceled",
            same_state: false,
        }
    }

    fn read_at(stamp: i64) -> Stored {
        Stored {
            kind: Stamp::ReadAfter,
            ..stored(stamp, "active")
        }
    }

    fn exact(stamp: i64) -> Decision {
        Decision::Apply {
            stamp,
            kind: Stamp::Exact,
        }
    }

    fn read(stamp: i64) -> Decision {
        Decision::Apply {
            stamp,
            kind: Stamp::ReadAfter,
        }
    }

    #[test]
    fn first_sight_applies() {
        assert_eq!(decide(None, 100, false, Source::Event), exact(100));
        assert_eq!(decide(None, 100, false, Source::Fetched), read(100));
    }

    #[test]
    fn newer_applies_older_is_ignored_ties_are_reread() {
        let s = Some(stored(100, "active"));
        assert_eq!(decide(s, 101, false, Source::Event), exact(101));
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
        assert_eq!(decide(Some(s), 150, false, Source::Event), exact(150));
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
            exact(300)
        );
    }

    #[test]
    fn fetched_state_is_the_truth() {
        assert_eq!(
            decide(Some(stored(300, "active")), 200, false, Source::Fetched),
            read(300)
        );
    }

    /// Stripe's clock ran ahead of ours (a test clock, the emulator's time
    /// control): the `customer.subscription.created` of a checkout whose result
    /// the success page already read carries a later time than anything we
    /// know, yet its `incomplete` is older than the `active` we read.
    #[test]
    fn an_event_after_a_read_state_is_checked_with_stripe() {
        let s = Some(read_at(100));
        assert_eq!(
            decide(s, 100 + 86_400 * 62, false, Source::Event),
            Decision::Refetch
        );
        // Older than the read (which is no older than its stamp): stale.
        assert_eq!(
            decide(s, 100 - TIE_WINDOW_SECS - 1, false, Source::Event),
            Decision::Ignore
        );
        // An event confirming the read state makes the stamp exact, after which
        // newer events apply without asking Stripe.
        let confirmed = decide(
            Some(Stored {
                same_state: true,
                ..read_at(100)
            }),
            150,
            false,
            Source::Event,
        );
        assert_eq!(confirmed, exact(150));
        let same_second = Stored {
            same_state: true,
            ..read_at(100)
        };
        assert_eq!(
            decide(Some(same_second), 100, false, Source::Event),
            exact(100)
        );
        assert_eq!(
            decide(Some(stored(150, "active")), 151, false, Source::Event),
            exact(151)
        );
        // A terminal event needs no read: canceled is final.
        assert_eq!(decide(s, 200, true, Source::Event), exact(200));
    }
}
