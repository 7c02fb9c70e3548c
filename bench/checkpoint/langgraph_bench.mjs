// The LangGraph.js side of bench/checkpoint/run.sh: SqliteSaver (with a
// better-sqlite3 handle at synchronous FULL and NORMAL, WAL) and
// PostgresSaver on the same server, saving and loading the same states.
//   node langgraph_bench.mjs STATES_JSON SQLITE_DIR [PG_URL]
import { readFileSync } from "node:fs";
import Database from "better-sqlite3";
import pg from "pg";
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import { uuid6 } from "@langchain/langgraph-checkpoint";

const [statesPath, dir, pgUrl] = process.argv.slice(2);
const states = JSON.parse(readFileSync(statesPath, "utf8"));

function median(t) {
  t.sort((a, b) => a - b);
  return t[Math.ceil(t.length / 2) - 1];
}

async function time(n, fn) {
  for (let i = 1; i <= 2; i++) await fn(-i);
  const ts = [];
  for (let i = 1; i <= n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    ts.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  return median(ts);
}

const targets = [];
for (const sync of ["FULL", "NORMAL"]) {
  const db = new Database(`${dir}/langgraph-${sync.toLowerCase()}.db`);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${sync}`);
  // grow the WAL as aegis_bench.lua does, so no measured commit extends it
  db.exec("CREATE TABLE IF NOT EXISTS warm (k INTEGER PRIMARY KEY, v BLOB)");
  const ins = db.prepare("INSERT INTO warm (v) VALUES (?)");
  for (let i = 0; i < 6; i++) ins.run(Buffer.alloc(1100000, 120));
  for (let i = 0; i < 600; i++) ins.run(Buffer.alloc(3000, 121));
  db.exec("DELETE FROM warm");
  targets.push({ name: `sqlite-${sync.toLowerCase()}`, saver: new SqliteSaver(db), close: () => db.close() });
}
if (pgUrl) {
  const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
  const saver = new PostgresSaver(pool);
  await saver.setup();
  targets.push({ name: "postgres", saver, close: () => pool.end() });
}

const results = [];
for (const tg of targets) {
  for (const st of states) {
    const run = process.hrtime.bigint().toString();
    const configs = [];
    const versions = Object.fromEntries(Object.keys(st.state).map((k) => [k, 1]));
    const r = { target: tg.name, size: st.name };
    r.save_us = await time(st.n, async (i) => {
      const cp = { v: 4, id: uuid6(-1), ts: new Date().toISOString(), channel_values: st.state,
        channel_versions: versions, versions_seen: {} };
      const cfg = await tg.saver.put({ configurable: { thread_id: `b-${st.name}-${run}-${i}`, checkpoint_ns: "" } }, cp,
        { source: "loop", step: 0, parents: {} }, versions);
      if (i > 0) configs[i] = cfg;
    });
    r.load_us = await time(st.n, async (i) => {
      const t = await tg.saver.getTuple(configs[i > 0 ? i : 1]);
      if (!t) throw new Error("not found");
    });
    results.push(r);
  }
  await tg.close();
}
process.stdout.write(JSON.stringify(results) + "\n");
