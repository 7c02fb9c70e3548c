-- luacheck: std +busted
-- The semantic diff bench, run by bench/astdiff/run.sh inside aegis-run
-- (`aegis-run test bench/astdiff/measure_spec.lua`: busted gives it the full
-- Lua library).  Not under spec/, so `make test` does not run it.
-- Environment: ASTDIFF_PAIRS (the corpus pairs file), ASTDIFF_OUT (report).
local ast = require('aegis.ast')
local clock = require('aegis.clock')
local synth = dofile('bench/astdiff/synth.lua')

local function read(p)
  local f = assert(io.open(p, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

local function pct(t, p)
  if #t == 0 then return 0 end
  return t[math.max(1, math.ceil(#t * p))]
end

local function lang_of(p) return p:match('%.tsx$') and 'tsx' or 'ts' end

describe('astdiff bench', function()
  it('measures', function()
    local out = {}
    local function say(fmt, ...) out[#out + 1] = fmt:format(...) end
    local pairs_file = assert(os.getenv('ASTDIFF_PAIRS'), 'ASTDIFF_PAIRS not set')
    local list = {}
    for line in io.lines(pairs_file) do
      local a, b = line:match('^(%S+) (%S+)$')
      if a then list[#list + 1] = { a, b } end
    end
    local times, floors, nodes = {}, {}, 0
    local counts = { insert = 0, delete = 0, update = 0, move = 0, rename = 0 }
    local sound, inverse_sound, inverse_exact, same, bytes = 0, 0, 0, 0, 0
    local failures = {}
    for _, p in ipairs(list) do
      local a, b = read(p[1]), read(p[2])
      local lang = lang_of(p[1])
      bytes = bytes + #a + #b
      -- best of 3, floor and diff alternating: the machine is shared
      local floor, time, d = math.huge, math.huge, nil
      for _ = 1, 3 do
        local t0 = clock.monotonic()
        local ta = assert(ast.parse(a, { lang = lang }))
        local tb = assert(ast.parse(b, { lang = lang }))
        local t1 = clock.monotonic()
        ta:close(); tb:close()
        local t2 = clock.monotonic()
        d = assert(ast.diff(a, b, { lang = lang }))
        local t3 = clock.monotonic()
        floor = math.min(floor, (t1 - t0) * 1e3)
        time = math.min(time, (t3 - t2) * 1e3)
      end
      floors[#floors + 1] = floor
      times[#times + 1] = time
      nodes = math.max(nodes, d.src_nodes, d.dst_nodes)
      for k, v in pairs(d.counts) do counts[k] = counts[k] + v end
      if d.same then same = same + 1 end
      -- soundness both ways, and B->A the inverse of A->B
      local dv = assert(ast.diff(a, b, { lang = lang, verify = true }))
      local iv = assert(ast.diff(b, a, { lang = lang, verify = true }))
      if dv.verified then sound = sound + 1 else failures[#failures + 1] = p[1] .. ' -> ' .. p[2] end
      if iv.verified then inverse_sound = inverse_sound + 1 end
      local c, ic = dv.counts, iv.counts
      if c.insert == ic.delete and c.delete == ic.insert and c.update == ic.update
          and c.move == ic.move and c.rename == ic.rename then
        inverse_exact = inverse_exact + 1
      end
    end
    local sorted, fsorted = { table.unpack(times) }, { table.unpack(floors) }
    table.sort(sorted)
    table.sort(fsorted)
    local sum, fsum = 0, 0
    for _, t in ipairs(times) do sum = sum + t end
    for _, t in ipairs(floors) do fsum = fsum + t end
    say('corpus: %d changed pairs (%d same after normalisation), %.1f MB, largest tree %d nodes',
      #list, same, bytes / 1e6, nodes)
    say('time per pair, parse included, best of 3 (ms): p50 %.2f  p99 %.2f  max %.2f  total %.0f',
      pct(sorted, 0.5), pct(sorted, 0.99), sorted[#sorted] or 0, sum)
    say('floor, tree-sitter parse of both files alone, best of 3 (ms): p50 %.2f  p99 %.2f  max %.2f  total %.0f',
      pct(fsorted, 0.5), pct(fsorted, 0.99), fsorted[#fsorted] or 0, fsum)
    say('ratio diff / floor: total %.2f  p50 %.2f', sum / fsum, pct(sorted, 0.5) / pct(fsorted, 0.5))
    say('actions: insert %d  delete %d  update %d  move %d  rename %d',
      counts.insert, counts.delete, counts.update, counts.move, counts.rename)
    say('apply(A, diff(A,B)) = B: %d/%d;  apply(B, diff(B,A)) = A: %d/%d;  B->A counts mirror A->B: %d/%d',
      sound, #list, inverse_sound, #list, inverse_exact, #list)
    for i = 1, math.min(5, #failures) do say('  unsound: %s', failures[i]) end

    -- synthetic truth: on generated programs, and on the corpus's files
    local function run_synth(label, sources)
      local res = {}
      for _, kind in ipairs({ 'format', 'move', 'rename' }) do
        local pass, total, unsound, why1 = 0, 0, 0, nil
        for i, s in ipairs(sources) do
          if total >= 120 then break end
          local b, truth = synth[kind](s.src, i, { lang = s.lang })
          if b then
            total = total + 1
            local d = assert(ast.diff(s.src, b, { lang = s.lang, verify = true }))
            if not d.verified then unsound = unsound + 1 end
            local ok, why = synth.check(kind, d, truth)
            if ok then pass = pass + 1 elseif not why1 then why1 = (s.name or i) .. ': ' .. why end
          end
        end
        res[#res + 1] = ('%s %d/%d%s'):format(kind, pass, total, unsound > 0 and (' (' .. unsound .. ' unsound)') or '')
        if why1 then res[#res + 1] = '[first miss ' .. why1 .. ']' end
      end
      say('synthetic (%s): %s', label, table.concat(res, '  '))
    end
    local gen = {}
    for seed = 1, 200 do gen[#gen + 1] = { src = synth.program(seed), lang = 'ts' } end
    run_synth('generated programs', gen)
    local real, seen = {}, {}
    for i = #list, 1, -1 do
      local f = list[i][2]
      local base = f:match('[^/]+$')
      if not seen[base] then
        seen[base] = true
        real[#real + 1] = { src = read(f), lang = lang_of(f), name = f:match('src/.*$') }
      end
    end
    run_synth('corpus files', real)

    -- a pair of large files (>= 50k nodes) for the peak-memory run of run.sh
    local big = os.getenv('ASTDIFF_BIG')
    if big then
      local parts, seed = {}, 1
      local n = 0
      while n < 50000 do
        parts[#parts + 1] = synth.program(seed)
        seed = seed + 1
        if seed % 20 == 0 then
          local d = assert(ast.diff('', table.concat(parts)))
          n = d.dst_nodes
        end
      end
      local a = table.concat(parts)
      local b = assert(synth.rename(a, 7))
      b = synth.move(b, 3) or b
      local fa, fb = assert(io.open(big .. '/big_a.ts', 'wb')), assert(io.open(big .. '/big_b.ts', 'wb'))
      fa:write(a); fa:close(); fb:write(b); fb:close()
      local d = assert(ast.diff(a, b, { verify = true }))
      say('large pair: %d and %d nodes, %.1f MB; apply check %s; %s/big_a.ts, big_b.ts',
        d.src_nodes, d.dst_nodes, (#a + #b) / 1e6, tostring(d.verified), big)
    end

    local f = io.open(os.getenv('ASTDIFF_OUT') or '/dev/stdout', 'w')
    f:write(table.concat(out, '\n'), '\n')
    f:close()
  end)
end)
