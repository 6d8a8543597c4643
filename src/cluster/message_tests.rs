//! Tests of `message`: the entries of messages and history blocks.

use super::*;

#[test]
fn entries_parse_back_exactly() {
    let e = Epoch::new();
    let text = format!(
        "U FX.EURUSD {e} 42 1700 99 bid {:?} volume 1e300 iv 0.25",
        0.1 + 0.2
    );
    let names: Vec<Box<str>> = vec!["oi".into(), "iv".into()];
    let Some(Message::Update {
        update,
        epoch,
        seq,
        wall_ns,
    }) = parse(&text, &names)
    else {
        panic!("{text}");
    };
    assert_eq!((epoch, seq, wall_ns), (e, 42, 99));
    assert_eq!(update.topic, "FX.EURUSD");
    assert_eq!(update.timestamp_ns, 1700);
    assert_eq!(update.prices.bid, Some(0.1 + 0.2));
    assert_eq!(update.prices.volume, Some(1e300));
    assert_eq!(
        update.prices.extra.get(1),
        Some(0.25),
        "an extra field by name"
    );
    assert_eq!(parse(&text, &[]), None, "a field this node does not know");
    assert_eq!(parse("C X", &[]), Some(Message::Clear("X".into())));
    assert_eq!(
        parse("S X 1", &[]),
        Some(Message::Stale("X".into(), Liveness::Stale))
    );
    assert_eq!(
        parse("A X 250", &[]),
        Some(Message::StaleAfter(
            "X".into(),
            Some(Duration::from_millis(250))
        ))
    );
    assert_eq!(
        parse("A X -", &[]),
        Some(Message::StaleAfter("X".into(), None))
    );
    assert_eq!(parse("A X soon", &[]), None);
    for bad in ["", "U", "U X zz 1 1 1", "U X 00000000 1 1 1 nope 1", "Q X"] {
        assert_eq!(parse(bad, &[]), None, "{bad}");
    }
}

#[test]
fn a_message_holds_runs_and_lines_each_entry_naming_its_topic() {
    let e = Epoch::new();
    let msg = format!(
        "R A {e} 7 3 9 bid,ask\n8 1.5 -\n7 1.6 -\n6 - 2\nC B\nR D {e} 1 1 9 last\n5 3\nS C 1"
    );
    let got: Vec<Entry> = entries(msg.as_bytes()).collect();
    let topics: Vec<&str> = got.iter().map(Entry::topic).collect();
    assert_eq!(topics, ["A", "A", "A", "B", "D", "C"]);
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|x| match x.parse(&[])? {
            Message::Update { seq, update, .. } => Some(seq * 10 + update.timestamp_ns),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [51, 62, 73, 14], "a run is numbered up to its last");
    let Some(Message::Update {
        update,
        epoch,
        wall_ns,
        ..
    }) = got[1].parse(&[])
    else {
        panic!("{:?}", got[1]);
    };
    assert_eq!((update.topic.as_str(), epoch, wall_ns), ("A", e, 9));
    assert_eq!(update.prices.bid, Some(1.6));
    assert_eq!(got[3].parse(&[]), Some(Message::Clear("B".into())));
}

#[test]
fn a_run_with_fields_reads_its_tails_by_position() {
    let e = Epoch::new();
    let names: Vec<Box<str>> = vec!["iv".into()];
    // wall 1000: back 10 is ts 990, back -5 is ts 1005.
    let msg = format!("R A {e} 9 3 1000 bid,ask,iv\n10 1.5 2.5 -\n0 - 2.75 0.25\n-5 1.25 - -");
    let got: Vec<Message> = entries(msg.as_bytes())
        .filter_map(|x| x.parse(&names))
        .collect();
    let Message::Update { update, seq, .. } = &got[0] else {
        panic!("{got:?}");
    };
    assert_eq!((*seq, update.timestamp_ns), (7, 990));
    assert_eq!(
        (update.prices.bid, update.prices.ask),
        (Some(1.5), Some(2.5))
    );
    assert!(update.prices.extra.is_empty(), "`-`: not carried");
    let Message::Update { update, seq, .. } = &got[1] else {
        panic!("{got:?}");
    };
    assert_eq!(
        (*seq, update.timestamp_ns, update.prices.bid),
        (8, 1000, None)
    );
    assert_eq!(update.prices.extra.get(0), Some(0.25), "an extra field");
    let Message::Update { update, seq, .. } = &got[2] else {
        panic!("{got:?}");
    };
    assert_eq!((*seq, update.timestamp_ns), (9, 1005));
    assert_eq!((update.prices.bid, update.prices.ask), (Some(1.25), None));
    // A value short or over, a field unknown here, a time out of range:
    // not ours.
    for (fields, tail) in [
        ("bid,ask", "0 1"),
        ("bid", "0 1 2"),
        ("bid,oi", "0 1 2"),
        ("bid", "1001 1"),
        ("bid", "x 1"),
        ("bid", "0 one"),
    ] {
        let text = format!("R A {e} 1 1 1000 {fields}\n{tail}");
        let got: Vec<Entry> = entries(text.as_bytes()).collect();
        assert_eq!(got.len(), 1, "{fields} / {tail}");
        assert_eq!(got[0].parse(&names), None, "{fields} / {tail}");
    }
    // The previous form (names in each tail, no fields in the header)
    // is still read.
    let old = format!("R A {e} 1 1 1000\n990 bid 1.5");
    let got: Vec<Message> = entries(old.as_bytes())
        .filter_map(|x| x.parse(&[]))
        .collect();
    let Some(Message::Update { update, .. }) = got.first() else {
        panic!("{got:?}");
    };
    assert_eq!((update.timestamp_ns, update.prices.bid), (990, Some(1.5)));
}

