--- Output formats of `aegis-run enforce`: text like a compiler, JSON,
--- SARIF 2.1.0 (for GitHub code scanning) and GitHub workflow annotations.
local fs = require('aegis.fs')
local json = require('aegis.json')

local M = {}

--- Where SARIF readers and people find the rule documentation.
M.INFO_URI = 'https://github.com/aegis-run/aegis/blob/main/docs/rulepacks.md'

-- Source lines of a file, read once per report.
local function line_reader()
  local cache = {}
  return function(path, n)
    local lines = cache[path]
    if lines == nil then
      lines = false
      local src = fs.read(path)
      if src then
        lines = {}
        for l in (src .. '\n'):gmatch('([^\n]*)\n') do lines[#lines + 1] = (l:gsub('\r$', '')) end
      end
      cache[path] = lines
    end
    return lines and lines[n] or nil
  end
end

-- {====================================================== text

local COLOR = { error = '1;31', warning = '1;33', info = '1;36', rule = '2', caret = '1;32', path = '1' }

--- Text like a compiler's: `file:line:col severity rule message`, the
--- source line and a caret under the finding; problems after; a summary.
---@param res table The result of `standards.run`
---@param opts {color: boolean}
---@return string
function M.text(res, opts)
  local out = {}
  local function paint(code, s)
    if not opts.color then return s end
    return '\27[' .. code .. 'm' .. s .. '\27[0m'
  end
  local line_of = line_reader()
  for _, f in ipairs(res.findings) do
    out[#out + 1] = ('%s %s %s %s'):format(paint(COLOR.path, ('%s:%d:%d'):format(f.path, f.line, f.col)),
      paint(COLOR[f.severity] or '0', f.severity), paint(COLOR.rule, f.rule), f.message)
    local l = line_of(f.path, f.line)
    if l then
      local shown = l:gsub('\t', ' ')
      out[#out + 1] = '    ' .. shown
      local width = 1
      if f.end_line == f.line and f.end_col > f.col then width = f.end_col - f.col end
      local before = utf8.len(l:sub(1, f.col - 1)) or (f.col - 1)
      local len = utf8.len(l:sub(f.col, f.col + width - 1)) or width
      out[#out + 1] = '    ' .. (' '):rep(before) .. paint(COLOR.caret, '^' .. ('~'):rep(math.max(len - 1, 0)))
    end
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
  if nsyntax > 0 then
    line = line .. (' (%d syntax error%s: files still checked)'):format(nsyntax, nsyntax == 1 and '' or 's')
  end
  out[#out + 1] = line
  return table.concat(out, '\n') .. '\n'
end

-- }======================================================

--- JSON: `{findings, problems, summary = {files, errors, warnings, infos,
--- problems}, rules}`.
---@param res table
---@return string
function M.json(res)
  res = require('aegis.standards.run').clean(res)
  local nprob = 0
  for _, p in ipairs(res.problems) do if p.kind ~= 'syntax' then nprob = nprob + 1 end end
  return json.encode({
    findings = json.array(res.findings),
    problems = json.array(res.problems),
    rules = json.array(res.rules),
    summary = { files = res.files, errors = res.counts.error, warnings = res.counts.warning,
      infos = res.counts.info, problems = nprob },
  }, { indent = 2 }) .. '\n'
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

-- UTF-16 code units in the first `bytes` bytes of `line` (SARIF's default
-- column kind); bytes themselves when the line is not valid UTF-8.
local function utf16_col(line, bytecol)
  if not line then return bytecol end
  local prefix = line:sub(1, bytecol - 1)
  local units = 0
  if not utf8.len(prefix) then return bytecol end
  for _, cp in utf8.codes(prefix) do units = units + (cp >= 0x10000 and 2 or 1) end
  return units + 1 + (bytecol - 1 - #prefix)
end

local LEVEL = { error = 'error', warning = 'warning', info = 'note' }

--- SARIF 2.1.0: one run, `tool.driver.rules` with every rule that ran,
--- results with `ruleId` = the full rule id, locations relative to the
--- repository root (`%SRCROOT%`), columns in UTF-16 code units.
---@param res table
---@param opts {root: string, cwd: string, version: string}
---@return string
function M.sarif(res, opts)
  local raw_findings = res.findings
  res = require('aegis.standards.run').clean(res)
  local line_of = line_reader()
  local rules, index = {}, {}
  for i, r in ipairs(res.rules) do
    index[r.id] = i - 1
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
  local results = {}
  for i, f in ipairs(res.findings) do
    local raw = raw_findings[i].path  -- the file's own name, to read it (percent-encoded in the URI)
    local rel, abs = relative(raw, opts.root, opts.cwd)
    local loc = { uri = uri_path(rel or abs) }
    if rel then loc.uriBaseId = '%SRCROOT%' else loc.uri = 'file://' .. uri_path(abs) end
    local l1, l2 = line_of(raw, f.line), line_of(raw, f.end_line)
    local region = {
      startLine = f.line, startColumn = utf16_col(l1, f.col),
      endLine = f.end_line, endColumn = utf16_col(l2, f.end_col),
    }
    if region.endLine == region.startLine and region.endColumn < region.startColumn then
      region.endColumn = region.startColumn
    end
    local r = {
      ruleId = f.rule, ruleIndex = index[f.rule], level = LEVEL[f.severity] or 'warning',
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
    results[#results + 1] = r
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
  local root = opts.root:gsub('/+$', '') .. '/'
  local doc = {
    ['$schema'] = 'https://json.schemastore.org/sarif-2.1.0.json',
    version = '2.1.0',
    runs = json.array({ {
      tool = { driver = {
        name = 'aegis-run', semanticVersion = opts.version, version = opts.version,
        informationUri = M.INFO_URI, rules = json.array(rules),
      } },
      originalUriBaseIds = { ['%SRCROOT%'] = { uri = 'file://' .. uri_path(root) } },
      invocations = json.array({ { executionSuccessful = ok,
        toolExecutionNotifications = json.array(notes) } }),
      results = json.array(results),
      columnKind = 'utf16CodeUnits',
    } }),
  }
  return json.encode(doc, { indent = 2 }) .. '\n'
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

--- GitHub workflow commands: `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=rule::message`.
---@param res table
---@return string
function M.github(res)
  local out = {}
  for _, f in ipairs(res.findings) do
    out[#out + 1] = ('::%s file=%s,line=%d,col=%d,endLine=%d,endColumn=%d,title=%s::%s'):format(
      GH[f.severity] or 'warning', esc_prop(f.path), f.line, f.col, f.end_line, f.end_col, esc_prop(f.rule),
      esc_data(f.message))
  end
  for _, p in ipairs(res.problems) do
    if p.kind ~= 'syntax' then
      local file = p.path ~= '' and ('file=%s,'):format(esc_prop(p.path)) or ''
      out[#out + 1] = ('::error %stitle=%s::%s'):format(file, esc_prop(p.rule or 'aegis-run enforce'),
        esc_data(p.message))
    end
  end
  return #out > 0 and table.concat(out, '\n') .. '\n' or ''
end

-- }======================================================

return M
