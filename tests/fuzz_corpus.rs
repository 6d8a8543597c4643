//! Replays the fuzzers' seed corpus (fuzz/corpus/) through the same target
//! bodies the fuzzers run, so every input there stays a passing case.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        // Every prefix too: truncated input is the most common kind of bad input.
        for cut in 0..data.len() {
            run(&data[..cut]);
        }
        n += 1;
    }
    n
}

#[test]
fn command_parser_corpus_replays_cleanly() {
    assert!(replay("command_parser", tickcast::fuzzing::command_parser) >= 5);
}

#[test]
fn http_upgrade_corpus_replays_cleanly() {
    assert!(replay("http_upgrade", tickcast::fuzzing::http_upgrade) >= 4);
}

#[test]
fn client_frames_corpus_replays_cleanly() {
    assert!(replay("client_frames", tickcast::fuzzing::client_frames) >= 8);
}
