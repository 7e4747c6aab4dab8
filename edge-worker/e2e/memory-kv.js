// A KV namespace in memory, run by workerd beside the Worker under test
// (harness.mjs). workerd turns a `kvNamespace` binding's calls into HTTP
// requests to the service it names: GET, PUT and DELETE on /<key> (PUT
// with `?expiration_ttl=` or `?expiration=`), GET /?prefix= for the keys.
// This answers them as Cloudflare's KV does, expiry and its 60 s least TTL
// included; the tests read it through its own socket, by the same routes.
const MIN_EXPIRATION_TTL = 60;
const entries = new Map(); // key -> { value: Uint8Array, expiration: seconds since the epoch, or null }

const seconds = () => Math.floor(Date.now() / 1000);
const refuse = (status, text) => new Response(text, { status });

function live(key) {
  const entry = entries.get(key);
  if (entry?.expiration != null && entry.expiration <= seconds()) entries.delete(key);
  return entries.get(key);
}

function expiration(params) {
  const ttl = params.get("expiration_ttl");
  if (ttl !== null) {
    const n = Number(ttl);
    if (!Number.isInteger(n) || n < MIN_EXPIRATION_TTL) throw refuse(400, `Invalid expiration_ttl of ${ttl}.`);
    return seconds() + n;
  }
  const at = params.get("expiration");
  if (at === null) return null;
  if (!(Number(at) >= seconds() + MIN_EXPIRATION_TTL)) throw refuse(400, `Invalid expiration of ${at}.`);
  return Number(at);
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const key = decodeURIComponent(url.pathname.slice(1));
    try {
      switch (request.method) {
        case "GET": {
          if (key === "") {
            const prefix = url.searchParams.get("prefix") ?? "";
            const keys = [...entries.keys()].filter((k) => k.startsWith(prefix) && live(k)).sort()
              .map((name) => ({ name, ...(entries.get(name).expiration != null && { expiration: entries.get(name).expiration }) }));
            return Response.json({ keys, list_complete: true });
          }
          const entry = live(key);
          return entry ? new Response(entry.value) : new Response(null, { status: 404 });
        }
        case "PUT": {
          const at = expiration(url.searchParams);
          entries.set(key, { value: new Uint8Array(await request.arrayBuffer()), expiration: at });
          return new Response(null);
        }
        case "DELETE":
          entries.delete(key);
          return new Response(null);
        default:
          return refuse(405, "Method Not Allowed");
      }
    } catch (e) {
      if (e instanceof Response) return e;
      throw e;
    }
  },
};
