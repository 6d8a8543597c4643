//! `tickcastd`: the standalone tickcast daemon.
//!
//! ```text
//! tickcastd --demo                      # live simulated prices on 127.0.0.1:8080
//! tickcastd --demo --publisher-token demo-publisher   # and /publish open to that token
//! tickcastd --config /etc/tickcast/tickcastd.toml --listen 0.0.0.0:8080
//! tickcastd --check-config /etc/tickcast/tickcastd.toml   # 0 and "ok", or 2 and why
//! ```
//! SIGINT or SIGTERM: stop accepting, close every WebSocket with 1001, exit 0.
//! SIGHUP: read the config file again and apply it without a restart (a
//! bad file is refused, with the reason logged, and the old one kept).

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::process::ExitCode;
use tickcast::daemon::demo::DemoFeed;
use tickcast::daemon::self_signed::{self, SelfSigned};
use tickcast::daemon::{DaemonConfig, Flags};
use tickcast::Server;

/// jemalloc, not glibc's malloc: the routers allocate every frame and the
/// shards free it, and glibc locks the allocating arena for each such
/// cross-thread free. With 1,000 rate-capped subscribers ingest took 22-32%
/// less CPU per update with jemalloc, and soak silences were shorter, while
/// memory under a slow-consumer attack stayed within the same ratios of
/// what the server counts (BENCHMARKS.md, "tickcastd on jemalloc").
/// `--no-default-features` builds the daemon on the system allocator.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`: a background thread hands
/// unused pages back to the system a second after they were freed (the
/// decay), so memory that a burst of slow consumers used comes back
/// without a trim (`muzzy_decay_ms:0`: returned pages are unmapped at once
/// instead of lingering as lazily freed, which RSS would still count).
#[cfg(feature = "jemalloc")]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

#[derive(Parser, Debug)]
#[command(
    name = "tickcastd",
    version,
    about = "tickcast market-data fan-out daemon"
)]
struct Cli {
    /// TOML configuration file (see tickcastd.example.toml); flags win over it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 or [::]:8080 (port 0 picks one).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Shard threads (event loops); default: number of cores.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Router threads (1-16); each topic is numbered by one. Default: 2.
    #[arg(long, value_name = "N")]
    routers: Option<usize>,
    /// Run the built-in simulated feed (three dozen instruments).
    #[arg(long)]
    demo: bool,
    /// Demo feed updates per second, across all instruments (default 200).
    #[arg(long, value_name = "N")]
    demo_rate: Option<u32>,
    /// error, warn, info, debug or trace (default info).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Address for wss:// (with --tls-cert and --tls-key).
    #[arg(long, value_name = "HOST:PORT")]
    tls_listen: Option<String>,
    /// PEM certificate chain for wss://.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for wss://.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// wss:// in one flag: make a throwaway certificate authority and a
    /// certificate for localhost, 127.0.0.1 and ::1 at start, write the
    /// authority's certificate (ca.pem) into DIR (default
    /// $XDG_RUNTIME_DIR/tickcastd) for clients to trust, and serve wss://
    /// on --tls-listen (default 127.0.0.1:8443) beside ws://.
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    tls_self_signed: Option<Option<PathBuf>>,
    /// Serve only wss://: no plain ws:// listener.
    #[arg(long)]
    tls_only: bool,
    /// Cluster mode: share topics with the other nodes on this Redis
    /// (redis://HOST:PORT, rediss:// for TLS; docs/CLUSTER.md).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// The CA certificate (PEM) a rediss:// Redis's certificate must chain
    /// to (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    redis_ca: Option<PathBuf>,
    /// A publisher token for /publish, added to the file's publisher_tokens
    /// (repeatable; at least 8 characters). Visible in `ps`: prefer the file
    /// or TICKCAST_PUBLISHER_TOKEN outside a trial.
    #[arg(
        long = "publisher-token",
        value_name = "TOKEN",
        env = "TICKCAST_PUBLISHER_TOKEN"
    )]
    publisher_tokens: Vec<String>,
    /// Check FILE (with the other flags over it) as a start would, TLS files
    /// and what clients will make of the certificate included, then exit: 0
    /// and "ok", or 2 and the reason. Without FILE: the --config file, or
    /// the flags alone.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    check_config: Option<Option<PathBuf>>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut flags = flags_of(&cli);
    let self_signed = match &cli.tls_self_signed {
        Some(dir) => match self_signed(dir.clone(), &mut flags) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("tickcastd: --tls-self-signed: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if let Some(file) = &cli.check_config {
        return check_config(file.as_deref().or(cli.config.as_deref()), &flags);
    }
    let cfg = match DaemonConfig::load(cli.config.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tickcastd: {e}");
            return ExitCode::from(2);
        }
    };
    tickcast::logging::init(cfg.log_level);
    raise_fd_limit();

    // Register before starting threads so no signal is missed.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    tickcast::faults::arm_from_env();
    let server = match Server::start(cfg.server.clone()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SIGHUP and `POST /admin/reload` read the file again, flags over it.
    let (path, reload_flags) = (cli.config.clone(), flags.clone());
    server.set_config_source(move || {
        DaemonConfig::load(path.as_deref(), &reload_flags).map(|c| c.server)
    });
    // Only now say where it listens: a client that reads the log line and
    // at once posts `/admin/reload` finds the source set.
    announce(&server, &cfg);
    if let Some(s) = &self_signed {
        announce_self_signed(&server, s);
    }
    let demo = cfg.demo_rate.map(|rate| {
        log::info!(
            "demo feed: {} instruments at {rate} updates/s",
            tickcast::daemon::demo::topics().count()
        );
        DemoFeed::start(server.publisher(), rate)
    });

    watch_for_failure(&server);
    return_memory_when_freed(&server);
    let name = wait_for_stop(&mut signals, &server);
    log::info!("{name} received: closing connections and shutting down");
    drop(demo);
    let open = server.connection_count();
    server.shutdown();
    log::info!("shutdown complete ({open} connections closed)");
    ExitCode::SUCCESS
}

