--- `aegis-run test`: runs busted specs inside aegis-run itself, so specs test
--- the binary users run, with every aegis module (C and Lua) available.
local usage = [[
usage: aegis-run test [busted options] [PATHS...]

Runs busted specs (default: ./spec, files ending in _spec.lua) inside
aegis-run, with the aegis modules on require's path. Ends with the line
"N passed, N failed" and exits non-zero when anything failed.
Options are busted's own (see busted --help); a .busted file is honoured.]]

local function run(args)
  local ok, runner = pcall(require, 'busted.runner')
  if not ok then
    require('aegis.errors').config('test: busted is not installed (Debian package lua-busted): %s',
      tostring(runner):match('^[^\n]*'))
  end
  local has_output = false
  for _, a in ipairs(args) do
    if a == '-o' or a:find('^%-%-output') then has_output = true end
  end
  local argv = { [0] = 'aegis-run test' }
  if not has_output then argv[1] = '--output=aegis.test_output' end
  table.move(args, 1, #args, #argv + 1, argv)
  _G.arg = argv
  -- busted ends the process itself with the number of failures and errors
  runner({ standalone = false })
  return 0
end

return { summary = 'run busted specs inside aegis-run', usage = usage, run = run }
