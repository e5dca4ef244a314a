// Watchlist: entries with a filter, add one entry, import a CSV file, remove an entry.

import {request} from "./api.js";
import {h, hashCell, replace, toast} from "./dom.js";
import {utc} from "./format.js";

function problems(body) {
  // Per-row errors of an import: accept {errors: [{row, error}|"text"]} and show them as given.
  const list = body && Array.isArray(body.errors) ? body.errors : [];
  return list.map((e) => typeof e === "string" ? e
    : [e.row != null ? `row ${e.row}` : e.line != null ? `line ${e.line}` : "",
       e.field ? `${e.field}:` : "", e.error || e.message || JSON.stringify(e)].filter(Boolean).join(" "));
}

/** The watchlist page. */
export class WatchlistPage {
  constructor() {
    this.entries = [];
    this.body = h("tbody");
    this.count = h("span", {class: "muted"});
    this.filter = h("input", {type: "search", placeholder: "filter address, case, label…", id: "watch-filter",
      "aria-label": "Filter watch entries", oninput: () => this.render()});
    this.report = h("div", {class: "import-report", "aria-live": "polite"});
  }

  view() {
    const add = h("form", {class: "inline-form", id: "watch-add", onsubmit: (e) => { e.preventDefault(); this.add(add); }},
      h("label", {}, "Chain", h("input", {name: "chain", required: true, size: 8, value: "ethereum"})),
      h("label", {}, "Address", h("input", {name: "address", required: true, size: 44, pattern: "0[xX][0-9a-fA-F]{40}",
        placeholder: "0x…", class: "mono", spellcheck: "false", autocomplete: "off"})),
      h("label", {}, "Case", h("input", {name: "case_id", required: true, size: 14, placeholder: "CASE-…"})),
      h("label", {}, "Label", h("input", {name: "label", size: 18})),
      h("label", {}, "Category", h("select", {name: "category"},
        ["seized", "suspect", "victim", "tainted"].map((c) => h("option", {value: c}, c)))),
      h("button", {type: "submit"}, "Add"));
    const file = h("input", {type: "file", accept: ".csv,text/csv", name: "file", required: true});
    const upload = h("form", {class: "inline-form", id: "watch-import", onsubmit: (e) => { e.preventDefault(); this.importCsv(file); }},
      h("label", {}, "CSV (chain,address,case_id,label,category)", file),
      h("button", {type: "submit"}, "Import"));
    const root = h("section", {class: "watchlist"},
      h("div", {class: "toolbar"}, h("h2", {}, "Watchlist"), this.count, h("span", {class: "spacer"}), this.filter),
      h("div", {class: "panel"}, h("div", {class: "panel-head"}, h("h3", {}, "Add an address")), add),
      h("div", {class: "panel"}, h("div", {class: "panel-head"}, h("h3", {}, "Import")), upload, this.report),
      h("div", {class: "table-wrap"}, h("table", {class: "grid", "aria-label": "Watch entries"},
        h("thead", {}, h("tr", {}, ["Chain", "Address", "Case", "Category", "Label", "Source", "Added (UTC)", "Hop", ""]
          .map((t) => h("th", {scope: "col"}, t)))),
        this.body)));
    this.load();
    return root;
  }

  async load() {
    try {
      const body = await request("GET", "/watchlist");
      this.entries = body.entries || [];
      this.render();
    } catch (error) {
      toast(`Watchlist: ${error.message}`, "error");
    }
  }

  render() {
    const needle = this.filter.value.trim().toLowerCase();
    const shown = this.entries.filter((e) => !needle || [e.address, e.case_id, e.label, e.category, e.chain]
      .some((v) => String(v || "").toLowerCase().includes(needle)));
    replace(this.count, `${shown.length} of ${this.entries.length}`);
    replace(this.body, shown.length ? shown.slice(0, 2000).map((e) => h("tr", {dataset: {address: e.address}},
      h("td", {}, e.chain), h("td", {}, hashCell(e.address, "address")),
      h("td", {}, h("a", {href: `#/cases/${encodeURIComponent(e.case_id)}`}, e.case_id)),
      h("td", {}, e.category), h("td", {}, e.label || ""), h("td", {}, e.source || ""),
      h("td", {class: "mono"}, utc(e.added_at)), h("td", {class: "num"}, e.taint ? e.taint.hop : ""),
      h("td", {}, h("button", {type: "button", class: "small ghost", title: "Stop watching",
        onclick: () => this.remove(e)}, "Remove"))))
      : h("tr", {}, h("td", {colspan: 9, class: "empty"}, "No watch entry.")));
  }

  async add(form) {
    const entry = Object.fromEntries(new FormData(form).entries());
    if (!entry.label) delete entry.label;
    try {
      await request("POST", "/watchlist", {body: {entries: [entry]}});
      toast(`Watching ${entry.address} for ${entry.case_id}`);
      form.elements.address.value = "";
      setTimeout(() => this.load(), 700);
    } catch (error) {
      toast(`Add failed: ${error.message}`, "error");
    }
  }

  async importCsv(input) {
    const file = input.files && input.files[0];
    if (!file) return;
    try {
      const text = await file.text();
      const body = await request("POST", "/watchlist/import", {query: {format: "csv"}, body: text, contentType: "text/csv"});
      const errors = problems(body);
      const count = body && (body.imported ?? body.added ?? body.count);
      const added = Array.isArray(count) ? count.length : count;
      const suppressed = body && body.suppressed_errors ? ` (${body.suppressed_errors} more not shown)` : "";
      replace(this.report, h("p", {}, `Imported ${added ?? "?"} entr${added === 1 ? "y" : "ies"} from ${file.name}.`),
        errors.length ? [h("p", {class: "error"}, `${errors.length} row(s) refused${suppressed}:`), h("ul", {}, errors.map((e) => h("li", {class: "mono"}, e)))] : null);
      setTimeout(() => this.load(), 700);
    } catch (error) {
      const errors = problems(error.body);
      replace(this.report, h("p", {class: "error"}, `Import failed: ${error.message}`),
        errors.length ? h("ul", {}, errors.map((e) => h("li", {class: "mono"}, e))) : null);
    }
  }

  async remove(entry) {
    if (!confirm(`Stop watching ${entry.address} for ${entry.case_id}?`)) return;
    try {
      await request("DELETE", `/watchlist/${encodeURIComponent(entry.chain)}/${encodeURIComponent(entry.address)}/${encodeURIComponent(entry.case_id)}`);
      toast("Removed");
      this.entries = this.entries.filter((e) => e !== entry);
      this.render();
    } catch (error) {
      toast(`Remove failed: ${error.message}`, "error");
    }
  }

  key() { return false; }
}