/// Reloads on each SIGHUP until SIGINT or SIGTERM comes; returns its name.
fn wait_for_stop(signals: &mut Signals, server: &Server) -> &'static str {
    let signal = signals.forever().find(|&s| {
        if s != SIGHUP {
            return true;
        }
        log::info!("SIGHUP received: reloading the configuration");
        // The outcome, applied or refused, is logged by the reload.
        let _ = server.reload_from_source();
        false
    });
    match signal {
        Some(SIGINT) => "SIGINT",
        Some(SIGTERM) => "SIGTERM",
        _ => "signal",
    }
}

/// `--check-config FILE`: 0 and "ok", or 2 and the reason.
fn check_config(file: Option<&std::path::Path>, flags: &Flags) -> ExitCode {
    let what = file.map_or("the flags".to_string(), |f| f.display().to_string());
    if let Err(e) = flags.check() {
        eprintln!("tickcastd: {e}");
        return ExitCode::from(2);
    }
    let checked = DaemonConfig::load(file, flags).and_then(|cfg| Server::check_config(&cfg.server));
    match checked {
        Ok(()) => {
            println!("{what}: ok");
            ExitCode::SUCCESS
        }
        // Errors that come from the file name it already; flags alone: no file to name.
        Err(e) if file.is_none() || e.to_string().contains(&what) => {
            eprintln!("tickcastd: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("tickcastd: {what}: {e}");
            ExitCode::from(2)
        }
    }
}

/// The flags that the daemon's configuration lays over its file.
fn flags_of(cli: &Cli) -> Flags {
    Flags {
        listen: cli.listen.clone(),
        shards: cli.shards,
        routers: cli.routers,
        demo: cli.demo,
        demo_rate: cli.demo_rate,
        log_level: cli.log_level.clone(),
        tls_listen: cli.tls_listen.clone(),
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        tls_only: cli.tls_only,
        redis: cli.redis.clone(),
        redis_ca: cli.redis_ca.clone(),
        publisher_tokens: cli.publisher_tokens.clone(),
    }
}

/// Makes the throwaway certificate and points the TLS flags at it (so a
/// reload reads the same files, not new ones).
fn self_signed(dir: Option<PathBuf>, flags: &mut Flags) -> Result<SelfSigned, String> {
    if flags.tls_cert.is_some() || flags.tls_key.is_some() {
        return Err("it makes its own certificate: drop --tls-cert and --tls-key".into());
    }
    let listen = flags
        .tls_listen
        .get_or_insert_with(|| "127.0.0.1:8443".into());
    let host = listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .map_err(|_| format!("--tls-listen {listen:?} must be an address, like 127.0.0.1:8443"))?;
    let dir = dir.unwrap_or_else(self_signed::default_dir);
    let made = self_signed::make(&dir, &self_signed::names_for(Some(host)))?;
    flags.tls_cert = Some(made.cert.clone());
    flags.tls_key = Some(made.key.clone());
    Ok(made)
}

/// Says where the throwaway certificate's authority is and how each kind
/// of client trusts it; loudly when the listener is not on loopback.
fn announce_self_signed(server: &Server, s: &SelfSigned) {
    let Some(addr) = server.tls_addr() else {
        return;
    };
    let ca = s.ca.display();
    log::info!(
        "wss://localhost:{}/ws serves a throwaway certificate for {}; its authority is {ca} \
         (SHA-256 {})",
        addr.port(),
        s.names.join(", "),
        s.ca_sha256
    );
    log::info!(
        "trust it: tickcast sub --ca {ca} wss://localhost:{port}/ws | Node: NODE_EXTRA_CA_CERTS={ca} | \
         Python: ssl.create_default_context(cafile=\"{ca}\") | Chromium: \
         --ignore-certificate-errors-spki-list={}",
        s.spki_sha256,
        port = addr.port()
    );
    if !addr.ip().is_loopback() {
        log::warn!(
            "--tls-self-signed on {addr}, which is not a loopback address: clients elsewhere \
             will refuse this certificate unless given its authority, and it names only this \
             machine's loopback addresses; use a real certificate (docs/OPERATIONS.md, TLS)"
        );
    }
}

/// Logs where the daemon listens, how access is set up (never the tokens
/// themselves) and, in cluster mode, which Redis (never its password).
fn announce(server: &Server, cfg: &DaemonConfig) {
    let addr = server.local_addr();
    let (ws, http, only) = if cfg.server.plain {
        ("ws", "http", "")
    } else {
        ("wss", "https", "TLS only, ")
    };
    log::info!(
        "tickcastd {} listening on {addr}: {only}subscribe at {ws}://{addr}/ws, health at {http}://{addr}/healthz ({} shards)",
        env!("CARGO_PKG_VERSION"),
        cfg.server.shards
    );
    if let Some(tls) = server.tls_addr().filter(|_| cfg.server.plain) {
        log::info!("TLS: wss://{tls}/ws");
    }
    match Server::certificate_names(&cfg.server) {
        Ok(names) if !names.is_empty() => {
            log::info!(
                "TLS certificate names (clients connect with one): {}",
                names.join(", ")
            )
        }
        Ok(_) => {}
        Err(e) => log::warn!("{e}"),
    }
    let subs = match cfg.server.subscriber_tokens.len() {
        0 => "subscribers: open (no subscriber tokens)".to_string(),
        n => format!("subscribers: token required ({n} tokens)"),
    };
    let pubs = match cfg.server.publisher_tokens.len() {
        0 => "network publishing: off (no publisher tokens)".to_string(),
        n => format!("network publishing: on at ws://{addr}/publish ({n} tokens)"),
    };
    log::info!("access: {subs}; {pubs}");
    if let Some(url) = &cfg.server.redis {
        let shown = match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://(credentials)@{host}"),
            _ => url.clone(),
        };
        log::info!("cluster mode: topics are shared through the Redis at {shown}");
    }
}

