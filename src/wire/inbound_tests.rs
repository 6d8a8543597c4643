use super::*;

/// A client frame: masked with a fixed key, as RFC 6455 §5.3 requires.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

fn read_all(r: &mut Reader, bytes: &[u8], max: usize) -> Result<Vec<Got>, Broken> {
    r.buffer().extend_from_slice(bytes);
    let mut got = Vec::new();
    while let Some(g) = r.next(max)? {
        got.push(g);
    }
    Ok(got)
}

fn text(s: &str) -> Got {
    Got::Data {
        text: true,
        payload: s.as_bytes().to_vec(),
    }
}

#[test]
fn reads_frames_split_at_every_byte() {
    let mut bytes = frame(0x81, b"{\"op\":\"ping\"}");
    bytes.extend(frame(0x89, b"hb"));
    bytes.extend(frame(0x82, &[7; 300]));
    let mut r = Reader::new(Vec::new(), false);
    let mut got = Vec::new();
    for b in &bytes {
        got.extend(read_all(&mut r, &[*b], 1 << 20).unwrap());
    }
    assert_eq!(
        got,
        [
            text("{\"op\":\"ping\"}"),
            Got::Ping(b"hb".to_vec()),
            Got::Data {
                text: false,
                payload: vec![7; 300]
            }
        ]
    );
    assert_eq!(r.buffered(), 0);
    r.release();
    assert_eq!(r.buffer().capacity(), 0, "an idle reader keeps no buffer");
}

#[test]
fn fragments_join_with_control_frames_between_them() {
    let mut bytes = frame(0x01, b"hel");
    bytes.extend(frame(0x8A, b""));
    bytes.extend(frame(0x00, b"lo "));
    bytes.extend(frame(0x80, "wörld".as_bytes()));
    let mut r = Reader::new(bytes, false);
    let got = read_all(&mut r, &[], 1 << 20).unwrap();
    assert_eq!(got, [Got::Pong, text("hello wörld")]);
}

#[test]
fn broken_frames_say_why_with_the_right_code() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(0x81 | 0x20, b"x"), 1002),                        // RSV2
        (frame(0x81 | 0x40, b"x"), 1002),                        // RSV1 without deflate
        (frame(0x83, b"x"), 1002),                               // reserved data opcode
        (frame(0x8B, b"x"), 1002),                               // reserved control opcode
        (frame(0x09, b"x"), 1002),                               // fragmented ping
        (frame(0x89, &[0; 126]), 1002),                          // long ping
        (frame(0x80, b"x"), 1002),                               // continuation of nothing
        ([frame(0x01, b"a"), frame(0x81, b"b")].concat(), 1002), // new message mid-message
        (vec![0x81, 0x01, b'x'], 1002),                          // unmasked
        (frame(0x81, &[0xff, 0xfe]), 1007),                      // not UTF-8
        (frame(0x88, &[3, 0xe8, 0xff]), 1007),                   // close reason not UTF-8
        (frame(0x88, &[3]), 1002),                               // one-byte close
        (frame(0x88, &1005u16.to_be_bytes()), 1002),             // a code only for local use
        (frame(0x88, &999u16.to_be_bytes()), 1002),
        (frame(0x82, &[0; 2000]), 1009), // over the limit
    ];
    for (i, (bytes, code)) in cases.into_iter().enumerate() {
        let mut r = Reader::new(bytes, false);
        let err = read_all(&mut r, &[], 1000).expect_err(&format!("case {i}"));
        assert_eq!(err.code(), code, "case {i}: {err:?}");
        assert!(!err.reason().is_empty());
    }
}

#[test]
fn an_oversized_frame_fails_from_its_header_alone() {
    let f = frame(0x82, &vec![0; 70_000]);
    let mut r = Reader::new(f[..14].to_vec(), false);
    assert_eq!(
        r.next(65_536),
        Err(Broken::TooBig {
            size: 70_000,
            max: 65_536
        })
    );
    // Fragments add up against the limit too.
    let bytes = [frame(0x02, &[0; 600]), frame(0x80, &[0; 600])].concat();
    let mut r = Reader::new(bytes, false);
    assert!(matches!(
        r.next(1000),
        Err(Broken::TooBig { size: 1200, .. })
    ));
}

#[test]
fn close_frames_carry_code_and_reason() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bye");
    let bytes = [frame(0x88, &p), frame(0x88, b"")].concat();
    let mut r = Reader::new(bytes, false);
    let got = read_all(&mut r, &[], 100).unwrap();
    assert_eq!(
        got,
        [Got::Close(Some((1000, "bye".into()))), Got::Close(None)]
    );
}

fn compressed(s: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    crate::wire::deflate::deflate_frame(0x1, s, &mut f);
    crate::wire::frame::payload_of(&f).unwrap().to_vec()
}

#[test]
fn compressed_messages_inflate_whole_or_in_fragments() {
    let msg = br#"{"op":"subscribe","topics":["AAPL","MSFT","AAPL.book"],"id":7}"#;
    let body = compressed(msg);
    let one = frame(0xC1, &body);
    let (a, b) = body.split_at(body.len() / 2);
    let split = [frame(0x41, a), frame(0x89, b"p"), frame(0x80, b)].concat();
    for bytes in [one, split] {
        let mut r = Reader::new(bytes, true);
        let got = read_all(&mut r, &[], 1000).unwrap();
        assert_eq!(got.last(), Some(&text(std::str::from_utf8(msg).unwrap())));
    }
    // Plain messages still pass on a deflate session; RSV1 on a
    // continuation does not.
    let mut r = Reader::new(frame(0x81, b"plain"), true);
    assert_eq!(read_all(&mut r, &[], 100).unwrap(), [text("plain")]);
    let bad = [frame(0x41, a), frame(0xC0, b)].concat();
    let mut r = Reader::new(bad, true);
    assert_eq!(read_all(&mut r, &[], 1000).unwrap_err().code(), 1002);
}

#[test]
fn a_deflate_bomb_closes_with_1009_and_garbage_with_1007() {
    let bomb = compressed(&vec![b' '; 5_000_000]);
    assert!(bomb.len() < 50_000, "{}", bomb.len());
    let mut r = Reader::new(frame(0xC1, &bomb), true);
    assert!(matches!(
        read_all(&mut r, &[], 65_536),
        Err(Broken::TooBig { max: 65_536, .. })
    ));
    let mut r = Reader::new(frame(0xC1, &[0xff; 20]), true);
    assert_eq!(read_all(&mut r, &[], 65_536).unwrap_err().code(), 1007);
    // Compressed text that inflates to bytes that are not UTF-8.
    let mut r = Reader::new(frame(0xC1, &compressed(&[0xc3, 0x28])), true);
    assert_eq!(read_all(&mut r, &[], 100).unwrap_err().code(), 1007);
}

/// Unmasking a word at a time gives what the byte rule of RFC 6455 §5.3
/// gives, for every length around the word size.
#[test]
fn unmasking_by_words_matches_the_byte_rule() {
    let mask = [0x12, 0x34, 0x56, 0x78];
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
        let mut ours = data.clone();
        super::unmask(&mut ours, mask);
        let rule: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(ours, rule, "length {len}");
    }
}
