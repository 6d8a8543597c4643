use super::*;

#[test]
fn a_big_queue_grows_by_a_quarter_and_counts_its_capacity() {
    assert_eq!(grown_capacity(0, 10), 64, "a small first step");
    assert_eq!(grown_capacity(1024, 1100), 2048, "doubling while small");
    assert_eq!(grown_capacity(1 << 20, (1 << 20) + 1), (1 << 20) * 5 / 4);
    assert_eq!(grown_capacity(1 << 20, 3 << 20), 3 << 20, "a big push");
    let mut out = Outbound::default();
    for _ in 0..10_000 {
        out.push(&[0; 100]);
    }
    assert_eq!(out.pending(), 1_000_000);
    assert!(out.held() >= out.pending());
    assert!(
        out.held() <= out.pending() * 5 / 4,
        "{} held for {} pending",
        out.held(),
        out.pending()
    );
}

/// A writer that accepts `room` bytes, then blocks.
struct Pipe {
    got: Vec<u8>,
    room: usize,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room).min(7);
        self.room -= n;
        self.got.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Everything `out` holds, written to a pipe that takes it all.
fn written(out: &mut Outbound) -> Vec<u8> {
    let mut pipe = Pipe {
        got: vec![],
        room: usize::MAX,
    };
    out.write_to(&mut pipe, &mut Tally::default()).unwrap();
    pipe.got
}

#[test]
fn keeps_order_across_blocked_writes() {
    let mut out = Outbound::default();
    let mut pipe = Pipe {
        got: vec![],
        room: 10,
    };
    out.push(b"hello ");
    out.push(b"world");
    let mut tally = Tally::default();
    assert_eq!(
        out.write_to(&mut pipe, &mut tally).unwrap(),
        Flushed::Blocked
    );
    assert_eq!(out.pending(), 1);
    out.push(b"!");
    pipe.room = 100;
    assert_eq!(out.write_to(&mut pipe, &mut tally).unwrap(), Flushed::All);
    assert_eq!(tally.bytes, 12);
    assert_eq!(pipe.got, b"hello world!");
    assert!(out.is_empty());
}

fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut fb = crate::wire::frame::FrameBuf::default();
    fb.payload().extend_from_slice(payload);
    fb.finish(op).to_vec()
}

/// Splits written bytes back into (opcode, payload) frames.
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = vec![];
    while let Some((op, len)) = frame_extent(b) {
        let head = match b[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        v.push((op, b[head..len].to_vec()));
        b = &b[len..];
    }
    assert!(b.is_empty(), "trailing bytes");
    v
}

#[test]
fn a_pong_goes_right_after_the_frame_on_the_wire() {
    let mut out = Outbound::default();
    let head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
    out.push(head);
    out.start_frames();
    for i in 0..5u8 {
        out.push(&frame(2, &[i; 20]));
    }
    // The 101 and 10 bytes of the first frame are on the wire.
    let mut pipe = Pipe {
        got: vec![],
        room: head.len() + 10,
    };
    let mut tally = Tally::default();
    out.write_to(&mut pipe, &mut tally).unwrap();
    out.push_control(&frame(0xA, b"p"));
    pipe.room = usize::MAX;
    assert_eq!(out.write_to(&mut pipe, &mut tally).unwrap(), Flushed::All);
    let ops: Vec<u8> = frames(&pipe.got[head.len()..])
        .iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(ops, [2, 0xA, 2, 2, 2, 2]);
    // Drained: the next control frame simply goes first.
    out.push(&frame(2, b"x"));
    out.push_control(&frame(0x9, b""));
    let mut pipe = Pipe {
        got: vec![],
        room: usize::MAX,
    };
    out.write_to(&mut pipe, &mut tally).unwrap();
    let ops: Vec<u8> = frames(&pipe.got).iter().map(|f| f.0).collect();
    assert_eq!(ops, [0x9, 2]);
}

#[test]
fn a_close_drops_the_data_behind_it() {
    let mut out = Outbound::default();
    out.start_frames();
    for i in 0..4u8 {
        out.push(&frame(2, &[i; 300]));
    }
    let mut pipe = Pipe {
        got: vec![],
        room: 400,
    };
    let mut tally = Tally::default();
    out.write_to(&mut pipe, &mut tally).unwrap();
    out.push_control(&frame(OP_CLOSE, &[0x03, 0xF0]));
    pipe.room = usize::MAX;
    out.write_to(&mut pipe, &mut tally).unwrap();
    let got = frames(&pipe.got);
    let ops: Vec<u8> = got.iter().map(|f| f.0).collect();
    assert_eq!(ops, [2, 2, OP_CLOSE]);
    assert_eq!(
        got[1].1,
        vec![1u8; 300],
        "the partly written frame is finished"
    );
}

#[test]
fn the_boundary_survives_reclaiming_the_front() {
    let mut out = Outbound::default();
    out.start_frames();
    let big = frame(2, &[7; 200]);
    for _ in 0..8 {
        out.push(&big);
    }
    let mut pipe = Pipe {
        got: vec![],
        room: 1000,
    };
    let mut tally = Tally::default();
    out.write_to(&mut pipe, &mut tally).unwrap();
    // Push until the written front is reclaimed instead of growing.
    for _ in 0..3 {
        if out.pos == 0 {
            break;
        }
        out.push(&big);
    }
    assert_eq!(out.pos, 0, "the front was reclaimed");
    out.push_control(&frame(0xA, b"late"));
    pipe.room = usize::MAX;
    out.write_to(&mut pipe, &mut tally).unwrap();
    let got = frames(&pipe.got);
    let pong = got.iter().position(|f| f.0 == 0xA).unwrap();
    assert_eq!(pong, 5, "after the fifth frame, which was partly written");
    assert!(got.iter().all(|f| f.0 == 0xA || f.1 == vec![7; 200]));
}

