// What the tracker keeps on the visitor's device, and its random ids, for
// the wasm core (src/web.rs imports these). Written in JS because through
// web-sys the same storage, cookie and crypto calls cost over a kilobyte
// of the 20 KB budget. What to keep, and for how long, is the core's
// decision; these only read and write. None of them throws.

const PROBE = "cs__probe";

/** Whether localStorage works: it can be disabled, or throw on write in
 * some private modes. The core then keeps its ids in cookies. */
export function localStorageWorks() {
  try {
    localStorage.setItem(PROBE, "1");
    localStorage.removeItem(PROBE);
    return true;
  } catch {
    return false;
  }
}

/** The stored value of `key`, or undefined. */
export function load(key, inCookies) {
  try {
    if (!inCookies) return localStorage.getItem(key) ?? undefined;
    for (const pair of document.cookie.split(";")) {
      const at = pair.indexOf("=");
      if (pair.slice(0, at).trim() === key) return decodeURIComponent(pair.slice(at + 1));
    }
  } catch {}
}

/** Stores `value` under `key`; a cookie lives `maxAgeSeconds` (0: deleted). */
export function save(key, value, inCookies, maxAgeSeconds) {
  try {
    if (!inCookies) localStorage.setItem(key, value);
    else document.cookie = `${key}=${encodeURIComponent(value)}; path=/; SameSite=Lax; max-age=${maxAgeSeconds}`;
  } catch {}
}

export function remove(key, inCookies) {
  try {
    if (!inCookies) localStorage.removeItem(key);
    else save(key, "", true, 0);
  } catch {}
}

/** A random UUID (version 4) from the browser's cryptographic generator,
 * which, unlike crypto.randomUUID, also works on plain-http pages. */
export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}
