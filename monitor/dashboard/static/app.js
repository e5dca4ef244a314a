// chainwatch dashboard: token entry, routing between views, the live stream, shortcuts.

import {follow, session, verify} from "./api.js";
import {AlertFeed} from "./alerts.js";
import {CasePage, casesView} from "./cases.js";
import {h, replace, toast} from "./dom.js";
import {WatchlistPage} from "./watchlist.js";

/** Alerts by id, newest state wins (revision, then audit length). */
class AlertStore {
  constructor() { this.byId = new Map(); }
  get(id) { return this.byId.get(id); }
  put(alert) {
    const known = this.byId.get(alert.id);
    if (known && (known.revision ?? 0) > (alert.revision ?? 0)) {
      // An older lifecycle event read late: keep its facts, take the newer disposition only.
      if (alert.disposition) known.disposition = alert.disposition;
      if (alert.audit) known.audit = alert.audit;
      return known;
    }
    const merged = known ? {disposition: known.disposition, audit: known.audit, ...alert} : alert;
    this.byId.set(alert.id, merged);
    return merged;
  }
  audit(entry) {
    const alert = this.byId.get(entry.alert_id);
    if (!alert) return null;
    alert.audit = [...(alert.audit || []), entry];
    const dispositions = {acknowledge: "acknowledged", resolve: "resolved", "false-positive": "false_positive",
      false_positive: "false_positive", acknowledged: "acknowledged", resolved: "resolved"};
    alert.disposition = entry.disposition || dispositions[entry.action] || alert.disposition;
    return alert;
  }
}

const store = new AlertStore();
const main = document.getElementById("main");
const live = document.getElementById("live");
let page = null;
let stopStream = null;

function route() {
  const hash = location.hash || "#/alerts";
  const [, view, arg] = hash.match(/^#\/([a-z]+)(?:\/(.+))?$/) || [];
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
    link.setAttribute("aria-current", link.dataset.view === view ? "page" : "false");
  }
  if (view === "cases" && arg) {
    page = new CasePage(store, decodeURIComponent(arg));
    replace(main, page.view());
  } else if (view === "cases") {
    page = null;
    casesView().then((root) => replace(main, root));
  } else if (view === "watchlist") {
    page = new WatchlistPage();
    replace(main, page.view());
  } else {
    page = new AlertFeed(store);
    replace(main, h("div", {class: "toolbar"}, h("h2", {}, "Live alerts"), h("span", {class: "muted"},
      "j/k move · Enter details · a ack · r resolve · f false positive · / filter")), page.view());
  }
  document.title = `chainwatch · ${view === "cases" && arg ? decodeURIComponent(arg) : view || "alerts"}`;
}

function setLive(state) {
  live.dataset.state = state;
  live.textContent = {live: "● live", reconnecting: "● reconnecting", stopped: "● offline",
    unauthorized: "● token refused"}[state] || state;
  if (state === "unauthorized") logout("The token was refused: enter it again.");
}

function onEvent(type, data) {
  if (type === "alert" && data && data.id) {
    const alert = store.put(data);
    if (page && page.onAlert) page.onAlert(alert);
    if (alert.severity === "critical" && alert.status !== "retracted") toast(`CRITICAL ${alert.rule}: ${alert.title || alert.tx_hash}`, "critical");
  } else if (type === "audit" && data && (data.id || data.alert_id)) {
    // The API sends the whole AlertView (with its audit trail); a bare audit record also works.
    const alert = data.id ? store.put(data) : store.audit(data);
    if (alert && page && page.onAlert) page.onAlert(alert);
  }
}

function start() {
  document.body.classList.remove("locked");
  replace(document.getElementById("who"), session.actor ? `signed in as ${session.actor}` : "");
  if (stopStream) stopStream();
  stopStream = follow(onEvent, setLive);
  route();
}

function logout(message) {
  if (stopStream) { stopStream(); stopStream = null; }
  session.clear();
  showLogin(message);
}

function showLogin(message) {
  document.body.classList.add("locked");
  const dialog = document.getElementById("login");
  const form = dialog.querySelector("form");
  const error = dialog.querySelector(".error");
  error.textContent = message || "";
  form.onsubmit = async (event) => {
    event.preventDefault();
    const token = form.elements.token.value.trim();
    const actor = form.elements.actor.value.trim();
    error.textContent = "";
    try {
      await verify(token);
    } catch (err) {
      error.textContent = err.status === 401 ? "Token refused by the server." : `Cannot reach the API: ${err.message}`;
      return;
    }
    session.save(token, actor);
    form.elements.token.value = "";
    dialog.close();
    start();
  };
  dialog.oncancel = (event) => event.preventDefault();  // no way around the token
  if (!dialog.open) dialog.showModal();
  form.elements.token.focus();
}

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey || document.querySelector("dialog[open]")) return;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) {
    if (event.key === "Escape") target.blur();
    return;
  }
  if (event.key === "/") {
    const field = document.querySelector("#filter-case, #watch-filter, .filters input");
    if (field) { event.preventDefault(); field.focus(); }
    return;
  }
  const views = {1: "#/alerts", 2: "#/cases", 3: "#/watchlist"};
  if (views[event.key]) { location.hash = views[event.key]; return; }
  if (page && page.key && page.key(event)) event.preventDefault();
});

document.getElementById("logout").addEventListener("click", () => logout(""));
document.getElementById("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem("chainwatch.theme", document.documentElement.dataset.theme);
});
const savedTheme = localStorage.getItem("chainwatch.theme");
if (savedTheme) document.documentElement.dataset.theme = savedTheme;
window.addEventListener("hashchange", () => { if (session.token) route(); });

if (session.token) start(); else showLogin("");
