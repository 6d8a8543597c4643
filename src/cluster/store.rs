//! What the cluster keeps in Redis, and how: key and channel names, and
//! reading a topic back (value and history). The form of messages and
//! history entries is in `message` (a run's records in `tail`); the Lua
//! script that numbers a batch is in `script`, its calls in `numbering`.
//!
//! Topics are spread over `PARTITIONS` partitions by a fixed hash of their
//! name (the same on every node and every version that shares this
//! layout). Every key of a partition carries its number as a hash tag
//! (`{7}`), so one script call may number every update of one partition in
//! a writer's batch, and a Redis Cluster spreads the partitions over its
//! masters.
//!
//! | key / channel | what |
//! |---|---|
//! | `tc:{P}:v:T` | hash: `epoch`, `seq`, `ts`, `stale` (1 while its publisher is gone), each field set so far, and `_stale_after_ms` (its own, when set; a field's name never starts with `_`) |
//! | `tc:{P}:h:T` | list of runs, oldest first, two elements each: a run's header line and its records, as published (`message`); at least `history_len` runs, so at least as many updates |
//! | `tc:{P}:s:T`, `tc:{P}:zb:T`, `tc:{P}:za:T` | an order book: hash of `b<price>`/`a<price>` to size; bid and ask prices as sorted sets |
//! | `tc:{P}:w:N` | the last batch number writer `N` had applied in partition `P` (expires: `numbering::REMEMBER_SECS`) |
//! | `tc:{P}` (channel) | one message per batch and partition: its entries (`message`): runs of updates, book changes, `C T` on a clear, `S T 1` / `S T 0` on stale and live |
//! | `tc:topics` | sorted set (all scores 0) of every topic published, for prefix listings |

use super::message::{self, millis, Message};
use crate::engine::epoch::Epoch;
use crate::engine::history::Past;
use crate::engine::table::Snapshot;
use crate::model::book::{Level, Levels, Side};
use crate::model::update::Prices;
use std::time::Duration;

/// The sorted set of every topic published.
pub(crate) const TOPICS_KEY: &str = "tc:topics";

/// How many partitions topics are spread over. Part of the layout: every
/// node sharing a Redis must use the same number. 32 keeps a partition's
/// share of a full writer batch large enough to pay for its script call,
/// and spreads well over the masters of a small Redis Cluster.
pub(crate) const PARTITIONS: u32 = 32;

/// The partition a topic belongs to: FNV-1a of its name, a hash that never
/// changes with the toolchain or the process (unlike the std hasher).
pub(crate) fn partition(topic: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in topic.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % PARTITIONS
}

/// The hash holding a topic's value.
pub(crate) fn value_key(topic: &str) -> String {
    format!("tc:{{{}}}:v:{topic}", partition(topic))
}

/// The list holding a topic's recent entries.
pub(crate) fn history_key(topic: &str) -> String {
    format!("tc:{{{}}}:h:{topic}", partition(topic))
}

/// An order book's levels (`b<price>` / `a<price>` to size), and its bid
/// and ask prices as sorted sets (for the best of each side and the count).
pub(crate) fn book_keys(topic: &str) -> [String; 3] {
    let p = partition(topic);
    [
        format!("tc:{{{p}}}:s:{topic}"),
        format!("tc:{{{p}}}:zb:{topic}"),
        format!("tc:{{{p}}}:za:{topic}"),
    ]
}

/// The channel a partition's entries are published on.
pub(crate) fn channel(partition: u32) -> String {
    format!("tc:{{{partition}}}")
}

/// The key remembering the last batch `writer` had applied in `partition`.
pub(crate) fn applied_key(partition: u32, writer: &str) -> String {
    format!("tc:{{{partition}}}:w:{writer}")
}

/// How many entries a topic's history keeps in Redis: `history_len`, and
/// for a trade topic at least the trades its snapshot lists.
pub(crate) fn history_cap(topic: &str, history_len: usize, trades_snapshot: usize) -> usize {
    if crate::engine::table::is_trades(topic) {
        history_len.max(trades_snapshot)
    } else {
        history_len
    }
}

/// Reads a topic's value and last entries in one step (so the two agree).
/// KEYS: value, history. ARGV: how many entries.
/// KEYS: value, history, book sizes. ARGV: how many entries.
const READ_SCRIPT: &str = r#"
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], -tonumber(ARGV[1]), -1),
  redis.call('HGETALL', KEYS[3])}
