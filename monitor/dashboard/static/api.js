// The worker's HTTP API: bearer token kept in sessionStorage, JSON requests, the SSE stream.

const TOKEN_KEY = "chainwatch.token";
const ACTOR_KEY = "chainwatch.actor";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  get actor() { return sessionStorage.getItem(ACTOR_KEY) || ""; },
  save(token, actor) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(ACTOR_KEY, actor);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ACTOR_KEY);
  },
};

function headers(extra = {}, token = session.token) {
  const all = {Accept: "application/json", ...extra};
  if (token) all.Authorization = `Bearer ${token}`;
  if (session.actor) all["X-Chainwatch-Actor"] = session.actor;
  return all;
}

function errorText(status, body) {
  if (body && typeof body === "object") {
    if (typeof body.error === "string") return body.error;
    if (body.error && typeof body.error.message === "string") return body.error.message;
  }
  return `HTTP ${status}`;
}

/** Call the API; resolves with parsed JSON, rejects with ApiError naming the server's reason. */
export async function request(method, path, {body, query, raw, contentType, token} = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const init = {method, headers: headers({}, token), cache: "no-store"};
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (raw && response.ok) return response;
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  if (!response.ok) throw new ApiError(response.status, errorText(response.status, parsed), parsed);
  return parsed;
}

/** Check a token: any authenticated read works. */
export async function verify(token) {
  await request("GET", "/cases", {token});
}

/**
 * Follow the SSE stream with fetch() (EventSource cannot send the Authorization header).
 * Calls onEvent(type, data, id) per event and onState("live"|"reconnecting"|"stopped").
 * Reconnects with Last-Event-ID after a pause; returns a function that stops it.
 */
export function follow(onEvent, onState) {
  let stopped = false;
  let controller = null;
  let lastId = "";
  let delay = 1000;

  async function once() {
    controller = new AbortController();
    const extra = {Accept: "text/event-stream"};
    if (lastId) extra["Last-Event-ID"] = lastId;
    const response = await fetch(BASE + "/alerts/stream", {
      headers: headers(extra), signal: controller.signal, cache: "no-store",
    });
    if (!response.ok || !response.body) throw new ApiError(response.status, `stream: HTTP ${response.status}`);
    onState("live");
    delay = 1000;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = {type: "message", data: [], id: ""};
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.data.length) {
            if (event.id) lastId = event.id;
            let data = event.data.join("\n");
            try { data = JSON.parse(data); } catch { /* keep text */ }
            onEvent(event.type, data, event.id);
          }
          event = {type: "message", data: [], id: ""};
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.type = val;
          else if (field === "data") event.data.push(val);
          else if (field === "id") event.id = val;
        }
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (error) {
        if (stopped) break;
        if (error instanceof ApiError && error.status === 401) { onState("unauthorized"); break; }
      }
      if (stopped) break;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
    onState("stopped");
  })();

  return () => { stopped = true; if (controller) controller.abort(); };
}
