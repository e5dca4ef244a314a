// Cases: the list, and one case with its live fund-flow graph, watch entries and export.

import {request} from "./api.js";
import {AlertFeed} from "./alerts.js";
import {copyButton, h, hashCell, replace, toast} from "./dom.js";
import {ago, amountText, utc} from "./format.js";
import {renderGraph, roleClass} from "./graph.js";

/** The list of cases with counts; rows open the case page. */
export async function casesView() {
  const body = h("tbody", {}, h("tr", {}, h("td", {colspan: 5, class: "empty"}, "Loading…")));
  const root = h("section", {class: "cases"},
    h("div", {class: "toolbar"}, h("h2", {}, "Cases")),
    h("div", {class: "table-wrap"}, h("table", {class: "grid", "aria-label": "Cases"},
      h("thead", {}, h("tr", {}, ["Case", "Watched addresses", "Alerts", "Open", "Last alert (UTC)"].map((t) => h("th", {scope: "col"}, t)))),
      body)));
  try {
    const {cases = []} = await request("GET", "/cases");
    replace(body, cases.length ? cases.map((c) => h("tr", {class: "link-row", dataset: {case: c.case_id}},
      h("td", {}, h("a", {href: `#/cases/${encodeURIComponent(c.case_id)}`}, c.case_id)),
      h("td", {class: "num"}, c.watched ?? 0),
      h("td", {class: "num"}, c.alerts ?? 0),
      h("td", {class: ["num", c.open ? "attention" : ""]}, c.open ?? 0),
      h("td", {class: "mono", title: ago(c.last_alert_at)}, utc(c.last_alert_at))))
      : h("tr", {}, h("td", {colspan: 5, class: "empty"}, "No case yet: add a watch entry.")));
  } catch (error) {
    replace(body, h("tr", {}, h("td", {colspan: 5, class: "empty error"}, `Cases: ${error.message}`)));
  }
  return root;
}

async function download(caseId, format) {
  try {
    const response = await request("GET", `/cases/${encodeURIComponent(caseId)}/export`, {query: {format}, raw: true});
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = h("a", {href: url, download: `${caseId}.${format}`, class: "offscreen"});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    toast(`Exported ${caseId}.${format}`);
  } catch (error) {
    toast(`Export failed: ${error.message}`, "error");
  }
}

function legend() {
  return h("ul", {class: "legend", "aria-label": "Legend"},
    ["seized", "hop", "exchange", "mixer", "bridge", "sanctioned"].map((role) =>
      h("li", {class: `role-${role}`}, h("span", {class: "swatch"}), role)));
}

function selection(item) {
  if (!item) return h("p", {class: "muted"}, "Select an address or a transfer in the graph (Tab, Enter).");
  if (item.kind === "node") {
    const n = item.value;
    const address = String(n.id).split(":").pop();
    return h("dl", {},
      h("dt", {}, "Address"), h("dd", {class: "mono"}, address, copyButton(address, "address")),
      h("dt", {}, "Role"), h("dd", {}, n.role || roleClass(n.role)),
      h("dt", {}, "Label"), h("dd", {}, n.label || "—"),
      h("dt", {}, "Chain"), h("dd", {}, n.chain || "—"));
  }
  const e = item.value;
  const asset = typeof e.asset === "object" ? e.asset : {symbol: e.asset};
  return h("dl", {},
    h("dt", {}, "Transaction"), h("dd", {class: "mono"}, e.tx_hash, copyButton(e.tx_hash, "transaction hash")),
    h("dt", {}, "Block"), h("dd", {class: "mono"}, e.block_number),
    h("dt", {}, "From"), h("dd", {class: "mono"}, e.from, copyButton(e.from, "sender")),
    h("dt", {}, "To"), h("dd", {class: "mono"}, e.to, copyButton(e.to, "recipient")),
    h("dt", {}, "Amount"), h("dd", {class: "mono", title: `${e.amount} base units`}, amountText(e.amount, asset)),
    h("dt", {}, "Hop"), h("dd", {}, e.hop ?? "—"),
    h("dt", {}, "Alert"), h("dd", {class: "mono"}, e.alert_id || "—"));
}

