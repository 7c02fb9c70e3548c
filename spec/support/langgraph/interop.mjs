// Drives LangGraph's official savers against a store aegis also uses.
//   node interop.mjs read URL THREAD            what the saver lists and loads, as JSON
//   node interop.mjs write URL THREAD           writes checkpoints and writes, prints them as JSON
//   node interop.mjs graph-start URL THREAD     runs a graph until it is interrupted before 'module'
//   node interop.mjs graph-resume URL THREAD ID resumes the graph from checkpoint ID
import { officialSaver, collect } from "./savers.mjs";
import { uuid6 } from "@langchain/langgraph-checkpoint";
import { StateGraph, Annotation, START, END } from "@langchain/langgraph";

const [mode, url, thread, id] = process.argv.slice(2);
const { saver, close } = await officialSaver(url);

function plain(tuple) {
  if (!tuple) return null;
  return {
    config: tuple.config.configurable,
    parent: tuple.parentConfig?.configurable?.checkpoint_id ?? null,
    checkpoint: tuple.checkpoint,
    metadata: tuple.metadata,
    pendingWrites: tuple.pendingWrites ?? [],
  };
}

const State = Annotation.Root({
  topic: Annotation(),
  steps: Annotation({ reducer: (a, b) => a.concat(b), default: () => [] }),
});

function graph() {
  const step = (name) => async (s) => ({ steps: [`${name}:${s.topic}`] });
  return new StateGraph(State)
    .addNode("plan", step("plan"))
    .addNode("module", step("module"))
    .addNode("file", step("file"))
    .addEdge(START, "plan")
    .addEdge("plan", "module")
    .addEdge("module", "file")
    .addEdge("file", END)
    .compile({ checkpointer: saver, interruptBefore: ["module"] });
}

let out;
try {
  if (mode === "read") {
    const listed = await collect(saver.list({ configurable: { thread_id: thread } }));
    const tuples = {};
    const latest = {};
    for (const t of listed) {
      const c = t.config.configurable;
      tuples[c.checkpoint_id] = plain(await saver.getTuple({ configurable: c }));
      if (!(c.checkpoint_ns in latest)) {
        latest[c.checkpoint_ns] = (await saver.getTuple({ configurable: { thread_id: thread, checkpoint_ns: c.checkpoint_ns } }))
          .config.configurable.checkpoint_id;
      }
    }
    out = { list: listed.map(plain), tuples, latest };
  } else if (mode === "write") {
    const values1 = {
      goal: "todo app ✓ 😀", n: 1, ratio: 0.1, big: 9007199254740991, neg: -2.5e-7,
      empty_list: [], empty_obj: {}, nested: { a: [1, { b: null }], t: true, f: false },
    };
    const c1 = { v: 4, id: uuid6(-1), ts: new Date().toISOString(), channel_values: values1,
      channel_versions: Object.fromEntries(Object.keys(values1).map((k) => [k, 1])), versions_seen: { plan: { goal: 1 } } };
    const cfg1 = await saver.put({ configurable: { thread_id: thread, checkpoint_ns: "" } }, c1,
      { source: "input", step: -1, parents: {}, layer: "plan" }, c1.channel_versions);
    const values2 = { ...values1, n: 2, goal: "todo app v2" };
    const c2 = { v: 4, id: uuid6(-1), ts: new Date().toISOString(), channel_values: values2,
      channel_versions: { ...c1.channel_versions, n: 2, goal: 2 }, versions_seen: { plan: { goal: 1 }, module: { n: 2 } } };
    const cfg2 = await saver.put(cfg1, c2, { source: "loop", step: 0, parents: {}, name: "lg-two" }, { n: 2, goal: 2 });
    await saver.putWrites(cfg2, [["n", 3], ["log", ["a", "b"]]], "task-1");
    await saver.putWrites(cfg2, [["__error__", { message: "boom" }]], "task-2");
    const c3 = { v: 4, id: uuid6(-1), ts: new Date().toISOString(), channel_values: { files: ["a.ts"] },
      channel_versions: { files: 1 }, versions_seen: {} };
    const cfg3 = await saver.put({ configurable: { thread_id: thread, checkpoint_ns: "module:api" } }, c3,
      { source: "loop", step: 0, parents: { "": c2.id }, layer: "module" }, { files: 1 });
    out = { ids: [c1.id, c2.id, c3.id], tuples: {} };
    for (const cfg of [cfg1, cfg2, cfg3]) out.tuples[cfg.configurable.checkpoint_id] = plain(await saver.getTuple(cfg));
  } else if (mode === "graph-start") {
    const g = graph();
    const config = { configurable: { thread_id: thread } };
    await g.invoke({ topic: "todo" }, config);
    const st = await g.getState(config);
    out = { id: st.config.configurable.checkpoint_id, values: st.values, next: st.next };
  } else if (mode === "graph-resume") {
    const g = graph();
    const config = { configurable: { thread_id: thread, checkpoint_id: id } };
    const before = await g.getState(config);
    const result = await g.invoke(null, config);
    const after = await g.getState({ configurable: { thread_id: thread } });
    out = { before: { values: before.values, next: before.next }, result, next: after.next,
      parent: after.parentConfig?.configurable?.checkpoint_id ?? null };
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await close();
}
process.stdout.write(JSON.stringify(out) + "\n");
