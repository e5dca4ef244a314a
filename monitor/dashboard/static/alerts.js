// Live alert feed: filters, newest first, status and disposition, actions with a note.

import {ApiError, request} from "./api.js";
import {copyButton, h, hashCell, replace, toast} from "./dom.js";
import {DISPOSITIONS, SEVERITIES, STATUSES, amountText, utc} from "./format.js";

const ACTIONS = [
  {key: "a", path: "acknowledge", label: "Ack", verb: "Acknowledge", disposition: "acknowledged"},
  {key: "r", path: "resolve", label: "Resolve", verb: "Resolve", disposition: "resolved"},
  {key: "f", path: "false-positive", label: "False +", verb: "Mark false positive", disposition: "false_positive"},
];
const FILTERS = ["case_id", "rule", "severity", "chain", "status", "since", "until"];

/** Ask for a note, then POST the action; resolves with the updated alert view or null. */
export async function act(alert, action) {
  const dialog = document.getElementById("action-dialog");
  const form = dialog.querySelector("form");
  replace(dialog.querySelector(".dialog-title"), `${action.verb} alert`);
  replace(dialog.querySelector(".dialog-subject"),
    `${alert.rule} · ${alert.severity} · ${alert.watch?.case_id ?? ""} · tx ${alert.tx_hash}`);
  const note = form.elements.note;
  note.value = "";
  dialog.showModal();
  note.focus();
  const choice = await new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue), {once: true});
  });
  if (choice !== "confirm") return null;
  try {
    const result = await request("POST", `/alerts/${encodeURIComponent(alert.id)}/${action.path}`,
      {body: {note: note.value}});
    toast(`${action.verb}: done`);
    return result && result.id ? result : {...alert, disposition: action.disposition};
  } catch (error) {
    toast(`${action.verb} failed: ${error.message}`, "error");
    if (!(error instanceof ApiError)) throw error;
    return null;
  }
}

function badge(kind, value) {
  return h("span", {class: `badge ${kind}-${String(value || "none").replace(/_/g, "-")}`}, String(value || "—").replace(/_/g, " "));
}

/** The feed view; `store` holds alerts by id and tells the view about new ones. */
export class AlertFeed {
  constructor(store, {caseId = null, compact = false} = {}) {
    this.store = store;
    this.caseId = caseId;
    this.compact = compact;
    this.filters = caseId ? {case_id: caseId} : {};
    this.selected = null;
    this.expanded = new Set();
    this.cursor = null;
    this.ids = [];
    this.root = h("section", {class: "feed"});
    this.body = h("tbody");
    this.count = h("span", {class: "muted"});
  }

  matches(alert) {
    const f = this.filters;
    if (f.case_id && alert.watch?.case_id !== f.case_id) return false;
    if (f.rule && alert.rule !== f.rule) return false;
    if (f.severity && alert.severity !== f.severity) return false;
    if (f.chain && alert.chain !== f.chain) return false;
    if (f.status && alert.status !== f.status) return false;
    if (f.disposition && (alert.disposition || "open") !== f.disposition) return false;
    return true;
  }

  filterBar() {
    const select = (name, values, label) => h("label", {}, label,
      h("select", {name}, h("option", {value: ""}, "any"), values.map((v) => h("option", {value: v}, v.replace(/_/g, " ")))));
    const input = (name, label, attrs = {}) => h("label", {}, label, h("input", {name, ...attrs}));
    const form = h("form", {class: "filters", onsubmit: (e) => { e.preventDefault(); this.applyFilters(form); }},
      this.caseId ? null : input("case_id", "Case", {placeholder: "CASE-…", size: 12, id: "filter-case"}),
      input("rule", "Rule", {placeholder: "watched-address", size: 14}),
      select("severity", SEVERITIES, "Severity"),
      input("chain", "Chain", {size: 8}),
      select("status", STATUSES, "Status"),
      select("disposition", DISPOSITIONS, "Disposition"),
      input("since", "Since", {type: "datetime-local"}),
      input("until", "Until", {type: "datetime-local"}),
      h("button", {type: "submit"}, "Apply"),
      h("button", {type: "reset", class: "ghost", onclick: () => setTimeout(() => this.applyFilters(form))}, "Clear"),
      this.count);
    return form;
  }

