// Holds js/index.d.ts to what the package does. The types are written by hand, so this reads
// the sources they describe and fails, naming both sides, when one changed without the other:
// - the entries' exports and the tracker's methods, at run time (js/node.js, with pkg/server)
//   and in the entries' source (browser, workerd);
// - the options, input fields, error codes and fields, call results, tracker events and their
//   reasons, from the Rust core (src/) and the JavaScript driver, route and consumer (js/);
// - no `any`, and nothing of the wasm glue (pkg/) in the public types.
// Then it prints the public types without comments and compares them with
// public-api.d.ts.snap (UPDATE=1 rewrites it), so a change of the API is a reviewed one.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const here = fileURLToPath(new URL("./", import.meta.url));
const ts = createRequire(import.meta.url)(`${root}node_modules/typescript`);
const read = (p) => readFileSync(root + p, "utf8");
/** Every `.rs` file of a module directory, one after another. */
const readModule = (dir) =>
  readdirSync(root + dir)
    .filter((f) => f.endsWith(".rs"))
    .sort()
    .map((f) => read(`${dir}/${f}`))
    .join("\n");
const DTS = `${root}js/index.d.ts`;

const failures = [];
const fail = (m) => failures.push(m);
const sorted = (s) => [...s].sort();
/** Fails unless the two sets are equal, saying what each side lacks. */
function same(what, typed, source, sourceName) {
  const t = new Set(typed);
  const s = new Set(source);
  const missing = sorted([...s].filter((x) => !t.has(x)));
  const extra = sorted([...t].filter((x) => !s.has(x)));
  if (missing.length || extra.length) {
    fail(`${what}: ${missing.length ? `not typed but in ${sourceName}: ${missing.join(", ")}` : ""}${missing.length && extra.length ? "; " : ""}${extra.length ? `typed but not in ${sourceName}: ${extra.join(", ")}` : ""}`);
  }
}
/** Every match of `re` (global) in `text`: group 1. */
const all = (re, text) => [...text.matchAll(re)].map((m) => m[1]);
/** The text from `start` to the first line that is exactly `end` after it. */
function section(text, start, end, where) {
  const i = text.indexOf(start);
  if (i < 0) {
    fail(`${where}: could not find \`${start}\` (the source moved: update tests/types/api.mjs)`);
    return "";
  }
  const j = text.indexOf(end, i);
  return text.slice(i, j < 0 ? undefined : j);
}

// ---- the public types, through the compiler ---------------------------------------------------

