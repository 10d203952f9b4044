// Drives the unmodified @trigger.dev/sdk for tests/compat (pytest runs it, one call per process).
//
//   echo '{"baseURL": "...", "accessToken": "...", "args": [...]}' | node sdk.mjs <call>
//
// <call> names an SDK function ("tasks.trigger", "runs.retrieve", ...). Its arguments come from
// "args", where JSON cannot say what a user's JavaScript would pass, tagged objects stand for the
// value: {"$date": iso}, {"$map": [[k, v], ...]}, {"$set": [...]}, {"$bigint": "123"},
// {"$bytes": n} (a string of n "x", for payloads too large to spell out). The answer on stdout is
// {"ok": true, "value": ...} (the same tags going back) or {"ok": false, "error": {...}}: the test
// asserts on what the SDK returned or raised, never on the exit status alone.
import * as sdk from "@trigger.dev/sdk";
import { apiClientManager, realtimeStreams } from "@trigger.dev/core/v3";
import { StandardRealtimeStreamsManager } from "@trigger.dev/core/v3/workers";

function revive(value) {
  if (Array.isArray(value)) return value.map(revive);
  if (value === null || typeof value !== "object") return value;
  if ("$date" in value) return new Date(value.$date);
  if ("$map" in value) return new Map(value.$map.map(([k, v]) => [revive(k), revive(v)]));
  if ("$set" in value) return new Set(value.$set.map(revive));
  if ("$bigint" in value) return BigInt(value.$bigint);
  if ("$bytes" in value) return "x".repeat(value.$bytes);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
}

function tag(value) {
  if (value instanceof Date) return { $date: value.toISOString() };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [tag(k), tag(v)]) };
  if (value instanceof Set) return { $set: [...value].map(tag) };
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (Array.isArray(value)) return value.map(tag);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tag(v)]));
}

// Inside a task the worker runtime registers the stream writer; here the test does, the same way.
function asWorker() {
  realtimeStreams.setGlobalManager(
    new StandardRealtimeStreamsManager(apiClientManager.clientOrThrow(), apiClientManager.baseURL),
  );
}

async function* paced(chunks, delayMs) {
  for (const chunk of chunks) {
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    yield chunk;
  }
}

// Calls that are more than one SDK function: an iterator drained, a writer awaited.
const composite = {
  async "streams.read"(runId, key, options) {
    const chunks = [];
    const stream = await sdk.streams.read(runId, key, options);
    for await (const chunk of stream) chunks.push(chunk);
    return chunks;
  },
  // A task's `streams.pipe(key, source)`, writing to run `runId` (the worker's own run).
  async "worker.pipe"(runId, key, chunks, delayMs = 0) {
    asWorker();
    const { waitUntilComplete } = sdk.streams.pipe(key, paced(chunks, delayMs), { target: runId });
    await waitUntilComplete();
    return chunks.length;
  },
  async "worker.append"(runId, key, text) {
    asWorker();
    await sdk.streams.append(key, text, { target: runId });
    return true;
  },
};

async function call(name, args) {
  if (composite[name]) return composite[name](...args);
  const [namespace, fn] = name.split(".");
  const target = sdk[namespace];
  if (!target || typeof target[fn] !== "function") throw new Error(`no SDK call ${name}`);
  return target[fn](...args);
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  sdk.configure({ baseURL: input.baseURL, accessToken: input.accessToken });
  let answer;
  try {
    answer = { ok: true, value: tag(await call(process.argv[2], revive(input.args ?? []))) };
  } catch (error) {
    answer = {
      ok: false,
      error: {
        name: error?.name,
        message: String(error?.message ?? error),
        status: error?.status,
        body: error?.error,
        headers: error?.headers,
      },
    };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}

await main();
