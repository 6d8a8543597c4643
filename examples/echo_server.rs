//! An echo WebSocket server on tickcast's own transport: the same shards,
//! connection state machine, HTTP upgrade, tungstenite frame parsing and
//! outbound queues as the market-data server, with commands replaced by
//! echoing each message back. Point an RFC 6455 conformance suite at it:
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9001
//! # then e.g. the Autobahn fuzzingclient against ws://127.0.0.1:9001/ws
//! ```
//! Protocol errors close with 1002, invalid UTF-8 with 1007, messages over
//! 16 MiB with 1009.

use tickcast::{Config, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let cfg = Config::default()
        .listen(listen.parse()?)
        .echo(true)
        // Conformance suites send messages of up to 16 MiB.
        .max_message_size(16 * 1024 * 1024)
        .max_outbound_bytes(64 * 1024 * 1024);
    let server = Server::start(cfg)?;
    println!("echo server on ws://{}/ws", server.local_addr());
    loop {
        std::thread::park();
    }
}
