// The official LangGraph savers on a store URL aegis understands.
import Database from "better-sqlite3";
import pg from "pg";
import { SqliteSaver } from "@langchain/langgraph-checkpoint-sqlite";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";

// url: sqlite:PATH or postgresql://...; returns { saver, close }
export async function officialSaver(url, { synchronous = "FULL" } = {}) {
  if (url.startsWith("sqlite:")) {
    const db = new Database(url.slice("sqlite:".length));
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma("busy_timeout = 10000");
    const saver = new SqliteSaver(db);
    return { saver, close: async () => db.close() };
  }
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const saver = new PostgresSaver(pool);
  await saver.setup();
  return { saver, close: async () => pool.end() };
}

export async function collect(gen) {
  const out = [];
  for await (const x of gen) out.push(x);
  return out;
}
