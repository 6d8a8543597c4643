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
///   ...`), replace (`1` or `0`), the level count, then each level's
///   field in the sizes hash (`b<price>` or `a<price>`), price and size:
///   an order-book change (keys: value, history, then the book's sizes
///   hash and its bid and ask sorted sets). It is checked as a node checks
///   it (`model::book`): a change that would cross the book or pass
///   `MAX_LEVELS_PER_SIDE` levels a side is undone and not numbered, so
///   every node applies exactly what Redis numbered. Consecutive changes
///   of one book keep its `seq`, level counts and best prices in the
///   script (the value written once, when the script leaves the book), so
///   a change costs an `HMGET` of its levels and a write per kind, the
///   sorted sets read again only when it removes a best price;
/// - `b`: as `B`, for the same book as the step before, without keys;
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
local function new_epoch()
  fresh = fresh + 1
  return bit.tohex(bit.bxor(base, fresh), 8)
end
local function crossed_or_deep(nb, na, bb, ba)
  return (bb and ba and bb >= ba) or nb > 5000 or na > 5000
end
-- Lua unpacks at most a few thousand values at once: a long list goes in
-- parts (of an even length, so pairs stay whole).
local function in_parts(cmd, key, list)
  for i = 1, #list, 4000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 3999, #list)))
  end
end
local function best(z, bid)
  local top = bid and redis.call('ZRANGE', z, -1, -1) or redis.call('ZRANGE', z, 0, 0)
  return tonumber(top[1])
end
-- The book whose changes are being numbered, kept between its steps: its
-- value's seq and epoch (written once it is left), level counts and best
-- prices.
local open = nil
local function leave()
  if open and open.seq > 0 then
    redis.call('HSET', open.v, 'seq', string.format('%d', open.seq), 'epoch', open.epoch,
      'ts', open.ts, 'stale', '0')
  end
  open = nil
end
-- The book's counts and best prices as its sorted sets hold them.
local function book_now(zb, za)
  return {nb = redis.call('ZCARD', zb), na = redis.call('ZCARD', za), bb = best(zb, true), ba = best(za, false)}
end
-- Opens the book (`known`: its counts and best prices when the caller has
-- just read them; else they are read).
local function enter(topic, v, zb, za, known)
  if open and open.topic == topic then return open end
  leave()
  local now = redis.call('HMGET', v, 'seq', 'epoch')
  local seq, epoch = tonumber(now[1]) or 0, now[2]
  if not epoch then seq = 0 end
  open = known or book_now(zb, za)
  open.topic, open.v, open.seq, open.epoch, open.was = topic, v, 0, epoch, seq
  return open
end
local function numbered(b, ts)
  if b.seq == 0 then
    b.seq = b.was
    if b.seq == 0 or not b.epoch then b.epoch, b.seq = new_epoch(), 0 end
  end
  b.seq, b.ts = b.seq + 1, ts
  return b.epoch, string.format('%d', b.seq)
