//! The Prometheus text exposition (version 0.0.4): one-sample metrics
//! from a table, the labelled ones, the latency histogram, the cluster's.

use super::{sizes, CloseReason, Metrics, RouterMetrics, ShardMetrics, LATENCY_BUCKETS};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

impl Metrics {
    /// Renders the Prometheus text exposition (version 0.0.4): the
    /// one-sample metrics from [`SINGLE`], then those with labels, then the
    /// latency histogram and the cluster's.
    pub fn render(&self, topics: usize, shutting_down: bool) -> String {
        let mut o = String::with_capacity(4096);
        let at = Snapshot {
            m: self,
            topics: topics as u64,
            shutting_down,
        };
        for s in SINGLE {
            let value = (s.value)(&at).to_string();
            write_metric(&mut o, s.name, s.kind, s.help, &[(String::new(), value)]);
        }
        self.render_labelled(&mut o, &at);
        self.render_latency(&mut o);
        self.cluster.render(&mut o);
        o
    }

    fn render_labelled(&self, o: &mut String, at: &Snapshot) {
        let closed: Vec<(String, String)> = CloseReason::ALL
            .iter()
            .map(|r| {
                let n = self.sum(|s| s.closed[r.index()].load(Relaxed));
                (format!("{{reason=\"{}\"}}", r.label()), n.to_string())
            })
            .collect();
        write_metric(
            o,
            "tickcast_connections_closed_total",
            "counter",
            "Connections closed, by reason.",
            &closed,
        );
        let refused = [
            ("too_many_topics", &self.router.refused_topics),
            ("book", &self.router.refused_books),
        ];
        write_metric(
            o,
            "tickcast_updates_refused_total",
            "counter",
            "Updates the router dropped, by reason (too_many_topics: a new topic \
             in flight when max_topics was reached; publishers are told first; \
             book: a book change that would cross the book or make it too deep).",
            &refused
                .iter()
                .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n.load(Relaxed).to_string()))
                .collect::<Vec<_>>(),
        );
        let [connections, outbound, index] = self.client_memory();
        let parts = [
            connections,
            outbound,
            index,
            ("topics", at.topics * sizes::TOPIC),
            ("history", self.router.history_bytes.load(Relaxed)),
            (
                "ingest",
                self.router.queue_depth.load(Relaxed) * sizes::INGEST_OP,
            ),
        ];
        write_metric(
            o,
            "tickcast_memory_estimated_bytes",
            "gauge",
            "What the server holds, by part, estimated from counts and measured sizes \
             (kernel socket buffers are not the process's); compare their sum with RSS.",
            &parts
                .iter()
                .map(|(part, v)| (format!("{{part=\"{part}\"}}"), v.to_string()))
                .collect::<Vec<_>>(),
        );
    }

    fn render_latency(&self, o: &mut String) {
        let name = "tickcast_delivery_latency_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time from ingest to the socket write that carried the update (oldest update per write)."
        );
        let _ = writeln!(o, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.sum(|s| s.latency_buckets[i].load(Relaxed));
            let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.sum(|s| s.latency_buckets[LATENCY_BUCKETS.len()].load(Relaxed));
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum_ns = self.sum(|s| s.latency_sum_ns.load(Relaxed));
        let _ = writeln!(o, "{name}_sum {}", sum_ns as f64 / 1e9);
        let _ = writeln!(o, "{name}_count {cumulative}");
    }
}

fn write_metric(o: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(o, "{name}{labels} {value}");
    }
}

/// What one rendering reads, beside the counters themselves.
struct Snapshot<'a> {
    m: &'a Metrics,
    topics: u64,
    shutting_down: bool,
}

impl Snapshot<'_> {
    fn sum(&self, f: impl Fn(&ShardMetrics) -> u64) -> u64 {
        self.m.sum(f)
    }

    /// A gauge summed over shards; a shard's own may dip below zero
    /// between its increments and another's decrements.
    fn gauge(&self, f: impl Fn(&ShardMetrics) -> i64) -> u64 {
        self.m.shards.iter().map(f).sum::<i64>().max(0) as u64
    }

    fn open(&self) -> u64 {
        self.gauge(|s| s.open.load(Relaxed))
    }

    fn queued(&self) -> u64 {
        self.gauge(|s| s.queued_bytes.load(Relaxed))
    }

    fn memberships(&self) -> u64 {
        self.sum(|s| s.memberships.load(Relaxed))
    }

    fn router(&self, f: impl Fn(&RouterMetrics) -> &AtomicU64) -> u64 {
        f(&self.m.router).load(Relaxed)
    }
}

/// A metric with one sample and no labels.
struct Single {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&Snapshot) -> u64,
}

