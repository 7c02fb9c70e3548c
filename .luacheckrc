-- luacheck configuration for `make lint`
std = 'lua54'
max_line_length = 120
files['spec'] = { std = '+busted' }
files['lua/aegis/test_output.lua'] = { globals = {} }
-- scripts, pipelines, rulepacks and providers run in the sandbox, where `aegis` is a global
for _, dir in ipairs({ 'examples', 'pipelines', 'rulepacks', 'providers', 'spec/fixtures' }) do
  files[dir] = { read_globals = { 'aegis' } }
end
