// JavaScript values → the text the core reads (`src/decode.rs`), in one call from the wasm
// (src/js/convert.rs) instead of a call into JavaScript for every probe of every value.
//
// The text is JSON with four additions: `u` (undefined), `#` and 16 hex digits (a number that
// is not a safe integer, as its IEEE-754 bits, so NaN, ±Infinity and -0 arrive exact), and `!`
// with a digit for what JSON cannot carry, written where it was found:
//   0 function · 1 Symbol · 2 BigInt · 3 cycle · 4 nested deeper than `depth` · 5 not a plain
//   object or array · 6 reading it threw (a getter, a Proxy trap) · 7 a lone UTF-16 surrogate ·
//   8 over the budget (reading stops there)
// What each one means to the caller, and every message, is the core's (`value::Bad`). Reads
// happen in the order they always did — `Array.isArray`, `length`, items; prototype,
// `Object.keys`, each key's value — and a value over the budget is not read at all, so a 10 MB
// string is never copied into the wasm. Nothing here throws: every read that can is caught.

const PLAIN = Object.getPrototypeOf({});
const bits = new DataView(new ArrayBuffer(8));
// What needs JSON's escapes or may be a lone surrogate; a string without any is written as is,
// without a call to `isWellFormed` and one to `JSON.stringify`.
const NEEDS_CARE = /["\\\u0000-\u001f\ud800-\udfff]/;
const hex = (n) => n.toString(16).padStart(8, "0");
const wellFormed = String.prototype.isWellFormed
  ? (s) => s.isWellFormed()
  : (s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?:^|[^\ud800-\udbff])[\udc00-\udfff]/.test(s);

/** A `TrackError` (the package's class, or an `Error` named so where none is registered) with
 *  the fields the core gives; `undefined` ones are left out. */
export function error(Class, code, message, field, status, key, unanswered, retryAfterMs) {
  let e;
  try {
    e = new Class(message);
  } catch {
    e = new Error(message);
  }
  const set = (k, v) => {
    try {
      if (v !== undefined) e[k] = v;
    } catch {}
  };
  set("name", "TrackError");
  set("code", code);
  set("field", field);
  set("status", status);
  set("idempotencyKey", key);
  set("unanswered", unanswered || undefined);
  set("retryAfterMs", retryAfterMs);
  return e;
}

/** `v` as text, reading at most about `budget` UTF-16 units of strings and keys. */
export function encode(v, budget, depth) {
  const up = [];
  const spend = (n) => {
    if (n > budget) {
      budget = 0;
      return false;
    }
    budget -= n;
    return true;
  };
  const str = (s) => (!spend(s.length) ? "!8" : !NEEDS_CARE.test(s) ? '"' + s + '"' : wellFormed(s) ? JSON.stringify(s) : "!7");
  const val = (v) => {
    switch (typeof v) {
      case "undefined":
        return v === undefined ? "u" : "!5";
      case "boolean":
        return v ? "t" : "f";
      case "number":
        if (Number.isSafeInteger(v) && !Object.is(v, -0)) return "" + v;
        bits.setFloat64(0, v);
        return "#" + hex(bits.getUint32(0)) + hex(bits.getUint32(4));
      case "string":
        return str(v);
      case "function":
        return "!0";
      case "symbol":
        return "!1";
      case "bigint":
        return "!2";
      case "object":
        if (v === null) return "n";
        if (up.includes(v)) return "!3";
        if (up.length > depth) return "!4";
        if (!spend(8)) return "!8";
        up.push(v);
        try {
          return box(v);
        } finally {
          up.pop();
        }
    }
    return "!5";
  };
  const box = (v) => {
    let s;
    try {
      s = Array.isArray(v);
    } catch {
      return "!6";
    }
    if (s) {
      let n;
      try {
        n = v.length;
      } catch {
        return "!6";
      }
      if (typeof n !== "number" || !(n >= 0)) return "!6";
      if (n > budget) return "!8";
      s = "[";
      for (let i = 0; i < n; i++) {
        let x;
        try {
          x = val(v[i]);
        } catch {
          x = "!6";
        }
        s += (i ? "," : "") + x;
        if (x === "!8") break;
      }
      return s + "]";
    }
    let keys;
    try {
      const p = Object.getPrototypeOf(v);
      if (p !== null && p !== PLAIN) return "!5";
      keys = Object.keys(v);
    } catch {
      return "!6";
    }
    s = "{";
    for (let i = 0; i < keys.length; i++) {
      const k = str(keys[i]);
      s += i ? "," : "";
      if (k[0] === "!") {
        s += k;
        break;
      }
      let x;
      try {
        x = val(v[keys[i]]);
      } catch {
        x = "!6";
      }
      s += k + ":" + x;
      if (x === "!8") break;
    }
    return s + "}";
  };
  return val(v);
}
