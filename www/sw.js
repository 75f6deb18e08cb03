// The demo's service worker: keeps a copy of the page and of the package's files so that the
// page also loads (and shows its queue) when the browser is offline. Network first, so a
// rebuilt package or an edited page is picked up at once when online; the cache is only the
// fallback. API calls (/api/…) are never touched: the tracker must see the real network.
//
// The package's file list is not hard-coded (wasm-bindgen snippets have hashed paths): the
// page posts the same-origin URLs it loaded ({ cache: [...] }) and this worker stores them.
const CACHE = "autumn-track-demo-v1";
const SHELL = ["/", "/style.css", "/app.js", "/chart.js", "/favicon.svg"];

const cacheable = (url) => url.origin === self.location.origin && !url.pathname.startsWith("/api/");

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener("message", (event) => {
  const urls = (event.data?.cache || []).map((u) => new URL(u, self.location.origin)).filter(cacheable);
  const reply = event.ports[0];
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // Fresh copies when the network is there; offline, what is already cached will do.
    const results = await Promise.all(urls.map((u) =>
      cache.add(new Request(u.href, { cache: "no-store" })).then(() => true, () => cache.match(u.href).then(Boolean))));
    const failed = results.filter((ok) => !ok).length;
    reply?.postMessage({ cached: urls.length - failed, failed });
  })());
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || !cacheable(url)) return;
  event.respondWith((async () => {
    try {
      const res = await fetch(req);
      if (res.ok) {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
      }
      return res;
    } catch (e) {
      const cached = await caches.match(req, { ignoreSearch: true });
      if (cached) return cached;
      throw e;
    }
  })());
});
