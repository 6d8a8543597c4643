//! A subscriber: connects to a tickcast server and prints what it receives.
//!
//! ```text
//! cargo run --example subscribe -- ws://127.0.0.1:8080/ws 'BTC-USD' 'FX.*'
//! cargo run --example subscribe -- --msgpack ws://127.0.0.1:8080/ws '*'
//! ```
//! It checks each topic's sequence numbers and reports any gap.

use std::collections::HashMap;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

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
    let topics: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec!["*".into()]
    };

    let mut req = url.as_str().into_client_request()?;
    let proto = if msgpack {
        "tickcast.msgpack"
    } else {
        "tickcast.json"
    };
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", proto.parse()?);
    let (mut ws, _) = tungstenite::connect(req)?;
    let cmd = serde_json::json!({"op": "subscribe", "id": 1, "topics": topics});
    ws.send(Message::text(cmd.to_string()))?;

    let mut last_seq: HashMap<String, u64> = HashMap::new();
    loop {
        let ev: serde_json::Value = match ws.read()? {
            Message::Text(t) => serde_json::from_str(&t)?,
            Message::Binary(b) => rmp_serde::from_slice(&b)?,
            Message::Close(f) => {
                println!("closed: {f:?}");
                return Ok(());
            }
            _ => continue,
        };
        if let (Some(topic), Some(seq)) = (ev["topic"].as_str(), ev["seq"].as_u64()) {
            let prev = last_seq.insert(topic.to_string(), seq);
            if ev["event"] == "update" {
                if let Some(p) = prev.filter(|p| seq != p + 1) {
                    eprintln!("gap on {topic}: {p} -> {seq}");
                }
            }
        }
        println!("{ev}");
    }
}
