//! Unit tests of the backlog rules.

use super::*;
use crate::model::update::Prices;

/// An update of `topic` carrying one field, with a recognizable frame.
fn enc(topic: &str, seq: u64, frame: &[u8]) -> Arc<Encoded> {
    enc_with(topic, seq, frame, Prices::default())
}

fn enc_with(topic: &str, seq: u64, frame: &[u8], prices: Prices) -> Arc<Encoded> {
    Encoded::test_update(topic, seq, prices, Some(frame))
}

fn offer(b: &mut Backlog, out: &mut Outbound, e: &Arc<Encoded>, mark: usize) -> Offer {
    let frame = e.frames[0].clone().unwrap();
    b.offer(
        out,
        e,
        &frame,
        &Rules {
            class: 0,
            conflate_at: mark,
            paced: false,
            now: Instant::now(),
        },
        || None,
    )
}

fn release(b: &mut Backlog, out: &mut Outbound, mark: usize) -> bool {
    let fb = &mut crate::wire::frame::FrameBuf::default();
    let fmt = crate::model::format::Format::Json;
    b.release(
        out,
        &mut EventWriter {
            fb,
            fmt,
            names: &[],
        },
        mark,
        Instant::now(),
    )
}

#[test]
fn past_the_mark_updates_of_a_topic_are_held_back_and_merged() {
    let (mut b, mut out) = (Backlog::default(), Outbound::default());
    assert_eq!(
        offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 10),
        Offer::Queued
    );
    assert_eq!(
        offer(&mut b, &mut out, &enc("A", 2, &[2; 8]), 10),
        Offer::Queued
    );
    assert_eq!(out.pending(), 16);
    // Past the mark: held back, and a later update of A merges into it.
    let held = Offer::Parked { merged: false };
    assert_eq!(offer(&mut b, &mut out, &enc("A", 3, &[3; 8]), 10), held);
    assert_eq!(offer(&mut b, &mut out, &enc("B", 1, &[4; 8]), 10), held);
    assert_eq!(
        offer(&mut b, &mut out, &enc("A", 4, &[5; 8]), 10),
        Offer::Parked { merged: true }
    );
    assert_eq!(out.pending(), 16, "nothing more queued while conflating");
    assert_eq!(b.parked(), 2);
}

#[test]
fn a_released_update_carries_every_field_the_held_back_ones_changed() {
    let (mut b, mut out) = (Backlog::default(), Outbound::default());
    offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 8);
    let bid = Prices {
        bid: Some(1.5),
        ..Prices::default()
    };
    let ask = Prices {
        ask: Some(2.5),
        ..Prices::default()
    };
    let newer_bid = Prices {
        bid: Some(1.6),
        ..Prices::default()
    };
    offer(&mut b, &mut out, &enc_with("A", 2, &[2; 8], bid), 8);
    offer(&mut b, &mut out, &enc_with("A", 3, &[3; 8], ask), 8);
    offer(&mut b, &mut out, &enc_with("A", 4, &[4; 8], newer_bid), 8);
    assert!(!release(&mut b, &mut out, 8), "queue still full");
    out.advance(8);
    assert!(release(&mut b, &mut out, 8));
    let frame = out.front();
    // A text frame: two header bytes, then the JSON.
    let text = std::str::from_utf8(&frame[2..]).unwrap();
    assert_eq!(
        text,
        r#"{"event":"update","topic":"A","seq":4,"ts":4,"bid":1.6,"ask":2.5,"conflated":3}"#
    );
    // Out of conflation: the next update is queued again.
    out.advance(frame.len());
    assert_eq!(
        offer(&mut b, &mut out, &enc("A", 5, &[5; 8]), 8),
        Offer::Queued
    );
}

#[test]
fn one_held_back_update_goes_out_as_its_shared_frame() {
    let (mut b, mut out) = (Backlog::default(), Outbound::default());
    offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 8);
    offer(&mut b, &mut out, &enc("B", 1, &[7; 8]), 8);
    out.advance(8);
    assert!(release(&mut b, &mut out, 8));
    assert_eq!(out.front(), &[7; 8]);
}

#[test]
fn the_hard_limit_gives_patience_then_a_slow_consumer_verdict() {
    let mut b = Backlog::default();
    let limits = BacklogLimits {
        conflate_at: 10,
        hard: 100,
        patience: Duration::from_secs(10),
    };
    let t0 = Instant::now();
    assert_eq!(
        b.after_flush(Flushed::Blocked, 100, t0, &limits),
        Pressure::Fine
    );
    assert_eq!(
        b.after_flush(Flushed::Blocked, 150, t0, &limits),
        Pressure::Waiting
    );
    assert!(b.is_over_limit());
    let later = t0 + Duration::from_secs(9);
    assert_eq!(
        b.after_flush(Flushed::Blocked, 150, later, &limits),
        Pressure::Waiting
    );
    let late = t0 + Duration::from_secs(10);
    assert_eq!(
        b.after_flush(Flushed::Blocked, 150, late, &limits),
        Pressure::SlowConsumer
    );
    // Draining under the limit resets the clock.
    assert_eq!(
        b.after_flush(Flushed::Blocked, 90, late, &limits),
        Pressure::Fine
    );
    assert!(!b.is_over_limit());
    assert_eq!(
        b.after_flush(Flushed::Blocked, 150, late, &limits),
        Pressure::Waiting
    );
    assert_eq!(
        b.after_flush(Flushed::All, 0, late, &limits),
        Pressure::Fine
    );
    // Far past the limit: cut off at once.
    assert_eq!(
        b.after_flush(Flushed::Blocked, 201, late, &limits),
        Pressure::CutOff
    );
}
