//! Publishes a simulated feed into a running tickcastd over the network.
//!
//! ```text
//! # tickcastd.toml:  [auth] publisher_tokens = ["my-publisher-token"]
//! tickcastd --config tickcastd.toml &
//! cargo run --example remote_publisher -- ws://127.0.0.1:8080/publish my-publisher-token
//! ```
//! Kill and restart the daemon while it runs: the publisher reconnects by
//! itself and prints how many updates the outage may have lost.

use std::time::Duration;
use tickcast::{RemoteConfig, RemotePublisher, Update};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/publish".into());
    let token = args.next().ok_or("usage: remote_publisher URL TOKEN")?;
    let publisher = RemotePublisher::connect(
        RemoteConfig::new(url, token)
            .on_loss(|n| eprintln!("connection lost; {n} updates may not have arrived")),
    )?;
    let mut mid = 64_250.0_f64;
    for i in 0u64.. {
        mid += if i % 5 < 3 { 0.5 } else { -0.5 };
        // Waits at most publish_timeout (5 s) for room while the daemon is away.
        if let Err(e) =
            publisher.publish(Update::new("REMOTE.BTC-USD").bid(mid - 0.5).ask(mid + 0.5))
        {
            eprintln!("publish: {e}");
        }
        if i % 100 == 0 {
            println!(
                "sent {} acknowledged {} lost {} connected {}",
                i + 1,
                publisher.acknowledged(),
                publisher.lost(),
                publisher.is_connected()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
