#!/bin/sh
# Start-up of `aegis-run -e ''` side by side with `lua5.4 -e ''` (the floor:
# the bare interpreter aegis-run embeds), in one hyperfine run so both see
# the same machine state.  Prints both medians and the ratio.
# usage: bench/startup/run.sh [RUNS]   (make bench runs it)
set -eu
cd "$(dirname "$0")/../.."
runs=${1:-300}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
hyperfine -N --warmup 20 --runs "$runs" --export-json "$out" --style basic \
  "lua5.4 -e ''" "bin/aegis-run -e ''" >/dev/null
lua5.4 - "$out" <<'LUA'
local cjson = require('cjson')
local f = assert(io.open(arg[1])); local r = cjson.decode(f:read('a')); f:close()
local m = {}
for _, res in ipairs(r.results) do
  local t = {}
  for i, x in ipairs(res.times) do t[i] = x end
  table.sort(t)
  m[#m + 1] = { cmd = res.command, median = res.median * 1e3, p90 = t[math.ceil(#t * 0.9)] * 1e3 }
end
for _, x in ipairs(m) do
  print(('%-22s median %6.2f ms   p90 %6.2f ms'):format(x.cmd, x.median, x.p90))
end
print(('ratio aegis-run / lua5.4 (median): %.2f; goal: aegis-run median < 5 ms -> %s'):format(
  m[2].median / m[1].median, m[2].median < 5 and 'met' or 'NOT met'))
LUA
