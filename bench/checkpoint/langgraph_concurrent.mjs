// One PostgresSaver writer of bench/checkpoint/concurrent_bench.lua: says it
// is ready, waits for the go file, makes N small saves to its own thread
// (each the child of the one before, as aegis's saves are) and writes the
// monotonic times (seconds, the system-wide clock aegis's workers use) of
// its first and last save.
//   node langgraph_concurrent.mjs PG_URL THREAD N READY GO OUT
import { existsSync, writeFileSync } from "node:fs";
import pg from "pg";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import { uuid6 } from "@langchain/langgraph-checkpoint";

const [url, thread, n, ready, go, out] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: 1 });
const saver = new PostgresSaver(pool);
await saver.setup();
// hrtime is CLOCK_MONOTONIC on Linux, the clock aegis.clock.monotonic reads
const now = () => Number(process.hrtime.bigint()) / 1e9;
writeFileSync(ready, "");
while (!existsSync(go)) await new Promise((r) => setTimeout(r, 1));
let config = { configurable: { thread_id: thread, checkpoint_ns: "" } };
let versions = {};
const t0 = now();
for (let i = 1; i <= Number(n); i++) {
  // a changed channel gets the next version, as LangGraph's loop numbers them
  versions = { goal: 1, done: 1, i: i };
  const cp = { v: 4, id: uuid6(-1), ts: new Date().toISOString(), channel_values: { i, goal: "todo app", done: false },
    channel_versions: versions, versions_seen: {} };
  config = await saver.put(config, cp, { source: "loop", step: i - 1, parents: {} }, i === 1 ? versions : { i });
}
const t1 = now();
writeFileSync(out, `${t0.toFixed(6)} ${t1.toFixed(6)}\n`);
await pool.end();