end
local a, k, n = 6, 2, #ARGV
-- The keys of the step before: a `b` step is a change of the same book as
-- the step before it, and brings no keys of its own.
local v, h, sz, zb, za
-- Sets each level `order` lists (by its argument's place) to `want[f]`
-- (false: removes it) where it was `was[f]`, in the current book's keys: a
-- call per kind of write.
local function write_levels(order, want, was)
  local set, gone, addb, adda, remb, rema = {}, {}, {}, {}, {}, {}
  for _, i in ipairs(order) do
    local f, price = ARGV[i], ARGV[i + 1]
    local bid = string.byte(f) == 98
    if want[f] then
      set[#set + 1] = f
      set[#set + 1] = want[f]
      local z = bid and addb or adda
      z[#z + 1] = price
      z[#z + 1] = price
    elseif was[f] then
      gone[#gone + 1] = f
      local z = bid and remb or rema
      z[#z + 1] = price
    end
  end
  in_parts('HSET', sz, set)
  in_parts('HDEL', sz, gone)
  in_parts('ZADD', zb, addb)
  in_parts('ZADD', za, adda)
  in_parts('ZREM', zb, remb)
  in_parts('ZREM', za, rema)
end
while a <= n do
  local kind, topic = ARGV[a], ARGV[a + 1]
  if kind == 'b' then
    kind = 'B'
  else
    v, h = KEYS[k], KEYS[k + 1]
    k = k + 2
    if kind == 'B' then
      sz, zb, za = KEYS[k], KEYS[k + 1], KEYS[k + 2]
      k = k + 3
    end
  end
  if kind ~= 'B' or ARGV[a + 4] == '1' then leave() end
  if kind == 'R' then
    local m, cap, nf = ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local now = redis.call('HMGET', v, 'seq', 'epoch')
    local seq, epoch = tonumber(now[1]) or 0, now[2]
    if seq == 0 or not epoch then
      epoch = new_epoch()
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
    local ts, tail, replace, nl = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4] == '1', tonumber(ARGV[a + 5])
    local first = a + 6
    a = first + 3 * nl
    local ok
    if replace then
      local old = redis.call('HGETALL', sz)
      redis.call('DEL', sz, zb, za)
      for i = first, a - 1, 3 do
        local f, price = ARGV[i], ARGV[i + 1]
        if tonumber(ARGV[i + 2]) ~= 0 then
          redis.call('HSET', sz, f, ARGV[i + 2])
          redis.call('ZADD', (string.byte(f) == 98) and zb or za, price, price)
        end
      end
      local after = book_now(zb, za)
      ok = not crossed_or_deep(after.nb, after.na, after.bb, after.ba)
      if not ok then
        redis.call('DEL', sz, zb, za)
        for i = 1, #old, 2 do
          local price = string.sub(old[i], 2)
          redis.call('HSET', sz, old[i], old[i + 1])
          redis.call('ZADD', (string.byte(old[i]) == 98) and zb or za, price, price)
        end
      end
      if ok then
        -- Open with what was just checked: the changes after it go on
        -- from there.
        local b = enter(topic, v, zb, za, after)
        local epoch, s = numbered(b, ts)
        out[#out + 1] = 'B ' .. topic .. ' ' .. epoch .. ' ' .. s .. ' ' .. tail
      end
    else
      -- Checked as a node checks it, with the book's counts and best
      -- prices carried from change to change: a level's old size comes
      -- from one HMGET, the writes go a call per kind, and the sorted sets
      -- are read again only when a change removes a best price. A level
      -- is `b<price>` or `a<price>` (its field in the sizes hash), its
      -- price, its size.
      local b = enter(topic, v, zb, za)
      local fields = {}
      for i = first, a - 1, 3 do fields[#fields + 1] = ARGV[i] end
      local olds = {}
      for i = 1, #fields, 4000 do
        local part = redis.call('HMGET', sz, unpack(fields, i, math.min(i + 3999, #fields)))
        for j = 1, #part do olds[#olds + 1] = part[j] end
      end
      -- Per level (by field): its size before the change and after it
      -- (false: none), and the levels in order of first mention (their
      -- argument's place).
      local now, before, order = {}, {}, {}
      local nb, na, bb, ba, again_b, again_a = b.nb, b.na, b.bb, b.ba, false, false
      for j = 1, nl do
        local i = first + 3 * (j - 1)
        local f = ARGV[i]
        local p, keep = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]) ~= 0
        if before[f] == nil then
          before[f] = olds[j] or false
          now[f] = before[f]
          order[#order + 1] = i
        end
        local had = now[f] ~= false
        if string.byte(f) == 98 then
          if keep and not had then nb = nb + 1 elseif had and not keep then nb = nb - 1 end
          if keep and (not bb or p > bb) then bb = p elseif not keep and bb == p then again_b = true end
        else
          if keep and not had then na = na + 1 elseif had and not keep then na = na - 1 end
          if keep and (not ba or p < ba) then ba = p elseif not keep and ba == p then again_a = true end
        end
        now[f] = keep and ARGV[i + 2]
      end
      write_levels(order, now, before)
      if again_b then bb = best(zb, true) end
      if again_a then ba = best(za, false) end
      ok = not crossed_or_deep(nb, na, bb, ba)
      if ok then
        b.nb, b.na, b.bb, b.ba = nb, na, bb, ba
        local epoch, s = numbered(b, ts)
        out[#out + 1] = 'B ' .. topic .. ' ' .. epoch .. ' ' .. s .. ' ' .. tail
      else
        -- Undone: each level back to its size before the change.
        write_levels(order, before, now)
      end
    end
    if not ok then refused = refused + 1 end
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
leave()
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
