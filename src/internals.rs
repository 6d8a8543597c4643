//! Internals for the criterion benchmarks (benches/hot_path.rs), and nothing
//! else: hidden from the docs, not part of the API, no stability promise.
//! Production code never calls into this module; it only reaches in.

use crate::config::Config;
use crate::engine::link::Outlet;
use crate::engine::op::{IngestOp, Ingested};
use crate::engine::router::{RouterConfig, RouterWork};
use crate::engine::table::TopicTable;
use crate::metrics::Metrics;
use crate::model::format::Format;
use crate::net::mailbox::{ShardLink, ShardMsg};
use crossbeam_channel::{bounded, Receiver};
use std::sync::Arc;
use std::time::Instant;

pub use crate::model::event::{Price, PriceKind};
pub use crate::net::outbound::{Outbound, Tally};
pub use crate::wire::command::parse as parse_command;
pub use crate::wire::event::encode_price;
pub use crate::wire::frame::FrameBuf;

/// The router's real per-batch work outside its thread, with one shard (a
/// channel nobody serves) that wants every topic in JSON.
pub struct RouterBench {
    work: RouterWork,
    links: Vec<Arc<dyn Outlet>>,
    rx: Receiver<ShardMsg>,
    _poll: mio::Poll,
}

impl RouterBench {
    /// Creates the router state with `topics` topics, all wanted by shard 0,
    /// and the default history (256 updates per topic).
    pub fn new(topics: &[String]) -> Self {
        Self::with_history(topics, Config::default().history_len)
    }

    /// The same with `history_len` updates kept per topic (0: no history).
    pub fn with_history(topics: &[String], history_len: usize) -> Self {
        let poll = mio::Poll::new().expect("a poll for the waker");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("a waker"));
        let (tx, rx) = bounded(1024);
        let table = Arc::new(TopicTable::default());
        for t in topics {
            table.join_exact(&Arc::from(t.as_str()), 0, Format::Json, None);
        }
        let metrics = Arc::new(Metrics::new(1));
        RouterBench {
            work: RouterWork::new(
                table,
                1,
                RouterConfig {
                    history_len,
                    ..RouterConfig::from(&Config::default())
                },
                metrics,
                Box::new(crate::wire::event::Encoder::default()),
            ),
            links: vec![Arc::new(ShardLink { tx, waker })],
            rx,
            _poll: poll,
        }
    }

    /// The same for order-book topics, subscribed at `depth`, each filled
    /// with `levels` levels a side around 100.
    pub fn with_books(topics: &[String], depth: usize, levels: usize) -> Self {
        let mut bench = Self::with_history(topics, 0);
        let class = crate::model::book::class_of(depth).expect("one of book::DEPTHS");
        bench.work.table().want_book_class(class);
        let full: Vec<crate::model::update::Update> = topics
            .iter()
            .map(|t| {
                let mut u = crate::model::update::Update::new(t.as_str()).replace_book();
                for l in 0..levels {
                    let away = l as f64 * 0.01;
                    u = u
                        .level(crate::model::book::Side::Bid, 100.0 - away, 5.0)
                        .level(crate::model::book::Side::Ask, 100.01 + away, 5.0);
                }
                u
            })
            .collect();
        bench.route(&full);
        bench
    }

    /// Routes one batch (sequence, merge, encode once, hand to the shard, wake it).
    pub fn route(&mut self, updates: &[crate::model::update::Update]) {
        let now = Instant::now();
        let mut batch: Vec<Ingested> = updates
            .iter()
            // Stamped once per batch: a publisher stamps its own updates
            // on its own thread; the router reads the stamp, never the clock.
            .map(|u| Ingested {
                op: IngestOp::Update(u.clone()),
                at: now,
            })
            .collect();
        self.work.route(&mut batch, &self.links);
        while self.rx.try_recv().is_ok() {}
    }
}
