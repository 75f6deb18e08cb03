#!/usr/bin/env node
// `npx autumn-track relay`: one place in front of Autumn for a team's services. It serves the
// route (`handleTrackRequest`) over Node's HTTP server with a durable queue — SQLite for one
// machine, PostgreSQL for several — so a track is answered once it is committed, and delivered
// from the relay's own queue with its key (surviving an Autumn outage and a relay restart).
//
//   AUTUMN_SECRET_KEY=am_sk_… AUTUMN_RELAY_TOKENS='{"tok_web":["cus_1"],"tok_jobs":"*"}' \
//     npx autumn-track relay --sqlite ./relay.db --port 8787
//
// Callers send `Authorization: Bearer <token>`; a token names the customers it may bill (a list,
// or "*" for any). POST /v1/balances.track and /v1/balances.batch_track as Autumn's API;
// GET /healthz answers `{ ok, queued, inFlight, deadLetters, storage }`.
import { createServer } from "node:http";
import { handleTrackRequest } from "./node.js";
import { routeTracker } from "./proxy.js";

const USAGE = `usage: autumn-track relay (--sqlite FILE | --postgres URL) [--port 8787] [--host 127.0.0.1]
                          [--base-url URL] [--queue-name NAME] [--max-body-bytes N]
environment: AUTUMN_SECRET_KEY (required), AUTUMN_RELAY_TOKENS (required: JSON, token → customer
             id, list of ids, or "*"), AUTUMN_BASE_URL (instead of --base-url)`;

function fail(message) {
  process.stderr.write(`autumn-track relay: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: 8787, host: "127.0.0.1", baseUrl: process.env.AUTUMN_BASE_URL, queueName: "autumn-track-relay" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) fail(`${a} needs a value`);
      return v;
    };
    if (a === "--sqlite") o.sqlite = value();
    else if (a === "--postgres") o.postgres = value();
    else if (a === "--port") o.port = Number(value());
    else if (a === "--host") o.host = value();
    else if (a === "--base-url") o.baseUrl = value();
    else if (a === "--queue-name") o.queueName = value();
    else if (a === "--max-body-bytes") o.maxBodyBytes = Number(value());
    else if (a === "--help" || a === "-h") {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else fail(`unknown argument ${a}`);
  }
  if (!o.sqlite === !o.postgres) fail("give exactly one of --sqlite FILE and --postgres URL");
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) fail("--port must be a port number");
  return o;
}

/** `AUTUMN_RELAY_TOKENS`: token → the customers it may bill ("*": any). */
function readTokens(text) {
  let t;
  try {
    t = JSON.parse(text ?? "");
  } catch {
    fail("AUTUMN_RELAY_TOKENS must be JSON: {\"token\": \"cus_1\" | [\"cus_1\", …] | \"*\"}");
  }
  if (!t || typeof t !== "object" || Array.isArray(t) || Object.keys(t).length === 0) fail("AUTUMN_RELAY_TOKENS names no token");
  const out = new Map();
  for (const [token, who] of Object.entries(t)) {
    if (token.length < 16) fail("each relay token must be at least 16 characters");
    const ids = who === "*" ? "*" : (Array.isArray(who) ? who : [who]).filter((x) => typeof x === "string" && x !== "");
    if (ids !== "*" && ids.length === 0) fail(`token …${token.slice(-4)} names no customer`);
    out.set(token, ids);
  }
  return out;
}

/** A Node request as a fetch `Request` (the body read up to `limit` + 1 bytes: the route answers
 *  413 past its limit). */
async function toRequest(req, base, limit) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > limit + 1) break;
    chunks.push(c);
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
  const init = { method: req.method, headers };
  if (req.method !== "GET" && req.method !== "HEAD") init.body = Buffer.concat(chunks);
  return new Request(new URL(req.url, base), init);
}

async function send(res, response) {
  res.statusCode = response.status;
  response.headers.forEach((v, k) => res.setHeader(k, v));
  res.end(Buffer.from(await response.arrayBuffer()));
}

export async function relay(argv) {
  const o = parseArgs(argv);
  const secretKey = process.env.AUTUMN_SECRET_KEY;
  if (!secretKey) fail("AUTUMN_SECRET_KEY is required");
  const tokens = readTokens(process.env.AUTUMN_RELAY_TOKENS);
  let queue;
  if (o.sqlite) queue = { sqlite: o.sqlite };
  else {
    let pg;
    try {
      pg = await import("pg");
    } catch {
      fail("--postgres needs the pg package (npm install pg)");
    }
    const Pool = pg.default?.Pool ?? pg.Pool;
    queue = { postgres: new Pool({ connectionString: o.postgres, max: 8 }) };
  }
  const events = { deadLetters: 0 };
  const options = {
    secretKey,
    ...(o.baseUrl && { baseUrl: o.baseUrl }),
    ...(o.maxBodyBytes && { maxBodyBytes: o.maxBodyBytes }),
    allowedOrigins: [],
    queue,
    queueName: o.queueName,
    onEvent: (e) => {
      if (e.type === "dead_letter") {
        events.deadLetters++;
        process.stderr.write(`autumn-track relay: dead letter ${e.idempotencyKey}: ${e.code} ${e.message ?? ""}\n`);
      }
    },
    identify: (request) => {
      const m = /^Bearer (.+)$/.exec(request.headers.get("Authorization") ?? "");
      const ids = m && tokens.get(m[1]);
      if (!ids) return null;
      // "*": any customer, the one each event names (the route then requires one on each).
      return ids === "*" ? ANY : ids;
    },
  };
  // The route's own tracker (the one its requests commit to), for /healthz; created now, so
  // that what an earlier run left is replayed at once.
  const counter = routeTracker(options);
  const base = `http://${o.host}:${o.port}`;
  const server = createServer(async (req, res) => {
    try {
      if (req.method === "GET" && new URL(req.url, base).pathname === "/healthz") {
        const p = await counter.pending();
        const ok = p.storage === "sqlite" || p.storage === "postgres";
        res.statusCode = ok ? 200 : 503;
        res.setHeader("Content-Type", "application/json");
        return res.end(JSON.stringify({ ok, queued: p.queued, inFlight: p.inFlight, deadLetters: p.deadLetters, storage: p.storage }));
      }
      const limit = o.maxBodyBytes ?? 1 << 20;
      await send(res, await handleTrackRequest(await toRequest(req, base, limit), options));
    } catch (e) {
      res.statusCode = 500;
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ code: "internal_error", message: "the relay failed" }));
      process.stderr.write(`autumn-track relay: ${String(e?.message ?? e).split(secretKey).join("[redacted]")}\n`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, resolve);
  });
  const addr = server.address();
  process.stdout.write(`autumn-track relay listening on http://${addr.address}:${addr.port} (queue: ${o.sqlite ? `sqlite ${o.sqlite}` : "postgres"})\n`);
  const stop = () => server.close(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  return server;
}

/** identify's answer for a "*" token: the route accepts any customer the event names. */
const ANY = Symbol.for("autumn-track.any-customer");

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/autumn-track") || process.argv[1]?.endsWith("cli.js")) {
  const [command, ...rest] = process.argv.slice(2);
  if (command !== "relay") fail(command ? `unknown command ${command}` : "which command?");
  relay(rest).catch((e) => fail(String(e?.message ?? e)));
}
