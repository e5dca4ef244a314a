// Fund-flow graph of a case, drawn as SVG: layered left to right by hop, services coloured.

import {s, short} from "./dom.js";
import {amountText} from "./format.js";

const NODE_W = 176;
const NODE_H = 58;
const COL_W = 310;
const ROW_GAP = 26;
const PAD = 24;

/** The colour class of a node's role: seized, hop, exchange, mixer, bridge, sanctioned. */
export function roleClass(role) {
  const text = String(role || "").toLowerCase();
  if (text.includes("sanction")) return "sanctioned";
  if (text.includes("mixer")) return "mixer";
  if (text.includes("bridge")) return "bridge";
  if (text.includes("exchange")) return "exchange";
  if (["seized", "origin", "watched", "suspect"].some((r) => text.includes(r))) return "seized";
  return "hop";
}

/** Assign each node a layer (its hop from the case's seized wallets) and an order within it. */
export function layout(graph) {
  const nodes = new Map((graph.nodes || []).map((n) => [n.id, n]));
  for (const edge of graph.edges || []) {
    for (const id of [edge.from, edge.to]) {
      if (!nodes.has(id)) nodes.set(id, {id, label: id, role: "hop"});
    }
  }
  const incoming = new Map([...nodes.keys()].map((id) => [id, []]));
  for (const edge of graph.edges || []) incoming.get(edge.to).push(edge);
  const layer = new Map();
  for (const [id, node] of nodes) {
    if (roleClass(node.role) === "seized" || incoming.get(id).length === 0) layer.set(id, 0);
  }
  for (let round = 0, changed = true; changed && round <= nodes.size; round++) {
    changed = false;
    for (const edge of graph.edges || []) {
      if (!layer.has(edge.from) || layer.get(edge.to) === 0) continue;
      const hop = Number.isInteger(edge.hop) && edge.hop > 0 ? edge.hop : layer.get(edge.from) + 1;
      if (!layer.has(edge.to) || hop < layer.get(edge.to)) { layer.set(edge.to, hop); changed = true; }
    }
  }
  for (const id of nodes.keys()) if (!layer.has(id)) layer.set(id, 0);

  const columns = [];
  for (const [id, l] of layer) (columns[l] ||= []).push(id);
  const position = new Map();
  columns.forEach((ids = [], l) => {
    const weight = (id) => {
      const ys = incoming.get(id).map((e) => position.get(e.from)).filter((p) => p !== undefined);
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
    };
    ids.sort((a, b) => weight(a) - weight(b) || String(nodes.get(a).label || a).localeCompare(String(nodes.get(b).label || b)));
    ids.forEach((id, i) => position.set(id, i));
    columns[l] = ids;
  });
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP + 60;
  const placed = new Map();
  columns.forEach((ids = [], l) => {
    const span = ids.length * NODE_H + (ids.length - 1) * ROW_GAP;
    const top = PAD + 52 + ((rows * NODE_H + (rows - 1) * ROW_GAP) - span) / 2;
    ids.forEach((id, i) => placed.set(id, {
      node: nodes.get(id), layer: l, x: PAD + l * COL_W, y: top + i * (NODE_H + ROW_GAP),
    }));
  });
  const width = PAD * 2 + Math.max(0, columns.length - 1) * COL_W + NODE_W;
  return {placed, columns: columns.length, width, height};
}

