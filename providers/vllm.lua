-- vLLM's OpenAI-compatible server (`vllm serve`): Chat Completions at
-- /v1/chat/completions. See docs/providers.md.
--
-- The system text and stable blocks form the first message, byte for byte
-- the same across calls, which is what vLLM's automatic prefix caching
-- (on by default in the V1 engine) matches on. The cached-token count
-- (`prompt_tokens_details.cached_tokens`) is only reported when the server
-- runs with --enable-prompt-tokens-details; without it the count is
-- unknown (nil), never 0. The key, if the server wants one (--api-key), is
-- read from VLLM_API_KEY.
local ctx = ...
local openai = ctx.require('openai')

local M = {
  name = 'vllm',
  base_url = 'http://127.0.0.1:8000',
  base_url_env = 'VLLM_BASE_URL',
  auth = { header = 'authorization', scheme = 'Bearer', env = 'VLLM_API_KEY', required = false },
  endpoints = { chat = '/v1/chat/completions' },
  -- Only what does not depend on the model (for cache keys, aegis.cache;
  -- never sent): vLLM takes temperature, top_p, top_k and repetition_penalty
  -- from the model's generation_config.json by default, so an omitted one
  -- is not assumed equal to any value.
  defaults = { n = 1, presence_penalty = 0, frequency_penalty = 0 },
}

function M.build_request(resolved)
  return {
    method = 'POST',
    path = M.endpoints.chat,
    headers = { ['content-type'] = 'application/json' },
    body = openai.chat.body(resolved, { max_field = 'max_tokens', cache_key = false }),
  }
end

function M.parse_response(res)
  return openai.chat.parse(res)
end

function M.parse_stream_event(ev, state)
  return openai.chat.stream_event(ev, state)
end

function M.classify_error(res)
  return ctx.util.classify_http(res)
end

return M
