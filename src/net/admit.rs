//! Whether one sequenced event reaches one member of its topic, decided from
//! the member's numbering alone (sans-IO: plain values in, a decision out).
//! The shard's delivery acts on the decision; the rules live here so they
//! are tested without a socket.
//!
//! A member carries the topic's clear count it is numbered in (its
//! generation) and the last `seq` its snapshot covered. Updates of another
//! generation, or already in the snapshot, are not for it; a clear or a
//! load from the cluster's store moves it to the new generation.

use super::index::later;
use crate::engine::link::Event;

/// What one member does with one event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Not for it: already in its snapshot, or of a numbering it is not in.
    Skip,
    /// An update to offer to its backlog (queued, merged or paced there).
    Offer,
    /// A status change: after the topic's held-back update, in order.
    InOrder,
    /// A clear or a load that starts the member's new numbering: the member
    /// moves to `generation`, skips through `skip_through`, forgets what it
    /// held of the topic, and receives the frame.
    Restart { generation: u16, skip_through: u64 },
}

/// The decision for a member at (`generation`, `skip_through`) and an event
/// `event` numbered `seq` in `event_generation`.
pub(crate) fn admit(
    generation: u16,
    skip_through: u64,
    event: &Event,
    seq: u64,
    event_generation: u16,
) -> Admit {
    match event {
        Event::Update { .. } => {
            if seq <= skip_through || generation != event_generation {
                Admit::Skip
            } else {
                Admit::Offer
            }
        }
        Event::Status { .. } if generation != event_generation => Admit::Skip,
        Event::Status { .. } => Admit::InOrder,
        Event::Cleared | Event::Resync { .. } => {
            // A member that joined after this clear (or load) is in the new
            // generation already. A member already in the load's generation
            // that holds nothing of it (a wildcard's member made as this very
            // event reached the shard) takes its snapshot too.
            let resync = matches!(event, Event::Resync { .. });
            let unseen = resync && generation == event_generation && skip_through < seq;
            if !later(event_generation, generation) && !unseen {
                return Admit::Skip;
            }
            Admit::Restart {
                generation: event_generation,
                // After a clear, from nothing; after a load, from the
                // snapshot the frame is.
                skip_through: if resync { seq } else { 0 },
            }
        }
    }
}

/// The rate cap of a connection: the server's `max_rate` and its token's,
/// whichever is lower; `None` when neither caps it.
pub(crate) fn rate_cap(server: Option<f64>, token: Option<f64>) -> Option<f64> {
    match (server, token) {
        (Some(s), Some(t)) => Some(s.min(t)),
        (s, t) => s.or(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::epoch::Epoch;
    use crate::model::update::Prices;

    fn update() -> Event {
        Event::Update {
            ts: 1,
            prices: Prices::default(),
            epoch: None,
        }
    }

    fn resync() -> Event {
        Event::Resync {
            ts: 1,
            prices: Prices::default(),
            epoch: Epoch::default(),
        }
    }

    #[test]
    fn an_update_already_in_the_snapshot_is_skipped() {
        assert_eq!(admit(0, 10, &update(), 10, 0), Admit::Skip);
        assert_eq!(admit(0, 10, &update(), 9, 0), Admit::Skip);
        assert_eq!(admit(0, 10, &update(), 11, 0), Admit::Offer);
    }

    #[test]
    fn an_update_of_another_numbering_is_skipped() {
        assert_eq!(admit(1, 0, &update(), 5, 2), Admit::Skip);
        assert_eq!(admit(2, 0, &update(), 5, 1), Admit::Skip);
        assert_eq!(admit(2, 0, &update(), 5, 2), Admit::Offer);
    }

    #[test]
    fn a_status_goes_in_order_only_to_its_numbering() {
        let stale = Event::Status { stale: true };
        assert_eq!(admit(3, 100, &stale, 1, 3), Admit::InOrder);
        assert_eq!(admit(2, 0, &stale, 1, 3), Admit::Skip);
    }

    #[test]
    fn a_clear_restarts_a_member_of_the_earlier_numbering_from_nothing() {
        assert_eq!(
            admit(4, 77, &Event::Cleared, 77, 5),
            Admit::Restart {
                generation: 5,
                skip_through: 0
            }
        );
    }

    #[test]
    fn a_clear_is_skipped_by_a_member_that_joined_after_it() {
        assert_eq!(admit(5, 0, &Event::Cleared, 77, 5), Admit::Skip);
        assert_eq!(admit(6, 0, &Event::Cleared, 77, 5), Admit::Skip);
    }

    #[test]
    fn generations_compare_across_the_wrap() {
        assert_eq!(
            admit(u16::MAX, 0, &Event::Cleared, 1, 0),
            Admit::Restart {
                generation: 0,
                skip_through: 0
            }
        );
    }

    #[test]
    fn a_load_skips_through_its_own_seq() {
        assert_eq!(
            admit(1, 3, &resync(), 40, 2),
            Admit::Restart {
                generation: 2,
                skip_through: 40
            }
        );
    }

    #[test]
    fn a_load_reaches_a_member_of_its_generation_that_holds_nothing_of_it() {
        assert_eq!(
            admit(2, 0, &resync(), 40, 2),
            Admit::Restart {
                generation: 2,
                skip_through: 40
            }
        );
        assert_eq!(admit(2, 40, &resync(), 40, 2), Admit::Skip);
    }

    #[test]
    fn the_lower_rate_cap_wins() {
        assert_eq!(rate_cap(None, None), None);
        assert_eq!(rate_cap(Some(20.0), None), Some(20.0));
        assert_eq!(rate_cap(None, Some(5.0)), Some(5.0));
        assert_eq!(rate_cap(Some(20.0), Some(5.0)), Some(5.0));
        assert_eq!(rate_cap(Some(2.0), Some(5.0)), Some(2.0));
    }
}
