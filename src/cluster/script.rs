//! The Lua script that numbers, in Redis, every operation of one
//! partition in a writer's batch (`numbering` builds its calls).

/// Numbers the operations of one partition of a batch, atomically, unless
/// this writer's batch was applied here before.
///
/// KEYS: the writer's applied key, then each operation's value and history
/// keys. ARGV: batch number, `numbering::REMEMBER_SECS`, an epoch base (a random u32),
/// the partition's channel, the wall time of the batch (ns, carried in each
/// run's header for the lag metric), then per operation:
/// - `R` (a run of a topic's updates with nothing else of that topic
///   between them, at most `BLOCK`), topic, count, history cap (in runs),
///   the count of value-field pairs, the pairs (the last value of each
///   field the run carries, its last `ts`, and `stale` 0), then the end
///   of the run's header (its field names, comma-separated, and the byte
///   count of its records) and the records (binary: `tail` has the form);
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
/// Values travel as decimal text in the value hash (Lua never turns them
/// into numbers, so no precision is lost) and as bytes in the records,
/// which Lua passes through untouched. Why a run is shaped so: in Redis's
/// Lua every string made and every `redis.call` costs far more than the
/// work it stands for, so a run costs the same whatever its length, and
/// makes no string per update. It takes the topic's `seq` and epoch, or a
/// new one (the base xor a counter, distinct within the call) when its
/// numbering starts at 1, writes the new `seq` with its fields merged into
/// the value in one `HSET`, and makes one short string, the run's header
/// line (`message`: `R topic epoch last count wall` ended by the writer's
/// `fields nbytes`), pushed with the records as two elements of the
/// topic's history. So three Redis calls per run (`HMGET`, `HSET`,
/// `RPUSH`). Redis's Lua also hashes every byte of every string it is
/// given or makes: the records are hashed twice (as the argument, and in
/// the published message), where joining header and records into one
/// history element hashed them a third time (a tenth of Redis's time:
/// BENCHMARKS.md, "Issue 24", session 22); hence, too, records without
/// field names, with a short number for the time and 8 bytes a value. The
/// history is trimmed to its cap in runs (two elements each) only once it
/// passes it by a quarter, so trimming costs one call per many runs; each
/// run holds at least one update, so `cap` runs hold at least `cap`
/// updates (readers keep the last `cap`).
/// One `PUBLISH` carries every entry of the call, one per line. Returns 0
/// when the batch had been applied already, else 1 + the book changes it
/// refused.
pub(crate) const SCRIPT: &str = r#"
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local base = tonumber(ARGV[3])
local wall = ' ' .. ARGV[5] .. ' '
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
    local header, records = 'R ' .. topic .. ' ' .. epoch .. ' ' .. upto .. ' ' .. m .. wall .. ARGV[a], ARGV[a + 1]
    a = a + 2
    if cap > 0 and redis.call('RPUSH', h, header, records) > 2 * (cap + math.floor(cap / 4) + 8) then
      redis.call('LTRIM', h, -2 * cap, -1)
    end
    out[#out + 1] = header
    out[#out + 1] = records
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

#[cfg(test)]
mod tests {
    use super::SCRIPT;

    #[test]
    fn the_script_checks_a_books_depth_as_a_node_does() {
        let limit = format!("> {}", crate::model::book::MAX_LEVELS_PER_SIDE);
        assert_eq!(SCRIPT.matches(&limit).count(), 2, "both sides");
    }
}
