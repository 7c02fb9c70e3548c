-- luacheck: std +busted
-- The body of bench/json/run.sh, run as `aegis-run test` (specs run
-- unsandboxed inside the binary). For each document: aegis.json's decode,
-- canonical and indented (2) encode, side by side with lua-cjson's decode
-- and encode of the same document, the calls of one round alternating
-- (A, B, C, ..., A, B, C, ...) so that all see the same background load.
-- (json.encode without options is json.canonical: the same C function.)
-- Process CPU time (os.clock), median of BENCH_ROUNDS rounds of about
-- BENCH_MS milliseconds each.
-- BENCH_PROFILE=decode|encode|canonical|indent2: instead, run that one
-- aegis.json operation a fixed number of times on every document (a fixed
-- workload for callgrind or `perf stat -e instructions`); BENCH_DOC=name:
-- on that document only.
local json = require('aegis.json')
local cjson = require('cjson')

-- The checkpoint bench's states (bench/checkpoint/run.sh builds the same
-- with node): a goal and a list of n file records.
local function files(n)
  local t = {}
  for i = 0, n - 1 do
    t[#t + 1] = {
      id = i, path = ('src/module%d/file%d.ts'):format(i % 37, i),
      sha256 = ('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'):sub(1, 40),
      lines = i * 7 % 1000, tags = json.array({ 'ts', i % 2 == 1 and 'test' or 'src' }),
    }
  end
  return json.array(t)
end

-- A fixed pseudo-random sequence (xorshift), so every run sees the same data.
local seed = 88172645463325252
local function rnd()
  seed = seed ~ (seed << 13); seed = seed ~ (seed >> 7); seed = seed ~ (seed << 17)
  return seed
end

-- 20,000 numbers: doubles of every magnitude, short decimals, integers.
local function numbers()
  local t = {}
  for i = 1, 20000 do
    local k = i % 4
    if k == 0 then t[i] = (rnd() >> 11) * 2.0 ^ -53 * 10.0 ^ ((rnd() >> 1) % 40 - 20)  -- 17 digits
    elseif k == 1 then t[i] = ((rnd() >> 1) % 100000) / 100                           -- 12.34
    elseif k == 2 then t[i] = (rnd() >> 1) % 2000000 - 1000000                        -- integers
    else t[i] = ((rnd() >> 1) % 1000000) / 1000.0 + 0.5 end                             -- 123.4565
  end
  return json.array(t)
end

-- 2,000 records of text: ASCII prose, escapes, accented and CJK text, emoji.
local function strings()
  local words = { 'the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'line\nbreak', 'tab\there',
    '"quoted"', 'back\\slash', 'café', 'naïve', 'Größe', '日本語', 'テキスト', '😀', '🚀x', 'ok' }
  local t = {}
  for i = 1, 2000 do
    local w = {}
    for j = 1, 8 + (rnd() >> 1) % 24 do w[j] = words[(rnd() >> 1) % #words + 1] end
    t[i] = { title = table.concat(w, ' ', 1, 3), body = table.concat(w, ' '), ['clé'] = words[i % #words + 1] }
  end
  return json.array(t)
end

local docs = {
  { name = 'ckpt-small', v = { goal = 'todo app', step = 3, done = false } },
  { name = 'ckpt-10KB', v = { goal = 'todo app', files = files(85) } },
  { name = 'ckpt-1MB', v = { goal = 'todo app', files = files(8700) } },
  { name = 'numbers', v = numbers() },
  { name = 'strings', v = strings() },
}

local ops = {
  { 'decode', function(d) return json.decode(d.text) end },
  { 'cjson.decode', function(d) return cjson.decode(d.text) end },
  { 'canonical', function(d) return json.canonical(d.v) end },
  { 'indent2', function(d) return json.encode(d.v, { indent = 2 }) end },
  { 'cjson.encode', function(d) return cjson.encode(d.v) end },
  { 'encode', function(d) return json.encode(d.v) end, profile_only = true },
}

local function median(t)
  table.sort(t)
  return t[math.ceil(#t / 2)]
end

describe('json bench', function()
  it('runs', function()
    local profile = os.getenv('BENCH_PROFILE')
    for _, d in ipairs(docs) do d.text = json.canonical(d.v) end
    if profile then
      local fn
      for _, op in ipairs(ops) do if op[1] == profile then fn = op[2] end end
      assert(fn, 'BENCH_PROFILE: unknown operation')
      local only = os.getenv('BENCH_DOC')
      for _, d in ipairs(docs) do
        if not only or only == d.name then
          for _ = 1, math.max(1, 2000000 // #d.text) do fn(d) end
        end
      end
      return
    end
    local rounds = tonumber(os.getenv('BENCH_ROUNDS') or '9')
    local ms = tonumber(os.getenv('BENCH_MS') or '40')
    local timed = {}
    for _, op in ipairs(ops) do if not op.profile_only then timed[#timed + 1] = op end end
    ops = timed
    print(('%-11s %8s | %13s %13s %6s | %13s %13s %13s %6s %6s | %s'):format('doc', 'bytes',
      'decode', 'cjson.decode', 'x cj', 'canonical', 'indent2', 'cjson.encode', 'x cj', 'i x cj',
      'per call: decode / canonical'))
    for _, d in ipairs(docs) do
      -- calls per round: about BENCH_MS of the slowest operation
      local reps = {}
      for k, op in ipairs(ops) do
        local t0 = os.clock()
        local n = 0
        repeat op[2](d); n = n + 1 until os.clock() - t0 > 0.005
        reps[k] = math.max(1, math.floor(n * ms / 5 / ((os.clock() - t0) * 1000 / 5)))
      end
      local ts = {}
      for k = 1, #ops do ts[k] = {} end
      for r = 1, rounds do
        for k, op in ipairs(ops) do
          local fn, n = op[2], reps[k]
          local t0 = os.clock()
          for _ = 1, n do fn(d) end
          ts[k][r] = (os.clock() - t0) / n
        end
      end
      local s = {}
      for k = 1, #ops do s[k] = median(ts[k]) end
      local function mbs(t) return #d.text / t / 1e6 end
      print(('%-11s %8d | %8.1f MB/s %8.1f MB/s %5.2fx | %8.1f MB/s %8.1f MB/s %8.1f MB/s %5.2fx %5.2fx | '
        .. '%.1f / %.1f us'):format(d.name, #d.text, mbs(s[1]), mbs(s[2]), s[2] / s[1], mbs(s[3]), mbs(s[4]),
          mbs(s[5]), s[5] / s[3], s[5] / s[4], s[1] * 1e6, s[3] * 1e6))
    end
  end)
end)
