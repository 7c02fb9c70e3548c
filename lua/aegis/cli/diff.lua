--- `aegis-run diff A B`: semantic diff of two TypeScript/TSX files (what
--- moved, was renamed or changed; formatting and comments are not changes).
local ast = require('aegis.ast')
local errors = require('aegis.errors')
local host = require('aegis.core.host')
local json = require('aegis.json')

local usage = [[
usage: aegis-run diff A B [--format text|json] [--lang ts|tsx] [--comments]

Compares two TypeScript or TSX files by their syntax trees: formatting,
comments, quote style, redundant parentheses, optional semicolons and
trailing commas are not changes. Prints the declarations added, removed,
renamed, moved or changed, then each change with its line numbers.

options:
  --format text|json  text for people (default; colour on a terminal unless
                      NO_COLOR is set), or one JSON object with byte offsets
  --lang ts|tsx       grammar for both files (default: by extension of A,
                      .tsx/.jsx -> tsx, else ts)
  --comments          comments count as changes

exit status: 0 same, 1 different, 2 usage error or unreadable file]]

local function read(path)
  local f, err = io.open(path, 'rb')
  if not f then
    errors.raise('config', "diff: read '%s': %s", path, (err:gsub('^[^:]*: ', '')))
  end
  local s = f:read('a')
  f:close()
  if s == nil then errors.raise('config', "diff: read '%s': is a directory", path) end
  return s
end

local function span(s)
  return json.array({ s.start_byte, s.end_byte })
end

--- The JSON object of a diff: same, counts, moves, renames, actions (each
--- with `action`, `type`, `src`/`dst` as [start, end) byte offsets, `from`,
--- `to`, `n`), src_nodes, dst_nodes.
---@param r aegis.ast.Diff
---@return table
local function to_json(r)
  local moves, renames, actions = json.array({}), json.array({}), json.array({})
  for _, m in ipairs(r.moves) do moves[#moves + 1] = { src = span(m.src), dst = span(m.dst) } end
  for _, x in ipairs(r.renames) do renames[#renames + 1] = { from = x.from, to = x.to, n = x.n } end
  for _, a in ipairs(r.actions) do
    actions[#actions + 1] = {
      action = a.action, type = a.type,
      src = a.src and span(a.src) or nil, dst = a.dst and span(a.dst) or nil,
      from = a.from, to = a.to, n = a.n or a.nodes,
    }
  end
  return {
    same = r.same, counts = r.counts, moves = moves, renames = renames, actions = actions,
    src_nodes = r.src_nodes, dst_nodes = r.dst_nodes,
  }
end

local COLOR = { insert = '32', delete = '31', update = '33', move = '36', rename = '35',
                added = '32', removed = '31', renamed = '35', moved = '36' }

local function lines(s)
  if s == nil then return '' end
  if s.line == s.end_line then return tostring(s.line) end
  return s.line .. '-' .. s.end_line
end

-- One line of text, at most 60 bytes, for a label.
local function short(s)
  s = s:gsub('%s+', ' ')
  if #s > 60 then s = s:sub(1, 57) .. '...' end
  return s
end

local function text(out, r, a_name, b_name, color)
  local function paint(code, s)
    if not color or not code then return s end
    return '\27[' .. code .. 'm' .. s .. '\27[0m'
  end
  if r.same then
    out:write(('%s and %s are the same (no semantic change)\n'):format(a_name, b_name))
    return
  end
  local c = r.counts
  out:write(('%s -> %s: %d insert, %d delete, %d update, %d move, %d rename\n'):format(
    a_name, b_name, c.insert, c.delete, c.update, c.move, c.rename))
  if #r.summary > 0 then
    out:write('\ndeclarations:\n')
    for _, s in ipairs(r.summary) do
      local what = s.change
      if s.change == 'renamed' then what = 'renamed to ' .. s.to
      elseif s.change == 'signature' or s.change == 'body' then what = s.change .. ' changed' end
      local where = s.src and s.dst and (lines(s.src) .. ' -> ' .. lines(s.dst))
        or s.src and ('-' .. lines(s.src)) or ('+' .. lines(s.dst))
      out:write(('  %s %s %s  (%s)\n'):format(s.kind, short(s.name), paint(COLOR[s.change], what), where))
    end
  end
  out:write('\nchanges:\n')
  local acts = {}
  for i, a in ipairs(r.actions) do acts[i] = a end
  local function key(a) return (a.dst or a.src).start_byte end
  table.sort(acts, function(x, y)
    local kx, ky = key(x), key(y)
    if kx ~= ky then return kx < ky end
    return x.action < y.action
  end)
  for _, a in ipairs(acts) do
    local detail
    if a.action == 'insert' then detail = ('+%s'):format(lines(a.dst))
    elseif a.action == 'delete' then detail = ('-%s'):format(lines(a.src))
    elseif a.action == 'update' then
      detail = ('%s -> %s  %s -> %s'):format(lines(a.src), lines(a.dst), short(a.from), short(a.to))
    elseif a.action == 'move' then detail = ('%s -> %s'):format(lines(a.src), lines(a.dst))
    else detail = ('%s -> %s  %s -> %s (%d occurrences)'):format(lines(a.src), lines(a.dst), a.from, a.to, a.n) end
    local size = (a.nodes and a.nodes > 1) and (' [' .. a.nodes .. ' nodes]') or ''
    out:write(('  %s %s %s%s\n'):format(paint(COLOR[a.action], ('%-6s'):format(a.action)), a.type, detail, size))
  end
end

--- Runs `aegis-run diff ARGS`; `out` (default io.stdout) receives the output.
---@param args string[]
---@param out? file*
---@return integer exit code: 0 same, 1 different
local function run(args, out)
  out = out or io.stdout
  local files, format, lang, comments = {}, 'text', nil, false
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == '--format' or a == '--lang' then
      local v = args[i + 1]
      if v == nil then errors.usage("diff: %s needs a value (see aegis-run diff --help)", a) end
      if a == '--format' then
        if v ~= 'text' and v ~= 'json' then errors.usage("diff: unknown format '%s' (expected text or json)", v) end
        format = v
      else
        if v ~= 'ts' and v ~= 'tsx' then errors.usage("diff: unknown language '%s' (expected ts or tsx)", v) end
        lang = v
      end
      i = i + 2
    elseif a:match('^%-%-format=') or a:match('^%-%-lang=') then
      local k, v = a:match('^%-%-(%w+)=(.*)$')
      table.insert(args, i + 1, v)
      args[i] = '--' .. k
    elseif a == '--comments' then
      comments = true
      i = i + 1
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      errors.usage("diff: unknown option '%s' (see aegis-run diff --help)", a)
    else
      files[#files + 1] = a
      i = i + 1
    end
  end
  if #files ~= 2 then errors.usage('diff: expected two files A and B (see aegis-run diff --help)') end
  local a_src, b_src = read(files[1]), read(files[2])
  local r, err, code = ast.diff(a_src, b_src, { lang = lang, path = files[1], comments = comments })
  if not r then errors.raise(code, '%s', err) end
  if format == 'json' then
    out:write(json.encode(to_json(r)), '\n')
  else
    local color = out == io.stdout and host.isatty(1) and not os.getenv('NO_COLOR')
    text(out, r, files[1], files[2], color)
  end
  return r.same and 0 or 1
end

return { summary = 'semantic diff of two TypeScript/TSX files', usage = usage, run = run, to_json = to_json }
