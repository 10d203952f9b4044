// The console's shell: sign-in, the hash router, and one page at a time (its polls and streams
// end when the person leaves it).
import { ApiError, credential } from "/console/api.js";
import {
  batchPage, batchesPage, queuesPage, runPage, runsPage, sessionPage, sessionsPage,
} from "/console/views.js";

const ROUTES = [
  [/^#\/runs\/([^/?]+)$/, runPage, "runs"],
  [/^#\/runs(?:\?.*)?$/, runsPage, "runs"],
  [/^#\/batches\/([^/?]+)$/, batchPage, "batches"],
  [/^#\/batches$/, batchesPage, "batches"],
  [/^#\/sessions\/([^/?]+)$/, sessionPage, "sessions"],
  [/^#\/sessions$/, sessionsPage, "sessions"],
  [/^#\/queues$/, queuesPage, "queues"],
];

const view = document.getElementById("view");
const statusLine = document.getElementById("status");
const signin = document.getElementById("signin");
let current = null;

function report(message, isError = false) {
  statusLine.textContent = message;
  statusLine.classList.toggle("error", isError);
}

function showSignin() {
  view.replaceChildren(signin);
  signin.hidden = false;
  document.getElementById("signout").hidden = true;
}

async function route() {
  if (current) current.abort();
  current = new AbortController();
  if (!credential.get()) return showSignin();
  document.getElementById("signout").hidden = false;
  const hash = location.hash || "#/runs";
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) return (location.hash = "#/runs");
  const [pattern, page, nav] = found;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
  const match = hash.match(pattern);
  const args = match[1] ? { id: decodeURIComponent(match[1]) } : Object.fromEntries(new URLSearchParams(hash.split("?")[1] || ""));
  report("");
  const signal = current.signal;
  try {
    await page(view, args, signal);
  } catch (error) {
    if (signal.aborted || error.name === "AbortError") return;
    if (error instanceof ApiError && error.status === 401) {
      credential.clear();
      report("That credential was refused: sign in again.", true);
      return showSignin();
    }
    report(error instanceof ApiError ? `${error.status} ${error.code}: ${error.message}` : String(error), true);
  }
}

signin.addEventListener("submit", (event) => {
  event.preventDefault();
  credential.set(document.getElementById("token").value.trim());
  signin.reset();
  route();
});
document.getElementById("signout").addEventListener("click", () => {
  credential.clear();
  route();
});
window.addEventListener("hashchange", route);
route();
