// The Worker's entry point: each request goes to the wasm's fetch (the
// `#[event(fetch)]` function in edge-worker/src/worker.rs).
//
// A panic aborts the wasm instance, which would fail every later request
// of this isolate; the instance is then reset, and the request answered
// with a 500 the tracker retries.
import * as edge from "./index.js";

export default {
  async fetch(request, env, ctx) {
    try {
      return await edge.fetch(request, env, ctx);
    } catch (e) {
      console.error("clickstream-edge: the wasm failed; resetting it", e);
      edge.__wbg_reset_state?.();
      return new Response(JSON.stringify({ error: "internal", message: "the collector failed; retry" }), {
        status: 500,
        headers: { "content-type": "application/json", "retry-after": "1" },
      });
    }
  },
};