#[test]
fn pongs_from_a_ping_flood_do_not_pile_up_behind_a_backlog() {
    let mut out = Outbound::default();
    out.start_frames();
    let data = frame(2, &[9; 1000]);
    for _ in 0..1000 {
        out.push(&data);
    }
    let backlog = out.pending();
    let start = out.buf.as_ptr();
    for i in 0..10_000u32 {
        out.push_control(&frame(0xA, &i.to_be_bytes()));
    }
    // The latest 16 pongs wait, and the backlog never moved.
    let pongs = MAX_UNSENT_PONGS;
    assert_eq!(out.pending(), backlog + pongs * frame(0xA, &[0; 4]).len());
    assert_eq!(out.buf.as_ptr(), start);
    let got = frames(&written(&mut out));
    for (i, pong) in got[..pongs].iter().enumerate() {
        let n = 10_000 - pongs as u32 + i as u32;
        assert_eq!(*pong, (0xA, n.to_be_bytes().to_vec()));
    }
    assert_eq!(got.len(), 1000 + pongs);
}

#[test]
fn each_ping_of_a_burst_gets_its_own_pong_in_order() {
    let mut out = Outbound::default();
    out.start_frames();
    out.push(&frame(2, &[1; 100]));
    for i in 0..10u8 {
        out.push_control(&frame(0xA, &[i; 3]));
    }
    let got = frames(&written(&mut out));
    let pongs: Vec<_> = got.iter().filter(|f| f.0 == 0xA).cloned().collect();
    assert_eq!(
        pongs,
        (0..10u8).map(|i| (0xA, vec![i; 3])).collect::<Vec<_>>()
    );
}

#[test]
fn without_framing_control_bytes_are_appended() {
    let mut out = Outbound::default();
    out.push(b"HTTP/1.1 200 OK\r\n");
    out.push_control(&frame(0xA, b""));
    out.push_control(b"not a frame");
    let got = written(&mut out);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(got.ends_with(b"not a frame"));
}

fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut fb = crate::wire::frame::FrameBuf::default();
    fb.payload().extend_from_slice(payload);
    fb.finish(crate::wire::frame::OP_TEXT).to_vec()
}

#[test]
fn a_batch_session_joins_a_flush_of_events_into_one_message() {
    let mut out = Outbound::default();
    out.push(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    out.start_frames();
    out.start_batches(crate::wire::frame::OP_TEXT, None);
    out.push(&text_frame(b"{\"a\":1}"));
    out.push(&text_frame(b"{\"b\":2}"));
    assert_eq!(
        out.pending(),
        36 + 7 + 1 + 7,
        "staged bytes count as queued"
    );
    let mut want = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
    want.extend(text_frame(b"{\"a\":1}\n{\"b\":2}"));
    assert_eq!(written(&mut out), want);
    // The next flush is the next message; a pong overtakes nothing staged.
    out.push(&text_frame(b"{\"c\":3}"));
    out.push_control(&[0x8A, 0]);
    let got = written(&mut out);
    assert_eq!(got, [&[0x8A, 0][..], &text_frame(b"{\"c\":3}")].concat());
}

#[test]
fn a_batch_keeps_its_place_before_a_shutdown_close_and_a_close_drops_it() {
    let mut out = Outbound::default();
    out.start_frames();
    out.start_batches(crate::wire::frame::OP_TEXT, None);
    out.push(&text_frame(b"1"));
    let away = [0x88, 2, 0x03, 0xe9];
    out.push(&away); // a 1001 goes after the updates
    assert_eq!(written(&mut out), [&text_frame(b"1")[..], &away].concat());

    out.push(&text_frame(b"2"));
    let policy = [0x88, 2, 0x03, 0xf0];
    out.push_control(&policy); // an urgent close drops what is staged
    assert_eq!(written(&mut out), policy);
}

#[test]
fn a_batch_with_deflate_goes_out_compressed_from_its_threshold() {
    let mut out = Outbound::default();
    out.start_frames();
    out.start_batches(crate::wire::frame::OP_TEXT, Some(64));
    out.push(&text_frame(b"short"));
    assert_eq!(
        written(&mut out),
        text_frame(b"short"),
        "under 64 bytes: plain"
    );
    let event = b"{\"event\":\"update\",\"topic\":\"AAPL\",\"bid\":101.25}";
    for _ in 0..20 {
        out.push(&text_frame(event));
    }
    let got = written(&mut out);
    assert_eq!(got[0], 0x80 | 0x40 | 0x1, "final, RSV1, text");
    assert!(got.len() < 20 * event.len() / 4, "{} bytes", got.len());
}

#[test]
fn a_full_queue_reclaims_its_written_front_before_growing() {
    let mut out = Outbound::default();
    for _ in 0..1000 {
        out.push(&[1; 100]);
    }
    let cap = out.held();
    // A slow reader took a sixth of it: under half, but an eighth or more.
    let taken = out.pending() / 6;
    out.advance(taken);
    let room = cap - out.pending() - taken;
    out.push(&vec![2; room + 100]);
    assert_eq!(
        out.held(),
        cap,
        "the written front was reused, not grown past"
    );
    // A front under an eighth is not worth moving everything for: it grows.
    let mut out = Outbound::default();
    for _ in 0..1000 {
        out.push(&[1; 100]);
    }
    let cap = out.held();
    out.advance(100);
    out.push(&vec![2; cap - 100_000 + 50]);
    assert!(out.held() > cap);
}
