// js/value.js's encoder, which turns every track() input into the text the core reads: a
// string is written as JSON writes it, or refused as `!7` when it holds a lone UTF-16
// surrogate — on its fast path (nothing to escape, no surrogate at all) and on its slow one.
// Imports the installed package's own file, so this is the code that ships.
import { test } from "node:test";
import assert from "node:assert/strict";

const pkg = new URL("./node_modules/autumn-track/js/", import.meta.url);
const { encode } = await import(new URL("value.js", pkg));
const enc = (v) => encode(v, 1 << 20, 32);

test("strings: JSON's text for every well-formed one, !7 for a lone surrogate, as value and as key", () => {
  const wellFormed = [
    "",
    "plain",
    "é ü ß 日本",
    "😀 a pair",
    'a "quote"',
    "a \\ backslash",
    "tab\tnew\nline\r",
    "\u0000\u0001\u001f",
    "\u007f del",
    "\u2028\u2029 separators",
    "\ud83d\ude00",
  ];
  for (const s of wellFormed) {
    assert.equal(enc(s), JSON.stringify(s), JSON.stringify(s));
    assert.equal(enc({ [s]: 1 }), `{${JSON.stringify(s)}:1}`, `key ${JSON.stringify(s)}`);
  }
  for (const s of ["\ud800", "a\udbff", "\udc00b", "x\ude00\ud83d", "\ud83d\ud83d"]) {
    assert.equal(enc(s), "!7", JSON.stringify(s));
    assert.equal(enc({ [s]: 1 }), "{!7}", `key ${JSON.stringify(s)}`);
  }
});

test("a string over the budget is not read: !8", () => {
  assert.equal(encode("x".repeat(100), 10, 32), "!8");
  assert.equal(encode("x".repeat(10), 10, 32), JSON.stringify("x".repeat(10)));
});
