// The official @langchain/langgraph-checkpoint-validation suite (library
// mode) against aegis through AegisSaver. Env: AEGIS_BIN, AEGIS_BACKEND
// (sqlite|postgres), AEGIS_VALIDATION_DIR (sqlite files) or AEGIS_PG_URL.
import { validate } from "@langchain/langgraph-checkpoint-validation";
import pg from "pg";
import { AegisSaver } from "./aegis_saver.mjs";

const bin = process.env.AEGIS_BIN;
const backend = process.env.AEGIS_BACKEND;
let n = 0;

async function freshStore() {
  if (backend === "sqlite") return `sqlite:${process.env.AEGIS_VALIDATION_DIR}/v${process.pid}_${++n}.db`;
  const url = process.env.AEGIS_PG_URL;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // a schema of its own per checkpointer, so every one starts empty
  const schema = `aegis_validation_${process.pid}_${++n}`;
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  const sep = url.includes("?") ? "&" : "?";
  return `${url}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

validate({
  checkpointerName: `aegis-${backend}`,
  async createCheckpointer() {
    return new AegisSaver(bin, await freshStore());
  },
  async destroyCheckpointer(saver) {
    await saver.close();
  },
});
