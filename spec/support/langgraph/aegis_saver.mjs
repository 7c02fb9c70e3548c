// A LangGraph checkpoint saver that forwards every method to aegis-run:
// one long-lived `aegis-run checkpoint serve --store URL` child per saver,
// speaking one JSON object per line (docs/checkpoints.md). Values cross the
// pipe as the JSON that LangGraph's own serializer makes, and are revived
// by it on the way back, as the official savers do.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { BaseCheckpointSaver, copyCheckpoint } from "@langchain/langgraph-checkpoint";

const decoder = new TextDecoder();

export class AegisSaver extends BaseCheckpointSaver {
  constructor(bin, store) {
    super();
    this.seq = 0;
    this.waiting = new Map();
    this.child = spawn(bin, ["checkpoint", "serve", "--store", store], { stdio: ["pipe", "pipe", "inherit"] });
    this.exited = new Promise((resolve) => this.child.on("exit", resolve));
    this.child.on("exit", (code) => {
      for (const { reject } of this.waiting.values()) reject(new Error(`aegis-run exited (${code})`));
      this.waiting.clear();
    });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const reply = JSON.parse(line);
      const w = this.waiting.get(reply.seq);
      if (!w) return;
      this.waiting.delete(reply.seq);
      if (reply.ok) w.resolve(reply.result);
      else w.reject(new Error(`${reply.error} (${reply.code})`));
    });
  }

  call(op, args) {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.child.stdin.write(JSON.stringify({ op, seq, ...args }) + "\n");
    });
  }

  async close() {
    this.child.stdin.end();
    await this.exited;
  }

  async dump(value) {
    const [type, bytes] = await this.serde.dumpsTyped(value);
    if (type !== "json") throw new Error(`aegis adapter: serialisation type '${type}' is not supported`);
    return JSON.parse(decoder.decode(bytes));
  }

  async revive(value) {
    return this.serde.loadsTyped("json", JSON.stringify(value));
  }

  async toTuple(r) {
    const checkpoint = await this.revive(r.checkpoint);
    const tuple = {
      config: { configurable: { thread_id: r.thread, checkpoint_ns: r.ns, checkpoint_id: r.id } },
      checkpoint,
      metadata: await this.revive(r.metadata),
      pendingWrites: await Promise.all(r.pending_writes.map(async ([t, c, v]) => [t, c, await this.revive(v)])),
    };
    if (r.parent) tuple.parentConfig = { configurable: { thread_id: r.thread, checkpoint_ns: r.ns, checkpoint_id: r.parent } };
    return tuple;
  }

  async getTuple(config) {
    const { thread_id, checkpoint_ns = "", checkpoint_id } = config.configurable ?? {};
    if (!thread_id) return undefined;
    const r = await this.call("get_tuple", { thread: thread_id, ns: checkpoint_ns, id: checkpoint_id || undefined });
    return r ? this.toTuple(r) : undefined;
  }

  async *list(config, options) {
    const { limit, before, filter } = options ?? {};
    const c = config?.configurable ?? {};
    const clean = Object.fromEntries(Object.entries(filter ?? {}).filter(([, v]) => v !== undefined));
    const rows = await this.call("list", {
      thread: c.thread_id || undefined,
      ns: c.checkpoint_ns ?? undefined,
      before: before?.configurable?.checkpoint_id,
      filter: Object.keys(clean).length ? clean : undefined,
      limit: limit ? Number.parseInt(limit, 10) : undefined,
    });
    for (const r of rows) yield await this.toTuple(r);
  }

  async put(config, checkpoint, metadata, newVersions) {
    if (!config.configurable) throw new Error("Empty configuration supplied.");
    const { thread_id, checkpoint_ns = "", checkpoint_id } = config.configurable;
    if (!thread_id) throw new Error('Missing "thread_id" field in passed "config.configurable".');
    await this.call("put", {
      thread: thread_id,
      ns: checkpoint_ns,
      parent: checkpoint_id || undefined,
      checkpoint: await this.dump(copyCheckpoint(checkpoint)),
      metadata: await this.dump(metadata),
      new_versions: newVersions ?? {},
    });
    return { configurable: { thread_id, checkpoint_ns, checkpoint_id: checkpoint.id } };
  }

  async putWrites(config, writes, taskId) {
    if (!config.configurable) throw new Error("Empty configuration supplied.");
    if (!config.configurable.thread_id) throw new Error("Missing thread_id field in config.configurable.");
    if (!config.configurable.checkpoint_id) throw new Error("Missing checkpoint_id field in config.configurable.");
    await this.call("put_writes", {
      thread: config.configurable.thread_id,
      ns: config.configurable.checkpoint_ns ?? "",
      id: config.configurable.checkpoint_id,
      task_id: taskId,
      writes: await Promise.all(writes.map(async ([c, v]) => [c, await this.dump(v)])),
    });
  }

  async deleteThread(threadId) {
    await this.call("delete_thread", { thread: threadId });
  }
}
