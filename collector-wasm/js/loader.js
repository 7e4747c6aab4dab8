// The tracker's entry point, the only file a page imports:
//   import { init } from "/t/clickstream.js";
//   init({ endpoint: "/v1/batch", siteId: "shop-1" });
//
// This is the browser side of the glue: listeners, timers and requests,
// which cost a few hundred bytes here and several KB through wasm-bindgen.
// Every decision (what an event holds, when a batch is due, what to store,
// how long to back off, what consent allows) is the wasm core's.
//
// Calls made before the wasm is ready wait in a queue. Nothing here throws
// into the page: a tracker that cannot load, or fails, goes quiet.
// The wasm core's functions (src/web.rs), and wasm-bindgen's initSync.
import * as core from "./__CORE__.js";

// The wasm's bytes, compiled, then instantiated by wasm-bindgen's initSync:
// its default loader (instantiateStreaming, with a fallback and long
// messages for servers sending the wrong MIME type) cost about 380 bytes
// gzipped of the budget; this works whatever type the server sends.
const load = () =>
  fetch(new URL("./__CORE___bg.wasm", import.meta.url))
    .then((r) => r.arrayBuffer())
    .then((bytes) => WebAssembly.compile(bytes))
    .then((module) => core.initSync({ module }));

let config = []; // [endpoint, flushIntervalMs, autoPageViews, autocapture, hashPageViews]
let state = "idle"; // idle → loading → ready | failed
let flushTimer = 0;
let retryTimer = 0;
const early = [];
const now = () => Date.now();
// Engagement: when the page last became visible (0: hidden), how long it
// has been visible since its page view or its last page_leave, how far
// down it was read (percent), and when the last event was recorded.
let shown = 0;
let engaged = 0;
let depth = 0;
let last = 0;

function safely(f) {
  try {
    return f();
  } catch (e) {
    if (state === "ready") {
      state = "failed";
      console.warn("clickstream: tracker stopped after an error", e);
    }
  }
}

// ---- delivery

// After an event or an answer: send when a batch is full, else within the
// flush interval.
function recorded() {
  const pending = core.pending(); // 0 nothing waits, 1 send later, 2 send now
  if (pending === 2) send(false);
  else if (pending && !flushTimer) {
    flushTimer = setTimeout(() => {
      flushTimer = 0;
      safely(() => send(false));
    }, config[1]);
  }
}

// One fetch at a time (the core says when). When the page is hidden or
// left, sendBeacon, which outlives the page; its answer never comes back,
// so the core keeps those events stored until a later request confirms
// them (the collector keeps one copy of each event id).
function send(leaving) {
  if (leaving) {
    const beaconed = [];
    for (let body; (body = core.nextRequest(now(), true)) !== undefined; ) {
      const id = core.requestId();
      // Offline a beacon is lost; a refused one (the browser caps them) waits.
      if (!navigator.onLine || !navigator.sendBeacon(config[0], body)) {
        core.unanswered(id, false);
        break;
      }
      beaconed.push(id);
    }
    for (const id of beaconed) core.unanswered(id, true);
    return;
  }
  const body = core.nextRequest(now(), false);
  if (body === undefined) return;
  const id = core.requestId();
  // A string body goes as text/plain: no CORS preflight.
  fetch(config[0], { method: "POST", body, keepalive: true }).then(
    (r) => answered(id, r.status, retryAfterMs(r.headers.get("retry-after"))),
    () => answered(id, 0, -1),
  );
}

function retryAfterMs(header) {
  if (!header) return -1;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - now()) : -1;
}

function answered(id, status, retryAfter) {
  safely(() => {
    const wait = core.settle(id, status, retryAfter, now());
    if (wait >= 0) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => safely(() => send(false)), wait);
    } else recorded();
  });
}

// ---- pages and clicks

// <meta name="clickstream:product_id" content="p-1"> makes a product page's
// page view a product view.
function metaProps() {
  const props = {};
  for (const m of document.querySelectorAll('meta[name^="clickstream:"]')) props[m.name.slice(12)] = m.content;
  return props;
}

// Hands an object's own properties to the core for its next call, one
// by one: a string, a number, or anything else as JSON (what has none,
// like functions, is left out). Reading the object from wasm took several
// times the bytes in wasm-bindgen's glue.
function give(obj) {
  if (!obj || typeof obj !== "object") return;
  for (const [name, value] of Object.entries(obj)) {
    const kind = typeof value === "string" ? 0 : typeof value === "number" ? 1 : 2;
    let text = kind === 0 ? value : "";
    if (kind === 2) {
      try {
        text = JSON.stringify(value); // BigInts and cycles throw
      } catch {
        continue;
      }
      if (text === undefined) continue;
    }
    core.prop(name, kind, text, kind === 1 ? value : 0);
  }
}

function record(type, props, at = now()) {
  give(props);
  core.record(type, at);
  last = at;
  recorded();
}

// ---- engagement

function scrolled() {
  const page = document.documentElement;
  depth = Math.max(depth, Math.min(100, Math.round(((scrollY + innerHeight) * 100) / page.scrollHeight)));
}

