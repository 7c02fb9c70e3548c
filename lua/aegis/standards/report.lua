--- Output formats of `aegis-run enforce`: text like a compiler, JSON,
--- SARIF 2.1.0 (for GitHub code scanning) and GitHub workflow annotations.
---
--- In every format a finding is rendered by itself, and the findings of a
--- report are their renderings joined by the format's separator, in
--- order. So the processes that check files can render their findings as
--- they find them (`M.renderer`) and the report be made from those parts
--- (`res.parts`, joined in path order) rather than from `res.findings`:
--- the same bytes, without a serial pass over every finding at the end.
--- A report is made as a list of pieces (`M.pieces`) and written piece by
--- piece: joining the parts of a large one into one string, then splicing it
--- into the document, were copies of megabytes in the serial tail of a run.
local fs = require('aegis.fs')
local json = require('aegis.json')

local M = {}

--- What a (file, rule) over the cap of findings says, in every format:
--- `N more findings of rule X not shown (standards.max_findings_per_rule = CAP)`.
---@param c aegis.standards.Capped
---@return string
function M.capped_message(c)
  return ('%d more finding%s of rule %s not shown (standards.max_findings_per_rule = %d)'):format(c.not_shown,
    c.not_shown == 1 and '' or 's', c.rule, c.shown)
end

-- Findings not listed (over the cap), in all.
local function not_shown(res)
  local n = 0
  for _, c in ipairs(res.capped or {}) do n = n + c.not_shown end
  return n
end

--- Where SARIF readers and people find the rule documentation.
M.INFO_URI = 'https://github.com/aegis-run/aegis/blob/main/docs/rulepacks.md'

