// The console's pages. Each takes the view element, the route's arguments and an AbortSignal that
// ends its polls and streams when the person navigates away.
import { api, follow, query, sleep } from "/console/api.js";

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELED", "EXPIRED", "CRASHED", "SYSTEM_FAILURE"]);
const STATUSES = ["", "PENDING", "DELAYED", "QUEUED", "EXECUTING", "COMPLETED", "FAILED", "CANCELED", "EXPIRED"];
const POLL_MS = 2000;

// Elements from a tag, attributes and children; text is always set as text, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const json = (value) => h("pre", {}, JSON.stringify(value, null, 2));
const status = (s) => h("span", { class: `status ${s}`, "data-status": s }, s);
const runLink = (id) => h("a", { href: `#/runs/${encodeURIComponent(id)}` }, id);

async function poll(signal, fn) {
  while (!signal.aborted) {
    await fn();
    await sleep(POLL_MS);
  }
}

export async function runsPage(view, args, signal) {
  const form = h("form", { class: "filters" },
    h("select", { name: "status" }, STATUSES.map((s) => h("option", { value: s }, s || "any status"))),
    h("input", { name: "taskIdentifier", placeholder: "task" }),
    h("input", { name: "tag", placeholder: "tag" }),
    h("input", { name: "from", type: "datetime-local", title: "created from" }),
    h("input", { name: "to", type: "datetime-local", title: "created to" }),
    h("button", { type: "submit" }, "Filter"));
  for (const [name, value] of Object.entries(args)) if (form.elements[name]) form.elements[name].value = value;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    location.hash = "#/runs" + query(values);
  });
  const body = h("tbody");
  const more = h("button", { hidden: true }, "Older runs");
  view.replaceChildren(h("h1", {}, "Runs"), form,
    h("table", { id: "runs" }, h("thead", {}, h("tr", {}, ["Run", "Task", "Status", "Tags", "Created"].map((t) => h("th", {}, t)))), body),
    more);
  const filters = {
    "filter[status]": args.status, "filter[taskIdentifier]": args.taskIdentifier, "filter[tag]": args.tag,
    "filter[createdAt][from]": args.from && new Date(args.from).toISOString(),
    "filter[createdAt][to]": args.to && new Date(args.to).toISOString(), "page[size]": 25,
  };
  const rows = new Map();
  const row = (run) => h("tr", { "data-run": run.id },
    h("td", {}, runLink(run.id)), h("td", {}, run.taskIdentifier ?? run.taskId), h("td", {}, status(run.status)),
    h("td", {}, (run.tags || []).join(", ")), h("td", {}, when(run.createdAt)));
  const show = (runs, { prepend }) => {
    const fresh = [];
    for (const run of runs) {
      const el = row(run);
      if (rows.has(run.id)) rows.get(run.id).replaceWith(el);
      else fresh.push(el);
      rows.set(run.id, el);
    }
    if (prepend && rows.size > fresh.length) fresh.forEach((el) => el.classList.add("new"));
    prepend ? body.prepend(...fresh) : body.append(...fresh);
  };
  let next = null;
  more.addEventListener("click", async () => {
    const page = await api("/api/v1/runs" + query({ ...filters, "page[after]": next }));
    show(page.data, { prepend: false });
    next = page.pagination && page.pagination.next;
    more.hidden = !next;
  });
  let first = true;
  // The newest page again every poll: new runs appear on top, changed ones change in place.
  await poll(signal, async () => {
    const page = await api("/api/v1/runs" + query(filters), { signal });
    show([...page.data].reverse(), { prepend: true });
    if (first) {
      next = page.pagination && page.pagination.next;
      more.hidden = !next;
      first = false;
    }
  });
}

function attemptsTimeline(run) {
  const items = [h("li", {}, `created ${when(run.createdAt)}`)];
  if (run.delayUntil) items.push(h("li", {}, `delayed until ${when(run.delayUntil)}`));
  for (const attempt of run.attempts || []) {
    const end = attempt.endedAt || attempt.completedAt;
    items.push(h("li", { "data-attempt": attempt.attempt ?? attempt.number },
      `attempt ${attempt.attempt ?? attempt.number}: started ${when(attempt.startedAt)}`,
      end ? ` · ended ${when(end)}` : "", attempt.status ? " · " : "", attempt.status ? status(attempt.status) : "",
      attempt.error ? h("div", { class: "muted" }, attempt.error.message || JSON.stringify(attempt.error)) : ""));
  }
  for (const [field, label] of [["completedAt", "finished"], ["canceledAt", "canceled"], ["expiredAt", "expired"]]) {
    if (run[field]) items.push(h("li", {}, `${label} ${when(run[field])}`));
  }
  return h("ul", { class: "timeline" }, items);
}

