// The demo's web server, and a model of the route every browser app needs: the browser
// tracker talks to this origin without a key; this server adds the secret key and forwards to
// Autumn (here: the local autumn-mock). No dependencies; 127.0.0.1 only.
//
//   GET  /                       www/ (the page)
//   GET  /autumn-track/…         the package's js/ and pkg/ files, as a CDN or bundler would serve them
//   POST /api/autumn/v1/…        → AUTUMN_URL/v1/… with Authorization: Bearer AUTUMN_SECRET_KEY
//   *    /api/mock/…             → AUTUMN_URL/_mock/… (the mock's inspection and fault API)
//   GET  /api/demo/offline       {"offline": bool}
//   POST /api/demo/offline       {"offline": true} makes this server drop every /api/autumn/…
//                                request (the connection is closed, no answer): the network
//                                fails for the tracker while the browser still says "online".
//
// Usage: AUTUMN_URL=http://127.0.0.1:PORT node scripts/demo-server.mjs [--port N]
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const upstream = process.env.AUTUMN_URL;
const secretKey = process.env.AUTUMN_SECRET_KEY || "am_sk_test_demo";
const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : Number(process.env.PORT || 0);
if (!upstream) { console.error("AUTUMN_URL is required"); process.exit(2); }

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json" };
// Strict CSP: no inline script, no eval; wasm compilation needs only 'wasm-unsafe-eval'.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async function serveFile(res, base, rel) {
  const path = normalize(join(base, rel));
  if (!path.startsWith(base)) { res.writeHead(403).end(); return; }
  try {
    const body = await readFile(path);
    res.writeHead(200, { "content-type": TYPES[extname(path)] || "application/octet-stream", "content-security-policy": CSP, "cache-control": "no-store" });
    res.end(body);
  } catch {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  }
}

async function forward(req, res, target, extraHeaders) {
  const chunks = [];
  let size = 0;
  for await (const c of req) { size += c.length; if (size > 1 << 20) { res.writeHead(413).end(); return; } chunks.push(c); }
  const headers = { "content-type": req.headers["content-type"] || "application/json", accept: "application/json", ...extraHeaders };
  for (const h of ["x-api-version", "idempotency-key"]) if (req.headers[h]) headers[h] = req.headers[h];
  try {
    const r = await fetch(target, { method: req.method, headers, body: req.method === "GET" ? undefined : Buffer.concat(chunks) });
    const out = { "content-type": r.headers.get("content-type") || "application/json" };
    if (r.headers.get("retry-after")) out["retry-after"] = r.headers.get("retry-after");
    res.writeHead(r.status, out).end(Buffer.from(await r.arrayBuffer()));
  } catch (e) {
    // The upstream did not answer: tell the browser it may retry (same idempotency key).
    res.writeHead(502, { "content-type": "application/json" }).end(JSON.stringify({ code: "upstream_unreachable", message: String(e.cause?.code || e.message) }));
  }
}

let simulatedOffline = false;

async function readJson(req) {
  let text = "";
  for await (const c of req) { text += c; if (text.length > 4096) throw new Error("body too large"); }
  return JSON.parse(text || "{}");
}

const json = (res, status, body) => res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));

const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  if (p === "/api/demo/offline") {
    if (req.method === "GET") return json(res, 200, { offline: simulatedOffline });
    if (req.method !== "POST") return json(res, 405, { code: "method_not_allowed" });
    try {
      const body = await readJson(req);
      if (typeof body.offline !== "boolean") throw new Error('expected {"offline": true|false}');
      simulatedOffline = body.offline;
      return json(res, 200, { offline: simulatedOffline });
    } catch (e) {
      return json(res, 400, { code: "invalid_inputs", message: e.message });
    }
  }
  if (simulatedOffline && p.startsWith("/api/autumn/")) {
    // As if the network were down: no answer at all.
    req.socket.destroy();
    return;
  }
  if (req.method === "POST" && p.startsWith("/api/autumn/v1/")) {
    return forward(req, res, upstream + p.slice("/api/autumn".length), { authorization: `Bearer ${secretKey}` });
  }
  if (p.startsWith("/api/mock/")) return forward(req, res, `${upstream}/_mock/${p.slice("/api/mock/".length)}${url.search}`, {});
  if (req.method !== "GET") { res.writeHead(405).end(); return; }
  if (p.startsWith("/autumn-track/js/")) return serveFile(res, join(root, "js"), p.slice("/autumn-track/js/".length));
  if (p.startsWith("/autumn-track/pkg/")) return serveFile(res, join(root, "pkg"), p.slice("/autumn-track/pkg/".length));
  return serveFile(res, join(root, "www"), p === "/" ? "index.html" : p.slice(1));
});
server.listen(port, "127.0.0.1", () => {
  console.log(`demo on http://127.0.0.1:${server.address().port}/`);
});
for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => server.close(() => process.exit(0)));
