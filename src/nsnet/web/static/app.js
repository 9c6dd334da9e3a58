// nsnet web: the lab live, captures, explain, reach and inspect, drawn on one picture.
// Plain JavaScript and SVG; positions come from the server (nsnet.web.layout).
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const MAX_LINES = 2000;
const BATCH = 300;  // lines (and steps) a poll takes at most, the latest: a flood is sampled, the file has it all
const MAX_EVENTS = 500;
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";

const S = {
  config: { allow_changes: false, lab: null },
  labs: [],
  lab: null,
  topo: null,
  cards: {},        // "RED/reth0" -> card (absolute x, y, w, h, box)
  boxes: {},        // "RED" -> box
  neigh: {},
  fdb: {},
  fresh: new Set(), // entries just changed: "neigh|RED/reth0|11.11.11.3", "fdb|host/reth1|mac"
  es: null,
  reloadTimer: null,
  explained: null,
  capture: null,
  steps: [],            // the steps shown, oldest first (at most MAX_LINES)
  stepBySeq: new Map(), // a frame's arrival number -> its step's number
  selectedStep: -1,     // the selected step's number
  reachResult: null,
  picked: false,
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function api(path, body) {
  const opts = { headers: { "X-Nsnet-Token": TOKEN } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function status(text) { $("status").textContent = text; }

function banner(text) {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

// ---- labs ------------------------------------------------------------------

async function refreshLabs() {
  let labs;
  try {
    labs = await api("api/labs");
  } catch (e) {
    status(`cannot list labs: ${e.message}`);
    return;
  }
  S.labs = labs;
  const names = labs.map((l) => l.name);
  const nav = $("labs");
  const shown = [...nav.querySelectorAll("button")].map((b) => b.dataset.lab);
  if (shown.join("\n") !== names.join("\n")) {
    nav.innerHTML = names.map((n) => `<button type="button" data-lab="${esc(n)}">${esc(n)}</button>`).join("");
  }
  nav.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.lab === S.lab));
  if (S.lab && !names.includes(S.lab)) {
    closeLab(`lab ${S.lab} is down`);
  }
  if (!S.lab && !S.picked) {  // the first time only: a lab that goes down leaves its message, not another lab
    const wanted = new URLSearchParams(location.hash.slice(1)).get("lab") || S.config.lab;
    const pick = names.includes(wanted) ? wanted : names[0];
    if (pick) openLab(pick);
    else status("no lab is up (nsnet up FILE)");
  }
}

function openLab(name) {
  closeLab("");
  S.lab = name;
  S.picked = true;
  history.replaceState(null, "", `${location.pathname}${location.search}#lab=${encodeURIComponent(name)}`);
  document.querySelectorAll("#labs button").forEach((b) => b.classList.toggle("on", b.dataset.lab === name));
  status(`lab ${name}: connecting...`);
  const es = new EventSource(`api/labs/${encodeURIComponent(name)}/events?token=${encodeURIComponent(TOKEN)}`);
  S.es = es;
  es.onmessage = (m) => {
    if (S.es !== es) return;
    const msg = JSON.parse(m.data);
    if (msg.type === "ready") loadTopology();
    else if (msg.type === "event") onEvent(msg);
    else if (msg.type === "overrun") loadTopology();
    else if (msg.type === "gone") closeLab(`lab ${name} went down: its namespaces are gone`);
    else if (msg.type === "error") closeLab(`lab ${name}: ${msg.message}`);
  };
}

function closeLab(why) {
  if (S.es) S.es.close();
  S.es = null;
  if (S.capture && S.capture.running) stopCapture();
  const was = S.lab;
  S.lab = null;
  S.topo = null;
  S.explained = null;
  $("picture").innerHTML = "";
  $("picture").dataset.lab = "";
  $("events-out").textContent = "";
  if (why) status(why);
  if (was && why) document.querySelectorAll("#labs button").forEach((b) => b.classList.remove("on"));
}

async function loadTopology() {
  const lab = S.lab;
  if (!lab) return;
  let topo;
  try {
    topo = await api(`api/labs/${encodeURIComponent(lab)}/topology`);
  } catch (e) {
    status(`lab ${lab}: ${e.message}`);
    return;
  }
  if (S.lab !== lab) return;
  S.topo = topo;
  S.neigh = topo.neigh;
  S.fdb = topo.fdb;
  render();
  fillForms();
  const n = topo.boxes.filter((b) => b.role !== "host").length;
  status(`lab ${lab}: ${n} node${n === 1 ? "" : "s"}${topo.source ? `, from ${topo.source}` : ""}; live`);
}

function scheduleReload() {
  clearTimeout(S.reloadTimer);
  S.reloadTimer = setTimeout(loadTopology, 150);
}

// ---- events ------------------------------------------------------------------

function onEvent(ev) {
  const out = $("events-out");
  out.textContent += `${new Date(ev.time * 1000).toLocaleTimeString()} [${ev.node}] ${ev.kind} ${ev.action} ${ev.line}\n`;
  const lines = out.textContent.split("\n");
  if (lines.length > MAX_EVENTS) out.textContent = lines.slice(-MAX_EVENTS).join("\n");
  if (!S.topo) return;
  if (ev.kind === "neigh" && ev.ifname && ev.address) {
    const key = `${ev.node}/${ev.ifname}`;
    const list = (S.neigh[key] || []).filter((e) => e.address !== ev.address);
    if (ev.action !== "del") list.push({ address: ev.address, mac: ev.mac, state: ev.state });
    S.neigh[key] = list;
    S.fresh.add(`neigh|${key}|${ev.address}`);
    drawEntries(key);
  } else if (ev.kind === "fdb" && ev.ifname && ev.mac && ev.master && !ev.permanent) {
    const key = `${ev.node}/${ev.ifname}`;
    for (const k of Object.keys(S.fdb)) {  // a MAC moves from one port to another
      if (k.startsWith(`${ev.node}/`)) S.fdb[k] = S.fdb[k].filter((e) => !(e.mac === ev.mac && e.bridge === ev.master));
      if (k !== key && k.startsWith(`${ev.node}/`)) drawEntries(k);
    }
    const list = S.fdb[key] || [];
    if (ev.action !== "del") list.push({ mac: ev.mac, kind: ev.learned ? "learned" : "static", bridge: ev.master, vlan: ev.vlan });
    S.fdb[key] = list;
    S.fresh.add(`fdb|${key}|${ev.mac}`);
    drawEntries(key);
  } else if (ev.kind === "link" || ev.kind === "addr") {
    scheduleReload();
  }
}

// ---- the picture ---------------------------------------------------------------

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function render() {
  performance.mark("nsnet-render-start");
  const t = S.topo;
  S.cards = {};
  S.boxes = {};
  const parts = [];
  parts.push(`<svg xmlns="${SVGNS}" id="topo" width="${t.width}" height="${t.height}" viewBox="0 0 ${t.width} ${t.height}">`);
  parts.push(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="6" refY="5" markerWidth="5" markerHeight="5" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#1e8449"/></marker></defs>`);
  const wiresAt = parts.length;
  parts.push("");
  for (const b of t.boxes) {
    S.boxes[b.label] = b;
    const cls = `box ${b.role}${b.missing ? " missing" : ""}`;
    parts.push(`<g class="${cls}" data-node="${esc(b.label)}" transform="translate(${b.x},${b.y})">`);
    parts.push(`<rect class="box-bg" width="${b.w}" height="${b.h}"/>`);
    parts.push(`<text class="box-title" data-node="${esc(b.label)}" x="10" y="19">${esc(b.label)}</text>`);
    parts.push(`<text class="box-sub" x="10" y="34">${esc(b.title)}${b.missing ? " (missing)" : ""}</text>`);
    for (const c of b.ifaces) {
      const card = { ...c, ax: b.x + c.x, ay: b.y + c.y, box: b.label };
      S.cards[c.key] = card;
      const state = c.state || "up";
      parts.push(`<g class="iface kind-${esc(c.kind)} state-${esc(state.replace(" ", "-"))}" data-key="${esc(c.key)}" data-node="${esc(b.label)}" data-iface="${esc(c.name)}" transform="translate(${c.x},${c.y})">`);
      parts.push(`<rect class="card" width="${c.w}" height="${c.h}"/>`);
      parts.push(`<text class="iname" x="6" y="14">${esc(c.name)}</text>`);
      const kind = c.kind + (c.vni != null ? ` ${c.vni}` : "") + (c.master ? ` @${c.master}` : "");
      parts.push(`<text class="istate" x="${c.w - 6}" y="14" text-anchor="end">${esc(kind)} · ${esc(state)}</text>`);
      parts.push(`<text class="iaddr" x="6" y="30">${esc(c.addresses.slice(0, 2).join(" ") || "no address")}</text>`);
      parts.push(`<text class="imac" x="6" y="46">${esc(c.mac || "")}</text>`);
      if (c.addresses.length > 2) parts.push(`<text class="imac" x="6" y="59">+${c.addresses.length - 2} more</text>`);
      parts.push(`<g class="entries" data-entries="${esc(c.key)}" transform="translate(2,${c.h + 12})"></g>`);
      parts.push(`</g>`);
    }
    parts.push(`</g>`);
  }
  // wires over the boxes: veth pairs, bridge ports to their bridge, VXLAN tunnels
  const lines = [];
  for (const w of t.wires) {
    const a = S.cards[w.a], b = S.cards[w.b];
    if (!a || !b) continue;
    const [p, q] = ends(a, b);
    const down = [a.state, b.state].some((s) => s && s !== "up");
    lines.push(`<line class="wire${down ? " down" : ""}" data-a="${esc(w.a)}" data-b="${esc(w.b)}" x1="${p[0]}" y1="${p[1]}" x2="${q[0]}" y2="${q[1]}"/>`);
  }
  for (const c of Object.values(S.cards)) {
    if (!c.master) continue;
    const br = S.cards[`${c.box}/${c.master}`];
    if (!br) continue;
    const [p, q] = ends(c, br);
    lines.push(`<line class="port-link" x1="${p[0]}" y1="${p[1]}" x2="${q[0]}" y2="${q[1]}"/>`);
  }
  for (const tn of t.tunnels) {
    const a = S.cards[tn.a], b = S.cards[tn.b];
    if (!a || !b) continue;
    const [p, q] = ends(a, b);
    lines.push(`<path class="tunnel" d="M${p[0]} ${p[1]} Q ${(p[0] + q[0]) / 2} ${Math.min(p[1], q[1]) - 60} ${q[0]} ${q[1]}"/>`);
  }
  parts.push(`<g id="wires">${lines.join("")}</g><g id="overlay"></g></svg>`);
  parts[wiresAt] = "";
  const pic = $("picture");
  pic.innerHTML = parts.join("");
  pic.dataset.lab = t.lab;
  for (const key of Object.keys(S.cards)) drawEntries(key);
  pic.querySelectorAll(".box-title").forEach((el) => el.addEventListener("click", () => inspectNode(el.dataset.node)));
  redrawOverlay();
  performance.measure("nsnet-render", "nsnet-render-start");  // read by bench/bench_web.py
}

function ends(a, b) {
  // from the edge of card a facing b to the edge of card b facing a
  const ac = [a.ax + a.w / 2, a.ay + a.h / 2], bc = [b.ax + b.w / 2, b.ay + b.h / 2];
  const vertical = Math.abs(ac[1] - bc[1]) > Math.abs(ac[0] - bc[0]) / 2;
  if (vertical) {
    const down = bc[1] > ac[1];
    return [[ac[0], down ? a.ay + a.h : a.ay], [bc[0], down ? b.ay : b.ay + b.h]];
  }
  const right = bc[0] > ac[0];
  return [[right ? a.ax + a.w : a.ax, ac[1]], [right ? b.ax : b.ax + b.w, bc[1]]];
}

function drawEntries(key) {
  const g = document.querySelector(`g.entries[data-entries="${CSS.escape(key)}"]`);
  if (!g) return;
  const rows = [];
  for (const e of S.neigh[key] || []) {
    const id = `neigh|${key}|${e.address}`;
    rows.push({ cls: `entry neigh s-${e.state}${S.fresh.has(id) ? " fresh" : ""}`, data: `data-address="${esc(e.address)}" data-mac="${esc(e.mac || "")}" data-state="${esc(e.state)}"`, text: `${e.address} ${e.mac || "(none)"} ${e.state}` });
  }
  for (const e of S.fdb[key] || []) {
    const id = `fdb|${key}|${e.mac}`;
    rows.push({ cls: `entry fdb${S.fresh.has(id) ? " fresh" : ""}`, data: `data-mac="${esc(e.mac)}" data-kind="${esc(e.kind)}"`, text: `fdb ${e.mac} ${e.kind}${e.vlan != null ? ` vlan ${e.vlan}` : ""}` });
  }
  const shown = rows.slice(0, 3).map((r, i) => `<text class="${r.cls}" ${r.data} y="${i * 13}">${esc(r.text)}</text>`);
  if (rows.length > 3) shown.push(`<text class="entry" y="39">+${rows.length - 3} more (inspect)</text>`);
  g.innerHTML = shown.join("");
  setTimeout(() => {
    for (const k of [...S.fresh]) if (k.includes(`|${key}|`)) S.fresh.delete(k);
  }, 3000);
}

// ---- overlays: explain's path, a packet's sightings ---------------------------------

function boxCentre(label) {
  const b = S.boxes[label];
  return b ? [b.x + b.w / 2, b.y + 24] : null;
}

function redrawOverlay() {
  const o = $("overlay");
  if (!o) return;
  o.innerHTML = "";
  document.querySelectorAll(".box.dead, .iface.hit, .iface.seen").forEach((el) => el.classList.remove("dead", "hit", "seen"));
  if (S.reachResult && $("reach-show").checked && S.reachResult.lab === S.lab) drawReach(o, S.reachResult);
  if (S.explained) drawExplain(o, S.explained);
  const step = S.steps.find((x) => x.n === S.selectedStep);
  if (step) drawSightings(o, step);
}

function stepCards(step) {
  // the interfaces a step moves the packet through: a veth pair's two ends, a bridge's ports
  const card = (node, name) => S.cards[`${node}/${name}`];
  let m = /([\w.@-]+) -> ([\w.-]+):([\w.@-]+)/.exec(step.text);
  if (step.what === "veth" && m) return [card(step.node, m[1]), card(m[2], m[3])].filter(Boolean);
  m = /([\w.@-]+) forwards from port ([\w.@-]+) to port ([\w.@-]+)/.exec(step.text);
  if (step.what === "bridge" && m) return [card(step.node, m[2]), card(step.node, m[1]), card(step.node, m[3])].filter(Boolean);
  if (step.what === "vxlan" && step.text.includes(" -> ")) {
    // "vxlan1: VXLAN 42 to VTEP 192.168.100.2 (B), over eth0 -> underlay -> B:eth0"
    // "vxlan1 -> bridge br0 -> vblue -> BLUE:beth0 (...)"
    const found = [];
    step.text.split(" -> ").forEach((part, i) => {
      const words = part.replace(/^bridge /, "").split(/[\s,]+/).map((w) => w.replace(/[:,()]+$/, "")).filter(Boolean);
      const names = i === 0 ? [words[0], words[words.length - 1]] : [words[0]];
      for (const w of names) {
        const [node, iface] = w.includes(":") ? w.split(":", 2) : [step.node, w];
        const c = card(node, iface);
        if (c && !found.includes(c)) found.push(c);
      }
    });
    return found;
  }
  return [];
}

function drawExplain(o, e) {
  e.legs.forEach((leg, li) => {
    const reply = li > 0;
    const shift = reply ? 7 : -7;
    const pts = [];
    const add = (p) => { const last = pts[pts.length - 1]; if (!last || last[0] !== p[0] || last[1] !== p[1]) pts.push(p); };
    const perNode = {};
    leg.steps.forEach((s, i) => {
      const b = S.boxes[s.node];
      if (!b) return;
      const cards = stepCards(s);
      cards.forEach((c) => add([c.ax + c.w / 2 + shift, c.ay + c.h / 2 + shift]));
      if (!s.ok) add([b.x + b.w / 2 + shift, b.y + b.h - 20]);
      if (s.ok) cards.forEach((c) => document.querySelector(`.iface[data-key="${CSS.escape(c.key)}"]`)?.classList.add("hit"));
      perNode[s.node] = (perNode[s.node] || 0) + 1;
      const k = perNode[s.node] - 1;
      const x = b.x + b.w - 14 - k * 22, y = b.y + (reply ? b.h - 12 : 12);
      const g = svg("g", { class: `badge${reply ? " reply" : ""}${s.ok ? "" : " bad"}`, "data-leg": li, "data-step": i + 1, "data-node": s.node }, o);
      svg("circle", { cx: x, cy: y, r: 9 }, g);
      const t = svg("text", { x, y: y + 4 }, g);
      t.textContent = String(i + 1);
      const title = svg("title", {}, g);
      title.textContent = `${i + 1}. [${s.node}] ${s.text}`;
    });
    if (pts.length > 1) svg("polyline", { class: `path${reply ? " reply" : ""}`, points: pts.map((p) => p.join(",")).join(" "), "data-leg": li }, o);
  });
  if (e.dies) {
    const b = S.boxes[e.dies.node];
    if (b) {
      document.querySelector(`.box[data-node="${CSS.escape(b.label)}"]`)?.classList.add("dead");
      const g = svg("g", { class: "dies", "data-node": b.label }, o);
      const label = `XX ${e.dies.text}`;
      const short = label.length > 90 ? `${label.slice(0, 87)}...` : label;
      const w = short.length * 7.3 + 16;
      const x = b.x, y = b.y - 30 < 0 ? b.y + b.h + 6 : b.y - 30;
      svg("rect", { x, y, width: w, height: 24, rx: 4 }, g);
      const t = svg("text", { x: x + 8, y: y + 16 }, g);
      t.textContent = short;
      const title = svg("title", {}, g);
      title.textContent = label;
    }
  }
}

function drawReach(o, r) {
  // one line per pair of nodes: green when every probe between them (both ways) got through, red otherwise
  const pairs = {};
  for (const x of r.results) {
    const key = [x.src, x.dst].sort().join("\n");
    (pairs[key] ||= []).push(x);
  }
  for (const [key, xs] of Object.entries(pairs)) {
    const [a, b] = key.split("\n");
    const p = boxCentre(a), q = boxCentre(b);
    if (!p || !q) continue;
    const bad = xs.filter((x) => !x.ok);
    const line = svg("line", { class: `reach ${bad.length ? "reach-bad" : "reach-ok"}`, x1: p[0], y1: p[1] - 30, x2: q[0], y2: q[1] - 30, "data-a": a, "data-b": b }, o);
    const title = svg("title", {}, line);
    title.textContent = xs.map((x) => `${x.src} -> ${x.dst} (${x.address}): ${x.ok ? "ok" : "fails"} ${x.detail}`).join("\n");
    if (bad.length) line.addEventListener("click", () => explainPair(bad[0].src, bad[0].dst, r.proto));
  }
}

function explainPair(src, dst, proto) {
  $("ex-src").value = src;
  $("ex-dst").value = dst;
  $("ex-proto").value = proto;
  showTab("explain");
  runExplain();
}

function drawSightings(o, step) {
  step.sightings.forEach((s, i) => {
    const c = S.cards[`${s.node}/${s.iface}`];
    if (!c) return;
    document.querySelector(`.iface[data-key="${CSS.escape(c.key)}"]`)?.classList.add("seen");
    const g = svg("g", { class: "hop", "data-hop": i + 1, "data-point": s.point }, o);
    const x = c.ax + c.w - 10, y = c.ay - 2;
    svg("circle", { cx: x, cy: y, r: 10 }, g);
    const n = svg("text", { class: "num", x, y: y + 4 }, g);
    n.textContent = String(i + 1);
    const d = svg("text", { x: x + 13, y: y + 4 }, g);
    d.textContent = `[${s.tag}] ${s.direction}${s.delta ? ` +${s.delta}` : ""}`;
  });
}

// ---- explain -------------------------------------------------------------------

function fillForms() {
  const nodes = S.topo.boxes.filter((b) => b.role !== "host").map((b) => b.label);
  const src = $("ex-src");
  const keep = src.value;
  src.innerHTML = nodes.map((n) => `<option>${esc(n)}</option>`).join("");
  if (nodes.includes(keep)) src.value = keep;
  $("ex-dsts").innerHTML = nodes.map((n) => `<option value="${esc(n)}">`).join("");
  if (!$("ex-dst").value && nodes.length > 1) $("ex-dst").value = nodes.find((n) => n !== src.value) || "";
  // capture points: as `nsnet capture` without points: every node's interfaces, the host's bridges
  const box = $("cap-points");
  const was = new Map([...box.querySelectorAll("input")].map((i) => [i.value, i.checked]));
  const rows = [];
  for (const b of S.topo.boxes) {
    for (const c of b.ifaces) {
      const point = `${b.label}:${c.name}`;
      const dflt = b.role === "host" ? c.kind === "bridge" : c.kind !== "loopback";
      const on = was.has(point) ? was.get(point) : dflt;
      rows.push(`<label><input type="checkbox" value="${esc(point)}"${on ? " checked" : ""}> ${esc(point)}</label>`);
    }
  }
  if (rows.length <= 400) box.innerHTML = rows.join("");
  else box.innerHTML = `<span class="hint">${rows.length} interfaces: every node's interfaces and the host's bridges</span>`;
  updatePointsSummary();
}

function updatePointsSummary() {
  const on = [...$("cap-points").querySelectorAll("input:checked")].map((i) => i.value);
  $("cap-points-summary").textContent = on.length ? on.join(" ") : "(default)";
}

async function runExplain(ev) {
  ev?.preventDefault();
  if (!S.lab) return;
  const out = $("explain-out");
  out.innerHTML = `<p class="hint">explaining${$("ex-probe").checked ? " and probing" : ""}...</p>`;
  const body = { src: $("ex-src").value, dst: $("ex-dst").value.trim(), proto: $("ex-proto").value.trim() || "icmp", probe: $("ex-probe").checked };
  try {
    const e = await api(`api/labs/${encodeURIComponent(S.lab)}/explain`, body);
    showExplain(e, body);
  } catch (err) {
    out.innerHTML = `<p class="verdict bad" id="explain-error">${esc(err.message)}</p>`;
  }
}

function showExplain(e, body) {
  S.explained = e;
  redrawOverlay();
  const out = $("explain-out");
  const h = [];
  e.legs.forEach((leg, li) => {
    h.push(`<div class="leg" data-leg="${li}"><b>${esc(leg.title)}</b><ol class="steps">`);
    leg.steps.forEach((s, i) => h.push(`<li class="${s.ok ? "ok" : "bad"}" data-node="${esc(s.node)}">${String(i + 1).padStart(2)}. [${esc(s.node)}] ${esc(s.text)}</li>`));
    h.push(`</ol></div>`);
  });
  h.push(`<p class="verdict ${e.reachable ? "ok" : "bad"}" id="explain-verdict">verdict: ${esc(e.verdict)}</p>`);
  if (e.fix) {
    h.push(`<div class="fix" id="explain-fix"><b>fix:</b> ${esc(e.fix.summary)}`);
    if (e.fix.command) h.push(`<div>command: <button type="button" class="copy" data-copy="cmd">copy</button></div><pre id="fix-command">${esc(e.fix.command)}</pre>`);
    if (e.fix.topology) h.push(`<div>topology: <button type="button" class="copy" data-copy="topo">copy</button></div><pre id="fix-topology">${esc(e.fix.topology)}</pre>`);
    if (S.config.allow_changes && e.fix.command) h.push(`<button type="button" id="fix-apply">apply this fix...</button>`);
    h.push(`</div>`);
  }
  if (e.observed) {
    const o = e.observed;
    h.push(`<div class="observed" id="explain-observed"><b>observed (--probe)</b><pre>result: ${esc(o.result)}\n`);
    for (const s of o.seen) h.push(`seen at ${esc(s)}\n`);
    if (o.last_point) h.push(`the request was last seen at ${esc(o.last_point)}\n`);
    for (const t of o.trace) h.push(`netfilter trace [${esc(t.node)}] ${esc(t.table)}:${esc(t.chain)}:${esc(t.kind)}:${esc(t.verdict)} ${esc(t.rule || "")}\n`);
    for (const [r, n] of Object.entries(o.drops || {})) h.push(`kernel drop reason: ${esc(r)} (x${n})\n`);
    h.push(`</pre>`);
    h.push(o.agrees ? `<div class="agree">prediction and observation agree</div>` : `<div class="disagree" id="explain-disagree">PREDICTION AND OBSERVATION DISAGREE: ${esc(o.disagreement)}</div>`);
    h.push(`</div>`);
    if (!o.agrees) banner(`explain ${body.src} -> ${body.dst}: PREDICTION AND OBSERVATION DISAGREE: ${o.disagreement}`);
  }
  out.innerHTML = h.join("");
  out.querySelectorAll("button.copy").forEach((b) => b.addEventListener("click", () => copy(b.dataset.copy === "cmd" ? e.fix.command : e.fix.topology, b)));
  $("fix-apply")?.addEventListener("click", () => applyFix(body, e));
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = document.createElement("textarea");
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  button.textContent = "copied";
  setTimeout(() => { button.textContent = "copy"; }, 1500);
}

async function applyFix(body, e) {
  if (!confirm(`Apply this fix to lab ${S.lab}?\n\n${e.fix.command}`)) return;
  try {
    const r = await api(`api/labs/${encodeURIComponent(S.lab)}/fix`, body);
    showExplain(r.after, body);
    $("explain-out").insertAdjacentHTML("afterbegin", `<p class="agree">applied: <code>${esc(r.command)}</code></p>`);
  } catch (err) {
    $("explain-out").insertAdjacentHTML("afterbegin", `<p class="verdict bad">${esc(err.message)}</p>`);
  }
}

// ---- capture -------------------------------------------------------------------

async function startCapture(ev) {
  ev?.preventDefault();
  if (!S.lab) return;
  const points = [...$("cap-points").querySelectorAll("input:checked")].map((i) => i.value);
  $("cap-lines").innerHTML = "";
  $("cap-steps").innerHTML = "";
  $("cap-download").hidden = true;
  S.steps = [];
  S.stepBySeq = new Map();
  S.selectedStep = -1;
  redrawOverlay();
  try {
    const c = await api(`api/labs/${encodeURIComponent(S.lab)}/captures`, { points, filter: $("cap-filter").value });
    S.capture = { ...c, line: 0, step: 0, running: true, lab: S.lab };
    const legend = c.points.map((p) => `[${p.tag}] ${p.point}`).join("   ");
    $("cap-status").textContent = `capturing (${c.filter || "no filter"}) at ${legend}`;
    $("cap-status").dataset.state = "running";
    $("cap-start").disabled = true;
    $("cap-stop").disabled = false;
    pollCapture();
  } catch (err) {
    $("cap-status").textContent = `cannot capture: ${err.message}`;
    $("cap-status").dataset.state = "error";
  }
}

async function pollCapture() {
  const c = S.capture;
  if (!c) return;
  let r;
  try {
    r = await api(`api/captures/${c.id}?line=${c.line}&step=${c.step}&limit=${BATCH}`);
  } catch (err) {
    $("cap-status").textContent = `capture: ${err.message}`;
    return;
  }
  if (S.capture !== c) return;
  addCaptured(r);
  if (r.running && c.running) setTimeout(pollCapture, 200);
  else if (!r.running) captureEnded(r);
}

function addCaptured(r) {
  const c = S.capture;
  c.line = r.last_line;
  c.step = r.last_step;
  const box = $("cap-lines");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
  const frag = document.createDocumentFragment();
  if (r.skipped) {
    const d = document.createElement("div");
    d.className = "skipped hint";
    d.textContent = `... ${r.skipped} lines not shown (all are in the pcapng file)`;
    frag.appendChild(d);
  }
  for (const l of r.lines) {
    const d = document.createElement("div");
    d.className = "line";
    d.dataset.seq = l.seq;
    d.dataset.n = l.n;
    d.textContent = l.text;
    frag.appendChild(d);
  }
  box.appendChild(frag);
  while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
  const list = $("cap-steps");
  if (r.skipped_steps) {
    const li = document.createElement("li");
    li.className = "skipped hint";
    li.textContent = `... ${r.skipped_steps} steps not shown`;
    list.appendChild(li);
  }
  for (const s of r.steps) {
    S.steps.push(s);
    for (const q of s.seqs) S.stepBySeq.set(q, s.n);
    const li = document.createElement("li");
    li.dataset.n = s.n;
    li.value = s.n;
    li.dataset.kind = s.kind;
    const hops = s.sightings.slice(1).map((x) => `+${x.delta}`).join(", ");
    li.textContent = `#${s.n} ${s.kind}: ${s.sightings.map((x) => x.tag).join(" → ")}${hops ? `  (${hops})` : ""}${s.missing.length && s.missing.length < c.points.length ? `  not seen at ${s.missing.join(", ")}` : ""}`;
    list.appendChild(li);
  }
  while (S.steps.length > MAX_LINES) for (const q of S.steps.shift().seqs) S.stepBySeq.delete(q);
  while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
}

async function stopCapture() {
  const c = S.capture;
  if (!c || !c.running) return;
  c.running = false;
  try {
    const r = await api(`api/captures/${c.id}/stop`, {});
    if (S.capture === c) {
      addCaptured(r);
      captureEnded(r);
    }
  } catch (err) {
    $("cap-status").textContent = `capture: ${err.message}`;
  }
}

function captureEnded(r) {
  const c = S.capture;
  c.running = false;
  $("cap-start").disabled = false;
  $("cap-stop").disabled = true;
  const kernel = (r.counters || []).map((k) => `[${k.tag}] ${k.received} captured, ${k.dropped} dropped`).join("; ");
  $("cap-status").textContent = `stopped (${r.error || r.reason || "end"}): ${c.line} packets seen, ${c.step} steps${kernel ? `; kernel: ${kernel}` : ""}`;
  $("cap-status").dataset.state = "stopped";
  const a = $("cap-download");
  a.href = `api/captures/${c.id}/pcapng?token=${encodeURIComponent(TOKEN)}`;
  a.hidden = false;
}

function selectStep(n) {
  const s = S.steps.find((x) => x.n === n);
  if (!s) return;
  S.selectedStep = n;
  document.querySelectorAll("#cap-steps li.sel, #cap-lines .line.sel").forEach((el) => el.classList.remove("sel"));
  const li = document.querySelector(`#cap-steps li[data-n="${n}"]`);
  li?.classList.add("sel");
  li?.scrollIntoView({ block: "nearest" });
  for (const q of s.seqs) document.querySelector(`#cap-lines .line[data-seq="${q}"]`)?.classList.add("sel");
  $("cap-step-info").textContent = `#${s.n} ${s.kind}: ${s.sightings.map((x, k) => `${k + 1}. [${x.tag}] ${x.point}${x.delta ? ` +${x.delta}` : ""}`).join("  ")}`;
  redrawOverlay();
}

// ---- reach -------------------------------------------------------------------

async function runReach(ev) {
  ev?.preventDefault();
  if (!S.lab) return;
  const out = $("reach-out");
  out.innerHTML = `<p class="hint">probing...</p>`;
  try {
    const r = await api(`api/labs/${encodeURIComponent(S.lab)}/reach`, { proto: $("reach-proto").value.trim() || "icmp" });
    S.reachResult = { ...r, lab: S.lab };
    redrawOverlay();
    const cell = {};
    for (const x of r.results) (cell[`${x.src}\n${x.dst}`] ||= []).push(x);
    const h = [`<table class="reach" id="reach-table"><tr><th>from \\ to</th>${r.nodes.map((n) => `<th>${esc(n)}</th>`).join("")}</tr>`];
    for (const src of r.nodes) {
      h.push(`<tr><th>${esc(src)}</th>`);
      for (const dst of r.nodes) {
        const xs = cell[`${src}\n${dst}`];
        if (!xs) { h.push(`<td>-</td>`); continue; }
        const ok = xs.every((x) => x.ok);
        const tip = xs.map((x) => `${x.address}: ${x.ok ? "ok" : "fails"} ${x.detail}`).join("\n");
        h.push(`<td class="${ok ? "ok" : "bad"}" data-src="${esc(src)}" data-dst="${esc(dst)}" title="${esc(tip)}">${ok ? "ok" : "fails"}</td>`);
      }
      h.push(`</tr>`);
    }
    h.push(`</table><p class="hint">click a failing pair to explain it</p>`);
    out.innerHTML = h.join("");
    out.querySelectorAll("td.bad").forEach((td) => td.addEventListener("click", () => explainPair(td.dataset.src, td.dataset.dst, r.proto)));
  } catch (err) {
    out.innerHTML = `<p class="verdict bad">${esc(err.message)}</p>`;
  }
}

// ---- inspect -------------------------------------------------------------------

async function inspectNode(node) {
  if (!S.lab) return;
  showTab("inspect");
  const out = $("inspect-out");
  out.textContent = `nsnet inspect ${S.lab} ${node} ...`;
  out.dataset.node = "";
  try {
    const r = await api(`api/labs/${encodeURIComponent(S.lab)}/inspect/${encodeURIComponent(node)}`);
    out.textContent = `$ nsnet inspect ${S.lab} ${node}\n${r.text}`;
    out.dataset.node = node;
  } catch (err) {
    out.textContent = err.message;
  }
}

// ---- changes (--allow-changes) -------------------------------------------------------

async function labDown() {
  const lab = S.lab;
  if (!lab || !confirm(`Bring lab ${lab} down? Everything nsnet created for it is removed.`)) return;
  try {
    const r = await api(`api/labs/${encodeURIComponent(lab)}/down`, {});
    $("lab-out").textContent = r.done.join("\n");
    refreshLabs();
  } catch (err) {
    $("lab-out").textContent = err.message;
  }
}

async function labUp(ev) {
  ev.preventDefault();
  const file = $("up-file").value.trim(), name = $("up-name").value.trim();
  if (!file || !confirm(`Bring ${file} up${name ? ` as ${name}` : ""}?`)) return;
  try {
    const r = await api("api/up", { file, name: name || null });
    $("lab-out").textContent = `up ${r.lab}\n${r.done.join("\n")}`;
    await refreshLabs();
    if (S.lab === r.lab) loadTopology();
  } catch (err) {
    $("lab-out").textContent = err.message;
  }
}

// ---- wiring ----------------------------------------------------------------------

function showTab(name) {
  document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => { p.hidden = p.id !== `tab-${name}`; });
}

async function main() {
  try {
    S.config = await api("api/config");
  } catch (err) {
    status(err.message);
    return;
  }
  $("mode").textContent = `nsnet ${S.config.version} · ${S.config.allow_changes ? "changes allowed" : "read-only"}`;
  $("lab-tab").hidden = !S.config.allow_changes;
  document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("labs").addEventListener("click", (e) => { const b = e.target.closest("button"); if (b && b.dataset.lab !== S.lab) openLab(b.dataset.lab); });
  $("explain-form").addEventListener("submit", runExplain);
  $("ex-clear").addEventListener("click", () => { S.explained = null; $("explain-out").innerHTML = ""; banner(""); redrawOverlay(); });
  $("capture-form").addEventListener("submit", startCapture);
  $("cap-stop").addEventListener("click", stopCapture);
  $("cap-points").addEventListener("change", updatePointsSummary);
  $("cap-steps").addEventListener("click", (e) => { const li = e.target.closest("li[data-n]"); if (li) selectStep(Number(li.dataset.n)); });
  $("cap-lines").addEventListener("click", (e) => { const d = e.target.closest(".line"); if (d && S.stepBySeq.has(Number(d.dataset.seq))) selectStep(S.stepBySeq.get(Number(d.dataset.seq))); });
  const move = (by) => {
    const i = S.steps.findIndex((x) => x.n === S.selectedStep);
    const next = S.steps[i < 0 ? 0 : Math.min(Math.max(i + by, 0), S.steps.length - 1)];
    if (next) selectStep(next.n);
  };
  $("cap-prev").addEventListener("click", () => move(-1));
  $("cap-next").addEventListener("click", () => move(1));
  $("reach-form").addEventListener("submit", runReach);
  $("reach-show").addEventListener("change", redrawOverlay);
  $("lab-down").addEventListener("click", labDown);
  $("up-form").addEventListener("submit", labUp);
  // the lab asked for opens at once; the list of labs comes meanwhile
  const wanted = new URLSearchParams(location.hash.slice(1)).get("lab") || S.config.lab;
  if (wanted) openLab(wanted);
  await refreshLabs();
  setInterval(refreshLabs, 1000);
}

main();