export async function runPage(view, { id }, signal) {
  const head = h("div");
  const detail = h("div");
  const streams = h("div", { id: "streams" });
  view.replaceChildren(head, detail, h("h2", {}, "Streams"), streams);
  const following = new Map();
  const render = (run) => {
    const actions = [];
    if (!FINAL.has(run.status)) {
      actions.push(h("button", { id: "cancel", onclick: async () => {
        await api(`/api/v2/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      } }, "Cancel"));
    } else {
      actions.push(h("button", { id: "replay", onclick: async () => {
        const replayed = await api(`/api/v1/runs/${encodeURIComponent(id)}/replay`, { method: "POST" });
        location.hash = `#/runs/${encodeURIComponent(replayed.id)}`;
      } }, "Replay"));
    }
    head.replaceChildren(h("h1", {}, `Run ${run.id} `, status(run.status)),
      h("p", { class: "muted" }, `task ${run.taskIdentifier ?? run.taskId}`,
        run.batchId ? [" · batch ", h("a", { href: `#/batches/${encodeURIComponent(run.batchId)}` }, run.batchId)] : "",
        run.tags && run.tags.length ? ` · tags ${run.tags.join(", ")}` : ""), ...actions);
    detail.replaceChildren(h("div", { class: "grid" },
      h("div", {}, h("h2", {}, "Timeline"), attemptsTimeline(run)),
      h("div", {}, h("h2", {}, "Payload"), json(run.payload),
        run.output !== undefined && run.output !== null ? [h("h2", {}, "Output"), json(run.output)] : "",
        run.error ? [h("h2", {}, "Error"), json(run.error)] : "")));
    for (const key of run.streamKeys || run.streams || []) {
      if (following.has(key)) continue;
      const chunks = h("div", { class: "chunks", "data-stream": key });
      streams.append(h("h2", {}, key), chunks);
      following.set(key, chunks);
      const path = `/realtime/v1/streams/${encodeURIComponent(id)}/${encodeURIComponent(key)}`;
      follow(path, (chunk) => {
        chunks.append(h("div", { "data-id": chunk.id }, typeof chunk.data === "string" ? chunk.data : JSON.stringify(chunk.data)));
        chunks.scrollTop = chunks.scrollHeight;
      }, signal).catch((error) => chunks.append(h("div", { class: "muted" }, error.message)));
    }
    if (!following.size) streams.replaceChildren(h("p", { class: "muted" }, "No streams yet."));
  };
  await poll(signal, async () => {
    const run = await api(`/api/v1/runs/${encodeURIComponent(id)}`, { signal });
    if (!following.size) streams.replaceChildren();
    render(run);
  });
}

export async function batchesPage(view, args, signal) {
  const form = h("form", { class: "filters" }, h("input", { name: "id", placeholder: "batch_..." }), h("button", {}, "Open"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/batches/${encodeURIComponent(form.elements.id.value.trim())}`;
  });
  const recent = h("ul");
  view.replaceChildren(h("h1", {}, "Batches"), form, h("h2", {}, "Recent batches"), recent);
  // There is no list of batches: the newest runs name the batches they came from.
  const page = await api("/api/v1/runs" + query({ "page[size]": 100 }), { signal });
  const seen = [...new Set(page.data.map((run) => run.batchId).filter(Boolean))];
  recent.replaceChildren(...(seen.length ? seen.map((b) => h("li", {}, h("a", { href: `#/batches/${encodeURIComponent(b)}` }, b)))
    : [h("li", { class: "muted" }, "none among the newest runs")]));
}

export async function batchPage(view, { id }, signal) {
  const top = h("div");
  const failures = h("tbody");
  const runs = h("ul");
  view.replaceChildren(top, h("h2", {}, "Failed items"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Run", "Status", "Error"].map((t) => h("th", {}, t)))), failures),
    h("h2", {}, "Runs in index order"), runs);
  await poll(signal, async () => {
    const batch = await api(`/api/v3/batches/${encodeURIComponent(id)}`, { signal });
    const done = batch.enqueuedCount ?? batch.processedCount ?? 0;
    const pct = batch.runCount ? Math.round((100 * done) / batch.runCount) : 0;
    top.replaceChildren(h("h1", {}, `Batch ${batch.id} `, status(batch.status)),
      h("p", {}, `${done} of ${batch.runCount} items enqueued`),
      h("div", { class: "progress", "data-progress": pct }, h("div", { style: `width:${pct}%` })), json(
        Object.fromEntries(Object.entries(batch).filter(([k]) => k !== "runs" && k !== "runIds"))));
    runs.replaceChildren(...(batch.runs || batch.runIds || []).map((run) => h("li", {}, runLink(run.id || run))));
    const failed = await api("/api/v1/runs" + query({ "filter[batchId]": id, "filter[status]": "FAILED", "page[size]": 100 }), { signal });
    failures.replaceChildren(...failed.data.map((run) => h("tr", {},
      h("td", {}, runLink(run.id)), h("td", {}, status(run.status)), h("td", {}, run.error ? run.error.message : ""))));
  });
}

export async function sessionsPage(view, args, signal) {
  const body = h("tbody");
  view.replaceChildren(h("h1", {}, "Sessions"), h("table", { id: "sessions" },
    h("thead", {}, h("tr", {}, ["Session", "External id", "Type", "Task", "Status", "Created"].map((t) => h("th", {}, t)))), body));
  await poll(signal, async () => {
    const page = await api("/api/v1/sessions" + query({ limit: 50 }), { signal });
    body.replaceChildren(...page.data.map((s) => h("tr", {},
      h("td", {}, h("a", { href: `#/sessions/${encodeURIComponent(s.id)}` }, s.id)), h("td", {}, s.externalId || ""),
      h("td", {}, s.type), h("td", {}, s.taskId ?? s.taskIdentifier), h("td", {}, status(s.status)), h("td", {}, when(s.createdAt)))));
  });
}

// A session's conversation from its two channels: `in` holds the user's messages, `out` the
// agent's replies as AI SDK UI message chunks from `start` to `finish`; a reply whose `finish`
// never came before the next `start` was cut off (a crashed run), as the recovery sees it.
export function conversation(inRecords, outRecords) {
  const entries = [];
  const order = (id) => id.split("-").map(Number);
  for (const record of inRecords) {
    const data = record.data || {};
    if (data.kind === "message" && data.message) entries.push({ id: record.id, role: "user", text: textOf(data.message) });
  }
  let reply = null;
  for (const record of outRecords) {
    const data = record.data || {};
    if (data.type === "sluice:user-message" && data.message) {
      entries.push({ id: record.id, role: "user", text: textOf(data.message) });
    } else if (data.type === "start") {
      if (reply) reply.cut = true;
      reply = { id: record.id, role: "assistant", text: "", tools: [], cut: false };
      entries.push(reply);
    } else if (reply && (data.type === "text-delta" || data.type === "reasoning-delta")) {
      if (data.type === "text-delta") reply.text += data.delta || "";
    } else if (reply && data.type === "tool-input-available") {
      reply.tools.push(`${data.toolName}(${JSON.stringify(data.input)})`);
    } else if (reply && data.type === "tool-output-available") {
      reply.tools.push(`→ ${JSON.stringify(data.output)}`);
    } else if (data.type === "finish") {
      reply = null;
    }
  }
  return entries.sort((a, b) => {
    const [am, as] = order(a.id); const [bm, bs] = order(b.id);
    return am - bm || as - bs;
  });
}

function textOf(message) {
  return (message.parts || []).filter((p) => p.type === "text").map((p) => p.text).join("");
}

export async function sessionPage(view, { id }, signal) {
  const chat = h("div", { class: "chat", id: "chat" });
  const head = h("div");
  view.replaceChildren(head, chat);
  const session = await api(`/api/v1/sessions/${encodeURIComponent(id)}`, { signal });
  head.replaceChildren(h("h1", {}, `Session ${session.externalId || session.id} `, status(session.status)),
    h("p", { class: "muted" }, `${session.type} · task ${session.taskId ?? session.taskIdentifier}`));
  const records = { in: [], out: [] };
  const after = { in: null, out: null };
  await poll(signal, async () => {
    for (const io of ["in", "out"]) {
      for (;;) {
        const page = await api(`/realtime/v1/sessions/${encodeURIComponent(session.id)}/${io}/records` +
          query({ after: after[io] }), { signal });
        records[io].push(...page.records);
        if (page.records.length) after[io] = page.records[page.records.length - 1].id;
        if (!page.hasMore || !page.records.length) break;
      }
    }
    chat.replaceChildren(...conversation(records.in, records.out).map((m) => h("div",
      { class: `msg ${m.role}${m.cut ? " cut" : ""}`, "data-role": m.role },
      m.text, ...(m.tools || []).map((t) => h("div", { class: "tool" }, t)))));
  });
}

export async function queuesPage(view, args, signal) {
  const body = h("tbody");
  view.replaceChildren(h("h1", {}, "Queues"), h("table", { id: "queues" },
    h("thead", {}, h("tr", {}, ["Queue", "Concurrency limit", "Executing", "Queued"].map((t) => h("th", {}, t)))), body));
  await poll(signal, async () => {
    const answer = await api("/api/v1/queues", { signal });
    body.replaceChildren(...(answer.data || []).map((q) => h("tr", { "data-queue": q.name },
      h("td", {}, q.name), h("td", {}, q.concurrencyLimit ?? "none"), h("td", {}, q.executing ?? q.running ?? 0),
      h("td", {}, q.queued ?? 0))));
  });
}
