-- A team's own adapter: the company's LLM gateway, which speaks OpenAI's Chat
-- Completions at <base>/chat/completions, takes the team's own key (read
-- from TEAM_GATEWAY_KEY by aegis, never by this file) as a Bearer token,
-- wants an `x-team` header, and refuses with 429 {"error": {"code": "budget_exhausted"}} when
-- the team's monthly budget is spent, which must not be retried.
--
-- Put this directory on AEGIS_PATH and call it by its file name:
--   AEGIS_PATH=examples/custom_provider aegis-run call --provider gateway --model gpt-5.4 'hi'
local ctx = ...                      -- {util = helpers, require = load another adapter}
local util = ctx.util
local openai = ctx.require('openai') -- reuse its Chat Completions pieces

local M = {
  name = 'gateway',
  base_url = 'https://llm-gateway.internal.example/v1',
  base_url_env = 'TEAM_GATEWAY_URL',
  auth = { header = 'authorization', scheme = 'Bearer', env = 'TEAM_GATEWAY_KEY', required = true },
}

-- resolved: {model, system?, blocks, messages?, params, stream?, cache?, base_url, options}
function M.build_request(resolved)
  local body = openai.chat.body(resolved, { max_field = 'max_tokens', cache_key = true })
  return {
    method = 'POST',
    path = '/chat/completions',
    headers = { ['x-team'] = resolved.options.team or 'unknown' },
    body = body,
  }
end

-- The gateway answers as OpenAI does: prompt_tokens include cached tokens.
M.parse_response = openai.chat.parse
M.parse_stream_event = openai.chat.stream_event

function M.classify_error(res)
  local code = util.get(res, 'json', 'error', 'code')
  return util.classify_http(res, res.status == 429 and code == 'budget_exhausted')
end

return M