/// The one-sample metrics, in the order they are rendered.
const SINGLE: &[Single] = &[
    Single {
        name: "tickcast_connections",
        kind: "gauge",
        help: "Open client connections.",
        value: |at| at.open(),
    },
    Single {
        name: "tickcast_connections_accepted_total",
        kind: "counter",
        help: "Connections accepted.",
        value: |at| at.sum(|s| s.accepted.load(Relaxed)),
    },
    Single {
        name: "tickcast_subscriptions",
        kind: "gauge",
        help: "Active subscriptions (exact topics and patterns).",
        value: |at| at.gauge(|s| s.subscriptions.load(Relaxed)),
    },
    Single {
        name: "tickcast_topics",
        kind: "gauge",
        help: "Topics with a value.",
        value: |at| at.topics,
    },
    Single {
        name: "tickcast_updates_ingested_total",
        kind: "counter",
        help: "Updates sequenced by the router.",
        value: |at| at.router(|r| &r.ingested),
    },
    Single {
        name: "tickcast_connections_refused_fd_limit_total",
        kind: "counter",
        help: "Connections answered 503 because the process was out of file descriptors.",
        value: |at| at.sum(|s| s.fd_refused.load(Relaxed)),
    },
    Single {
        name: "tickcast_publish_refused_total",
        kind: "counter",
        help: "Updates from network publishers refused (each named by index to its publisher).",
        value: |at| at.sum(|s| s.publish_refused.load(Relaxed)),
    },
    Single {
        name: "tickcast_updates_encoded_total",
        kind: "counter",
        help: "Frames encoded by the router (once per update and wire format in use).",
        value: |at| at.router(|r| &r.encoded),
    },
    Single {
        name: "tickcast_ingest_queue_depth",
        kind: "gauge",
        help: "Updates waiting in the ingest channel at the router's last batch.",
        value: |at| at.router(|r| &r.queue_depth),
    },
    Single {
        name: "tickcast_history_entries",
        kind: "gauge",
        help: "Updates kept in the per-topic histories for resume.",
        value: |at| at.router(|r| &r.history_entries),
    },
    Single {
        name: "tickcast_history_bytes",
        kind: "gauge",
        help: "Memory the per-topic histories use, within the history_bytes budget.",
        value: |at| at.router(|r| &r.history_bytes),
    },
    Single {
        name: "tickcast_history_len",
        kind: "gauge",
        help: "Updates kept per topic for resume (the history_len setting).",
        value: |at| at.router(|r| &r.history_len),
    },
    Single {
        name: "tickcast_history_budget_bytes",
        kind: "gauge",
        help: "Memory all histories may use together (the history_bytes setting).",
        value: |at| at.router(|r| &r.history_budget),
    },
    Single {
        name: "tickcast_frames_delivered_total",
        kind: "counter",
        help: "Update frames queued to subscribers.",
        value: |at| at.sum(|s| s.frames.load(Relaxed)),
    },
    Single {
        name: "tickcast_deflate_sessions_total",
        kind: "counter",
        help: "WebSocket sessions that negotiated permessage-deflate.",
        value: |at| at.sum(|s| s.deflate_sessions.load(Relaxed)),
    },
    Single {
        name: "tickcast_deflate_compressions_total",
        kind: "counter",
        help: "Event frames compressed: once per event, format and depth class, shared by every permessage-deflate subscriber.",
        value: |at| at.sum(|s| s.deflate_compressions.load(Relaxed)),
    },
    Single {
        name: "tickcast_deflated_frames_total",
        kind: "counter",
        help: "Deliveries of an event frame that took its compressed form (permessage-deflate).",
        value: |at| at.sum(|s| s.deflated_frames.load(Relaxed)),
    },
    Single {
        name: "tickcast_messages_received_total",
        kind: "counter",
        help: "WebSocket messages read from clients (commands, publish frames, pings).",
        value: |at| at.sum(|s| s.received.load(Relaxed)),
    },
    Single {
        name: "tickcast_bytes_written_total",
        kind: "counter",
        help: "Bytes written to client sockets.",
        value: |at| at.sum(|s| s.bytes.load(Relaxed)),
    },
    Single {
        name: "tickcast_socket_writes_total",
        kind: "counter",
        help: "write() calls on client sockets (frames per write = frames / writes).",
        value: |at| at.sum(|s| s.writes.load(Relaxed)),
    },
    Single {
        name: "tickcast_conflated_updates_total",
        kind: "counter",
        help: "Updates replaced by a newer one for a slow consumer (conflation).",
        value: |at| at.sum(|s| s.conflated.load(Relaxed)),
    },
    Single {
        name: "tickcast_outbound_queued_bytes",
        kind: "gauge",
        help: "Memory connections hold: their outbound queues (buffer capacity, not the kernel's) and held-back updates.",
        value: |at| at.queued(),
    },
    Single {
        name: "tickcast_outbound_budget_bytes",
        kind: "gauge",
        help: "Bytes all connections' outbound queues may hold together (max_total_outbound_bytes); past it the largest holders are closed.",
        value: |at| at.m.outbound_budget.load(Relaxed),
    },
    Single {
        name: "tickcast_index_memberships",
        kind: "gauge",
        help: "Subscribers per topic, summed over topics: what each update's fan-out visits.",
        value: |at| at.memberships(),
    },
    Single {
        name: "tickcast_slow_consumer_closes_total",
        kind: "counter",
        help: "Connections closed for falling too far behind.",
        value: |at| at.sum(|s| s.closed[CloseReason::SlowConsumer.index()].load(Relaxed)),
    },
    Single {
        name: "tickcast_shutting_down",
        kind: "gauge",
        help: "1 while shutting down.",
        value: |at| at.shutting_down as u64,
    },
];
