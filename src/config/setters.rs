//! The builder methods of [`Config`]: one per setting an embedding program
//! sets in code (the TOML file sets the same fields through `file`).

use super::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

impl Config {
    /// Sets the listen address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the number of router threads.
    pub fn routers(mut self, n: usize) -> Self {
        self.routers = n;
        self
    }

    /// Sets the number of shard threads.
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// Sets the ingest channel capacity.
    pub fn ingest_capacity(mut self, n: usize) -> Self {
        self.ingest_capacity = n;
        self
    }

    /// Sets the subscription limit per connection.
    pub fn max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// Sets the most topics one subscribe or unsubscribe may list.
    pub fn max_topics_per_command(mut self, n: usize) -> Self {
        self.max_topics_per_command = n;
        self
    }

    /// Sets the most topics the server holds.
    pub fn max_topics(mut self, n: usize) -> Self {
        self.max_topics = n;
        self
    }

    /// Sets the memory budget of all connections' queues together.
    pub fn max_total_outbound_bytes(mut self, n: usize) -> Self {
        self.max_total_outbound_bytes = n;
        self
    }

    /// Sets the largest accepted client message.
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }

    /// Sets the handshake deadline.
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Sets the connection limit.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets the conflation mark of the outbound queue.
    pub fn conflate_bytes(mut self, n: usize) -> Self {
        self.conflate_bytes = n;
        self
    }

    /// Sets the per-connection outbound limit.
    pub fn max_outbound_bytes(mut self, n: usize) -> Self {
        self.max_outbound_bytes = n;
        self
    }

    /// Sets the kernel send buffer of client sockets (0: the kernel's choice).
    pub fn socket_send_buffer(mut self, n: usize) -> Self {
        self.socket_send_buffer = n;
        self
    }

    /// Sets the heartbeat: ping after `ping` of silence, close after `idle`.
    pub fn heartbeat(mut self, ping: Duration, idle: Duration) -> Self {
        self.ping_interval = ping;
        self.idle_timeout = idle;
        self
    }

    /// Serves `wss://` on `listen` with this PEM certificate chain and key.
    pub fn tls(
        mut self,
        listen: SocketAddr,
        cert_chain: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls_listen = Some(listen);
        self.tls_cert = Some(cert_chain.into());
        self.tls_key = Some(key.into());
        self
    }

    /// Serves plain `ws://` on `listen` (true, the default) or not: with
    /// false, only `wss://` on the TLS listener.
    pub fn plain(mut self, on: bool) -> Self {
        self.plain = on;
        self
    }

    /// Turns the transport test mode (echo) on or off.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Sets the allowed browser origins (empty: any).
    pub fn allowed_origins(mut self, origins: Vec<String>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Sets the subscriber tokens (empty: subscribing is open).
    pub fn subscriber_tokens(mut self, tokens: Vec<String>) -> Self {
        self.subscriber_tokens = tokens;
        self
    }

    /// Sets the publisher tokens (empty: network publishing is off).
    pub fn publisher_tokens(mut self, tokens: Vec<String>) -> Self {
        self.publisher_tokens = tokens;
        self
    }

    /// Sets the tokens of the operator endpoints (`/admin/…`).
    pub fn admin_tokens(mut self, tokens: Vec<String>) -> Self {
        self.admin_tokens = tokens;
        self
    }

    /// Sets [`Config::permessage_deflate`].
    pub fn permessage_deflate(mut self, on: bool) -> Self {
        self.permessage_deflate = on;
        self
    }

    /// Sets [`Config::max_bytes_per_sec`].
    pub fn max_bytes_per_sec(mut self, bytes: u64) -> Self {
        self.max_bytes_per_sec = bytes;
        self
    }

    /// Compresses per connection (a window each) for up to `memory` bytes of
    /// contexts; `[compression] per_connection`.
    pub fn deflate_per_connection(mut self, on: bool, memory: usize) -> Self {
        self.deflate_per_connection = on;
        self.deflate_context_memory = memory;
        self
    }

    /// Sets [`Config::deflate_min_bytes`].
    pub fn deflate_min_bytes(mut self, bytes: usize) -> Self {
        self.deflate_min_bytes = bytes;
        self
    }

    /// Requires an admin token on `/metrics`.
    pub fn protect_metrics(mut self, on: bool) -> Self {
        self.protect_metrics = on;
        self
    }

    /// Accepts JWTs signed with the shared secret in this file.
    pub fn jwt_hmac_secret_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwt_hmac_secret_file = Some(path.into());
        self
    }

    /// Accepts JWTs verified with the PEM public key in this file.
    pub fn jwt_public_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwt_public_key_file = Some(path.into());
        self
    }

    /// Sets how long a connection may stay after its JWT expires.
    pub fn expiry_grace(mut self, d: Duration) -> Self {
        self.expiry_grace = d;
        self
    }

    /// Sets the commands per second per connection (0: no limit).
    pub fn max_commands_per_sec(mut self, rate: f64) -> Self {
        self.max_commands_per_sec = rate;
        self
    }

    /// Sets how many updates each topic keeps for resume, and the memory
    /// budget of all histories together.
    pub fn history(mut self, per_topic: usize, bytes: usize) -> Self {
        self.history_len = per_topic;
        self.history_bytes = bytes;
        self
    }

    /// Marks topics stale after this long without an update (None: never).
    pub fn stale_after(mut self, after: Option<Duration>) -> Self {
        self.stale_after = after;
        self
    }

    /// Caps the events per second per topic a subscription may ask for, and
    /// sets the rate of subscriptions that do not ask (None: no cap).
    pub fn max_rate(mut self, rate: Option<f64>) -> Self {
        self.max_rate = rate;
        self
    }

    /// Sets how many trades a trade topic's snapshot lists.
    pub fn extra_fields<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.extra_fields = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `trades_snapshot`.
    pub fn trades_snapshot(mut self, n: usize) -> Self {
        self.trades_snapshot = n;
        self
    }

    /// Trusts the authority in `ca` (PEM) for a `rediss://` Redis.
    pub fn redis_ca_file(mut self, ca: impl Into<PathBuf>) -> Self {
        self.redis_ca_file = Some(ca.into());
        self
    }

    /// Turns cluster mode on with the Redis at `url` (`redis://HOST:PORT`).
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(url.into());
        self
    }

    /// Sets the log level applied at start and at every reload.
    pub fn log_level(mut self, level: Option<log::LevelFilter>) -> Self {
        self.log_level = level;
        self
    }
}
