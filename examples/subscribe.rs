//! A subscriber: connects to a tickcast server with `tickcast::Subscriber`
//! and prints every value as it changes.
//!
//! ```text
//! cargo run --example subscribe -- ws://127.0.0.1:8080/ws 'BTC-USD' 'FX.*'
//! cargo run --example subscribe -- --msgpack ws://127.0.0.1:8080/ws '*'
//! ```
//! The subscriber checks each topic's sequence numbers: a gap (or a dropped
//! connection) is resumed from the server's history, and said here.

use std::time::Duration;
use tickcast::remote::subscriber::Event;
use tickcast::{Format, Subscriber, SubscriberConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let msgpack = args.first().is_some_and(|a| a == "--msgpack");
    if msgpack {
        args.remove(0);
    }
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let topics: Vec<&str> = match args.len() {
        0 | 1 => vec!["*"],
        _ => args[1..].iter().map(String::as_str).collect(),
    };
    let format = if msgpack {
        Format::MsgPack
    } else {
        Format::Json
    };
    let mut sub = Subscriber::connect(SubscriberConfig::new(url).format(format))?;
    sub.subscribe(&topics, None)?;
    loop {
        let Some(got) = sub.next(Duration::from_secs(1))? else {
            continue;
        };
        match &got.event {
            Event::Snapshot { topic, seq } | Event::Update { topic, seq, .. } => {
                let v = sub.value(topic).expect("just applied");
                println!(
                    "{topic} #{seq} {:?}{}",
                    v.fields,
                    if v.stale { " (stale)" } else { "" }
                );
            }
            Event::Gap {
                topic,
                expected,
                got,
            } => {
                println!("gap on {topic}: expected #{expected}, got #{got}; resuming");
            }
            Event::Reconnected { recovered } => println!("reconnected; resumed {recovered:?}"),
            Event::Status { topic, stale } => {
                println!("{topic} is {}", if *stale { "stale" } else { "live" })
            }
            Event::Cleared { topic } => println!("{topic} cleared"),
            _ => {}
        }
    }
}
