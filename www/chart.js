// A small hand-drawn SVG timeline: events waiting in the queue vs delivered (cumulative) over
// time, with offline stretches shaded and page reloads marked. No library; the SVG is built
// with DOM calls only (nothing inline, so the page's strict CSP holds).

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };
const MIN_SPAN_MS = 15_000;
const MAX_SPAN_MS = 5 * 60_000;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A y axis for values up to `v`: a 1/2/5 × 10ⁿ step, about four of them, at least 0..10. */
function yAxis(v) {
  const rough = Math.max(v, 10) / 4;
  const p = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= rough);
  return { step, top: Math.max(1, Math.ceil(Math.max(v, 10) / step)) * step };
}

function ago(ms) {
  const s = Math.round(ms / 1000);
  if (s === 0) return "now";
  return s % 60 === 0 ? `−${s / 60} min` : `−${s} s`;
}

/**
 * Draws `samples` ({ t, queued, delivered, offline }) and `marks` ({ t, label }) into `svg`,
 * ending at `now`.
 */
export function drawTimeline(svg, samples, marks, now = Date.now()) {
  // Drawn at the element's own width (1 unit = 1 CSS px), so text stays readable on a phone.
  const W = Math.max(280, Math.round(svg.getBoundingClientRect().width) || 720);
  const H = W < 560 ? 190 : 230;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const y0 = H - PAD.bottom;
  const y1 = PAD.top;
  const first = samples.length ? samples[0].t : now;
  const span = Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, now - first));
  const start = now - span;
  const visible = samples.filter((s) => s.t >= start - 2000);
  const { step: yStep, top } = yAxis(Math.max(0, ...visible.map((s) => Math.max(s.queued, s.delivered))));
  const X = (t) => x0 + ((Math.max(t, start) - start) / span) * (x1 - x0);
  const Y = (v) => y0 - (v / top) * (y0 - y1);

  const parts = [];
  // Offline stretches: shaded bands behind everything.
  let bandFrom = null;
  visible.forEach((s, i) => {
    if (s.offline && bandFrom === null) bandFrom = s.t;
    const last = i === visible.length - 1;
    if (bandFrom !== null && (!s.offline || last)) {
      const to = s.offline && last ? now : s.t;
      parts.push(el("rect", { class: "band", x: X(bandFrom), y: y1, width: Math.max(1, X(to) - X(bandFrom)), height: y0 - y1 }));
      bandFrom = null;
    }
  });
  // Grid and y labels.
  for (let v = 0; v <= top + 1e-9; v += yStep) {
    const y = Y(v);
    parts.push(el("line", { class: v === 0 ? "axis" : "grid", x1: x0, x2: x1, y1: y, y2: y }));
    parts.push(el("text", { class: "label", x: x0 - 6, y: y + 4, "text-anchor": "end" }, v.toLocaleString("en")));
  }
  // x labels: every 5 s … 2 min, at least ~64 px apart.
  const perPx = span / (x1 - x0);
  const step = [5_000, 10_000, 15_000, 30_000, 60_000, 120_000].find((st) => st / perPx >= 64) || 300_000;
  for (let back = 0; back <= span; back += step) {
    const x = X(now - back);
    parts.push(el("line", { class: "tick", x1: x, x2: x, y1: y0, y2: y0 + 4 }));
    parts.push(el("text", { class: "label", x, y: y0 + 17, "text-anchor": back === 0 ? "end" : "middle" }, ago(back)));
  }
  // Reloads.
  for (const m of marks) {
    if (m.t < start) continue;
    const x = X(m.t);
    parts.push(el("line", { class: "mark", x1: x, x2: x, y1: y1, y2: y0 }));
    parts.push(el("text", { class: "mark-label", x: x + 4, y: y1 + 11 }, m.label));
  }
  // The two series, as steps (a count holds until the next sample); a gap of more than 5 s
  // (the page was closed or reloading) breaks the lines.
  const segments = [];
  for (const s of visible) {
    const seg = segments[segments.length - 1];
    if (seg && s.t - seg[seg.length - 1].t <= 5000) seg.push(s);
    else segments.push([s]);
  }
  segments.forEach((seg, i) => {
    const end = i === segments.length - 1 ? now : seg[seg.length - 1].t;
    const steps = (key) => {
      let d = `M${X(seg[0].t).toFixed(1)},${Y(seg[0][key]).toFixed(1)}`;
      for (let j = 1; j < seg.length; j++) d += `H${X(seg[j].t).toFixed(1)}V${Y(seg[j][key]).toFixed(1)}`;
      return `${d}H${X(end).toFixed(1)}`;
    };
    const q = steps("queued");
    parts.push(el("path", { class: "area queued", d: `${q}V${y0}H${X(seg[0].t).toFixed(1)}Z` }));
    parts.push(el("path", { class: "line queued", d: q }));
    parts.push(el("path", { class: "line delivered", d: steps("delivered") }));
  });
  svg.replaceChildren(...parts);
}
