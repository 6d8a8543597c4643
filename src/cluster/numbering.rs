//! Numbering in Redis, a batch at a time: the Lua script that numbers every
//! operation of one partition in a writer's batch, and the script calls
//! that carry a batch (one per partition it touches).
//!
//! Exactly once: each writer has an id (random, per process) and numbers
//! its batches 1, 2, 3, ... A script call first compares the batch's number
//! with the last one this writer had applied in the partition
//! (`store::applied_key`, kept `REMEMBER_SECS`), and does nothing when it
//! is not newer. A batch sent again after a lost connection (the writer
//! cannot know which of its calls Redis ran before the loss) therefore
//! numbers only what was not numbered yet. Batches of one writer reach
//! Redis in order (one pipeline at a time), so "not newer" can only mean
//! "already applied".

use super::store::{self, PARTITIONS};
use crate::engine::op::{IngestOp, Ingested};
use crate::model::book::Side;
use crate::model::update::Update;
use std::collections::HashMap;
use std::fmt::Write;

/// How long Redis remembers a writer's last batch per partition. A batch
/// cut off by a lost connection is sent again within seconds of
/// reconnecting, so an hour covers any outage a node rides out with its
/// batch in hand; past it, a resend could number its updates again.
pub(crate) const REMEMBER_SECS: u64 = 3600;

