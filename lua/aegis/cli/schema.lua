--- `aegis-run schema`: lists the registered data models and exports them as
--- JSON Schema 2020-12 files.
local errors = require('aegis.errors')
local json = require('aegis.json')
local modules = require('aegis.modules')
local schema = require('aegis.schema')

local usage = [[
usage: aegis-run schema export DIR [--json]
       aegis-run schema list [--json]

export  writes DIR/<name>.schema.json (JSON Schema 2020-12) for every data
        model, creating DIR if it is missing (its parent must exist), and
        prints each path written
list    prints the names of the data models

options:
  --json  print a JSON list instead of one line per item]]


local function print_list(out, items, as_json)
  if as_json then
    out:write(json.encode(json.array(items)), '\n')
  else
    for _, item in ipairs(items) do out:write(item, '\n') end
  end
end

--- Runs `aegis-run schema ARGS`; `out` (default io.stdout) receives the output.
---@param args string[]
---@param out? file*
---@return integer exit code
local function run(args, out)
  out = out or io.stdout
  local words, as_json = {}, false
  for _, a in ipairs(args) do
    if a == '--json' then
      as_json = true
    elseif a:sub(1, 1) == '-' and a ~= '-' then
      errors.usage("schema: unknown option '%s' (see aegis-run schema --help)", a)
    else
      words[#words + 1] = a
    end
  end
  local cmd = words[1]
  if cmd == 'export' then
    if words[2] == nil then errors.usage('schema: export needs a directory (see aegis-run schema --help)') end
    if words[3] ~= nil then errors.usage("schema: unexpected argument '%s'", words[3]) end
    modules.load_all()
    local files = errors.check(schema.export(words[2]))
    print_list(out, files, as_json)
  elseif cmd == 'list' then
    if words[2] ~= nil then errors.usage("schema: unexpected argument '%s'", words[2]) end
    modules.load_all()
    print_list(out, schema.names(), as_json)
  elseif cmd == nil then
    errors.usage("schema: expected 'export DIR' or 'list' (see aegis-run schema --help)")
  else
    errors.usage("schema: unknown command '%s' (expected 'export' or 'list')", cmd)
  end
  return 0
end

return { summary = 'export data models as JSON Schema', usage = usage, run = run }
