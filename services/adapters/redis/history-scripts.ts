import { luaScript } from './redis-connection';

/**
 * The two scripts of one history stream (redis-history.ts): a sorted set
 * `order` whose members are `<appendKey><eventId>` (26 + 26 characters, all
 * score 0, so sorted by append key), and a hash `events` of event id →
 * `<appendKey><expiresAtMs><mark><body>` (mark: a space, or `+` when the
 * event's recipient list is stored apart, see redis-history.ts), plus two
 * markers: `#tk`, the highest member evicted, and `#ti`, the highest event id
 * evicted.
 *
 * Strings are compared byte by byte in `after`: Lua's `<` uses strcoll, and
 * Redis sets the collation locale from its environment.
 */
const AFTER = `local function after(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
`;

/**
 * Appends events to one stream, in the order given, and answers per event 1
 * when its id was already stored and unexpired (a duplicate, left as it was)
 * or 0. Then evicts the oldest appended past the cap, and makes both keys
 * live at least as long as the longest ttl plus the horizon.
 * KEYS: order, events. ARGV: now, cap, horizon ms, then per event: id, appendKey, expiresAtMs, mark and body.
 */
export const APPEND = luaScript(
  'history-append',
  `${AFTER}
local now, cap, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, keep = {}, 0
for i = 4, #ARGV, 4 do
  local id, key, expires = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', KEYS[2], id)
  local duplicate = 0
  if old then
    if tonumber(string.match(old, '^(%d+)', 27)) > now then
      duplicate = 1
    else
      redis.call('ZREM', KEYS[1], string.sub(old, 1, 26) .. id)
    end
  end
  if duplicate == 0 then
    redis.call('HSET', KEYS[2], id, key .. expires .. ARGV[i + 3])
    redis.call('ZADD', KEYS[1], 0, key .. id)
  end
  out[#out + 1] = duplicate
  if tonumber(expires) - now > keep then keep = tonumber(expires) - now end
end
local over = redis.call('ZCARD', KEYS[1]) - cap
if over > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[1], over)
  local tk = redis.call('HGET', KEYS[2], '#tk') or ''
  local ti = redis.call('HGET', KEYS[2], '#ti') or ''
  for j = 1, #gone, 2 do
    local member = gone[j]
    local id = string.sub(member, 27)
    redis.call('HDEL', KEYS[2], id)
    if after(member, tk) then tk = member end
    if after(id, ti) then ti = id end
  end
  redis.call('HSET', KEYS[2], '#tk', tk, '#ti', ti)
end
local lifetime = keep + horizon
for k = 1, 2 do
  if redis.call('PTTL', KEYS[k]) < lifetime then redis.call('PEXPIRE', KEYS[k], lifetime) end
end
return out`,
);

/**
 * Reads one stream from a position: when the stream holds the position's
 * event, everything appended after it; otherwise everything appended after
 * `bound` (the earliest append key an event with a greater id can have),
 * which the caller filters. Expired entries are answered too, for the caller
 * to report. KEYS: order, events. ARGV: position id ('' for none), bound ('' for all).
 * Answers: the position's append key (''), `#tk` (''), `#ti` (''), members, values.
 */
export const READ = luaScript(
  'history-read',
  `local pos = false
if ARGV[1] ~= '' then pos = redis.call('HGET', KEYS[2], ARGV[1]) end
local from, posKey = '-', ''
if pos then
  posKey = string.sub(pos, 1, 26)
  from = '(' .. posKey .. ARGV[1]
elseif ARGV[2] ~= '' then
  from = '(' .. ARGV[2]
end
local members = redis.call('ZRANGEBYLEX', KEYS[1], from, '+')
local values = {}
for first = 1, #members, 500 do
  local ids = {}
  for i = first, math.min(first + 499, #members) do ids[#ids + 1] = string.sub(members[i], 27) end
  local got = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #got do values[#values + 1] = got[i] end
end
local marks = redis.call('HMGET', KEYS[2], '#tk', '#ti')
return {posKey, marks[1] or '', marks[2] or '', members, values}`,
);

/**
 * Claims a caller-chosen event id for its content, or finds it claimed
 * (redis-history.ts): answers nil when the id was free (or its event has
 * expired by the caller's clock) and is now marked, else the fingerprint it
 * was first stored with. KEYS: the mark. ARGV: now, expiresAtMs, fingerprint,
 * lifetime ms (Redis's own expiry, only to reclaim the key).
 */
export const MARK = luaScript(
  'history-mark',
  `local old = redis.call('GET', KEYS[1])
if old then
  local space = string.find(old, ' ', 1, true)
  if space and tonumber(string.sub(old, 1, space - 1)) > tonumber(ARGV[1]) then return string.sub(old, space + 1) end
end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
return false`,
);