function edgePath(a, b, bend) {
  const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2 + bend;
  const x2 = b.x, y2 = b.y + NODE_H / 2 + bend;
  if (x2 > x1) {
    const mid = (x1 + x2) / 2;
    return {d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`, lx: mid, ly: (y1 + y2) / 2};
  }
  // Same or earlier layer (funds sent back): loop under the nodes.
  const low = Math.max(a.y, b.y) + NODE_H + 30 + Math.abs(bend) * 2;
  const sx = a.x + NODE_W / 2, ex = b.x + NODE_W / 2;
  return {d: `M${sx},${a.y + NODE_H} C${sx},${low} ${ex},${low} ${ex},${b.y + NODE_H + 2}`,
          lx: (sx + ex) / 2, ly: low - 8};
}

function nodeTitle(node) {
  return [node.label, node.id, node.role && `role: ${node.role}`, node.chain && `chain: ${node.chain}`]
    .filter(Boolean).join("\n");
}

/**
 * Draw the case graph into an <svg>. onSelect({kind: "node"|"edge", value}) fires on click or
 * Enter; nodes and edge labels are focusable so the graph works from the keyboard.
 */
export function renderGraph(graph, onSelect) {
  const {placed, columns, width, height} = layout(graph);
  const svg = s("svg", {
    class: "flow", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Fund-flow graph: ${placed.size} addresses, ${(graph.edges || []).length} transfers`,
  });
  svg.append(s("defs", {},
    s("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
                 markerHeight: 7, orient: "auto-start-reverse"},
      s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrowhead"}))));
  for (let l = 0; l < columns; l++) {
    svg.append(s("text", {class: "column", x: PAD + l * COL_W, y: PAD + 4},
      l === 0 ? "seized / watched" : `hop ${l}`));
  }
  const select = (kind, value) => (event) => {
    if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    onSelect && onSelect({kind, value});
  };
  const pairs = new Map();
  const edgeLayer = s("g", {class: "edges"});
  const labelLayer = s("g", {class: "edge-labels"});
  for (const edge of graph.edges || []) {
    const a = placed.get(edge.from), b = placed.get(edge.to);
    if (!a || !b) continue;
    const key = `${edge.from}>${edge.to}`;
    const index = pairs.get(key) || 0;
    pairs.set(key, index + 1);
    const bend = index === 0 ? 0 : (index % 2 ? 1 : -1) * Math.ceil(index / 2) * 7;
    const {d, lx, ly} = edgePath(a, b, bend);
    const target = roleClass(b.node.role);
    edgeLayer.append(s("path", {d, class: `edge to-${target}`, "marker-end": "url(#arrow)",
                                dataset: {tx: edge.tx_hash || ""}}));
    const tx = edge.tx_hash ? short(edge.tx_hash, 6, 4) : "?";
    const amount = edge.amount !== undefined ? amountText(edge.amount, typeof edge.asset === "object" ? edge.asset : {symbol: edge.asset}) : "";
    const w = Math.max(tx.length, amount.length) * 6.6 + 12;
    const y = ly - 34 - index * 32;  // above the line, stacked for parallel transfers
    labelLayer.append(s("g", {
      class: "edge-label", tabindex: 0, role: "button", dataset: {tx: edge.tx_hash || ""},
      "aria-label": `transfer ${edge.tx_hash || ""} ${amount}`,
      onclick: select("edge", edge), onkeydown: select("edge", edge),
    },
    s("title", {}, [`tx ${edge.tx_hash}`, `block ${edge.block_number}`, amount, edge.hop ? `hop ${edge.hop}` : ""].filter(Boolean).join("\n")),
    s("rect", {x: lx - w / 2, y, width: w, height: 28, rx: 3}),
    s("text", {x: lx, y: y + 11, class: "tx"}, tx),
    s("text", {x: lx, y: y + 23, class: "amount"}, amount)));
  }
  svg.append(edgeLayer);
  const nodeLayer = s("g", {class: "nodes"});
  for (const [id, {node, x, y}] of placed) {
    const role = roleClass(node.role);
    const label = String(node.label || "");
    nodeLayer.append(s("g", {
      class: `node role-${role}`, tabindex: 0, role: "button", dataset: {id, role},
      "aria-label": `${role} ${label || id}`,
      onclick: select("node", node), onkeydown: select("node", node),
    },
    s("title", {}, nodeTitle(node)),
    s("rect", {x, y, width: NODE_W, height: NODE_H, rx: 4}),
    s("rect", {x, y, width: 5, height: NODE_H, class: "stripe"}),
    s("text", {x: x + 12, y: y + 16, class: "role"}, (node.role || role).toUpperCase()),
    s("text", {x: x + 12, y: y + 33, class: "label"},
      label && label !== id ? (label.length > 24 ? label.slice(0, 23) + "…" : label) : "(no label)"),
    s("text", {x: x + 12, y: y + 50, class: "address"}, short(String(id).split(":").pop(), 10, 8))));
  }
  svg.append(nodeLayer, labelLayer);
  return svg;
}
