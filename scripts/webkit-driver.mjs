// WebKit for wasm-bindgen-test-runner: Debian's WebKitGTK WebDriver (WebKitWebDriver, from
// webkit2gtk-driver) driving MiniBrowser in automation mode, on a virtual display (xvfb-run).
//
// The runner speaks to a remote "safaridriver" (SAFARIDRIVER_REMOTE=<url>) but asks for a session
// with empty capabilities, and WebKitGTK's driver needs to be told which browser to start. So this
// is a small proxy in front of it: every request passes through unchanged, except that a new
// session asks for MiniBrowser. It prints its URL on the first line of stdout, logs each
// session's browser and version to stderr, and stops the driver (and its display) when it is
// stopped or its stdin closes.
//
// Usage: node scripts/webkit-driver.mjs   (scripts/wasm-tests.sh webkit runs it)
import http from "node:http";
import net from "node:net";
import { existsSync, readdirSync } from "node:fs";
import { spawn } from "node:child_process";

function miniBrowser() {
  if (process.env.WEBKIT_MINIBROWSER) return process.env.WEBKIT_MINIBROWSER;
  for (const lib of ["/usr/lib", ...readdirSync("/usr/lib").filter((d) => d.endsWith("-linux-gnu")).map((d) => `/usr/lib/${d}`)]) {
    for (const v of ["webkit2gtk-4.1", "webkit2gtk-4.0", "webkitgtk-6.0"]) {
      const p = `${lib}/${v}/MiniBrowser`;
      if (existsSync(p)) return p;
    }
  }
  throw new Error("MiniBrowser not found: apt-get install webkit2gtk-driver (or set WEBKIT_MINIBROWSER)");
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });

const binary = miniBrowser();
const port = await freePort();
// Its own process group, so that stopping it stops xvfb-run, Xvfb and the driver together.
const driver = spawn("xvfb-run", ["-a", "WebKitWebDriver", `--port=${port}`, "--host=127.0.0.1"], {
  stdio: ["ignore", "ignore", "inherit"],
  detached: true,
});
const stop = () => {
  try {
    process.kill(-driver.pid, "SIGTERM");
  } catch {}
  process.exit(0);
};
driver.on("exit", (code) => {
  console.error(`webkit-driver: WebKitWebDriver exited (${code})`);
  process.exit(1);
});
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();

const session = { capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary, args: ["--automation"] } } } };

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const newSession = req.method === "POST" && req.url === "/session";
    const body = newSession ? Buffer.from(JSON.stringify(session)) : Buffer.concat(chunks);
    const headers = { ...req.headers, host: `127.0.0.1:${port}`, "content-length": body.length };
    const forward = (tries) => {
      const out = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers }, (r) => {
        if (!newSession) {
          res.writeHead(r.statusCode, r.headers);
          return r.pipe(res);
        }
        const got = [];
        r.on("data", (c) => got.push(c));
        r.on("end", () => {
          const text = Buffer.concat(got);
          try {
            const c = JSON.parse(text).value.capabilities;
            console.error(`webkit-driver: session in ${c.browserName} ${c.browserVersion} (WebKitGTK), ${binary}`);
          } catch {
            console.error(`webkit-driver: new session answered ${r.statusCode}: ${text}`);
          }
          res.writeHead(r.statusCode, r.headers);
          res.end(text);
        });
      });
      out.on("error", (e) => {
        // The driver may still be starting (Xvfb first): try again for a while.
        if (tries > 0 && e.code === "ECONNREFUSED") return setTimeout(() => forward(tries - 1), 200);
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`webkit-driver: ${e.message}`);
      });
      out.end(body);
    };
    forward(100);
  });
});
server.listen(0, "127.0.0.1", () => console.log(`http://127.0.0.1:${server.address().port}`));
