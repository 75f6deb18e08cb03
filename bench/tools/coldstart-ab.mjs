// Worker cold start of two builds of the package, interleaved in one run: A (`--before DIR`, a
// checkout with its own built pkg/) and B (this checkout), each as the bench's row (6) builds
// it, next to an empty Worker. Prints medians of the first request and of the whole start
// (fresh Miniflare → first response) over the empty Worker's, per build; for a change whose
// effect (a few ms) is smaller than the row's spread between runs.
// Usage: node bench/tools/coldstart-ab.mjs --before DIR [--rounds 20]
import { REPO, quantile, removeDir, startMock } from "../lib/util.mjs";
import { buildWorkers, coldStartOnce, importMiniflare } from "../lib/workerd.mjs";

const arg = (n, d) => {
  const i = process.argv.indexOf(n);
  return i < 0 ? d : process.argv[i + 1];
};
const beforeDir = arg("--before");
if (!beforeDir) throw new Error("--before DIR: a checkout of the other build, with its pkg/ built");
const rounds = Number(arg("--rounds", 20));
const median = (xs) => quantile(xs, 0.5);

const mock = await startMock(["--auto-create-customers"]);
const a = await buildWorkers(beforeDir);
const b = await buildWorkers(REPO);
const pick = (built, id) => built.variants.find((v) => v.id === id);
const runs = { empty: [], A: [], B: [], Aload: [], Bload: [] };
const order = [
  ["empty", pick(a, "empty")],
  ["A", pick(a, "ours")],
  ["B", pick(b, "ours")],
  ["Aload", pick(a, "oursLoad")],
  ["Bload", pick(b, "oursLoad")],
];
try {
  const { Miniflare } = await importMiniflare();
  await coldStartOnce(Miniflare, order[0][1], mock.url); // disk caches
  for (let r = 0; r < rounds; r++) {
    // Alternate which build goes first, so neither always follows the empty Worker.
    const round = r % 2 ? [order[0], order[2], order[1], order[4], order[3]] : order;
    for (const [id, v] of round) runs[id].push(await coldStartOnce(Miniflare, v, mock.url));
  }
} finally {
  await mock.stop();
  removeDir(a.dir);
  removeDir(b.dir);
}
const total = (id) => median(runs[id].map((x) => x.total));
const first = (id) => median(runs[id].map((x) => x.firstRequest));
const e = total("empty");
const row = (label, id) =>
  `${label}: +${(total(id) - e).toFixed(1)} ms over the empty Worker (first request ${first(id).toFixed(1)} ms)`;
console.log(`${rounds} rounds; empty Worker ${e.toFixed(1)} ms (first request ${first("empty").toFixed(1)} ms)`);
console.log(row(`A ${beforeDir}  new tracker + track()`, "A"));
console.log(row(`B this checkout  new tracker + track()`, "B"));
console.log(row(`A import only`, "Aload"));
console.log(row(`B import only`, "Bload"));
process.exit(0);