/// A server thread that died of a bug leaves a server that cannot serve
/// all its clients: exit non-zero (70) so the supervisor starts a fresh one.
fn watch_for_failure(server: &Server) {
    let watched = server.failure_watch();
    std::thread::Builder::new()
        .name("tickcastd-watch".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if watched() {
                log::error!(
                    "a server thread failed; exiting with status 70 so tickcastd is restarted"
                );
                std::process::exit(70);
            }
        })
        .expect("a watch thread");
}

/// jemalloc's decay hands freed pages back by itself (`MALLOC_CONF`).
#[cfg(feature = "jemalloc")]
fn return_memory_when_freed(_: &Server) {}

#[cfg(not(feature = "jemalloc"))]
use glibc_heap::return_memory_when_freed;

/// The build on glibc's malloc (`--no-default-features`): glibc keeps the
/// pages a burst of slow consumers used (their queues' big buffers come
/// from the heap once the mmap threshold has risen, and free pages inside
/// a heap stay resident): after such an attack RSS stayed at 1.7-2.5x its
/// size before. When that memory falls (clients left, their queues
/// drained, their memberships withdrawn), a thread of its own (never a
/// shard loop: trimming locks each arena in turn) asks glibc to return its
/// free pages. mimalloc returned them by itself but grew RSS 1.6-2x what
/// the server counted during the attack, against 1.2x for glibc
/// (BENCHMARKS.md, "Issue 25: hostile load, round 2").
#[cfg(not(feature = "jemalloc"))]
mod glibc_heap {
    use tickcast::Server;

    /// Hands memory back to the system once what clients account for has
    /// fallen by at least this much (and by half) since its high-water mark.
    const RETURN_AFTER_FALL: u64 = 8 << 20;

    pub(super) fn return_memory_when_freed(server: &Server) {
        fixed_mmap_threshold();
        let held = server.client_memory_watch();
        std::thread::Builder::new()
            .name("tickcastd-memory".into())
            .spawn(move || {
                let mut high = 0u64;
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    let now = held();
                    high = high.max(now);
                    if high - now >= RETURN_AFTER_FALL && now <= high / 2 {
                        let started = std::time::Instant::now();
                        trim_heap();
                        log::debug!(
                            "returned free memory to the system ({} MB for clients, {} MB at the peak) in {:?}",
                            now >> 20,
                            high >> 20,
                            started.elapsed()
                        );
                        high = now;
                    }
                }
            })
            .expect("a memory thread");
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn trim_heap() {
        // SAFETY: malloc_trim takes no pointers; glibc locks what it walks.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// Blocks of 256 KiB and more (the queues of backed-up connections) get
    /// pages of their own, handed back the moment they are freed. glibc's
    /// default threshold rises to 32 MiB after the first such block is freed,
    /// and from then on they come from the heap and stay there.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn fixed_mmap_threshold() {
        // SAFETY: mallopt only sets a tunable of the allocator.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn trim_heap() {}

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn fixed_mmap_threshold() {}
}

/// A fan-out server holds one descriptor per subscriber; the usual soft limit
/// of 1024 would cap it long before memory does.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = lim.rlim_max;
            lim.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                log::debug!("open-file limit raised to {wanted}");
            }
        }
    }
}