"#;

/// A book as stored (`b<price>`/`a<price>` to size, flat), as a change
/// that replaces a node's copy with it.
fn book_of(flat: &[String]) -> Levels {
    let levels = flat
        .chunks_exact(2)
        .filter_map(|kv| {
            let side = match kv[0].get(..1)? {
                "b" => Side::Bid,
                "a" => Side::Ask,
                _ => return None,
            };
            let price = kv[0].get(1..)?.parse().ok()?;
            let size = kv[1].parse().ok()?;
            Some(Level { side, price, size })
        })
        .collect();
    Levels {
        levels,
        replace: true,
    }
}

/// The command that reads a topic back (see `topic_of`).
pub(crate) fn read_cmd(topic: &str, history_len: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    let [sizes, _, _] = book_keys(topic);
    cmd.arg(READ_SCRIPT)
        .arg(3)
        .arg(value_key(topic))
        .arg(history_key(topic))
        .arg(sizes)
        // Two elements a run (its header line, its records).
        .arg(2 * history_len.max(1));
    cmd
}

/// What `read_cmd` returns: the value's fields (flat), the entries, and an
/// order book's levels (flat).
pub(crate) type ReadReply = (Vec<String>, Vec<Vec<u8>>, Vec<String>);

/// A topic as the store holds it, from `read_cmd`'s reply.
pub(crate) struct Stored {
    /// Its value; None when it has none.
    pub value: Option<Snapshot>,
    /// Consecutive, ending at the value's `seq` (empty when they do not
    /// line up).
    pub history: Vec<Past>,
    /// Its own `stale_after`; None: the server's.
    pub stale_after: Option<Duration>,
    /// Of an order-book topic: its whole book, as a replacing change.
    pub book: Option<Levels>,
}

/// A topic as the store holds it (`Stored`), from `read_cmd`'s reply.
pub(crate) fn topic_of(
    topic: &str,
    (flat, entries, book): ReadReply,
    history_len: usize,
    names: &[Box<str>],
) -> Stored {
    let book = crate::model::book::is_book(topic).then(|| book_of(&book));
    let fields: Vec<(String, String)> = flat
        .chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect();
    let stale_after = fields
        .iter()
        .find(|(k, _)| k == "_stale_after_ms")
        .and_then(|(_, v)| millis(v))
        .flatten();
    let Some(value) = snapshot_of(&fields, names) else {
        return Stored {
            value: None,
            history: Vec::new(),
            stale_after,
            book: None,
        };
    };
    let mut history: Vec<Past> = Vec::new();
    if history_len > 0 {
        // A run is two elements (its header line, its records); runs of
        // the earlier forms are one each, and one-update entries too.
        // Joined by newlines they read as one message. Should the oldest
        // element be a run's records without their header (trimmed at an
        // odd length, left by an older version), they read as entries
        // that are not ours and are skipped.
        let joined = entries.join(&b'\n');
        for e in message::entries(&joined) {
            if let Some(Message::Update {
                update, epoch, seq, ..
            }) = e.parse(names)
            {
                let follows = history.last().is_none_or(|p| p.seq + 1 == seq);
                if epoch != value.epoch || !follows {
                    history.clear();
                    if epoch != value.epoch {
                        continue;
                    }
                }
                history.push(Past {
                    seq,
                    ts: update.timestamp_ns,
                    prices: update.prices,
                });
            }
        }
        if history.last().map(|p| p.seq) != Some(value.seq) {
            history.clear();
        }
        // Blocks hold whole runs: the oldest may reach past the cap.
        let extra = history.len().saturating_sub(history_len);
        history.drain(..extra);
    }
    Stored {
        value: Some(value),
        history,
        stale_after,
        book,
    }
}

