// Wire check: the official `openai` and `@anthropic-ai/sdk` packages against
// the provider emulator. They must parse its plain and streamed answers,
// usage and errors, and retry as they do against the real services (the
// attempts are counted in the emulator's log).
//
// usage: node spec/support/sdk_check.mjs EMULATOR_URL NODE_PREFIX
//   EMULATOR_URL  http://127.0.0.1:PORT (from `aegis-run emulate --port 0`)
//   NODE_PREFIX   the `npm install --prefix` directory holding the SDKs
// Prints one JSON line per check ({name, ok, detail}) and exits 1 if any failed.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [base, prefix] = process.argv.slice(2);
if (!base || !prefix) {
  console.error('usage: node sdk_check.mjs EMULATOR_URL NODE_PREFIX');
  process.exit(2);
}
const require = createRequire(path.resolve(prefix, 'package.json'));
const OpenAI = require('openai').default ?? require('openai');
const AnthropicMod = require('@anthropic-ai/sdk');
const Anthropic = AnthropicMod.default ?? AnthropicMod;

// A key built at run time; it is the emulator's business only to see that
// one was sent.
const KEY = 'sk-' + 'test-' + 'x'.repeat(20);

async function control(method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`emulator ${method} ${p}: ${res.status} ${await res.text()}`);
  return res.json();
}
const reset = () => control('POST', '/_emulator/reset');
const faults = (route, list) => control('POST', `/_emulator/faults/${route}`, list);
async function attempts(prefixPath) {
  const log = await control('GET', '/_emulator/log');
  return log.filter((e) => e.path.startsWith(prefixPath)).length;
}

const results = [];
function check(name, ok, detail) {
  results.push({ name, ok: !!ok, detail });
}
async function run(name, fn) {
  await reset();
  try {
    await fn();
  } catch (e) {
    check(name, false, `threw ${e && e.constructor && e.constructor.name}: ${e && e.message}`);
  }
}

// Small retry-after-ms so SDK retries do not sleep for seconds; the SDKs
// honour it as the real services send it.
const QUICK = { 'retry-after-ms': '5' };
const LONG = 'You are a careful TypeScript engineer. '.repeat(120); // > 1024 emulator tokens

const openai = new OpenAI({ apiKey: KEY, baseURL: base + '/openai/v1', maxRetries: 2, timeout: 20000 });
const anthropic = new Anthropic({ apiKey: KEY, baseURL: base + '/anthropic', maxRetries: 2, timeout: 20000 });

// {================================================ OpenAI
await run('openai chat plain', async () => {
  const r = await openai.chat.completions.create({ model: 'gpt-5.4', messages: [{ role: 'user', content: 'hi' }] });
  const text = r.choices[0].message.content;
  check('openai chat plain', typeof text === 'string' && text.length > 0 && r.choices[0].finish_reason === 'stop'
    && Number.isInteger(r.usage.prompt_tokens) && Number.isInteger(r.usage.completion_tokens)
    && r.usage.prompt_tokens_details.cached_tokens === 0, JSON.stringify(r.usage));
});

await run('openai chat stream', async () => {
  const stream = await openai.chat.completions.create({
    model: 'gpt-5.4', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true },
  });
  let text = ''; let usage = null; let finish = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  check('openai chat stream', text.length > 0 && finish === 'stop' && usage && usage.completion_tokens > 0,
    JSON.stringify({ text, usage }));
});

await run('openai cached tokens on the second call', async () => {
  const req = { model: 'gpt-5.4', messages: [{ role: 'system', content: LONG }, { role: 'user', content: 'one' }] };
  const first = await openai.chat.completions.create(req);
  req.messages[1].content = 'two';
  const second = await openai.chat.completions.create(req);
  const c1 = first.usage.prompt_tokens_details.cached_tokens;
  const c2 = second.usage.prompt_tokens_details.cached_tokens;
  check('openai cached tokens on the second call', c1 === 0 && c2 >= 1024 && c2 % 128 === 0
    && second.usage.prompt_tokens >= c2, JSON.stringify({ c1, c2, prompt: second.usage.prompt_tokens }));
});

await run('openai responses plain and stream', async () => {
  const r = await openai.responses.create({ model: 'gpt-5.4', input: 'hi', instructions: 'be brief' });
  const ok1 = typeof r.output_text === 'string' && r.output_text.length > 0 && Number.isInteger(r.usage.input_tokens);
  const stream = await openai.responses.create({ model: 'gpt-5.4', input: 'hi', stream: true });
  let text = ''; let done = null;
  for await (const ev of stream) {
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed') done = ev.response;
  }
  check('openai responses plain and stream', ok1 && text.length > 0 && done && done.usage.output_tokens > 0,
    JSON.stringify({ plain: r.output_text, text }));
});

await run('openai retries 500 and 429, then succeeds (3 attempts)', async () => {
  await faults('openai', [{ status: 500, headers: QUICK }, { status: 429, headers: QUICK }]);
  const r = await openai.chat.completions.create({ model: 'gpt-5.4', messages: [{ role: 'user', content: 'hi' }] });
  const n = await attempts('/openai/');
  check('openai retries 500 and 429, then succeeds (3 attempts)', r.choices[0].message.content && n === 3, `attempts ${n}`);
});

