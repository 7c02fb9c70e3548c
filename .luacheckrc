-- luacheck configuration for `make lint`
std = 'lua54'
max_line_length = 120
files['spec'] = { std = '+busted' }
files['lua/aegis/test_output.lua'] = { globals = {} }