// The page was hidden, left, shown again, or another page is coming: a
// page_leave with the time it was visible since the last one, when there
// was at least a second of it. Dated (and capped) at 29 minutes past the
// page's last event, so a tab left open and visible for hours still
// reports to the visit it belongs to, within the 30-minute session gap.
function left() {
  const t = now();
  if (shown) engaged += t - shown;
  shown = document.hidden ? 0 : t;
  if (engaged > 999) {
    const at = Math.min(t, last + 174e4);
    record("page_leave", { engaged_ms: Math.min(engaged, 174e4), scroll_depth: depth }, at);
    engaged = 0;
  }
}

// A new page view: its engagement starts from nothing.
function viewed(props) {
  record("page_view", { ...metaProps(), ...props });
  engaged = depth = 0;
  shown = document.hidden ? 0 : now();
  scrolled();
}

// The page the visitor is on now; true when it is another page. The
// referrer of the first page is the browser's; later ones (undefined) are
// the page before, which the core remembers.
const setPage = (referrer) =>
  core.setPage(location.href + "\n" + document.title + (referrer === undefined ? "" : "\n" + referrer));

function pageView(props, referrer) {
  setPage(referrer);
  viewed(props);
}

// pushState, replaceState, popstate, hashchange: a page view when the
// visitor is on another page. One tick later, since single-page apps set
// the title right after the URL.
function navigated() {
  setTimeout(() => safely(() => {
    left();
    if (setPage()) viewed();
  }), 0);
}

const CLICKABLE = "a,button,[data-track],input[type=submit],input[type=button]";

function clicked(e) {
  const el = e.target instanceof Element ? e.target.closest(CLICKABLE) : null;
  if (!el) return;
  // A field's text is never read; the core drops any it is given, too.
  const text = el.tagName === "INPUT" ? "" : el.textContent || "";
  const href = typeof el.href === "string" ? el.href : undefined;
  record("click", { ...el.dataset, tag: el.tagName, text, href });
}

function start(options) {
  const privacySignal = navigator.doNotTrack === "1" || navigator.globalPrivacyControl === true;
  give(options);
  const problem = core.start(privacySignal, `${screen.width}x${screen.height}\n${navigator.language || ""}\n${
    Intl.DateTimeFormat().resolvedOptions().timeZone || ""}`);
  if (problem) throw problem;
  const flags = core.flags();
  config = [core.endpoint(), core.flushIntervalMs(), flags & 1, flags & 2, flags & 4];
  const on = (target, type, f, capture) => target.addEventListener(type, (e) => safely(() => f(e)), capture);
  if (config[3]) on(document, "click", clicked, true);
  on(document, "visibilitychange", () => {
    left();
    if (document.hidden) send(true);
  });
  on(window, "pagehide", () => {
    left();
    send(true);
  });
  on(window, "scroll", scrolled, { passive: true });
  on(window, "online", () => {
    core.online();
    send(false);
  });
  if (config[2]) {
    for (const name of ["pushState", "replaceState"]) {
      const original = history[name];
      history[name] = function (...args) {
        const result = original.apply(this, args);
        safely(navigated);
        return result;
      };
    }
    on(window, "popstate", navigated);
    if (config[4]) on(window, "hashchange", navigated);
    pageView({}, document.referrer);
  } else {
    setPage(document.referrer);
  }
  send(false); // what earlier pages could not deliver
}

// ---- the API

const impl = {
  track: (name, props) => record("custom", { ...props, name: String(name) }),
  page: (props) => pageView(props),
  identify: (userId) => {
    give({ userId });
    core.identify(now());
    recorded();
  },
  addToCart: (item) => record("add_to_cart", item),
  removeFromCart: (item) => record("remove_from_cart", item),
  beginCheckout: (props) => record("begin_checkout", props),
  // One purchase event per order line.
  purchase: ({ items, ...order }) => items.forEach((item) => record("purchase", { ...order, ...item })),
  search: (query) => record("search", { query: String(query) }),
  // A yes in opt-in mode: the page the visitor is on was not counted yet.
  consent: (granted) => core.consent(granted === true) && config[2] && viewed(),
  flush: () => {
    core.online();
    send(false);
  },
};

function call(name, args) {
  if (state === "ready") safely(() => impl[name](...args));
  else if (state !== "failed") early.push([name, args]);
}

/** Starts the tracker: init({ endpoint, siteId, ...options }). */
export function init(options) {
  if (state !== "idle") return;
  state = "loading";
  load().then(
    () => {
      try {
        start(options);
      } catch (e) {
        state = "failed";
        early.length = 0;
        return console.warn("clickstream: not started:", e);
      }
      state = "ready";
      for (const [name, args] of early.splice(0)) call(name, args);
    },
    (e) => {
      state = "failed";
      early.length = 0;
      console.warn("clickstream: tracker not loaded", e);
    },
  );
}

/** Counters and ids (recorded, delivered, queued, dropped, ...); {} until ready. */
export const stats = () => (state === "ready" ? safely(() => JSON.parse(core.stats())) : {});

// Every method of the API: queued until the tracker is ready. Also on
// window, for the site's other scripts, which need not import anything.
const api = { init, stats };
for (const name in impl) api[name] = (...args) => call(name, args);
window.clickstream ??= api;
export const { track, page, identify, addToCart, removeFromCart, beginCheckout, purchase, search, consent, flush } = api;
