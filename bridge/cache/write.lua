-- Applies a batch of committed points to the cache, atomically, in one call
-- (bridge/cache/writer.py loads it; the key layout is bridge/cache/keys.py's).
--
-- The batch travels as one flat array, grouped in Python, times and values as text:
--   device, n, metric_1 .. metric_n, (n_points, (time, value) * n_points) * n, device, ...
-- ARGV[1..6] are the prefix, the window cutoff (time_us), the TTL (ms), the
-- devices cutoff (time_us), the writer's complete_since claim and the floor
-- that applies when the key is missing (both time_us); the array is ARGV[7]
-- as one blob (msgpack or JSON) or ARGV[7..] itself. Times stay text: a Lua
-- number prints with 14 digits, fewer than a time_us has. The writer fills
-- in, after `local a, i =`, the expression that decodes its encoding.
--
-- The latest field of a metric is read first: every member of its recent key
-- is at most that time (both are written together, latest never moves back and
-- outlives recent), so a point newer than it cannot collide with a member and
-- only older points pay for removing a member at their time. (A Redis that
-- evicts keys under maxmemory may break this; then a correction can leave two
-- members at one time, which is all it costs.)
local call, tonumber, unpack, find, sub = redis.call, tonumber, unpack, string.find, string.sub
local prefix, cutoff, ttl, dcutoff = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cutoff_n, below_cutoff = tonumber(cutoff), '(' .. cutoff
local mkey, claim, floor = prefix .. 'complete_since', ARGV[5], ARGV[6]
local held = call('GET', mkey)
if not held then held = floor end
if tonumber(claim) > tonumber(held) then held = claim end
call('SET', mkey, held)
local a, i = __DECODE__
local n = #a
local STEP = 2000  -- arguments per call, well inside Lua's limit on unpack()

local function in_slices(cmd, key, opt, args)
  if #args <= STEP then
    if opt then call(cmd, key, opt, unpack(args)) else call(cmd, key, unpack(args)) end
    return
  end
  for s = 1, #args, STEP do
    local e = math.min(s + STEP - 1, #args)
    if opt then call(cmd, key, opt, unpack(args, s, e)) else call(cmd, key, unpack(args, s, e)) end
  end
end

local devs = {}
while i <= n do
  local d, nm = a[i], tonumber(a[i + 1])
  local m0 = i + 2
  i = m0 + nm
  local lkey = prefix .. 'latest:' .. d
  local cur = {}
  for s = 0, nm - 1, STEP do
    local part = call('HMGET', lkey, unpack(a, m0 + s, m0 + math.min(s + STEP, nm) - 1))
    for k = 1, #part do cur[s + k] = part[k] end
  end
  local h, dmax_n, dmax_s = {}, nil, nil
  for k = 1, nm do
    local m, np = a[m0 + k - 1], tonumber(a[i])
    i = i + 1
    local c, prev = cur[k], nil
    if c then prev = tonumber(sub(c, 1, find(c, ' ', 1, true) - 1)) end
    local rkey = prefix .. 'recent:' .. d .. '|' .. m
    local z, best_n, best_s = {}, prev, nil
    for _ = 1, np do
      local ts, v = a[i], a[i + 1]
      i = i + 2
      local t = tonumber(ts)
      if t >= cutoff_n then
        if prev and t <= prev then call('ZREMRANGEBYSCORE', rkey, ts, ts) end
        z[#z + 1] = ts
        z[#z + 1] = ts .. ':' .. v
      end
      if not best_n or t >= best_n then best_n, best_s = t, ts .. ' ' .. v end
      if not dmax_n or t > dmax_n then dmax_n, dmax_s = t, ts end
    end
    if #z > 0 then
      in_slices('ZADD', rkey, nil, z)
      call('ZREMRANGEBYSCORE', rkey, '-inf', below_cutoff)
      call('PEXPIRE', rkey, ttl)
    end
    if best_s then
      h[#h + 1] = m
      h[#h + 1] = best_s
    end
  end
  if #h > 0 then in_slices('HSET', lkey, nil, h) end
  call('PEXPIRE', lkey, ttl)
  devs[#devs + 1] = dmax_s
  devs[#devs + 1] = d
end
if #devs > 0 then
  local dkey = prefix .. 'devices'
  in_slices('ZADD', dkey, 'GT', devs)
  call('ZREMRANGEBYSCORE', dkey, '-inf', '(' .. dcutoff)
  call('PEXPIRE', dkey, ttl)
end
return n
