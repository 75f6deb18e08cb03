// Counts wasm → JS boundary crossings (calls of the module's imports) per validate() and per
// track() — the main cost of a call into a wasm-bindgen module — and lists the busiest imports.
// Runs in Node on the built pkg/ (queue "memory", fetch answered at once by a stub).
// Usage: node bench/tools/crossings.mjs
const counts = new Map();
const Instance = WebAssembly.Instance;
WebAssembly.Instance = function (module, imports) {
  const wrapped = {};
  for (const [ns, fns] of Object.entries(imports)) {
    wrapped[ns] = {};
    for (const [name, fn] of Object.entries(fns)) {
      wrapped[ns][name] =
        typeof fn === "function"
          ? function (...a) {
              counts.set(name, (counts.get(name) || 0) + 1);
              return fn.apply(this, a);
            }
          : fn;
    }
  }
  return new Instance(module, wrapped);
};
const { AutumnTracker } = await import(new URL("../../js/node.js", import.meta.url));

const answer = JSON.stringify({ customer_id: "cus_1", value: 1, balance: null });
globalThis.fetch = async () => new Response(answer, { status: 200, headers: { "content-type": "application/json", date: new Date().toUTCString() } });
const input = (i) => ({ customerId: `cus_${i % 50}`, featureId: "api_calls", value: 1, properties: { plan: "pro", n: i } });

async function perCall(label, n, fn) {
  for (let i = 0; i < 20; i++) await fn(i); // warm: queue open, caches
  counts.clear();
  for (let i = 0; i < n; i++) await fn(i);
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  console.log(`${label}: ${(total / n).toFixed(1)} import calls per call`);
  for (const [name, c] of top) console.log(`   ${(c / n).toFixed(2).padStart(6)}  ${name.replace(/_[0-9a-f]{16}$/, "")}`);
}

const t = new AutumnTracker({ secretKey: "am_sk_test_x", baseUrl: "http://127.0.0.1:9", queue: "off", maxRetries: 0 });
await perCall("validate() (4 fields + 2 properties)", 1000, (i) => t.validate(input(i)));
await perCall("track(), queue off, fetch stubbed", 1000, (i) => t.track(input(i)));
const m = new AutumnTracker({ secretKey: "am_sk_test_x", baseUrl: "http://127.0.0.1:9", queue: "memory", maxRetries: 0 });
await perCall("track(), queue memory, fetch stubbed", 1000, (i) => m.track(input(i)));
t.close();
m.close();