const program = ts.createProgram([DTS], { strict: true, exactOptionalPropertyTypes: true, noEmit: true, lib: ["lib.es2022.d.ts", "lib.dom.d.ts"] });
const checker = program.getTypeChecker();
const file = program.getSourceFile(DTS);
const diagnostics = ts.getPreEmitDiagnostics(program);
for (const d of diagnostics) fail(`index.d.ts: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
const exported = new Map(checker.getExportsOfModule(checker.getSymbolAtLocation(file)).map((s) => [s.name, s]));

function typeNamed(name) {
  const s = exported.get(name);
  if (!s) throw new Error(`index.d.ts exports no ${name}`);
  return checker.getDeclaredTypeOfSymbol(s);
}
const props = (type) => checker.getPropertiesOfType(type).map((p) => p.name);
function propType(type, name) {
  const p = type.getProperty(name);
  if (!p) throw new Error(`${checker.typeToString(type)} has no ${name}`);
  return checker.getTypeOfSymbol(p);
}
/** The string literals of a union (undefined dropped); `open` when it also takes any string. */
function literals(type) {
  const parts = type.isUnion() ? type.types : [type];
  const values = [];
  let open = false;
  for (const t of parts) {
    if (t.isStringLiteral()) values.push(t.value);
    else if (t.flags & ts.TypeFlags.Undefined) continue;
    else if (t.flags & (ts.TypeFlags.String | ts.TypeFlags.Intersection)) open = true;
    else values.push(`<${checker.typeToString(t)}>`);
  }
  return { values, open };
}
const lits = (type) => literals(type).values;
/** The members of a union by their discriminant `key`. */
function byType(union, key = "type") {
  const out = new Map();
  for (const m of union.types) out.set(lits(propType(m, key))[0], m);
  return out;
}

// ---- exports and methods ----------------------------------------------------------------------

const values = new Set([...exported.values()].filter((s) => s.flags & ts.SymbolFlags.Value).map((s) => s.name));
const entryExports = (src) => [
  ...all(/^export (?:const|let|function|class|async function) (\w+)/gm, src),
  ...[...src.matchAll(/^export \{([^}]*)\} from/gm)].flatMap((m) => m[1].split(",").map((x) => x.trim().split(/\s+as\s+/).pop())),
];
const node = await import(`${root}js/node.js`);
same("values of the node entry", values, Object.keys(node), "js/node.js (at run time)");
same("values of the workerd entry", values, entryExports(read("js/workerd.js")), "js/workerd.js");
const browserOnly = new Set(entryExports(read("js/browser.js")));
for (const n of browserOnly) if (!values.has(n)) fail(`js/browser.js exports ${n}, which index.d.ts does not declare`);
for (const n of ["handleTrackRequest", "handleTrackQueue"]) {
  if (browserOnly.has(n)) fail(`js/browser.js exports ${n}: index.d.ts says it is Node and Workers only`);
}

const trackerType = typeNamed("AutumnTracker");
same(
  "AutumnTracker methods",
  props(trackerType),
  Object.getOwnPropertyNames(node.AutumnTracker.prototype).filter((n) => n !== "constructor"),
  "the class at run time (node entry)",
);
// Statics are internal (`panicked`: the entries' panic recovery); none is typed.
const trackerStatics = checker.getPropertiesOfType(checker.getTypeOfSymbol(exported.get("AutumnTracker"))).map((p) => p.name).filter((n) => n !== "prototype");
if (trackerStatics.length) fail(`AutumnTracker statics are internal, but typed: ${trackerStatics.join(", ")}`);
if (!/addWithContext\(wire\(g[,)]/.test(read("js/node.js")) || /addWithContext/.test(read("js/browser.js"))) {
  fail("withContext is typed as Node and Workers only: check js/node.js and js/browser.js");
}

// ---- options and input ------------------------------------------------------------------------

/** `("camel", None | Some("alias"))` rows of a Rust names table. */
function namesTable(path, table) {
  const body = section(read(path), `const ${table}:`, "];", path);
  return [...body.matchAll(/\("(\w+)",\s*(?:None|Some\("(\w+)"\))\)/g)].map((m) => ({ camel: m[1], alias: m[2] }));
}
const optionNames = namesTable("src/options.rs", "NAMES");
same("TrackerOptions", props(typeNamed("TrackerOptions")), optionNames.flatMap((n) => [n.camel, ...(n.alias ? [n.alias] : [])]), "src/options.rs NAMES");

const fields = namesTable("src/event.rs", "FIELDS");
same("TrackInput", props(typeNamed("TrackInput")), fields.map((n) => n.camel), "src/event.rs FIELDS (camelCase)");
const accepted = new Set(fields.flatMap((n) => [n.camel, ...(n.alias ? [n.alias] : [])]));
const rest = props(typeNamed("TrackInputRest"));
for (const n of rest) if (!accepted.has(n)) fail(`TrackInputRest.${n} is not a field src/event.rs accepts`);
for (const n of fields) if (n.alias && !rest.includes(n.alias)) fail(`TrackInputRest lacks ${n.alias} (src/event.rs FIELDS)`);

// ---- errors -----------------------------------------------------------------------------------

const codes = [...all(/Code::\w+ => "(\w+)"/g, read("src/error.rs")), ...all(/code: "(\w+)"/g, read("js/tracker.js"))];
const codeType = literals(typeNamed("TrackErrorCode"));
same("TrackErrorCode", codeType.values, codes, "src/error.rs Code::as_str and js/tracker.js");
if (!codeType.open) fail("TrackErrorCode must also take Autumn's own codes (string & {})");
const errorClass = exported.get("TrackError").declarations[0];
const errorMembers = errorClass.members.filter((m) => m.name).map((m) => m.name.getText(file));
// The edge builds a thrown error in js/value.js error() (`set("field", …)`), from the fields
// src/js/error.rs passes it.
same("TrackError fields", errorMembers, [...all(/set\("(\w+)"/g, section(read("js/value.js"), "export function error(", "\n}\n", "js/value.js"))], "js/value.js error()");

// ---- results ----------------------------------------------------------------------------------

const encode = read("src/engine/wire/write.rs");
const driver = read("js/tracker.js");
/** The members a piece of wire.rs writes (`o.str("name", …)`, `o.u(…)`, …). */
const members = (piece) => all(/o\.(?:str|u|num|bool|opt_str|strs|key)\("(\w+)"/g, piece);
/** Fields each `Outcome::X` arm of wire.rs `outcome()` sets. */
const arms = new Map();
for (const piece of section(encode, "fn outcome(", "\n}\n", "src/engine/wire/write.rs").split(/(?=Outcome::\w+)/)) {
  const m = /^Outcome::(\w+)/.exec(piece);
  if (m && !arms.has(m[1])) arms.set(m[1], members(piece));
}
const outcome = (arm) => arms.get(arm) ?? (fail(`src/engine/wire/write.rs outcome() has no Outcome::${arm}`), []);
// Errors reach callers two ways: thrown by the edge (js/value.js error()) and resolved through the
// driver (wire.rs error()): the same fields.
// (`message` goes to the constructor, which sets `name`.)
const resolvedError = members(section(encode, "pub fn error(", "\n}\n", "src/engine/wire/write.rs")).map((f) => (f === "message" ? "name" : f));
if (!/new TrackError\(c\.error\.message\), c\.error\)/.test(driver)) fail("js/tracker.js resolve() no longer builds a TrackError from the engine's error: update tests/types/api.mjs");
same("TrackError fields (resolved)", errorMembers, resolvedError, "src/engine/wire/write.rs error()");
// The driver swaps `responseId` for the parsed body, and adds `queue` with a Cloudflare Queue.
if (!/v\.response = /.test(driver) || !/delete v\.responseId/.test(driver) || !/v\.queue = /.test(driver)) {
  fail("js/tracker.js resolve() no longer maps responseId → response / adds queue: update tests/types/api.mjs");
}
const results = byType(typeNamed("TrackResult"), "status");
const fromCore = (arm) => outcome(arm).map((f) => (f === "responseId" ? "response" : f));
same("TrackResult delivered", props(results.get("delivered")), fromCore("Delivered"), "wire.rs Outcome::Delivered");
same("TrackResult duplicate", props(results.get("duplicate")), fromCore("Duplicate"), "wire.rs Outcome::Duplicate");
same("TrackResult queued", props(results.get("queued")), [...fromCore("Queued"), "queue"], "wire.rs Outcome::Queued + the driver's queue");
same("FlushResult", props(typeNamed("FlushResult")), fromCore("Flushed"), "wire.rs Outcome::Flushed");
same("PendingCounts", props(typeNamed("PendingCounts")), fromCore("Pending"), "wire.rs Outcome::Pending");
same("DeadLetterInfo", props(typeNamed("DeadLetterInfo")), members(section(encode, "fn dead_info(", "\n}\n", "src/engine/wire/write.rs")), "wire.rs dead_info");

// Storage: the core's kinds, `durable` replaced by the driver with the store's kind.
const storages = all(/Storage::\w+ => "(\w+)"/g, encode);
const storeKinds = [...all(/this\.kind = "(\w+)"/g, read("js/store.js")), ...all(/super\("(\w+)"/g, read("js/sqlstore.js"))];
if (!/storage === "durable"\) \w+\.storage = this\.mainKind/.test(driver)) fail("js/tracker.js no longer maps storage durable → the store's kind");
same(
  "QueueStorage | PendingCounts.storage",
  [...lits(typeNamed("QueueStorage")), ...lits(propType(typeNamed("PendingCounts"), "storage"))],
  [...storages.filter((s) => s !== "durable"), ...storeKinds],
  "wire.rs storage() + js/store.js kinds",
);

// Reasons: what queued_reason() answers, and the literals the engine queues with.
const queuedReason = all(/=> "(\w+)"/g, section(read("src/answer.rs"), "pub fn queued_reason(", "\n}\n", "src/answer.rs"));
const trackRs = readModule("src/engine/track");
same(
  "QueuedReason",
  lits(typeNamed("QueuedReason")),
  [...queuedReason, ...all(/reason: "(\w+)"/g, trackRs), ...all(/\("(\w+)", (?:ACCEPTED|OFFLINE)\)/g, trackRs)],
  "src/answer.rs queued_reason + src/engine/track/",
);
const drainRs = readModule("src/engine/drain");
same(
  "TrackQueueMessage.reason",
  lits(propType(typeNamed("TrackQueueMessage"), "reason")),
  [...queuedReason, ...all(/reason: "(\w+)"/g, drainRs)],
  "queued_reason + the drain's hand-over (HandOverItem)",
);

// ---- tracker events ---------------------------------------------------------------------------

const engineSrc = readdirSync(`${root}src/engine`, { recursive: true }).filter((f) => f.endsWith(".rs")).sort().map((f) => read(`src/engine/${f}`)).join("\n");
const notices = new Map(); // kind → { fields, reasons }
for (const m of engineSrc.matchAll(/Notice\s*\{([^{}]*?)\.\.Notice::(keyed|new)\("(\w+)"/g)) {
  const [, body, how, kind] = m;
  const n = notices.get(kind) ?? { fields: new Set(["type"]), reasons: new Set() };
  notices.set(kind, n);
  if (how === "keyed") n.fields.add("idempotencyKey");
  for (const f of all(/(?:^|[\s,])(\w+):/g, body)) n.fields.add(f);
  for (const r of all(/reason: Some\("(\w+)"\)/g, body)) n.reasons.add(r);
  if (/reason: Some\((?!")/.test(body)) for (const r of queuedReason) n.reasons.add(r);
  // The offline and deferred notices name their reason through a pair `("offline", OFFLINE)`.
  if (kind === "queued") for (const r of all(/\("(\w+)", (?:ACCEPTED|OFFLINE)\)/g, engineSrc)) n.reasons.add(r);
}
const events = byType(typeNamed("TrackerEvent"));
same("TrackerEvent types", events.keys(), notices.keys(), "src/engine Notice kinds");
for (const [kind, n] of notices) {
  const member = events.get(kind);
  if (!member) continue;
  same(`TrackerEvent "${kind}"`, props(member), n.fields, "its Notice fields in src/engine");
  if (n.reasons.size) same(`TrackerEvent "${kind}" reason`, lits(propType(member, "reason")), n.reasons, "its Notice reasons in src/engine");
}

// ---- the route and the consumer ---------------------------------------------------------------

/** The names an options object is destructured into (`const { a, b = 1, ...rest } = options`). */
function destructured(src, fn, where) {
  const body = section(src, `function ${fn}(`, "\n}\n", where);
  const m = /const \{([^}]*)\} = options;/.exec(body);
  if (!m) return fail(`${where} ${fn}: no \`const { … } = options\``), [];
  return m[1].split(",").map((x) => x.trim()).filter((x) => x && !x.startsWith("...")).map((x) => x.split(/\s*=/)[0]);
}
const cfqueue = read("js/cfqueue.js");
same("HandleTrackRequestOptions", props(typeNamed("HandleTrackRequestOptions")), destructured(read("js/proxy.js"), "readOptions", "js/proxy.js"), "js/proxy.js readOptions");
same("HandleTrackQueueOptions", props(typeNamed("HandleTrackQueueOptions")), destructured(cfqueue, "readConsumerOptions", "js/cfqueue.js"), "js/cfqueue.js readConsumerOptions");
for (const [opt, required] of [["secretKey", true], ["requeue", true], ["deadLetter", false]]) {
  const p = typeNamed("HandleTrackQueueOptions").getProperty(opt);
  if (p && !!(p.flags & ts.SymbolFlags.Optional) === required) fail(`HandleTrackQueueOptions.${opt} must be ${required ? "required" : "optional"}`);
}
const report = /const report = \{([^}]*)\}/.exec(cfqueue)?.[1] ?? "";
same("TrackQueueReport", props(typeNamed("TrackQueueReport")), [...all(/(\w+):/g, report), ...all(/report\.(\w+) = /g, cfqueue)], "js/cfqueue.js report");
const letterFields = all(/set\(&letter, "(\w+)"/g, read("src/js/consumer.rs"));
same("TrackQueueRefusal", props(typeNamed("TrackQueueRefusal")), [...all(/report\.refused\.push\(\{ (\w+):/g, cfqueue), ...letterFields], "js/cfqueue.js refused + the core's letter");
const full = section(cfqueue, "const full = {", "};", "js/cfqueue.js");
same("TrackQueueDeadLetter", props(typeNamed("TrackQueueDeadLetter")), [...all(/\b(\w+):/g, full), ...letterFields], "js/cfqueue.js dead letter + the core's letter");
const retryReasons = [...cfqueue.matchAll(/report\.retryReason = \{([^}]*)\}/g)].flatMap((m) => all(/(\w+):/g, m[1]));
same("TrackQueueReport.retryReason", props(checker.getNonNullableType(propType(typeNamed("TrackQueueReport"), "retryReason"))), retryReasons, "js/cfqueue.js retryReason");
const producer = section(cfqueue, "export function handOver(", "\n}\n", "js/cfqueue.js");
const handover = section(producer, "body: {", "},", "js/cfqueue.js handOver");
same("TrackQueueMessage", props(typeNamed("TrackQueueMessage")), [...all(/(\w+):/g, handover), ...all(/\{ \.\.\.read\[i\]\.message, (\w+):/g, cfqueue)], "js/cfqueue.js hand-over + the consumer's copies");

// ---- nothing internal, no any, and the snapshot -----------------------------------------------

const text = file.getFullText();
if (/from\s+["'][^"']*pkg\//.test(text) || /import\(["'][^"']*pkg\//.test(text) || /declare module/.test(text)) {
  fail("index.d.ts refers to the wasm glue (pkg/): its types are internal");
}
for (const n of ["Engine", "Consumer", "classify", "confirmAfterMs", "initSync", "glue", "wire", "bindTracker", "errorClass", "addWithContext", "post"]) {
  if (exported.has(n)) fail(`index.d.ts exports the internal ${n}`);
}
const printed = ts.createPrinter({ removeComments: true }).printFile(file);
for (const [i, line] of printed.split("\n").entries()) if (/\bany\b/.test(line)) fail(`the public types mention 'any' (line ${i + 1}): ${line.trim()}`);

const snap = `${here}public-api.d.ts.snap`;
if (process.env.UPDATE === "1" && !failures.length) {
  writeFileSync(snap, printed);
  console.log("snapshot updated");
}
let old = "";
try {
  old = readFileSync(snap, "utf8");
} catch {}
if (old !== printed) {
  const a = old.split("\n");
  const b = printed.split("\n");
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  fail(`the public types changed (first at line ${i + 1}: ${JSON.stringify(a[i] ?? "")} → ${JSON.stringify(b[i] ?? "")}): review, then run UPDATE=1 tests/types/check.sh`);
}

if (failures.length) {
  for (const f of failures) console.error(`types: ${f}`);
  process.exit(1);
}
console.log(`api: index.d.ts matches the sources (${exported.size} exports); snapshot matches`);
