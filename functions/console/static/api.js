// The console's one way to the API: the person's credential as a Bearer token, errors in the
// API's {"error", "code"} shape, and SSE reads that resume from the last event they showed.

const TOKEN = "sluice.console.token";

export const credential = {
  get: () => sessionStorage.getItem(TOKEN),
  set: (value) => sessionStorage.setItem(TOKEN, value),
  clear: () => sessionStorage.removeItem(TOKEN),
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Authorization: `Bearer ${credential.get()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

// A stream from its first chunk, live: what it holds already comes from `/records` a page at a
// time, then the SSE read resumes after the last of them. EventSource cannot send an
// Authorization header, so the SSE is read with fetch and parsed here: `id:` is the cursor sent
// back as Last-Event-ID on the next request (each long-poll answer ends and the next one resumes
// there), `event: end` closes the stream for good.
export async function follow(path, onChunk, signal) {
  let lastId = null;
  for (;;) {
    const page = await api(path + "/records" + query({ after: lastId }), { signal });
    page.records.forEach(onChunk);
    if (page.records.length) lastId = page.records[page.records.length - 1].id;
    if (page.closed && !page.hasMore) return;
    if (!page.hasMore || !page.records.length) break;
  }
  while (!signal.aborted) {
    const headers = { Authorization: `Bearer ${credential.get()}`, Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    let response;
    try {
      response = await fetch(path, { headers, signal });
    } catch (error) {
      if (signal.aborted) return;
      await sleep(1000);
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { data: [] };
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (event.event === "end") return;
          if (event.data.length) {
            if (event.id) lastId = event.id;
            onChunk({ id: event.id, data: parseData(event.data.join("\n")) });
          }
          event = { data: [] };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") event.data.push(value);
          else if (field === "id" || field === "event") event[field] = value;
        }
      }
    }
  }
}

function parseData(text) {
  try { return JSON.parse(text); } catch { return text; }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