fn snapshot_of(fields: &[(String, String)], names: &[Box<str>]) -> Option<Snapshot> {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let epoch = Epoch::parse(get("epoch")?)?;
    let seq: u64 = get("seq")?.parse().ok()?;
    let ts = get("ts").and_then(|v| v.parse().ok()).unwrap_or(0);
    // Every other key of the hash is a field, by name (a key this node
    // does not know is left out).
    let mut prices = Prices::default();
    for (k, v) in fields {
        if let Ok(v) = v.parse() {
            prices.set_named(k, v, names);
        }
    }
    // A node that loads the topic later must say it is stale too.
    let stale = get("stale") == Some("1");
    Some(Snapshot {
        seq,
        ts,
        prices,
        epoch,
        stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_topic_share_its_partition_hash_tag() {
        let p = partition("A.B");
        assert!(p < PARTITIONS);
        assert_eq!(value_key("A.B"), format!("tc:{{{p}}}:v:A.B"));
        assert_eq!(history_key("A.B"), format!("tc:{{{p}}}:h:A.B"));
        assert_eq!(channel(p), format!("tc:{{{p}}}"));
        assert_eq!(applied_key(p, "n1"), format!("tc:{{{p}}}:w:n1"));
        // Fixed forever: nodes of different builds must agree.
        assert_eq!(partition(""), 0x811c_9dc5 % PARTITIONS);
        assert_eq!(partition("BTC-USD"), 0x76ed_0931 % PARTITIONS);
        // Spread: 10,000 names leave no partition nearly empty or crowded.
        let mut count = [0u32; PARTITIONS as usize];
        for i in 0..10_000 {
            count[partition(&format!("SYM.{i}")) as usize] += 1;
        }
        let (lo, hi) = (count.iter().min().unwrap(), count.iter().max().unwrap());
        assert!(*lo > 200 && *hi < 430, "{count:?}");
    }

    #[test]
    fn a_value_read_back_keeps_its_stale_mark() {
        let e = Epoch::new();
        let hash = |stale: Option<&str>| {
            let mut f = vec![
                ("epoch".to_string(), e.as_str().to_string()),
                ("seq".to_string(), "7".to_string()),
                ("bid".to_string(), "1.5".to_string()),
            ];
            if let Some(s) = stale {
                f.push(("stale".to_string(), s.to_string()));
            }
            f
        };
        let read = |stale| snapshot_of(&hash(stale), &[]).unwrap();
        assert!(
            read(Some("1")).stale,
            "a publisher gone: stale for a node that loads it"
        );
        assert!(!read(Some("0")).stale);
        assert!(!read(None).stale, "written before the mark existed");
        assert_eq!(
            read(Some("1")).prices.bid,
            Some(1.5),
            "stale is not a field"
        );
        assert_eq!(read(Some("1")).seq, 7);
    }

    #[test]
    fn a_history_of_blocks_and_older_single_entries_reads_back_capped_and_consecutive() {
        let e = Epoch::new();
        let value = vec![
            "epoch".to_string(),
            e.as_str().to_string(),
            "seq".to_string(),
            "6".to_string(),
            "bid".to_string(),
            "6".to_string(),
        ];
        // This version's run: its header, then its binary records.
        let mut header = format!("R T {e} 6 1 99 bid ").into_bytes();
        let mut records = Vec::new();
        let six = Prices {
            bid: Some(6.0),
            ..Prices::default()
        };
        let record = super::super::tail::Record {
            columns: &[0],
            wall_ns: 99,
        };
        record.write(&mut records, 60, &six);
        header.extend_from_slice(records.len().to_string().as_bytes());
        let history = vec![
            // Written by older versions: one update per entry, then runs
            // with named fields.
            format!("U T {e} 1 10 99 bid 1").into_bytes(),
            format!("U T {e} 2 20 99 bid 2").into_bytes(),
            format!("R T {e} 5 3 99\n30 bid 3\n40 bid 4\n50 bid 5").into_bytes(),
            header,
            records,
        ];
        let read = |cap| {
            let reply = (value.clone(), history.clone(), Vec::new());
            topic_of("T", reply, cap, &[]).history
        };
        let seqs = |h: Vec<Past>| h.iter().map(|p| (p.seq, p.ts)).collect::<Vec<_>>();
        assert_eq!(
            seqs(read(10)),
            [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60)]
        );
        assert_eq!(
            seqs(read(4)),
            [(3, 30), (4, 40), (5, 50), (6, 60)],
            "a block reaching past the cap is cut"
        );
        // A gap (a block lost to a restart) leaves what follows it only.
        let mut gap = history.clone();
        gap.remove(2);
        let reply = (value.clone(), gap, Vec::new());
        let history = topic_of("T", reply, 10, &[]).history;
        assert_eq!(seqs(history.clone()), [(6, 60)]);
        assert_eq!(history[0].prices.bid, Some(6.0), "read from its record");
    }
}