/** One case: live graph, its alerts and watch entries, export buttons. */
export class CasePage {
  constructor(store, caseId) {
    this.store = store;
    this.caseId = caseId;
    this.feed = new AlertFeed(store, {caseId});
    this.graphBox = h("div", {class: "graph-box", id: "case-graph"});
    this.side = h("aside", {class: "selection"});
    this.entries = h("tbody");
    this.stamp = h("span", {class: "muted"});
    this.timer = null;
  }

  view() {
    const root = h("section", {class: "case"},
      h("div", {class: "toolbar"},
        h("h2", {}, h("a", {href: "#/cases"}, "Cases"), " / ", h("span", {id: "case-title"}, this.caseId)),
        this.stamp,
        h("span", {class: "spacer"}),
        h("span", {class: "muted"}, "Export"),
        ["html", "json", "csv"].map((f) => h("button", {type: "button", class: "ghost", dataset: {export: f},
          onclick: () => download(this.caseId, f)}, f.toUpperCase()))),
      h("div", {class: "case-top"},
        h("div", {class: "panel graph-panel"}, h("div", {class: "panel-head"}, h("h3", {}, "Fund flow"), legend()), this.graphBox),
        h("div", {class: "panel"}, h("div", {class: "panel-head"}, h("h3", {}, "Selected")), this.side)),
      h("div", {class: "panel"}, h("div", {class: "panel-head"}, h("h3", {}, "Alerts of this case")), this.feed.view()),
      h("div", {class: "panel"}, h("div", {class: "panel-head"}, h("h3", {}, "Watched addresses")),
        h("div", {class: "table-wrap"}, h("table", {class: "grid"},
          h("thead", {}, h("tr", {}, ["Chain", "Address", "Category", "Label", "Source", "Added (UTC)", "Hop"].map((t) => h("th", {scope: "col"}, t)))),
          this.entries))));
    replace(this.side, selection(null));
    this.refresh();
    return root;
  }

  async refresh() {
    try {
      const data = await request("GET", `/cases/${encodeURIComponent(this.caseId)}`);
      const graph = data.graph || {nodes: [], edges: []};
      const scroll = [this.graphBox.scrollLeft, this.graphBox.scrollTop];
      replace(this.graphBox, graph.nodes?.length
        ? renderGraph(graph, (item) => replace(this.side, selection(item)))
        : h("p", {class: "empty"}, "No movement of this case's funds yet."));
      [this.graphBox.scrollLeft, this.graphBox.scrollTop] = scroll;
      this.graphBox.dataset.edges = String(graph.edges?.length || 0);
      const entries = data.watch_entries || [];
      replace(this.entries, entries.length ? entries.map((e) => h("tr", {},
        h("td", {}, e.chain), h("td", {}, hashCell(e.address, "address")), h("td", {}, e.category),
        h("td", {}, e.label || ""), h("td", {}, e.source || ""), h("td", {class: "mono"}, utc(e.added_at)),
        h("td", {class: "num"}, e.taint ? e.taint.hop : 0)))
        : h("tr", {}, h("td", {colspan: 7, class: "empty"}, "No watch entry.")));
      replace(this.stamp, `updated ${utc(Date.now() / 1000)}`);
    } catch (error) {
      replace(this.graphBox, h("p", {class: "empty error"}, `Case ${this.caseId}: ${error.message}`));
    }
  }

  /** A live alert of this case: add it to the feed and redraw the graph (debounced). */
  onAlert(alert) {
    this.feed.onAlert(alert);
    if (alert.watch?.case_id !== this.caseId) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), 400);
  }

  key(event) { return this.feed.key(event); }
}
