//! Settings of a remote publisher.

use std::time::Duration;

pub use crate::interest::InterestCallback;

/// A callback told how many updates a dropped connection may have lost.
pub type LossCallback = Box<dyn Fn(u64) + Send + Sync>;

/// Settings of a [`RemotePublisher`].
#[non_exhaustive]
pub struct RemoteConfig {
    /// `ws://host:port/publish`.
    pub url: String,
    /// A publisher token of the server (`publisher_tokens`).
    pub token: String,
    /// Updates queued in memory while sending or reconnecting. Default 65,536.
    pub queue_capacity: usize,
    /// Longest `publish` waits for room in the queue before `Error::Full`. Default 5 s.
    pub publish_timeout: Duration,
    /// Limit for each TCP connect and WebSocket handshake. Default 5 s.
    pub connect_timeout: Duration,
    /// First reconnect delay; doubles per failure up to `max_backoff`. Default 50 ms.
    pub min_backoff: Duration,
    /// Longest reconnect delay. Default 5 s.
    pub max_backoff: Duration,
    /// Most updates per frame. Default 512.
    pub batch_max: usize,
    /// For `wss://`: PEM file of the certificate authorities to trust. Default:
    /// the system bundle (`/etc/ssl/certs/ca-certificates.crt` or
    /// `/etc/pki/tls/certs/ca-bundle.crt`).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Called (on the background thread) with the number of updates a dropped
    /// connection may have lost.
    pub on_loss: Option<LossCallback>,
    /// Called (on the background thread) when a topic or pattern gains its
    /// first subscriber on the server or loses its last; on each
    /// (re)connection, once for each wanted then.
    pub on_interest: Option<InterestCallback>,
    /// Leave this publisher's topics live when it disconnects (the server
    /// marks them stale by default, so subscribers learn the feed is gone).
    /// For one-shot publishers: a command, a cron job. Default false.
    pub keep_live_on_leave: bool,
}

impl RemoteConfig {
    /// Defaults for `url` and `token`.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            token: token.into(),
            queue_capacity: 65_536,
            publish_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            batch_max: 512,
            tls_ca_file: None,
            on_loss: None,
            on_interest: None,
            keep_live_on_leave: false,
        }
    }

    /// Sets `keep_live_on_leave`: this publisher's topics stay live when it
    /// disconnects.
    pub fn keep_live_on_leave(mut self, keep: bool) -> Self {
        self.keep_live_on_leave = keep;
        self
    }

    /// Sets the interest callback (see `on_interest`).
    pub fn on_interest(
        mut self,
        f: impl Fn(&crate::interest::Interest) + Send + Sync + 'static,
    ) -> Self {
        self.on_interest = Some(Box::new(f));
        self
    }

    /// Sets the loss callback.
    pub fn on_loss(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.on_loss = Some(Box::new(f));
        self
    }

    /// Trusts the certificate authorities in this PEM file for `wss://`.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Sets the queue capacity.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Sets the reconnect backoff range.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }
}