#[test]
fn a_run_header_that_does_not_add_up_is_not_taken_for_a_run() {
    let e = Epoch::new();
    for bad in [
        format!("R A {e} 2 3 9"),
        format!("R A {e} 5 0 9"),
        format!("R A {e} x 1 9"),
        "R A zz 5 1 9".to_string(),
        format!("R A {e} 5 1"),
        format!("R A {e} 5 1 9 bid 9"),
        "R".to_string(),
    ] {
        let text = format!("{bad}\n1 bid 1");
        let got: Vec<Entry> = entries(text.as_bytes()).collect();
        assert_eq!(got.len(), 2, "{bad}: the header and the line after it");
        assert_eq!(got[0].parse(&[]), None, "{bad}");
        assert_eq!(got[1].parse(&[]), None, "a tail outside a run: {bad}");
    }
    // A run cut short ends with the message.
    let short = format!("R A {e} 9 3 9\n1 bid 1");
    assert_eq!(entries(short.as_bytes()).count(), 1);
}

/// A binary run as the script writes it: the header up to `fields`,
/// then the writer's argument (`fields nbytes`, a newline, the records).
fn binary_run(topic: &str, e: Epoch, last: u64, bids: &[f64]) -> Vec<u8> {
    let record = super::tail::Record {
        columns: &[0],
        wall_ns: 1_000,
    };
    let mut records = Vec::new();
    for (i, &bid) in bids.iter().enumerate() {
        let prices = crate::model::update::Prices {
            bid: Some(bid),
            ..Default::default()
        };
        record.write(&mut records, 900 + i as u64, &prices);
    }
    let out = format!(
        "R {topic} {e} {last} {} 1000 bid {}\n",
        bids.len(),
        records.len()
    );
    out.into_bytes().into_iter().chain(records).collect()
}

#[test]
fn a_binary_run_is_cut_by_its_length_whatever_bytes_it_holds() {
    let e = Epoch::new();
    // 10.0 is 0x4024..., and a value whose bytes hold newlines.
    let newline = f64::from_le_bytes([b'\n'; 8]);
    let mut msg = binary_run("A", e, 3, &[10.0, newline]);
    msg.extend_from_slice(b"\nC B\n");
    msg.extend(binary_run("D", e, 1, &[2.5]));
    let got: Vec<Entry> = entries(&msg).collect();
    let topics: Vec<&str> = got.iter().map(Entry::topic).collect();
    assert_eq!(topics, ["A", "A", "B", "D"]);
    let parsed: Vec<(u64, u64, Option<f64>)> = got
        .iter()
        .filter_map(|x| match x.parse(&[])? {
            Message::Update { seq, update, .. } => {
                Some((seq, update.timestamp_ns, update.prices.bid))
            }
            _ => None,
        })
        .collect();
    assert_eq!(parsed[0], (2, 900, Some(10.0)));
    assert_eq!((parsed[1].0, parsed[1].1), (3, 901));
    assert_eq!(parsed[1].2.map(f64::to_bits), Some(newline.to_bits()));
    assert_eq!(parsed[2], (1, 900, Some(2.5)));
    assert_eq!(got[2].parse(&[]), Some(Message::Clear("B".into())));
}

#[test]
fn a_binary_run_whose_bytes_do_not_add_up_is_not_ours() {
    let e = Epoch::new();
    let good = binary_run("A", e, 2, &[1.0, 2.0]);
    let text = String::from_utf8_lossy(&good[..good.iter().position(|&b| b == b'\n').unwrap()])
        .to_string();
    let records = &good[text.len() + 1..];
    let n = records.len();
    // Each: (header's count and byte count, bytes after the header).
    let cases: Vec<(String, Vec<u8>)> = vec![
        // Fewer bytes than the header says: the header is not a run.
        (format!("R A {e} 2 2 1000 bid {}", n + 1), records.to_vec()),
        // More records than the count.
        (format!("R A {e} 2 1 1000 bid {n}"), records.to_vec()),
        // A record cut short.
        (
            format!("R A {e} 2 2 1000 bid {}", n - 1),
            records[..n - 1].to_vec(),
        ),
        // The bytes run into the next entry (no newline after them).
        (format!("R A {e} 2 2 1000 bid {}", n - 1), records.to_vec()),
    ];
    for (header, bytes) in cases {
        let mut msg = format!("{header}\n").into_bytes();
        msg.extend_from_slice(&bytes);
        let parsed: Vec<Option<Message>> = entries(&msg).map(|x| x.parse(&[])).collect();
        assert!(parsed.iter().any(Option::is_none), "{header}: {parsed:?}");
    }
    // The records the count covers still read; what is past it does not.
    let mut over = format!("R A {e} 2 1 1000 bid {n}\n").into_bytes();
    over.extend_from_slice(records);
    let parsed: Vec<Option<Message>> = entries(&over).map(|x| x.parse(&[])).collect();
    assert_eq!(parsed.len(), 2, "{parsed:?}");
    assert!(
        matches!(parsed[0], Some(Message::Update { seq: 2, .. })),
        "{parsed:?}"
    );
    assert_eq!(parsed[1], None);
}
