// Per-rule agreement of `aegis-run enforce` with ESLint over the corpus.
// Findings match on (file, rule, start position).  ESLint's columns are
// 1-based UTF-16 code units on lines split at \r\n, \r, \n, U+2028 and U+2029
// (of the text without its byte order mark); aegis's are 1-based bytes on
// lines split at \n.  Both are turned into one measure, the UTF-16 offset from
// the start of the file's text without BOM, before matching.
// usage: node compare.mjs CORPUS_DIR ESLINT_JSON AEGIS_JSON MISMATCH_DIR [SUMMARY_JSON]
// Prints the per-rule table; writes MISMATCH_DIR/<rule>.txt (a sample of each
// side's unmatched findings, with the source line) and SUMMARY_JSON.
import fs from 'node:fs';
import path from 'node:path';

const [corpusArg, eslintJson, oursJson, mismatchDir, summaryJson] = process.argv.slice(2);
if (!mismatchDir) {
  console.error('usage: node compare.mjs CORPUS_DIR ESLINT_JSON AEGIS_JSON MISMATCH_DIR [SUMMARY_JSON]');
  process.exit(2);
}
const corpus = path.resolve(corpusArg);
const SAMPLE = 200;  // unmatched findings written per side and rule

// aegis rule id -> ESLint rule id (the `eslint` field of the rules)
const RULES = [
  ['typescript-strict/no-explicit-any', '@typescript-eslint/no-explicit-any'],
  ['typescript-strict/ban-ts-comment', '@typescript-eslint/ban-ts-comment'],
  ['typescript-strict/no-non-null-assertion', '@typescript-eslint/no-non-null-assertion'],
  ['typescript-strict/explicit-function-return-type', '@typescript-eslint/explicit-function-return-type'],
  ['typescript-strict/prefer-const', 'prefer-const'],
  ['typescript-strict/no-var', 'no-var'],
  ['typescript-strict/no-unused-vars', '@typescript-eslint/no-unused-vars'],
  ...['alt-text', 'anchor-has-content', 'anchor-is-valid', 'click-events-have-key-events',
    'no-static-element-interactions', 'no-noninteractive-element-interactions',
    'label-has-associated-control', 'heading-has-content', 'aria-role']
    .map((r) => [`a11y/${r}`, `jsx-a11y/${r}`]),
];
const ofEslint = new Map(RULES.map(([a, e]) => [e, a]));
const ours = new Set(RULES.map(([a]) => a));

// relative path inside the corpus, whatever form the tool printed
function rel(p) {
  const abs = path.resolve(p);
  if (abs.startsWith(corpus + path.sep)) return abs.slice(corpus.length + 1);
  return p;
}

// per file: the text (BOM dropped), the buffer, line starts both ways
const files = new Map();
function file(relPath) {
  let f = files.get(relPath);
  if (f) return f;
  const buf = fs.readFileSync(path.join(corpus, relPath));
  const bom = buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  const text = buf.subarray(bom).toString('utf8');
  // ESLint's lines: UTF-16 offsets of line starts
  const esStarts = [0];
  const re = /\r\n|[\r\n\u2028\u2029]/g;
  for (let m; (m = re.exec(text));) esStarts.push(m.index + m[0].length);
  // tree-sitter's lines: byte offsets of line starts (in the whole buffer)
  const tsStarts = [0];
  for (let i = 0; i < buf.length; i++) if (buf[i] === 0x0a) tsStarts.push(i + 1);
  f = { buf, bom, text, esStarts, tsStarts };
  files.set(relPath, f);
  return f;
}
function offsetOfEslint(f, line, col) {
  return (f.esStarts[line - 1] ?? f.text.length) + (col - 1);
}
function offsetOfOurs(f, line, col) {
  const byte = (f.tsStarts[line - 1] ?? f.buf.length) + (col - 1);
  if (byte <= f.bom) return 0;
  return f.buf.subarray(f.bom, byte).toString('utf8').length;
}
// the source line (tree-sitter's numbering) holding a UTF-16 offset
function lineAt(f, off) {
  let lo = 0, hi = f.esStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f.esStarts[mid] <= off) lo = mid; else hi = mid - 1;
  }
  const start = f.esStarts[lo];
  const end = lo + 1 < f.esStarts.length ? f.esStarts[lo + 1] : f.text.length;
  return { line: lo + 1, col: off - start + 1, src: f.text.slice(start, end).replace(/[\r\n\u2028\u2029]+$/, '') };
}

