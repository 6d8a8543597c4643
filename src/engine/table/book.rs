//! Order-book topics in the table: the router applies level changes to a
//! slot's book under its lock and takes, in the same step, the top levels
//! before and after (so each depth class's change can be encoded once); a
//! shard that joins copies the top levels as the snapshot.

use super::{Applied, TopicSlot, TopicTable};
use crate::model::book::{
    checksum, window_diff, Book, BookError, Ladder, Levels, Side, CHECKSUM_LEVELS, DEPTHS,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// One level: (price, size).
type Pair = (f64, f64);

/// A book's top levels, copied for a snapshot: as deep as the deepest class.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BookView {
    pub bids: Ladder,
    pub asks: Ladder,
}

impl BookView {
    /// A snapshot's copy: as deep as the deepest class.
    pub(crate) fn of(book: &Book) -> Box<BookView> {
        Box::new(BookView::top(book, DEPTHS[DEPTHS.len() - 1]))
    }

    /// The best `depth` levels of each side of `book`.
    fn top(book: &Book, depth: usize) -> BookView {
        BookView {
            bids: book.top(Side::Bid, depth),
            asks: book.top(Side::Ask, depth),
        }
    }

    /// The levels a subscriber of `depth` holds.
    pub(crate) fn cut(&self, depth: usize) -> (&[Pair], &[Pair]) {
        fn cut(l: &Ladder, depth: usize) -> &[Pair] {
            &l[..l.len().min(depth)]
        }
        (cut(&self.bids, depth), cut(&self.asks, depth))
    }

    /// The checksum of the top levels.
    pub(crate) fn checksum(&self) -> u32 {
        checksum(&self.bids, &self.asks)
    }

    /// What a subscriber of `depth` whose window was `before` must apply to
    /// hold `self`'s window (bids, asks; see `window_diff`).
    pub(crate) fn change_since(&self, before: &BookView, depth: usize) -> (Ladder, Ladder) {
        let (bids_before, asks_before) = before.cut(depth);
        let (bids_after, asks_after) = self.cut(depth);
        (
            window_diff(Side::Bid, bids_before, bids_after),
            window_diff(Side::Ask, asks_before, asks_after),
        )
    }
}

/// What one applied change did to a book: the top levels before and after,
/// as deep as the deepest class in use, and the new checksum.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BookMove {
    pub before: Arc<BookView>,
    pub after: Arc<BookView>,
    pub checksum: u32,
}

impl TopicSlot {
    /// Router only: applies a checked change to the topic's book, assigns
    /// the next sequence number, and returns what moved in the top `deepest`
    /// levels. A change that would cross the book (or a change to a topic
    /// that holds no book) is refused and nothing is numbered.
    ///
    /// `deepest` is asked under the slot's lock: a shard sets a subscriber's
    /// depth class (`TopicTable::want_book_class`) before its join takes
    /// this lock, so a change numbered after that join is always measured
    /// (and encoded) for the class. Read before the lock, a join landing in
    /// between got a snapshot at `seq` n and no frame of its class for
    /// n + 1: a gap (seen once in CI, `tests/books.rs`).
    ///
    /// Cost: O(change × log levels + deepest), once per update (never per
    /// subscriber).
    pub(crate) fn apply_levels(
        &self,
        ts: u64,
        change: &Levels,
        deepest: impl FnOnce() -> usize,
        at: Instant,
    ) -> Result<(Applied, BookMove), BookError> {
        let mut guard = self.state.lock();
        let deepest = deepest();
        let st = &mut *guard;
        let book = st.book.as_deref_mut().ok_or(BookError::NotABook)?;
        let before = match &st.book_view {
            Some((depth, view)) if *depth == deepest => view.clone(),
            _ => Arc::new(BookView::top(book, deepest)),
        };
        if let Err(why) = book.apply(change) {
            // Whatever a refused change left, the next one looks afresh.
            st.book_view = None;
            return Err(why);
        }
        let after = Arc::new(BookView::top(book, deepest));
        st.book_view = Some((deepest, after.clone()));
        // The window already holds the top levels when it is deep enough.
        let checksum = match deepest >= CHECKSUM_LEVELS {
            true => after.checksum(),
            false => book.checksum(),
        };
        st.value.seq += 1;
        st.value.ts = ts;
        st.changed_at = at;
        let went_live = std::mem::replace(&mut st.value.stale, false);
        let applied = Applied {
            seq: st.value.seq,
            interest: st.interest,
            generation: st.generation,
            went_live,
            epoch: st.value.epoch,
            history_dropped: 0,
        };
        let mv = BookMove {
            before,
            after,
            checksum,
        };
        Ok((applied, mv))
    }
}

impl TopicSlot {
    /// Router only (cluster mode): replaces the topic's book with the one
    /// the cluster's store holds, as it was loaded with its value; returns
    /// its top levels for the snapshot subscribers get. The store checked
    /// every change as `apply_levels` does, so the book is never refused;
    /// if it were, the book is left empty rather than half-made.
    pub(crate) fn load_book(&self, book: &Levels) -> Arc<BookView> {
        let mut st = self.state.lock();
        st.book_view = None;
        let Some(b) = st.book.as_deref_mut() else {
            return Arc::default();
        };
        *b = Book::default();
        if b.apply(book).is_err() {
            *b = Book::default();
        }
        Arc::from(BookView::of(b))
    }
}

impl TopicTable {
    /// Shard only, before it joins a book topic for a subscriber of depth
    /// class `class`: from now on the router encodes that class. (Set before
    /// the join's slot lock, and read by the router under that lock
    /// (`TopicSlot::apply_levels`), so every update numbered after the join
    /// has it.)
    pub(crate) fn want_book_class(&self, class: usize) {
        self.book_classes.fetch_or(1 << class, Relaxed);
    }

    /// Router: the depth classes in use (bit `c`: class `c`).
    pub(crate) fn book_classes(&self) -> u8 {
        self.book_classes.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::book::Level;
    use crate::model::format::Format;

    #[test]
    fn a_change_is_numbered_and_a_join_copies_the_book() {
        let table = TopicTable::default();
        let slot = table.get_or_create("X.book");
        assert!(slot.book && !table.get_or_create("X").book);
        let change = Levels {
            levels: vec![
                Level {
                    side: Side::Bid,
                    price: 10.0,
                    size: 1.0,
                },
                Level {
                    side: Side::Ask,
                    price: 11.0,
                    size: 2.0,
                },
            ],
            replace: false,
        };
        // The depth is asked for under the slot's lock, where a join sets
        // its class before it can take the lock.
        let deepest = || {
            assert!(slot.state.try_lock().is_none(), "asked under the lock");
            10
        };
        let (a, mv) = slot
            .apply_levels(5, &change, deepest, Instant::now())
            .unwrap();
        assert_eq!(a.seq, 1);
        assert!(mv.before.bids.is_empty());
        assert_eq!(mv.after.bids, vec![(10.0, 1.0)]);
        let j = slot.join(0, Format::Json, None);
        let view = j.book.unwrap();
        assert_eq!(view.asks, vec![(11.0, 2.0)]);
        assert_eq!(view.checksum(), mv.checksum);
        let plain = table.get_or_create("Y");
        assert_eq!(
            plain.apply_levels(5, &change, || 10, Instant::now()),
            Err(BookError::NotABook)
        );
    }
}
