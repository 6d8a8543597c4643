//! Embeds a tickcast server in a process and publishes a small feed into it.
//!
//! ```text
//! cargo run --example embedded
//! # in another terminal:
//! cargo run --example subscribe -- ws://127.0.0.1:8080/ws 'EX.*'
//! ```

use std::time::Duration;
use tickcast::{Config, Server, Update};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(Config::default().listen("127.0.0.1:8080".parse()?))?;
    println!("subscribe at ws://{}/ws", server.local_addr());
    let publisher = server.publisher();
    let mut price = 100.0_f64;
    for i in 0u64.. {
        price += if i % 7 < 4 { 0.01 } else { -0.01 };
        // `publish` waits when the ingest queue is full; `try_publish` would
        // return Error::Full instead.
        publisher.publish(Update::new("EX.WIDGET").bid(price - 0.01).ask(price + 0.01))?;
        if i % 5 == 0 {
            publisher.publish(Update::new("EX.GADGET").last(price * 2.0).volume(i as f64))?;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
    Ok(())
}