/// Numbers the operations of one partition of a batch, atomically, unless
/// this writer's batch was applied here before.
///
/// KEYS: the writer's applied key, then each operation's value and history
/// keys. ARGV: batch number, `REMEMBER_SECS`, an epoch base (a random u32),
/// the partition's channel, the wall time of the batch (ns, carried in each
/// run's header for the lag metric), then per operation:
/// - `R` (a run of a topic's updates with nothing else of that topic
///   between them, at most `BLOCK`), topic, count, history cap (in runs),
///   the count of value-field pairs, the pairs (the last value of each
///   field the run carries, its last `ts`, and `stale` 0), then the run's
///   tails (`ts name value ...`), one per line, as one argument;
/// - `B`, topic, ts, the entry's tail (`ts wall replace side price size
///   ...`), replace (`1` or `0`), the level count, then each level's side
///   (`b` or `a`), price and size: an order-book change (keys: value,
///   history, then the book's sizes hash and its bid and ask sorted sets).
///   It is checked as a node checks it (`model::book`): a change that would
///   cross the book or pass `MAX_LEVELS_PER_SIDE` levels a side is undone
///   and not numbered, so every node applies exactly what Redis numbered;
/// - `C`, topic (a clear: value, history and book deleted; keys as `B`);
/// - `S`, topic, `1` or `0` (stale or live, kept in the value);
/// - `A`, topic, milliseconds or `-` (the topic's own `stale_after`, or the
///   server's: kept in the value as `_stale_after_ms` (an extra field's
///   name starts with a letter, so it never clashes), so every node, and a
///   node that loads the topic later, applies the same; a clear drops it,
///   as on a single node).
///
/// Values travel as decimal text: Lua never turns them into numbers, so no
/// precision is lost. Why a run is shaped so: in Redis's Lua every string
/// made and every `redis.call` costs far more than the work it stands for,
/// so a run costs the same whatever its length, and makes no string per
/// update. It takes the topic's `seq` and epoch, or a new one (the base
/// xor a counter, distinct within the call) when its numbering starts at
/// 1, writes the new `seq` with its fields merged into the value in one
/// `HSET`, and makes one string, the run's block (`message`: a header
/// `R topic epoch last count wall`, then the tails as the writer sent them),
/// pushed as one element of the topic's history and published. So three
/// Redis calls per run (`HMGET`, `HSET`, `RPUSH`). The history is trimmed
/// to its cap in blocks only once it passes it by a quarter, so trimming
/// costs one call per many runs; each block holds at least one update, so
/// `cap` blocks hold at least `cap` updates (readers keep the last `cap`).
/// One `PUBLISH` carries every entry of the call, one per line. Returns 0
/// when the batch had been applied already, else 1 + the book changes it
/// refused.
pub(crate) const SCRIPT: &str = r#"
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local base = tonumber(ARGV[3])
local wall = ' ' .. ARGV[5] .. '\n'
local out, fresh, refused = {}, 0, 0
local a, k, n = 6, 2, #ARGV
while a <= n do
  local kind, topic, v, h = ARGV[a], ARGV[a + 1], KEYS[k], KEYS[k + 1]
  k = k + 2
  if kind == 'R' then
    local m, cap, nf = ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local now = redis.call('HMGET', v, 'seq', 'epoch')
    local seq, epoch = tonumber(now[1]) or 0, now[2]
    if seq == 0 or not epoch then
      fresh = fresh + 1
      epoch = bit.tohex(bit.bxor(base, fresh), 8)
      seq = 0
    end
    local upto = string.format('%d', seq + tonumber(m))
    redis.call('HSET', v, 'seq', upto, 'epoch', epoch, unpack(ARGV, a + 5, a + 4 + 2 * nf))
    a = a + 5 + 2 * nf
    local block = 'R ' .. topic .. ' ' .. epoch .. ' ' .. upto .. ' ' .. m .. wall .. ARGV[a]
    a = a + 1
    if cap > 0 and redis.call('RPUSH', h, block) > cap + math.floor(cap / 4) + 8 then
      redis.call('LTRIM', h, -cap, -1)
    end
    out[#out + 1] = block
  elseif kind == 'B' then
    local sz, zb, za = KEYS[k], KEYS[k + 1], KEYS[k + 2]
    k = k + 3
    local ts, tail, replace, nl = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4] == '1', tonumber(ARGV[a + 5])
    a = a + 6
    local undo, old = {}, nil
    if replace then
      old = redis.call('HGETALL', sz)
      redis.call('DEL', sz, zb, za)
    end
    for _ = 1, nl do
      local side, price, size = ARGV[a], ARGV[a + 1], ARGV[a + 2]
      a = a + 3
      local z, field = (side == 'b') and zb or za, side .. price
      if not replace then
        undo[#undo + 1] = {field, z, price, redis.call('HGET', sz, field)}
      end
      if tonumber(size) ~= 0 then
        redis.call('HSET', sz, field, size)
        redis.call('ZADD', z, price, price)
      elseif not replace then
        redis.call('HDEL', sz, field)
        redis.call('ZREM', z, price)
      end
    end
    local bid, ask = redis.call('ZRANGE', zb, -1, -1), redis.call('ZRANGE', za, 0, 0)
    if (bid[1] and ask[1] and tonumber(bid[1]) >= tonumber(ask[1]))
        or redis.call('ZCARD', zb) > 5000 or redis.call('ZCARD', za) > 5000 then
      refused = refused + 1
      if replace then
        redis.call('DEL', sz, zb, za)
        for i = 1, #old, 2 do
          local side, price = string.sub(old[i], 1, 1), string.sub(old[i], 2)
          redis.call('HSET', sz, old[i], old[i + 1])
          redis.call('ZADD', (side == 'b') and zb or za, price, price)
        end
      else
        for i = #undo, 1, -1 do
          local u = undo[i]
          if u[4] then
            redis.call('HSET', sz, u[1], u[4])
            redis.call('ZADD', u[2], u[3], u[3])
          else
            redis.call('HDEL', sz, u[1])
            redis.call('ZREM', u[2], u[3])
          end
        end
      end
    else
      local now = redis.call('HMGET', v, 'seq', 'epoch')
      local seq, epoch = (tonumber(now[1]) or 0) + 1, now[2]
      if seq == 1 or not epoch then
        fresh = fresh + 1
        epoch = bit.tohex(bit.bxor(base, fresh), 8)
        seq = 1
      end
      local s = string.format('%d', seq)
      redis.call('HSET', v, 'seq', s, 'epoch', epoch, 'ts', ts, 'stale', '0')
      out[#out + 1] = 'B ' .. topic .. ' ' .. epoch .. ' ' .. s .. ' ' .. tail
    end
  elseif kind == 'C' then
    a = a + 2
    redis.call('DEL', v, h, KEYS[k], KEYS[k + 1], KEYS[k + 2])
    k = k + 3
    out[#out + 1] = 'C ' .. topic
  elseif kind == 'S' then
    local s = ARGV[a + 2]
    a = a + 3
    redis.call('HSET', v, 'stale', s)
    out[#out + 1] = 'S ' .. topic .. ' ' .. s
  else
    local ms = ARGV[a + 2]
    a = a + 3
    if ms == '-' then
      redis.call('HDEL', v, '_stale_after_ms')
    else
      redis.call('HSET', v, '_stale_after_ms', ms)
    end
    out[#out + 1] = 'A ' .. topic .. ' ' .. ms
  end
end
if #out > 0 then
  redis.call('PUBLISH', ARGV[4], table.concat(out, '\n'))
end
return 1 + refused
"#;

/// Most updates in one run (one history block). A topic's history in
/// Redis keeps at least `cap` blocks, so at least `cap` updates and at most
/// `BLOCK` times as many: bounded memory for a topic whose updates come in
/// bursts, while a run still pays for its three Redis calls.
pub(crate) const BLOCK: usize = 16;

/// What a writer needs to turn a batch into script calls.
pub(crate) struct Numbering<'a> {
    /// The loaded script's SHA1.
    pub sha: &'a str,
    /// This writer's id (`store::applied_key`).
    pub writer: &'a str,
    pub history_len: usize,
    pub trades_snapshot: usize,
    /// The server's extra fields: stored in Redis by name.
    pub fields: &'a [Box<str>],
    /// The publish wall time (ns) written into each entry.
    pub wall_ns: u64,
}

/// One operation of a script call: a run of one topic's updates, or a
/// clear or stale mark.
enum Step<'a> {
    Run(&'a str, Vec<&'a Update>),
    /// An order-book change: one at a time (each is checked on its own).
    Book(&'a Update),
    Other(&'a IngestOp),
}

impl Step<'_> {
    /// How many updates it carries.
    fn len(&self) -> usize {
        match self {
            Step::Run(_, updates) => updates.len(),
            _ => 1,
        }
    }
}

impl Numbering<'_> {
    /// The script calls of batch number `batch_no`: one per partition the
    /// batch touches. Within a call, each topic's operations keep their
    /// order, and consecutive updates of a topic travel as one run.
    /// Operations that are not for Redis are skipped.
    pub fn calls(&self, batch_no: u64, batch: &[Ingested]) -> Vec<redis::Cmd> {
        let mut by_partition: Vec<Vec<&IngestOp>> = vec![Vec::new(); PARTITIONS as usize];
        for i in batch {
            if let Some(topic) = for_redis(&i.op) {
                by_partition[store::partition(topic) as usize].push(&i.op);
            }
        }
        let base = rand::random::<u32>();
        by_partition
            .iter()
            .enumerate()
            .filter(|(_, ops)| !ops.is_empty())
            .map(|(p, ops)| self.call(p as u32, batch_no, base, &steps(ops)))
            .collect()
    }

    fn call(&self, partition: u32, batch_no: u64, base: u32, steps: &[Step]) -> redis::Cmd {
        let keys: usize = steps
            .iter()
            .map(|s| match s {
                Step::Book(_) | Step::Other(IngestOp::Clear(_)) => 5,
                _ => 2,
            })
            .sum();
        // Sized up front: a call carries up to thousands of updates, and
        // growing its buffer step by step copied it over and over.
        let updates: usize = steps.iter().map(Step::len).sum();
        let mut cmd = redis::Cmd::with_capacity(12 * steps.len(), 64 * updates + 4096);
        cmd.arg("EVALSHA")
            .arg(self.sha)
            .arg(1 + keys)
            .arg(store::applied_key(partition, self.writer));
        for step in steps {
            let (topic, book) = match step {
                Step::Run(t, _) => (*t, false),
                Step::Book(u) => (u.topic.as_str(), true),
                Step::Other(op) => (
                    for_redis(op).unwrap_or_default(),
                    matches!(op, IngestOp::Clear(_)),
                ),
            };
            cmd.arg(store::value_key(topic))
                .arg(store::history_key(topic));
            if book {
                // A clear deletes a book too, whatever the topic.
                for k in store::book_keys(topic) {
                    cmd.arg(k);
                }
            }
        }
        cmd.arg(batch_no)
            .arg(REMEMBER_SECS)
            .arg(base)
            .arg(store::channel(partition))
            .arg(self.wall_ns);
        for step in steps {
            match step {
                Step::Run(topic, updates) => self.run_args(&mut cmd, topic, updates),
                Step::Book(u) => self.book_args(&mut cmd, u),
                Step::Other(IngestOp::Clear(t)) => {
                    cmd.arg("C").arg(t.as_str());
                }
                Step::Other(IngestOp::Stale(t, stale)) => {
                    cmd.arg("S").arg(t.as_str()).arg(u8::from(stale.is_stale()));
                }
                Step::Other(IngestOp::StaleAfter(t, after)) => {
                    let ms = after.map_or("-".to_string(), |d| d.as_millis().to_string());
                    cmd.arg("A").arg(t.as_str()).arg(ms);
                }
                Step::Other(_) => {}
            }
        }
        cmd
    }

    /// A run's arguments: its merged fields (the last value of each), its
    /// last `ts` and `stale` 0 as the topic's value-field pairs, and its
    /// tails as one argument, one per line.
    fn run_args(&self, cmd: &mut redis::Cmd, topic: &str, updates: &[&Update]) {
        let mut merged: Vec<(&str, f64)> = Vec::new();
        for u in updates {
            // Extra fields by name too (a name never clashes with a price
            // field's or the value's own keys: `validate`).
            for (name, v) in u.prices.named(self.fields) {
                match merged.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = v,
                    None => merged.push((name, v)),
                }
            }
        }
        let last_ts = updates.last().map_or(0, |u| u.timestamp_ns);
        let cap = store::history_cap(topic, self.history_len, self.trades_snapshot);
        cmd.arg("R")
            .arg(topic)
            .arg(updates.len())
            .arg(cap)
            .arg(merged.len() + 2);
        let mut float = ryu::Buffer::new();
        for (name, v) in merged {
            cmd.arg(name).arg(float.format(v));
        }
        cmd.arg("ts").arg(last_ts).arg("stale").arg(0);
        let mut text = String::with_capacity(64 * updates.len());
        let mut int = itoa::Buffer::new();
        for (i, u) in updates.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(int.format(u.timestamp_ns));
            for (name, v) in u.prices.named(self.fields) {
                text.push(' ');
                text.push_str(name);
                text.push(' ');
                // Shortest text that reads back as the same f64, as `{:?}`
                // writes it, several times faster.
                text.push_str(float.format(v));
            }
        }
        cmd.arg(text.as_str());
    }
}

impl Numbering<'_> {
    /// A book change's arguments: its entry's tail, then its levels.
    fn book_args(&self, cmd: &mut redis::Cmd, u: &Update) {
        let Some(change) = u.levels.as_deref() else {
            return;
        };
        let side = |s: Side| if s == Side::Bid { "b" } else { "a" };
        let replace = u8::from(change.replace);
        let mut tail = format!("{} {} {replace}", u.timestamp_ns, self.wall_ns);
        for l in &change.levels {
            let _ = write!(tail, " {} {:?} {:?}", side(l.side), l.price, l.size);
        }
        cmd.arg("B")
            .arg(u.topic.as_str())
            .arg(u.timestamp_ns)
            .arg(tail)
            .arg(replace)
            .arg(change.levels.len());
        for l in &change.levels {
            cmd.arg(side(l.side))
                .arg(format!("{:?}", l.price))
                .arg(format!("{:?}", l.size));
        }
    }
}

