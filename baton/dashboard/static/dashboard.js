// Baton's live dashboard: polls /api/dashboard every second (the token travels in the cookie the server set)
// and redraws. No framework, nothing fetched from elsewhere; text goes through textContent only.
"use strict";

(function () {
  const API = "/api/dashboard";
  const EVERY_MS = 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const dash = "\u2013";
  const fixed = (value, digits) => (value === null || value === undefined ? dash : Number(value).toFixed(digits));
  const ms = (value) => (value === null || value === undefined ? dash : `${Number(value).toFixed(1)} ms`);
  const pct = (value) => (value === null || value === undefined ? dash : `${(100 * value).toFixed(1)}%`);
  const clock = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleTimeString() : dash);
  const isoClock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : dash);

  // -- header -------------------------------------------------------------------------------------------------

  function renderSummary(data) {
    $("circuit").textContent = data.circuit + (data.running ? "" : " (not running)");
    document.title = `Baton: ${data.circuit}`;
    const t = data.totals;
    const summary = $("summary");
    summary.replaceChildren(
      el("span", {}, el("b", {}, t.nodes), " nodes"),
      el("span", {}, el("b", {}, t.live), " live / ", el("b", {}, t.mock), " mocked"),
      el("span", {}, el("b", {}, t.healthy), " healthy"),
      el("span", {}, el("b", { id: "total-rps" }, fixed(t.rps, 1)), " req/s"),
      el("span", {}, "TLS ", el("b", {}, t.tls)),
      el("span", {}, el("b", {}, t.violations), " taint violations"),
    );
  }

  // -- topology ----------------------------------------------------------------------------------------------

  function renderTopology(topology) {
    const root = $("topology");
    const { w, h } = topology.box;
    root.setAttribute("viewBox", `0 0 ${topology.width} ${topology.height + 20}`);
    root.setAttribute("width", topology.width);
    root.setAttribute("height", topology.height + 20);
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
                                   markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
    defs.append(marker);
    const parts = [defs];
    const boxes = topology.nodes;
    for (const edge of topology.edges) {
      const a = boxes[edge.source], b = boxes[edge.target];
      if (!a || !b) continue;
      let d, lx, ly;
      if (edge.back || b.layer <= a.layer) {  // a call back to an earlier column: loop under the boxes
        const x1 = a.x + w / 2, y1 = a.y + h, x2 = b.x + w / 2, y2 = b.y + h;
        const dip = Math.max(y1, y2) + 18;
        d = `M ${x1} ${y1} C ${x1} ${dip}, ${x2} ${dip}, ${x2} ${y2}`;
        lx = (x1 + x2) / 2; ly = dip;
      } else {
        const x1 = a.x + w, y1 = a.y + h / 2, x2 = b.x, y2 = b.y + h / 2;
        const mid = (x1 + x2) / 2;
        d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
        lx = mid; ly = (y1 + y2) / 2 - 4;
      }
      parts.push(svg("path", { d, class: edge.back ? "edge back" : "edge", "marker-end": "url(#arrow)",
                               "data-edge": `${edge.source}->${edge.target}` }));
      if (edge.label) parts.push(svg("text", { x: lx, y: ly, "text-anchor": "middle", class: "edge-label" }, edge.label));
    }
    for (const [name, box] of Object.entries(boxes)) {
      const group = svg("g", { class: `node tone-${box.tone}${box.serving === "mock" ? " mock" : ""}`,
                               "data-node": name, transform: `translate(${box.x} ${box.y})` });
      group.append(svg("title", {}, `${name}: ${box.serving}, ${box.health}`));
      group.append(svg("rect", { width: w, height: h, rx: 8, ry: 8 }));
      group.append(svg("text", { x: 12, y: 24, class: "label" }, name));
      group.append(svg("text", { x: 12, y: 44, class: "sub" }, `${box.serving} \u00b7 ${box.health} \u00b7 ${box.role}`));
      parts.push(group);
    }
    root.replaceChildren(...parts);
  }

  // -- node cards --------------------------------------------------------------------------------------------

  function routingText(routing) {
    if (!routing) return dash;
    const targets = routing.targets.map((t) =>
      routing.strategy === "single" ? t.backend : `${t.name} ${t.weight}% (${t.backend})`);
    return `${routing.label}${routing.locked ? " (locked)" : ""}: ${targets.join(", ") || dash}`;
  }

  function line(key, value, cls) {
    return el("div", { class: `line ${cls || ""}` }, el("span", { class: "k" }, `${key}: `), value);
  }

  function card(node) {
    const figures = el("dl", { class: "figures" },
      el("div", {}, el("dt", {}, "req/s"), el("dd", { class: "rps", "data-testid": `rps-${node.name}` }, fixed(node.rps, 1))),
      el("div", {}, el("dt", {}, "errors"), el("dd", { class: "error-rate" }, pct(node.error_rate))),
      el("div", {}, el("dt", {}, "p50"), el("dd", { class: "p50" }, ms(node.p50_ms))),
      el("div", {}, el("dt", {}, "p99"), el("dd", { class: "p99" }, ms(node.p99_ms))),
    );
    const lines = [line("routing", routingText(node.routing), "routing")];
    if (node.canary) {
      const c = node.canary;
      lines.push(line("canary", `${c.phase} at ${c.weight}%${c.in_flight ? "" : " (ended)"}`, "canary"));
    }
    const keeper = node.custodian;
    lines.push(line("custodian", keeper ? `${keeper.status}${keeper.paused ? " (paused)" : ""}${keeper.reason ? ": " + keeper.reason : ""}` : "no verdict", "custodian"));
    if (node.tls) {
      lines.push(line("TLS", node.tls.enabled ? `on${node.tls.days_left !== null ? `, ${node.tls.days_left} days left` : ""}` : "off on this node", "tls"));
    }
    lines.push(line("taint violations", String(node.violations), "violations"));
    lines.push(line("requests", node.requests_total === null ? dash : String(node.requests_total), "requests"));
    return el("article", { class: `card tone-${node.tone}`, "data-node": node.name },
      el("div", { class: "card-head" },
        el("span", { class: "name" }, node.name),
        el("span", { class: `badge ${node.serving}` }, node.serving === "mock" ? "mocked" : node.serving),
        el("span", { class: "role" }, node.role)),
      el("div", { class: "health" }, el("b", {}, node.health), node.health_detail ? ` ${dash} ${node.health_detail}` : ""),
      figures, ...lines);
  }

  function renderCards(nodes) {
    $("cards").replaceChildren(...nodes.map(card));
  }

  // -- canaries, verdicts, runs, signals ---------------------------------------------------------------------

  function renderCanaries(nodes) {
    const rows = nodes.filter((n) => n.canary).map((n) => {
      const c = n.canary;
      const bar = el("div", { class: `bar${c.phase === "Failed" ? " failed" : ""}`, role: "progressbar",
                              "aria-valuenow": Math.round(100 * c.progress), "aria-valuemin": 0, "aria-valuemax": 100 },
                     el("span", {}));
      bar.firstChild.style.width = `${Math.round(100 * c.progress)}%`;
      const due = c.in_flight && c.next_evaluation_in_s !== null ? ` (next evaluation in ${c.next_evaluation_in_s} s)` : "";
      return el("div", { class: "canary-row", "data-node": n.name },
        el("div", {}, el("b", {}, n.name), el("div", { class: "why" }, `${c.phase} at ${c.weight}%`)),
        el("div", {}, bar, el("div", { class: "why" }, `steps ${c.steps.join(" \u2192 ")}%${due}`)),
        el("div", { class: "why" }, c.reason || dash));
    });
    $("canaries").replaceChildren(...(rows.length ? rows : [el("p", { class: "empty" }, "No canary has run.")]));
  }

  function renderDecisions(decisions) {
    const items = decisions.map((d) => el("li", {},
      el("span", { class: "when" }, clock(d.timestamp)),
      el("b", {}, d.node_name || dash),
      el("span", { class: `state ${d.status}` }, d.status),
      el("span", {}, d.reason || "")));
    $("decisions").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No verdict yet: the custodian watches slotted services.")]));
  }

  function renderRuns(runs, note) {
    const noteEl = $("runs-note");
    noteEl.hidden = !note;
    noteEl.textContent = note || "";
    const items = runs.map((r) => {
      const name = r.url
        ? el("a", { href: r.url, target: "_blank", rel: "noopener noreferrer", class: "run-link" }, r.name || r.id)
        : el("span", {}, r.name || r.id);
      return el("li", { "data-run": r.id },
        el("span", { class: "when" }, isoClock(r.started)),
        el("span", { class: `state ${r.state}` }, r.state || dash),
        el("b", {}, r.action || dash),
        r.node ? el("span", {}, r.node) : null,
        name,
        r.duration_s !== null && r.duration_s !== undefined ? el("span", { class: "muted" }, `${r.duration_s} s`) : null);
    });
    $("runs").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No action yet.")]));
  }

  function renderSignals(signals, source) {
    $("signals-source").textContent = `(from ${source})`;
    const rows = signals.map((s) => el("tr", { class: s.status_code >= 500 ? "err" : "" },
      el("td", { class: "num" }, clock(s.timestamp)),
      el("td", {}, s.node_name || dash),
      el("td", {}, s.method || dash),
      el("td", {}, s.path || dash),
      el("td", { class: "num" }, s.status_code ?? dash),
      el("td", { class: "num" }, ms(s.latency_ms)),
      el("td", {}, s.target || dash)));
    $("signals").tBodies[0].replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No request yet."))]));
  }

  // -- the loop ----------------------------------------------------------------------------------------------

  function render(data) {
    renderSummary(data);
    renderTopology(data.topology);
    renderCards(data.nodes);
    renderCanaries(data.nodes);
    renderDecisions(data.decisions);
    renderRuns(data.runs, data.runs_note);
    renderSignals(data.signals, data.signals_source);
    document.body.dataset.generatedAt = String(data.generated_at);
  }

  function connection(text, down) {
    const node = $("connection");
    node.textContent = text;
    node.classList.toggle("down", Boolean(down));
  }

  function problem(text) {
    const node = $("problem");
    node.hidden = !text;
    node.textContent = text || "";
  }

  async function poll() {
    try {
      const response = await fetch(API, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        connection("token refused", true);
        problem("This page's token is no longer valid (the conductor restarted?): run `baton dashboard --serve` " +
                "again and open the URL it prints.");
        return;  // polling again cannot help
      }
      const data = await response.json();
      if (!response.ok) {
        problem(data.error || `HTTP ${response.status}`);
        connection(`updated ${new Date().toLocaleTimeString()}`, true);
      } else {
        problem("");
        render(data);
        connection(`live \u00b7 updated ${new Date().toLocaleTimeString()}`, false);
      }
    } catch (error) {
      connection(`the conductor does not answer (${error.message}); retrying`, true);
    }
    setTimeout(poll, EVERY_MS);
  }

  poll();
})();