-- Line n of text `src` (nil: no such line, or no text), without its end
-- ('\n', and a '\r' before it). The starts of the lines passed on the way
-- are kept: findings come sorted by line, so a file is scanned once, and
-- only as far as its last finding (splitting it into lines first took a
-- third of a text report's time).
local function line_finder(src)
  local starts = { 1 }
  return function(n)
    if not src or n < 1 then return nil end
    local k = #starts
    while k < n do
      local nl = src:find('\n', starts[k], true)
      if not nl then return nil end
      k = k + 1
      starts[k] = nl + 1
    end
    local p = starts[n]
    local e = (src:find('\n', p, true) or #src + 1) - 1
    if e >= p and src:byte(e) == 13 then e = e - 1 end
    return src:sub(p, e)
  end
end

-- Source lines of files by path, each read once per report.
local function line_reader()
  local cache = {}
  return function(path, n)
    local find = cache[path]
    if find == nil then
      find = line_finder(fs.read(path))
      cache[path] = find
    end
    return find(n)
  end
end

-- Source lines of one file whose text is at hand (nil: none), the line
-- reader of a process rendering the findings of the file it just checked.
local function lines_of(src)
  local find = line_finder(src)
  return function(_, n) return find(n) end
end

-- The findings part of a report in a format whose findings `fmt` renders
-- (`{list = fn(findings, ctx), sep}`), as a list of pieces (none: no
-- findings): `res.parts` with its separator between them, or `res.findings`
-- rendered (sources read from disk).
local function findings_pieces(res, fmt, ctx)
  local out = {}
  if res.parts then
    local sep = fmt.sep
    for i, x in ipairs(res.parts) do
      if i > 1 then out[#out + 1] = sep end
      out[#out + 1] = x
    end
  else
    local s = fmt.list(res.findings, ctx)
    if s ~= '' then out[1] = s end
  end
  return out
end

-- `list` with the pieces of `more` after its own (returned).
local function append(list, more)
  return table.move(more, 1, #more, #list + 1, list)
end

-- A format's findings from its renderer of one finding: the renderings
-- joined by `sep`.
local function joined(item, sep)
  return {
    sep = sep,
    list = function(findings, ctx)
      local out = {}
      for i, f in ipairs(findings) do out[i] = item(f, ctx) end
      return table.concat(out, sep)
    end,
  }
end

-- The pieces of the JSON text of `doc` (indented by 2) whose array at
-- `key`, `depth` levels down, holds `body`: pieces of elements already
-- encoded at that depth (see `indented`), joined by ',\n' and the depth's
-- indentation; a line end after it. The array is encoded holding one marker,
-- where `body` then goes.
local MARK = 'aegis:rendered-elsewhere'
local function splice(doc, set, key, depth, body)
  if #body == 0 then
    set(json.array({}))
    return { json.encode(doc, { indent = 2 }), '\n' }
  end
  set(json.array({ MARK }))
  local s = json.encode(doc, { indent = 2 })
  local at = ('"%s": [\n%s"%s"'):format(key, ('  '):rep(depth), MARK)
  local i, j = s:find(at, 1, true)
  assert(i, 'report: the marker of the rendered findings is not where it belongs')
  local out = append({ s:sub(1, j - #MARK - 2) }, body)
  out[#out + 1] = s:sub(j + 1)
  out[#out + 1] = '\n'
  return out
end

-- A JSON value encoded as an element of an array `depth` levels down in
-- a document indented by 2 (its inner lines indented for that depth).
local encode_at, run_mod = {}, nil  -- depth -> the encoder (made once: a finding is one call)
local function indented(v, depth)
  local enc = encode_at[depth]
  if not enc then
    enc = json.encoder({ indent = 2, level = depth })
    encode_at[depth] = enc
  end
  run_mod = run_mod or require('aegis.standards.run')
  return run_mod.encode_valid(v, enc)
end

-- {====================================================== text

local COLOR = { error = '1;31', warning = '1;33', info = '1;36', rule = '2', caret = '1;32', path = '1' }

-- The part of a source line shown under a finding: the whole line when it
-- is short, else WINDOW bytes around the column (cut at character
-- boundaries), so a minified or generated one-line file does not print its
-- whole text once per finding. Returns the shown bytes, the finding's
-- column within them, a lead and a tail ('...' where the line is cut).
local WINDOW, BEFORE = 160, 60
local function window(l, col)
  if #l <= WINDOW then return l, col, '', '' end
  local from = math.max(1, col - BEFORE)
  while from > 1 and (l:byte(from) or 0) & 0xC0 == 0x80 do from = from - 1 end
  local to = from + WINDOW - 1
  while to < #l and (l:byte(to + 1) or 0) & 0xC0 == 0x80 do to = to + 1 end
  return l:sub(from, to), col - from + 1, from > 1 and '...' or '', to < #l and '...' or ''
end

local function painter(opts)
  return function(code, s)
    if not opts.color then return s end
    return '\27[' .. code .. 'm' .. s .. '\27[0m'
  end
end

-- One finding as text: its line, and its source line with a caret under it.
local function text_item(f, ctx)
  local paint = ctx.paint
  local head = ('%s %s %s %s'):format(paint(COLOR.path, ('%s:%d:%d'):format(f.path, f.line, f.col)),
    paint(COLOR[f.severity] or '0', f.severity), paint(COLOR.rule, f.rule), f.message)
  local l = ctx.line_of(f.path, f.line)
  if not l then return head end
  local width = 1
  if f.end_line == f.line and f.end_col > f.col then width = f.end_col - f.col end
  local shown, col, lead, tail = window(l, f.col)
  width = math.min(width, #shown - col + 1)
  local before, len = col - 1, width      -- in characters: bytes, in an ASCII line
  if shown:find('[\128-\255]') then
    before = utf8.len(shown:sub(1, col - 1)) or before
    len = utf8.len(shown:sub(col, col + width - 1)) or len
  end
  if shown:find('\t', 1, true) then shown = shown:gsub('\t', ' ') end
  return head .. '\n    ' .. lead .. shown .. tail
    .. '\n    ' .. (' '):rep(#lead + before) .. paint(COLOR.caret, '^' .. ('~'):rep(math.max(len - 1, 0)))
end

local TEXT = joined(text_item, '\n')

-- The pieces of M.text's report (see there).
local function text_pieces(res, opts)
  local out = {}
  local paint = painter(opts)
  local body = findings_pieces(res, TEXT, { paint = paint, line_of = line_reader() })
  for _, c in ipairs(res.capped or {}) do
    out[#out + 1] = ('%s: %s'):format(paint(COLOR.path, c.path), M.capped_message(c))
  end
  local nsyntax = 0
  for _, p in ipairs(res.problems) do
    if p.kind == 'syntax' then
      nsyntax = nsyntax + 1
    else
      local where = p.path ~= '' and p.path .. ': ' or ''
      out[#out + 1] = where .. paint(COLOR.error, 'error') .. ' ' .. p.message
    end
  end
  local c = res.counts
  local parts = {}
  local function count(n, word)
    parts[#parts + 1] = ('%d %s%s'):format(n, word, n == 1 and '' or 's')
  end
  count(c.error, 'error')
  count(c.warning, 'warning')
  if c.info > 0 then count(c.info, 'note') end
  local line = ('%s in %d file%s'):format(table.concat(parts, ', '), res.files, res.files == 1 and '' or 's')
  local nprob = #res.problems - nsyntax
  if nprob > 0 then line = line .. (', %d problem%s'):format(nprob, nprob == 1 and '' or 's') end
  local hidden = not_shown(res)
  if hidden > 0 then
    line = line .. (' (%d not shown: over standards.max_findings_per_rule)'):format(hidden)
  end
  if nsyntax > 0 then
    line = line .. (' (%d syntax error%s: files still checked)'):format(nsyntax, nsyntax == 1 and '' or 's')
  end
  out[#out + 1] = line
  if #body > 0 then body[#body + 1] = '\n' end
  body[#body + 1] = table.concat(out, '\n') .. '\n'
  return body
end

-- }======================================================

-- Findings as elements of the JSON report's `findings`, in one call: the
-- array encoded where it sits ('[\n    {...},\n    {...}\n  ]'), without
-- its brackets and the indentation around them.
local function json_list(findings)
  if #findings == 0 then return '' end
  return indented(json.array(findings), 1):sub(7, -5)
end

local JSON = { list = json_list, sep = ',\n    ' }

-- The JSON report of `res` (see M.json), its findings part `body`.
local function json_report(res, body)
  local nprob = 0
  for _, p in ipairs(res.problems) do if p.kind ~= 'syntax' then nprob = nprob + 1 end end
  local doc = {
    problems = json.array(res.problems),
    rules = json.array(res.rules),
    summary = { files = res.files, errors = res.counts.error, warnings = res.counts.warning,
      infos = res.counts.info, problems = nprob },
  }
  local hidden = not_shown(res)
  if hidden > 0 then  -- absent otherwise: the report is the one from before the cap existed
    doc.capped = json.array(res.capped)
    doc.summary.not_shown = hidden
  end
  return splice(doc, function(v) doc.findings = v end, 'findings', 2, body)
end

-- The pieces of M.json's report (see there).
local function json_pieces(res)
  local body = findings_pieces(res, JSON)
  return require('aegis.standards.run').encode_valid(res, function(clean) return json_report(clean, body) end)
end

-- {====================================================== SARIF

-- A path as a relative URI reference (RFC 3986): segments percent-encoded.
local function uri_path(p)
  return (p:gsub('[^%w%-%._~/]', function(c) return ('%%%02X'):format(c:byte()) end))
end

-- The finding's path relative to the repository root, with '/'.
local function relative(path, root, cwd)
  local walk = require('aegis.standards.walk')
  local abs = walk.absolute(path, cwd)
  local r = root:gsub('/+$', '') .. '/'
  if abs:sub(1, #r) == r then return abs:sub(#r + 1) end
  return nil, abs
end

-- A converter from byte columns to UTF-16 code units (SARIF's default
-- column kind) over the lines of a report; bytes themselves when the line's
-- prefix is not valid UTF-8. A long line is not rescanned for each finding
-- on it (a one-line generated file can hold thousands): ASCII lines are
-- known as such once, and other lines get a table of the units before the
-- first character of every STEP-byte block, so a column costs one block.
local STEP = 1024
local function utf16_columns()
  local lines = {}
  local function index(line)
    local t = lines[line]
    if t then return t end
    t = { ascii = not line:find('[\128-\255]') }
    if not t.ascii then
      local _, bad = utf8.len(line)
      t.bad = bad or #line + 1                  -- first byte of the invalid part
      local units, block = 0, -1
      for pos, cp in utf8.codes(line:sub(1, t.bad - 1)) do
        local b = (pos - 1) // STEP
        if b > block then t[b + 1] = { pos, units }; block = b end
        units = units + (cp >= 0x10000 and 2 or 1)
      end
    end
    lines[line] = t
    return t
  end
  return function(line, bytecol)
    if not line then return bytecol end
    local t = index(line)
    if t.ascii then return bytecol end
    local stop = math.min(bytecol - 1, #line)  -- the prefix is line[1..stop]
    -- not valid UTF-8 up to the column, or the column splits a character
    if stop >= t.bad or (stop + 1 < t.bad and line:byte(stop + 1) & 0xC0 == 0x80) then return bytecol end
    local b = stop // STEP + 1
    local mark = t[b]
    if not mark or mark[1] > stop + 1 then mark = t[b - 1] or { 1, 0 } end
    local units = mark[2]
    for _, cp in utf8.codes(line:sub(mark[1], stop)) do units = units + (cp >= 0x10000 and 2 or 1) end
    return units + 1 + (bytecol - 1 - stop)
  end
end

local LEVEL = { error = 'error', warning = 'warning', info = 'note' }

-- Rule id -> its index in `tool.driver.rules` (the rules as in `res.rules`).
local function rule_index(rules)
  local index = {}
  for i, r in ipairs(rules) do index[r.id] = i - 1 end
  return index
end

-- One finding as an element of the SARIF run's `results` (a finding with
-- its path as found, to read the file by; strings made valid UTF-8 where
-- they are not, as the whole report's are).
local function sarif_item(f, ctx)
  local raw = f.path
  local loc = ctx.loc_path == raw and ctx.loc   -- (findings come by file)
  if not loc then
    local rel, abs = relative(raw, ctx.root, ctx.cwd)
    loc = { uri = uri_path(rel or abs) }
    if rel then loc.uriBaseId = '%SRCROOT%' else loc.uri = 'file://' .. uri_path(abs) end
    ctx.loc_path, ctx.loc = raw, loc
  end
  local l1, l2 = ctx.line_of(raw, f.line), ctx.line_of(raw, f.end_line)
  local region = {
    startLine = f.line, startColumn = ctx.utf16_col(l1, f.col),
    endLine = f.end_line, endColumn = ctx.utf16_col(l2, f.end_col),
  }
  if region.endLine == region.startLine and region.endColumn < region.startColumn then
    region.endColumn = region.startColumn
  end
  local r = {
    ruleId = f.rule, ruleIndex = ctx.index[f.rule], level = LEVEL[f.severity] or 'warning',
    message = { text = f.message },
    locations = json.array({ { physicalLocation = { artifactLocation = loc, region = region } } }),
  }
  if f.fix then
    -- SARIF fixes: replace bytes [start, end) of the file with the text
    r.fixes = json.array({ {
      description = { text = 'Fix offered by ' .. f.rule },
      artifactChanges = json.array({ {
        artifactLocation = loc,
        replacements = json.array({ {
          deletedRegion = { byteOffset = f.fix.start_byte, byteLength = f.fix.end_byte - f.fix.start_byte },
          insertedContent = { text = f.fix.text },
        } }),
      } }),
    } })
  end
  return indented(r, 4)
end

local SARIF = joined(sarif_item, ',\n        ')

-- The SARIF report of `res` (strings valid UTF-8, or the encoder refuses
-- it), naming files by the paths of `raw` (see M.sarif), its results part
-- `body`.
local function sarif_report(res, raw_res, opts, body)
  local rules, index = {}, rule_index(res.rules)
  for i, r in ipairs(res.rules) do
    local props = { tags = json.array({ r.pack }) }
    if r.eslint then props.eslint = r.eslint end
    rules[i] = {
      id = r.id, name = r.name,
      shortDescription = { text = r.description },
      fullDescription = { text = r.description },
      defaultConfiguration = { level = LEVEL[r.severity] or 'warning' },
      helpUri = M.INFO_URI:gsub('rulepacks%.md$', 'rulepacks/' .. r.pack .. '.md'),
      help = { text = r.help or r.description },
      properties = props,
    }
  end
  local notes = {}
  local ok = true
  for _, p in ipairs(res.problems) do
    if p.kind ~= 'syntax' then
      ok = false
      local n = { level = 'error', message = { text = p.message } }
      if p.rule and index[p.rule] then
        n.associatedRule = { id = p.rule, index = index[p.rule] }
      end
      if p.path and p.path ~= '' then
        local rel, abs = relative(p.path, opts.root, opts.cwd)
        local loc = rel and { uri = uri_path(rel), uriBaseId = '%SRCROOT%' } or { uri = 'file://' .. uri_path(abs) }
        n.locations = json.array({ { physicalLocation = { artifactLocation = loc } } })
      end
      notes[#notes + 1] = n
    end
  end
  local function location(p)
    local rel, abs = relative(p, opts.root, opts.cwd)
    local loc = rel and { uri = uri_path(rel), uriBaseId = '%SRCROOT%' } or { uri = 'file://' .. uri_path(abs) }
    return json.array({ { physicalLocation = { artifactLocation = loc } } })
  end
  -- (res.capped is clean, its paths valid UTF-8; the raw ones name the files)
  local raw_capped = raw_res.capped or {}
  for i, c in ipairs(res.capped or {}) do
    local n = { level = 'warning', message = { text = M.capped_message(c) },
      locations = location(raw_capped[i].path),
      properties = { shown = c.shown, notShown = c.not_shown } }
    if index[c.rule] then n.associatedRule = { id = c.rule, index = index[c.rule] } end
    notes[#notes + 1] = n
  end
  local root = opts.root:gsub('/+$', '') .. '/'
  local run = {
    tool = { driver = {
      name = 'aegis-run', semanticVersion = opts.version, version = opts.version,
      informationUri = M.INFO_URI, rules = json.array(rules),
    } },
    originalUriBaseIds = { ['%SRCROOT%'] = { uri = 'file://' .. uri_path(root) } },
    invocations = json.array({ { executionSuccessful = ok,
      toolExecutionNotifications = json.array(notes) } }),
    columnKind = 'utf16CodeUnits',
  }
  local doc = {
    ['$schema'] = 'https://json.schemastore.org/sarif-2.1.0.json',
    version = '2.1.0',
    runs = json.array({ run }),
  }
  return splice(doc, function(v) run.results = v end, 'results', 4, body)
end

-- The pieces of M.sarif's report (see there).
local function sarif_pieces(res, opts)
  local body = findings_pieces(res, SARIF, { root = opts.root, cwd = opts.cwd,
    line_of = line_reader(), utf16_col = utf16_columns(), index = rule_index(res.rules) })
  return require('aegis.standards.run').encode_valid(res, function(clean)
    return sarif_report(clean, res, opts, body)
  end)
end

-- }======================================================

-- {====================================================== GitHub

local function esc_data(s)
  return (s:gsub('%%', '%%25'):gsub('\r', '%%0D'):gsub('\n', '%%0A'))
end

local function esc_prop(s)
  return (esc_data(s):gsub(':', '%%3A'):gsub(',', '%%2C'))
end

local GH = { error = 'error', warning = 'warning', info = 'notice' }

-- One finding as a workflow command.
local function github_item(f)
  return ('::%s file=%s,line=%d,col=%d,endLine=%d,endColumn=%d,title=%s::%s'):format(
    GH[f.severity] or 'warning', esc_prop(f.path), f.line, f.col, f.end_line, f.end_col, esc_prop(f.rule),
    esc_data(f.message))
end

local GITHUB = joined(github_item, '\n')

-- The pieces of M.github's report (see there).
local function github_pieces(res)
  local out = {}
  local body = findings_pieces(res, GITHUB)
  for _, p in ipairs(res.problems) do
    if p.kind ~= 'syntax' then
      local file = p.path ~= '' and ('file=%s,'):format(esc_prop(p.path)) or ''
      out[#out + 1] = ('::error %stitle=%s::%s'):format(file, esc_prop(p.rule or 'aegis-run enforce'),
        esc_data(p.message))
    end
  end
  for _, c in ipairs(res.capped or {}) do
    out[#out + 1] = ('::warning file=%s,title=%s::%s'):format(esc_prop(c.path), esc_prop(c.rule),
      esc_data(M.capped_message(c)))
  end
  if #out > 0 then
    if #body > 0 then body[#body + 1] = '\n' end
    body[#body + 1] = table.concat(out, '\n')
  end
  if #body > 0 then body[#body + 1] = '\n' end
  return body
end

-- }======================================================

-- {====================================================== reports

--- Text like a compiler's: `file:line:col severity rule message`, the
--- source line and a caret under the finding; a line per (file, rule) over
--- the cap of findings; problems after; a summary (whose counts include the
--- findings not shown).
---@param res table The result of `standards.run`
---@param opts {color: boolean}
---@return string
function M.text(res, opts)
  return table.concat(text_pieces(res, opts))
end

--- JSON: `{findings, problems, summary = {files, errors, warnings, infos,
--- problems}, rules}`; when findings were over the cap, also `capped` (a
--- list of `{path, rule, severity, shown, not_shown}`) and `summary.not_shown`
--- (the summary's counts include the findings not shown).
---@param res table
---@return string
function M.json(res)
  return table.concat(json_pieces(res))
end

--- SARIF 2.1.0: one run, `tool.driver.rules` with every rule that ran,
--- results with `ruleId` = the full rule id, locations relative to the
--- repository root (`%SRCROOT%`), columns in UTF-16 code units. Problems,
--- and each (file, rule) over the cap of findings (level `warning`, with
--- `properties.shown` and `properties.notShown`), are notifications of the
--- invocation.
---@param res table
---@param opts {root: string, cwd: string, version: string}
---@return string
function M.sarif(res, opts)
  return table.concat(sarif_pieces(res, opts))
end

--- GitHub workflow commands: `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=rule::message`;
--- a `::warning` per (file, rule) over the cap of findings.
---@param res table
---@return string
function M.github(res)
  return table.concat(github_pieces(res))
end

local PIECES = { text = text_pieces, json = json_pieces, sarif = sarif_pieces, github = github_pieces }

--- The report in `format` ('text', 'json', 'sarif' or 'github', with `opts`
--- as that format's function takes them) as a list of strings whose
--- concatenation is what the format's function returns: for writing a large
--- report piece by piece, without making it one string first.
---@param format string
---@param res table
---@param opts table?
---@return string[]
function M.pieces(format, res, opts)
  local f = PIECES[format]
  if not f then error(("bad argument #1 to 'pieces' (unknown format '%s')"):format(tostring(format)), 2) end
  return f(res, opts)
end

-- }======================================================

--- A renderer of findings as they are found, for a report in `format`
--- ('text', 'json', 'sarif' or 'github'; `opts` as that format's function
--- takes them, and `rules` the report's `res.rules`): `file(findings, src)`
--- renders the findings, sorted, of the file whose text is `src`; the
--- report is then made from `res.parts`, those renderings in path order.
---@param format string
---@param opts table
---@param rules table[]
---@return {file: fun(findings: aegis.standards.Finding[], src: string): string}
function M.renderer(format, opts, rules)
  local fmt, base
  if format == 'text' then
    fmt, base = TEXT, { paint = painter(opts) }
  elseif format == 'json' then
    fmt, base = JSON, {}
  elseif format == 'sarif' then
    fmt, base = SARIF, { root = opts.root, cwd = opts.cwd, index = rule_index(rules) }
  elseif format == 'github' then
    fmt, base = GITHUB, {}
  else
    error(("bad argument #1 to 'renderer' (unknown format '%s')"):format(tostring(format)), 2)
  end
  local mt = { __index = base }
  return {
    file = function(findings, src)
      return fmt.list(findings, setmetatable({ line_of = lines_of(src), utf16_col = utf16_columns() }, mt))
    end,
  }
end

return M