/// A partition's operations as script steps: grouped by topic (in order of
/// first appearance, each topic's in its own order), consecutive updates of
/// a topic merged into one run.
fn steps<'a>(ops: &[&'a IngestOp]) -> Vec<Step<'a>> {
    let mut order: Vec<&'a str> = Vec::new();
    let mut by_topic: HashMap<&'a str, Vec<&'a IngestOp>, foldhash::fast::RandomState> =
        HashMap::default();
    for op in ops {
        let topic = for_redis(op).unwrap_or_default();
        by_topic
            .entry(topic)
            .or_insert_with(|| {
                order.push(topic);
                Vec::new()
            })
            .push(op);
    }
    let mut steps = Vec::new();
    for topic in order {
        let mut run: Vec<&'a Update> = Vec::new();
        for op in &by_topic[topic] {
            match op {
                IngestOp::Update(u) if u.levels.is_some() => {
                    if !run.is_empty() {
                        steps.push(Step::Run(topic, std::mem::take(&mut run)));
                    }
                    steps.push(Step::Book(u));
                }
                IngestOp::Update(u) => {
                    run.push(u);
                    if run.len() == BLOCK {
                        steps.push(Step::Run(topic, std::mem::take(&mut run)));
                    }
                }
                other => {
                    if !run.is_empty() {
                        steps.push(Step::Run(topic, std::mem::take(&mut run)));
                    }
                    steps.push(Step::Other(other));
                }
            }
        }
        if !run.is_empty() {
            steps.push(Step::Run(topic, run));
        }
    }
    steps
}