  applyFilters(form) {
    const data = new FormData(form);
    this.filters = this.caseId ? {case_id: this.caseId} : {};
    for (const [key, value] of data.entries()) {
      if (!value) continue;
      this.filters[key] = key === "since" || key === "until" ? String(Math.floor(Date.parse(value + "Z") / 1000)) : value;
    }
    this.load();
  }

  async load(more = false) {
    const query = {limit: 200};
    for (const key of FILTERS) if (this.filters[key]) query[key] = this.filters[key];
    if (more && this.cursor) query.cursor = this.cursor;
    try {
      const page = await request("GET", "/alerts", {query});
      if (!more) this.ids = [];
      for (const alert of page.alerts || []) {
        this.store.put(alert);
        if (!this.ids.includes(alert.id)) this.ids.push(alert.id);
      }
      this.cursor = page.next_cursor || null;
      this.render();
    } catch (error) {
      toast(`Alerts: ${error.message}`, "error");
    }
  }

  /** A live alert or audit event: put it on top when it matches the filters. */
  onAlert(alert) {
    if (!this.matches(alert)) return;
    const known = this.ids.indexOf(alert.id);
    if (known >= 0) this.ids.splice(known, 1);
    this.ids.unshift(alert.id);
    this.render(alert.id);
  }

  view() {
    const headers = ["Block time (UTC)", "Severity", "Rule", "Status", "Disposition", "Chain · block",
      this.caseId ? null : "Case", "From", "To", "Amount", "Tx", ""].filter((x) => x !== null);
    replace(this.root,
      this.filterBar(),
      h("div", {class: "table-wrap"},
        h("table", {class: "grid alerts", "aria-label": "Alerts"},
          h("thead", {}, h("tr", {}, headers.map((t) => h("th", {scope: "col"}, t)))),
          this.body)),
      h("div", {class: "more"}, h("button", {type: "button", class: "ghost", id: "load-more", onclick: () => this.load(true)}, "Load older")));
    this.load();
    return this.root;
  }

  row(alert, fresh) {
    const disposition = alert.disposition || "open";
    const tr = h("tr", {
      class: ["alert-row", `row-sev-${alert.severity}`, alert.status === "retracted" && "retracted",
              this.selected === alert.id && "selected", fresh && "fresh"],
      dataset: {id: alert.id, tx: alert.tx_hash, severity: alert.severity},
      tabindex: -1,
      onclick: () => { this.select(alert.id); this.toggle(alert.id); },
    },
    h("td", {class: "mono nowrap", title: `detected ${utc(alert.detected_at)}`}, utc(alert.block_time)),
    h("td", {}, badge("sev", alert.severity)),
    h("td", {class: "nowrap", title: alert.title || ""}, alert.rule),
    h("td", {}, badge("status", alert.status)),
    h("td", {}, badge("disp", disposition)),
    h("td", {class: "mono nowrap"}, `${alert.chain} · ${alert.block_number}`),
    this.caseId ? null : h("td", {class: "nowrap"}, alert.watch?.case_id
      ? h("a", {href: `#/cases/${encodeURIComponent(alert.watch.case_id)}`}, alert.watch.case_id) : "—"),
    h("td", {}, hashCell(alert.from, "sender address")),
    h("td", {}, hashCell(alert.to, "recipient address")),
    h("td", {class: "num mono nowrap", title: `${alert.amount} base units`}, amountText(alert.amount, alert.asset)),
    h("td", {}, hashCell(alert.tx_hash, "transaction hash")),
    h("td", {class: "actions nowrap"}, ACTIONS.map((action) => h("button", {
      type: "button", class: "small", title: `${action.verb} (${action.key})`,
      disabled: disposition === action.disposition,
      onclick: (e) => { e.stopPropagation(); this.run(alert.id, action); },
    }, action.label))));
    return tr;
  }