// ---- ESLint
const eslint = JSON.parse(fs.readFileSync(eslintJson, 'utf8'));
const fatal = new Set();
const found = new Map();  // aegis rule id -> { eslint: [], ours: [] }
for (const [a] of RULES) found.set(a, { eslint: [], ours: [] });
let eslintOther = 0;
const suppressed = new Map();  // ESLint findings of these rules the corpus's own comments disable
for (const r of eslint) {
  const p = rel(r.filePath);
  for (const m of r.suppressedMessages || []) {
    const a = ofEslint.get(m.ruleId);
    if (a) suppressed.set(a, (suppressed.get(a) || 0) + 1);
  }
  for (const m of r.messages) {
    if (m.fatal) { fatal.add(p); continue; }
    const a = ofEslint.get(m.ruleId);
    if (!a) { eslintOther++; continue; }  // e.g. "Definition for rule 'react/x' was not found"
    const f = file(p);
    found.get(a).eslint.push({ file: p, off: offsetOfEslint(f, m.line, m.column), msg: m.message });
  }
}

// ---- aegis
const aegis = JSON.parse(fs.readFileSync(oursJson, 'utf8'));
const unmapped = new Map();
for (const x of aegis.findings || []) {
  if (!ours.has(x.rule)) { unmapped.set(x.rule, (unmapped.get(x.rule) || 0) + 1); continue; }
  const p = rel(x.path);
  const f = file(p);
  found.get(x.rule).ours.push({ file: p, off: offsetOfOurs(f, x.line, x.col), msg: x.message });
}

// ---- match
const key = (x) => `${x.file}\0${x.off}`;
const lineKey = (x) => `${x.file}\0${lineAt(file(x.file), x.off).line}`;
// spread a sample over the files: round-robin by file
function sample(list, n) {
  const byFile = new Map();
  for (const x of list) {
    if (!byFile.has(x.file)) byFile.set(x.file, []);
    byFile.get(x.file).push(x);
  }
  const queues = [...byFile.values()];
  const out = [];
  for (let i = 0; out.length < n && queues.some((q) => i < q.length); i++) {
    for (const q of queues) if (i < q.length && out.length < n) out.push(q[i]);
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.off - b.off));
}

