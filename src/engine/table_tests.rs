//! Tests of the topic table.

use super::*;

#[test]
fn new_topics_inherit_parked_and_prefix_interest() {
    let t = TopicTable::default();
    assert!(t.join_exact(&"A".into(), 3, Format::Json, None).is_none());
    t.register_prefix(&"FX.".into(), 1, Format::MsgPack);
    let a = t.get_or_create("A");
    let applied = a.apply(1, &Prices::default(), 0, Instant::now());
    assert_eq!((applied.seq, applied.interest), (1, [1 << 3, 0]));
    let fx = t.get_or_create("FX.EURUSD");
    let applied = fx.apply(1, &Prices::default(), 0, Instant::now());
    assert_eq!((applied.seq, applied.interest), (1, [0, 1 << 1]));
    t.leave_prefix("FX.", 1, Format::MsgPack);
    let fx2 = t.get_or_create("FX.USDJPY");
    assert_eq!(
        fx2.apply(1, &Prices::default(), 0, Instant::now()).interest,
        [0, 0]
    );
    assert_eq!(t.list("FX.", 10).len(), 2);
    assert_eq!(t.list("", 1).len(), 1);
}

#[test]
fn a_slot_before_its_first_update_has_no_value() {
    let t = TopicTable::default();
    let slot = t.get_or_create("EARLY");
    // The window between the router making the slot and merging into it.
    assert_eq!(t.snapshot("EARLY"), None);
    assert!(t.list("", 10).is_empty());
    let (_, joined) = t
        .join_exact(&"EARLY".into(), 0, Format::Json, None)
        .unwrap();
    assert_eq!(joined.snapshot.seq, 0, "joined before the first value");
    slot.apply(7, &Prices::default(), 0, Instant::now());
    assert_eq!(t.snapshot("EARLY").map(|s| (s.seq, s.ts)), Some((1, 7)));
    assert_eq!(t.list("", 10).len(), 1);
}