  details(alert) {
    const facts = [
      ["Alert id", alert.id], ["Title", alert.title], ["Transfer", alert.transfer_id],
      ["Kind", alert.transfer_kind], ["Direction", alert.direction],
      ["Block hash", alert.block_hash], ["Confirmations", alert.confirmations],
      ["Log index", alert.log_index], ["Trace", alert.trace_address && alert.trace_address.join(",")],
      ["Asset", alert.asset && [alert.asset.symbol, alert.asset.address].filter(Boolean).join(" ")],
      ["Amount (base units)", alert.amount],
      ["Watch", alert.watch && `${alert.watch.category} ${alert.watch.label || ""} ${alert.watch.address}`],
      ["Revision", alert.revision],
    ].filter(([, v]) => v !== undefined && v !== null && v !== "");
    const audit = alert.audit || [];
    return h("tr", {class: "details"}, h("td", {colspan: 12},
      h("div", {class: "detail-grid"},
        h("dl", {}, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {class: "mono"}, String(v),
          typeof v === "string" && v.startsWith("0x") ? copyButton(v, k.toLowerCase()) : null)])),
        h("div", {},
          h("h4", {}, "Evidence"),
          h("pre", {class: "evidence"}, JSON.stringify(alert.evidence || {}, null, 2)),
          h("h4", {}, "Audit trail"),
          audit.length ? h("ol", {class: "audit"}, audit.map((a) => h("li", {},
            h("span", {class: "mono"}, utc(a.at)), " ", h("strong", {}, a.action), " by ",
            h("span", {}, `${a.actor} (${a.role})`), a.note ? [": ", h("q", {}, a.note)] : null)))
            : h("p", {class: "muted"}, "No action yet.")))));
  }

  render(freshId) {
    const rows = [];
    const visible = this.ids.map((id) => this.store.get(id)).filter((a) => a && this.matches(a));
    for (const alert of visible) {
      rows.push(this.row(alert, alert.id === freshId));
      if (this.expanded.has(alert.id)) rows.push(this.details(alert));
    }
    if (!rows.length) rows.push(h("tr", {}, h("td", {colspan: 12, class: "empty"}, "No alerts match.")));
    replace(this.body, rows);
    replace(this.count, `${visible.length} shown`);
    const more = this.root.querySelector("#load-more");
    if (more) more.hidden = !this.cursor;
  }

  select(id) {
    this.selected = id;
    for (const tr of this.body.querySelectorAll("tr.alert-row")) {
      tr.classList.toggle("selected", tr.dataset.id === id);
      if (tr.dataset.id === id) tr.focus({preventScroll: false});
    }
  }

  toggle(id) {
    if (this.expanded.has(id)) this.expanded.delete(id); else this.expanded.add(id);
    this.render();
    this.select(id);
  }

  async run(id, action) {
    const alert = this.store.get(id);
    if (!alert) return;
    const updated = await act(alert, action);
    if (updated) { this.store.put(updated); this.render(); this.select(id); }
  }

  /** j/k move, Enter expands, a/r/f act on the selected alert. */
  key(event) {
    const ids = [...this.body.querySelectorAll("tr.alert-row")].map((tr) => tr.dataset.id);
    if (!ids.length) return false;
    const at = ids.indexOf(this.selected);
    if (event.key === "j" || event.key === "ArrowDown") { this.select(ids[Math.min(ids.length - 1, at + 1)]); return true; }
    if (event.key === "k" || event.key === "ArrowUp") { this.select(ids[Math.max(0, at - 1)]); return true; }
    if (at < 0) return false;
    if (event.key === "Enter") { this.toggle(this.selected); return true; }
    const action = ACTIONS.find((a) => a.key === event.key);
    if (action) { this.run(this.selected, action); return true; }
    return false;
  }
}