/// The topic of an operation Redis numbers or keeps (updates, clears,
/// stale marks, a topic's own `stale_after`); None for the rest.
fn for_redis(op: &IngestOp) -> Option<&str> {
    match op {
        IngestOp::Update(u) => Some(u.topic.as_str()),
        IngestOp::Clear(t) | IngestOp::Stale(t, _) | IngestOp::StaleAfter(t, _) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::liveness::Liveness;

    fn describe(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Run(t, us) => format!("R {t} {}", us.len()),
                Step::Book(u) => format!("B {}", u.topic),
                Step::Other(IngestOp::Clear(t)) => format!("C {t}"),
                Step::Other(IngestOp::Stale(t, _)) => format!("S {t}"),
                Step::Other(_) => "?".into(),
            })
            .collect()
    }

    #[test]
    fn the_script_checks_a_books_depth_as_a_node_does() {
        let limit = format!("> {}", crate::model::book::MAX_LEVELS_PER_SIDE);
        assert_eq!(SCRIPT.matches(&limit).count(), 2, "both sides");
    }

    #[test]
    fn a_topics_updates_run_together_and_its_clears_and_marks_keep_their_place() {
        let u = |t: &str| IngestOp::Update(Update::new(t).bid(1.0));
        let ops = [
            u("A"),
            u("B"),
            u("A"),
            IngestOp::Clear("A".into()),
            u("B"),
            u("A"),
            IngestOp::Stale("B".into(), Liveness::Stale),
            u("A"),
        ];
        let refs: Vec<&IngestOp> = ops.iter().collect();
        assert_eq!(
            describe(&steps(&refs)),
            ["R A 2", "C A", "R A 2", "R B 2", "S B"],
            "grouped by topic in order of first appearance; runs cut by a clear or a mark"
        );
    }
}
