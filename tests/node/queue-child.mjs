// A server process of the crash and fleet suites (not a test file): tracks COUNT events from
// START with a durable queue (SQLITE=path or POSTGRES=url), prints `ok <key> <status> <storage>`
// as each track() resolves, drains with flush() meanwhile, and — with DRAIN=1 — flushes until
// nothing is left and prints `done <remaining>`. SENDLOG=path: every request to Autumn is
// appended there as `pid start end keys…` (the fleet suite checks that no key was in two
// drainers' requests at once). Killed at random by the suites.
import { appendFileSync } from "node:fs";
import { AutumnTracker } from "autumn-track";

const env = process.env;
const START = Number(env.START ?? 0);
const COUNT = Number(env.COUNT ?? 0);
const RUN = env.RUN;
const CUSTOMERS = Number(env.CUSTOMERS ?? 10);
const CONCURRENCY = Number(env.CONCURRENCY ?? 8);

if (env.SENDLOG) {
  const real = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    const t0 = Date.now();
    let keys = [];
    try {
      const b = JSON.parse(init?.body ?? "null");
      keys = (Array.isArray(b) ? b : [b]).map((e) => e?.idempotency_key).filter(Boolean);
    } catch {}
    // Written before the request leaves: a process killed mid-request leaves an open interval.
    appendFileSync(env.SENDLOG, `start ${process.pid} ${t0} ${keys.join(" ")}\n`);
    try {
      return await real(url, init);
    } finally {
      appendFileSync(env.SENDLOG, `end ${process.pid} ${Date.now()} ${keys.join(" ")}\n`);
    }
  };
}

let queue;
if (env.SQLITE) queue = { sqlite: env.SQLITE };
else {
  const pg = await import("pg");
  queue = { postgres: new (pg.default?.Pool ?? pg.Pool)({ connectionString: env.POSTGRES, max: 6 }) };
}

const t = new AutumnTracker({
  secretKey: "am_sk_test_queue_child",
  baseUrl: env.MOCK,
  queue,
  queueName: env.QUEUE_NAME ?? "crash",
  maxRetries: 1,
  timeoutMs: 2000,
  // The mock's requests end with their answers (its held claims last 1.5 s): 3 s is enough.
  confirmAfterMs: 3000,
  batchSize: Number(env.BATCH ?? 200),
});

const out = (line) => process.stdout.write(`${line}\n`);
let next = START;
const end = START + COUNT;
const worker = async () => {
  while (next < end) {
    const i = next++;
    const key = `${RUN}-${i}`;
    const r = await t.track({ customerId: `q_${RUN}_${i % CUSTOMERS}`, featureId: "api_calls", idempotencyKey: key });
    out(`ok ${key} ${r.status} ${r.storage ?? "-"}`);
  }
};
const flusher = setInterval(() => t.flush().catch(() => {}), 300);
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
clearInterval(flusher);
if (env.DRAIN === "1") {
  const until = Date.now() + Number(env.DRAIN_MS ?? 150_000);
  let f;
  for (;;) {
    f = await t.flush();
    if (f.remaining === 0 || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const p = await t.pending();
  out(`done ${p.queued + p.inFlight} ${p.deadLetters} ${p.storage}`);
}
t.close();
await queue.postgres?.end();