fs.mkdirSync(mismatchDir, { recursive: true });
const rows = [];
for (const [a, e] of RULES) {
  const { eslint: es, ours: us } = found.get(a);
  const skip = (x) => fatal.has(x.file);
  const esL = es.filter((x) => !skip(x));
  const usL = us.filter((x) => !skip(x));
  const pool = new Map();
  for (const x of esL) {
    const k = key(x);
    if (!pool.has(k)) pool.set(k, []);
    pool.get(k).push(x);
  }
  let matched = 0;
  const oursOnly = [];
  for (const x of usL) {
    const q = pool.get(key(x));
    if (q && q.length) { q.pop(); matched++; } else oursOnly.push(x);
  }
  const eslintOnly = [...pool.values()].flat();
  // unmatched pairs on the same line: a column difference, not a missing finding
  const esLines = new Map(), usLines = new Map();
  for (const x of eslintOnly) esLines.set(lineKey(x), x);
  for (const x of oursOnly) usLines.set(lineKey(x), x);
  esLines.same = new Set(esL.map(key));
  usLines.same = new Set(usL.map(key));
  let sameLine = 0;
  for (const k of usLines.keys()) if (esLines.has(k)) sameLine++;
  // unmatched where the other side has a finding at the very same position:
  // one side reports several findings there (nested nodes starting together)
  const usKeys = new Set(usL.map(key)), esKeys = new Set(esL.map(key));
  const samePos = eslintOnly.filter((x) => usKeys.has(key(x))).length + oursOnly.filter((x) => esKeys.has(key(x))).length;

  const short = a.split('/')[1];
  const fmt = (x, other) => {
    const f = file(x.file);
    const l = lineAt(f, x.off);
    const o = other.get(`${x.file}\0${l.line}`);
    const near = o ? `   (other side on this line at col ${lineAt(f, o.off).col})` :
      (other.same && other.same.has(key(x)) ? '   (other side has fewer findings at this position)' : '');
    const src = l.src.length > 200 ? l.src.slice(0, 200) + '…' : l.src;
    return `${x.file}:${l.line}:${l.col}  ${x.msg || ''}${near}\n    ${src}\n`;
  };
  const txt = [
    `# ${a} against ESLint's ${e} on the corpus`,
    `# eslint ${esL.length}  aegis ${usL.length}  matched ${matched}  ` +
      `eslint-only ${eslintOnly.length}  aegis-only ${oursOnly.length}  (same line, other column: ${sameLine}; ` +
      `more findings at one position on one side: ${samePos})`,
    `# columns are 1-based UTF-16 code units (ESLint's); a sample of at most ${SAMPLE} per side, spread over files`,
    '',
    `## ESLint only: missed by aegis (${eslintOnly.length})`,
    ...sample(eslintOnly, SAMPLE).map((x) => fmt(x, usLines)),
    `## aegis only: not reported by ESLint (${oursOnly.length})`,
    ...sample(oursOnly, SAMPLE).map((x) => fmt(x, esLines)),
  ].join('\n');
  fs.writeFileSync(path.join(mismatchDir, `${short}.txt`), txt + '\n');
  rows.push({
    rule: a, eslint_rule: e, eslint: esL.length, aegis: usL.length, matched,
    precision: usL.length ? matched / usL.length : null,
    recall: esL.length ? matched / esL.length : null,
    eslint_only: eslintOnly.length, aegis_only: oursOnly.length, same_line: sameLine, same_position: samePos,
  });
}

const pct = (v) => (v === null ? '    -' : `${(100 * v).toFixed(1).padStart(5)}`);
console.log('rule                                            eslint   aegis matched  prec%   rec%  same-line same-pos');
for (const r of rows) {
  console.log(`${r.rule.padEnd(47)} ${String(r.eslint).padStart(7)} ${String(r.aegis).padStart(7)} ` +
    `${String(r.matched).padStart(7)}  ${pct(r.precision)}  ${pct(r.recall)}  ${String(r.same_line).padStart(9)} ${String(r.same_position).padStart(8)}`);
}
const tot = rows.reduce((t, r) => ({ e: t.e + r.eslint, a: t.a + r.aegis, m: t.m + r.matched }), { e: 0, a: 0, m: 0 });
console.log(`${'all mapped rules'.padEnd(47)} ${String(tot.e).padStart(7)} ${String(tot.a).padStart(7)} ` +
  `${String(tot.m).padStart(7)}  ${pct(tot.a ? tot.m / tot.a : null)}  ${pct(tot.e ? tot.m / tot.e : null)}`);
if (fatal.size) console.log(`files ESLint could not parse (left out on both sides): ${[...fatal].join(', ')}`);
console.log(`ESLint findings of these rules disabled by the corpus's own comments (aegis must disable the same): ` +
  ([...suppressed].map(([k, v]) => `${k.split('/')[1]} ${v}`).join(', ') || 'none'));
console.log(`ESLint messages of other rules (unknown rules named in the corpus's own comments): ${eslintOther}`);
if (unmapped.size) {
  console.log(`aegis findings of rules without an ESLint peer (not compared): ` +
    [...unmapped].map(([k, v]) => `${k} ${v}`).join(', '));
}
if (summaryJson) {
  fs.writeFileSync(summaryJson, JSON.stringify({ rules: rows, fatal: [...fatal], eslint_other: eslintOther,
    eslint_suppressed: Object.fromEntries(suppressed),
    unmapped: Object.fromEntries(unmapped) }, null, 2) + '\n');
}