await run('openai gives up after 2 retries (3 attempts, InternalServerError)', async () => {
  await faults('openai', [{ status: 503, headers: QUICK }, { status: 503, headers: QUICK }, { status: 503, headers: QUICK }]);
  let err = null;
  try {
    await openai.chat.completions.create({ model: 'gpt-5.4', messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) { err = e; }
  const n = await attempts('/openai/');
  check('openai gives up after 2 retries (3 attempts, InternalServerError)',
    err instanceof OpenAI.InternalServerError && err.status === 503 && n === 3, `attempts ${n}, ${err && err.message}`);
});

await run('openai does not retry 400 (1 attempt, BadRequestError with the error body)', async () => {
  await faults('openai', [{ status: 400, message: 'bad thing' }]);
  let err = null;
  try {
    await openai.chat.completions.create({ model: 'gpt-5.4', messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) { err = e; }
  const n = await attempts('/openai/');
  check('openai does not retry 400 (1 attempt, BadRequestError with the error body)',
    err instanceof OpenAI.BadRequestError && /bad thing/.test(err.message) && n === 1, `attempts ${n}, ${err && err.message}`);
});

await run('openai honours x-should-retry: false (1 attempt)', async () => {
  await faults('openai', [{ status: 500, headers: { 'x-should-retry': 'false' } }]);
  let err = null;
  try {
    await openai.chat.completions.create({ model: 'gpt-5.4', messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) { err = e; }
  const n = await attempts('/openai/');
  check('openai honours x-should-retry: false (1 attempt)', err && err.status === 500 && n === 1, `attempts ${n}`);
});
// }================================================

// {================================================ Anthropic
await run('anthropic messages plain', async () => {
  const r = await anthropic.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100,
    messages: [{ role: 'user', content: 'hi' }] });
  const text = r.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  check('anthropic messages plain', text.length > 0 && r.stop_reason === 'end_turn'
    && Number.isInteger(r.usage.input_tokens) && r.usage.cache_read_input_tokens === 0, JSON.stringify(r.usage));
});

await run('anthropic messages stream', async () => {
  const stream = anthropic.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 100,
    messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  const finalText = final.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  check('anthropic messages stream', text.length > 0 && text === finalText && final.usage.output_tokens > 0
    && final.stop_reason === 'end_turn', JSON.stringify({ text, usage: final.usage }));
});

await run('anthropic cache write then read, split by TTL', async () => {
  const req = (q) => ({
    model: 'claude-sonnet-4-6', max_tokens: 50,
    system: [{ type: 'text', text: LONG, cache_control: { type: 'ephemeral', ttl: '1h' } }],
    messages: [{ role: 'user', content: q }],
  });
  const a = await anthropic.messages.create(req('one'));
  const b = await anthropic.messages.create(req('two'));
  check('anthropic cache write then read, split by TTL',
    a.usage.cache_creation_input_tokens > 0 && a.usage.cache_creation.ephemeral_1h_input_tokens === a.usage.cache_creation_input_tokens
    && b.usage.cache_read_input_tokens === a.usage.cache_creation_input_tokens && b.usage.cache_creation_input_tokens === 0,
    JSON.stringify({ first: a.usage, second: b.usage }));
});

await run('anthropic retries 529 overloaded, then succeeds (2 attempts)', async () => {
  await faults('anthropic', [{ status: 529, headers: QUICK }]);
  const r = await anthropic.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 20,
    messages: [{ role: 'user', content: 'hi' }] });
  const n = await attempts('/anthropic/');
  check('anthropic retries 529 overloaded, then succeeds (2 attempts)', r.content.length > 0 && n === 2, `attempts ${n}`);
});

await run('anthropic does not retry 401 (1 attempt, AuthenticationError)', async () => {
  await faults('anthropic', [{ status: 401 }]);
  let err = null;
  try {
    await anthropic.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) { err = e; }
  const n = await attempts('/anthropic/');
  check('anthropic does not retry 401 (1 attempt, AuthenticationError)',
    err instanceof Anthropic.AuthenticationError && err.status === 401 && n === 1, `attempts ${n}, ${err && err.message}`);
});

await run('anthropic mid-stream error event is an error', async () => {
  await faults('anthropic', [{ error_after_events: 4 }]);
  let err = null;
  try {
    const stream = anthropic.messages.stream({ model: 'claude-sonnet-4-6', max_tokens: 100,
      messages: [{ role: 'user', content: 'hi' }] });
    await stream.finalMessage();
  } catch (e) { err = e; }
  check('anthropic mid-stream error event is an error', err instanceof Anthropic.APIError, String(err && err.message));
});
// }================================================

let failed = 0;
for (const r of results) {
  if (!r.ok) failed++;
  console.log(JSON.stringify(r));
}
const version = (pkg) => JSON.parse(fs.readFileSync(path.join(prefix, 'node_modules', pkg, 'package.json'), 'utf8')).version;
console.log(JSON.stringify({ checks: results.length, failed, openai: version('openai'),
  anthropic: version('@anthropic-ai/sdk'), node: process.version }));
process.exit(failed === 0 ? 0 : 1);
