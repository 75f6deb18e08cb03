// Init script of the secret-key search (runs before any page script): records every value
// written to IndexedDB, Web Storage, Cache Storage and BroadcastChannel, and every console call
// with its arguments, so a value written and deleted again before the final dump is still seen.
(() => {
  const writes = (window.__writes = []);
  const calls = (window.__console = []);
  const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");
  const ser = (v) => {
    try {
      return JSON.stringify(v, (_k, x) => {
        if (x instanceof ArrayBuffer) return { $arrayBuffer: hex(new Uint8Array(x)), text: new TextDecoder().decode(x) };
        if (ArrayBuffer.isView(x)) {
          const u8 = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
          return { $view: hex(u8), text: new TextDecoder().decode(u8) };
        }
        if (x instanceof Blob) return { $blob: x.type, size: x.size };
        if (typeof x === "bigint") return String(x);
        if (x instanceof Error) return { name: x.name, message: x.message, stack: x.stack, code: x.code };
        return x;
      });
    } catch (e) {
      try {
        return `(unserializable: ${e}) ${String(v)}`;
      } catch {
        return "(unserializable)";
      }
    }
  };
  const wrap = (proto, name, label) => {
    const orig = proto[name];
    if (typeof orig !== "function") return;
    proto[name] = function (...args) {
      let where = label;
      try {
        if (this instanceof IDBObjectStore) where = `${label} ${this.transaction.db.name}/${this.name}`;
      } catch {}
      writes.push({ where, args: args.map(ser) });
      return orig.apply(this, args);
    };
  };
  wrap(IDBObjectStore.prototype, "put", "IDBObjectStore.put");
  wrap(IDBObjectStore.prototype, "add", "IDBObjectStore.add");
  wrap(IDBCursor.prototype, "update", "IDBCursor.update");
  wrap(Storage.prototype, "setItem", "Storage.setItem");
  if (globalThis.Cache) {
    wrap(Cache.prototype, "put", "Cache.put");
    wrap(Cache.prototype, "add", "Cache.add");
  }
  if (globalThis.BroadcastChannel) wrap(BroadcastChannel.prototype, "postMessage", "BroadcastChannel.postMessage");
  for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
    const orig = console[level];
    console[level] = function (...args) {
      calls.push({ level, args: args.map((a) => (typeof a === "string" ? a : ser(a))) });
      return orig.apply(this, args);
    };
  }
  window.addEventListener("error", (e) => calls.push({ level: "window.onerror", args: [String(e.message), ser(e.error)] }));
  window.addEventListener("unhandledrejection", (e) => calls.push({ level: "unhandledrejection", args: [ser(e.reason), String(e.reason)] }));
})();
