// The segment explorer. Charts are ECharts (served from /static/vendor, never a CDN), drawn on
// canvas with canvas tooltips (renderMode "richText"): no value from the API ever becomes
// markup. Lists are built with textContent for the same reason.
"use strict";

// Tableau 20: twenty distinguishable colours, one per segment; beyond twenty, spaced hues
const TAB20 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
  "#dbdb8d", "#9edae5", "#393b79"];
const colour = s => s < 0 ? "#c8c8c8" : (s < TAB20.length ? TAB20[s] : `hsl(${(s * 137.5) % 360}, 55%, 45%)`);
const WARMING = "warming up";
const TRAIT_NAMES = ["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"];

const charts = {
  map: echarts.init(document.getElementById("map")),
  sizes: echarts.init(document.getElementById("sizes")),
  flows: echarts.init(document.getElementById("flows")),
  traits: echarts.init(document.getElementById("traits")),
};
window.addEventListener("resize", () => Object.values(charts).forEach(c => c.resize()));
const tooltip = { renderMode: "richText", confine: true };

let segs = [], points = [], windows = [], selected = null, traj = null;
const segName = s => s < 0 ? "new" : `${s} ${segs[s] ? segs[s].label : ""}`.trim();

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.detail || r.statusText);
  return body;
}

// --- the map ------------------------------------------------------------------
function drawMap() {
  const bySeg = new Map();
  for (const p of points) {
    if (!bySeg.has(p.segment)) bySeg.set(p.segment, []);
    bySeg.get(p.segment).push([p.x, p.y, p.customer_id]);
  }
  const series = [...bySeg.keys()].sort((a, b) => a - b).map(s => ({
    name: s < 0 ? WARMING : segName(s), type: "scatter", large: true, largeThreshold: 2000,
    symbolSize: 4, itemStyle: { color: colour(s), opacity: 0.55 }, data: bySeg.get(s),
  }));
  series.push({
    name: "segment centres", type: "scatter", symbol: "diamond", symbolSize: 12, z: 5,
    itemStyle: { color: "#111" }, label: { show: true, position: "right", formatter: p => p.data[2], fontSize: 11 },
    data: segs.map(g => [g.position[0], g.position[1], `${g.segment} ${g.label}`]),
  });
  if (traj && traj.trajectory.length) series.push({
    name: "selected customer", type: "line", z: 6, symbol: "circle", symbolSize: 8,
    lineStyle: { color: "#000", width: 2 }, itemStyle: { color: "#000" },
    data: traj.trajectory.map(t => [t.position[0], t.position[1], `${traj.customer_id} ${t.window_start}: ${segName(t.segment)}`]),
  });
  charts.map.setOption({
    animation: false,
    tooltip: { ...tooltip, formatter: p => `${p.data[2]}` },
    legend: { type: "scroll", top: 0, textStyle: { fontSize: 11 } },
    grid: { left: 56, right: 16, top: 44, bottom: 44 },
    xAxis: { name: "principal axis 1 of the centroids", nameLocation: "middle", nameGap: 26, scale: true },
    yAxis: { name: "principal axis 2", nameLocation: "middle", nameGap: 40, scale: true },
    dataZoom: [{ type: "inside", xAxisIndex: 0 }, { type: "inside", yAxisIndex: 0 }],
    series,
  }, { notMerge: true });
}
charts.map.on("click", p => {
  if (p.seriesType === "scatter" && p.seriesName !== "segment centres") select(p.data[2]);
});

// --- sizes and flows per window ------------------------------------------------
function drawSizes() {
  const ids = [...new Set(windows.flatMap(w => Object.keys(w.sizes).map(Number)))].sort((a, b) => a - b);
  charts.sizes.setOption({
    animation: false,
    tooltip: { ...tooltip, trigger: "axis" },
    legend: { type: "scroll", top: 0, textStyle: { fontSize: 11 } },
    grid: { left: 56, right: 16, top: 36, bottom: 40 },
    xAxis: { type: "category", name: "window (first day)", nameLocation: "middle", nameGap: 26,
             data: windows.map(w => w.window_start) },
    // the axis name beside the axis, not above it, where the legend is
    yAxis: { type: "value", name: "customers", nameLocation: "middle", nameRotate: 90, nameGap: 40 },
    series: ids.map(s => ({ name: segName(s), type: "line", stack: "all", areaStyle: {}, symbol: "none",
                            itemStyle: { color: colour(s) }, lineStyle: { width: 0.5 },
                            data: windows.map(w => w.sizes[s] || 0) })),
  }, { notMerge: true });
}

function drawFlows() {
  const pick = document.getElementById("flow-window");
  const stayers = document.getElementById("flow-stayers").checked;
  const w = windows.find(x => x.window_start === pick.value) || windows[windows.length - 1];
  const links = w ? w.flows.filter(f => stayers || f.before !== f.after) : [];
  const nodes = new Map();
  const from = s => `was ${segName(s)}`, to = s => `now ${segName(s)}`;
  for (const f of links) {
    nodes.set(from(f.before), colour(f.before));
    nodes.set(to(f.after), colour(f.after));
  }
  charts.flows.setOption({
    animation: false,
    tooltip: { ...tooltip, formatter: p => p.dataType === "edge"
      ? `${p.data.source} → ${p.data.target}: ${p.data.value} customers` : `${p.name}` },
    title: links.length ? undefined : { text: w ? "no segment changes in this window" : "no windows yet",
                                        left: "center", top: "middle", textStyle: { fontSize: 13, color: "#777" } },
    series: [{
      type: "sankey", left: 8, right: 110, top: 10, bottom: 10, nodeGap: 6, layoutIterations: 16,
      emphasis: { focus: "adjacency" }, label: { fontSize: 11 },
      data: [...nodes].map(([name, c]) => ({ name, itemStyle: { color: c } })),
      links: links.map(f => ({ source: from(f.before), target: to(f.after), value: f.customers })),
      lineStyle: { color: "gradient", opacity: 0.45 },
    }],
  }, { notMerge: true });
}

function fillWindowPicker() {
  const pick = document.getElementById("flow-window");
  const keep = pick.value;
  pick.replaceChildren(...windows.map(w => {
    const o = el("option", w.window_start);
    o.value = w.window_start;
    return o;
  }));
  pick.value = windows.some(w => w.window_start === keep) ? keep : (windows.length ? windows[windows.length - 1].window_start : "");
}
document.getElementById("flow-window").addEventListener("change", drawFlows);
document.getElementById("flow-stayers").addEventListener("change", drawFlows);

// --- one customer ----------------------------------------------------------------
async function select(id) {
  selected = id;
  const panel = document.getElementById("trajectory");
  const list = document.getElementById("trajectory-points");
  try {
    traj = await getJSON(`/api/customers/${encodeURIComponent(id)}`);
  } catch (e) {
    traj = null;
    panel.replaceChildren(el("h2", "Trajectory"), el("span", String(e.message), "muted"));
    list.replaceChildren();
    charts.traits.clear();
    drawMap();
    return;
  }
  const head = [el("h2", `Trajectory of ${traj.customer_id}`),
                el("span", `segment ${traj.segment < 0 ? "— (warming up)" : segName(traj.segment)}`)];
  if (traj.confidence !== null && traj.confidence !== undefined) {
    head.push(el("span", ` · ${Math.round(100 * traj.confidence)}% likely right`, "confidence"));
  }
  if (traj.recommendation) head.push(document.createTextNode(" · suggested: "), el("i", traj.recommendation));
  head.push(el("div", `${traj.windows_applied} windows applied; traits on the model's scale (0 = the average customer; ` +
                      "the order of the traits names the segment)", "muted"));
  panel.replaceChildren(...head);
  list.replaceChildren(...traj.trajectory.map(t => el("li",
    `${t.window_start}: segment ${t.segment < 0 ? "— (warming up)" : segName(t.segment)}` + (t.change ? ` — ${t.change}` : ""),
    t.change ? "traj-point changed" : "traj-point")));
  drawTraits();
  drawMap();
}

function drawTraits() {
  const xs = traj.trajectory.map(t => t.window_start);
  const changes = traj.trajectory.filter(t => t.change);
  charts.traits.setOption({
    animation: false,
    tooltip: { ...tooltip, trigger: "axis" },
    legend: { top: 0, textStyle: { fontSize: 11 } },
    grid: { left: 56, right: 16, top: 32, bottom: 40 },
    xAxis: { type: "category", data: xs, name: "window (first day)", nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "value", name: "trait score", scale: true, nameLocation: "middle", nameRotate: 90, nameGap: 36 },
    series: TRAIT_NAMES.map((name, i) => ({
      name, type: "line", symbolSize: 5, data: traj.trajectory.map(t => t.traits[name]),
      markLine: i ? undefined : {
        symbol: "none", lineStyle: { type: "dashed", color: "#444" },
        label: { formatter: p => p.data.reason, fontSize: 10, position: "insideEndTop" },
        data: changes.map(t => ({ xAxis: t.window_start, reason: t.change.split(":")[0] })),
      },
    })),
  }, { notMerge: true });
}

function listCustomers(ids, message) {
  const list = document.getElementById("customers");
  if (message) { list.replaceChildren(el("li", message, "muted")); return; }
  list.replaceChildren(...ids.map(id => {
    const li = el("li", id);
    li.dataset.customer = id;
    li.addEventListener("click", () => select(id));
    return li;
  }));
}

document.getElementById("search-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const q = document.getElementById("search").value.trim();
  try {
    const ids = await getJSON(`/api/customers?prefix=${encodeURIComponent(q)}&limit=200`);
    listCustomers(ids, ids.length ? null : `no customer id starts with “${q}”`);
    if (ids.length === 1 || ids.includes(q)) await select(ids.includes(q) ? q : ids[0]);
  } catch (e) { listCustomers([], String(e.message)); }
});

// --- segments and refresh ----------------------------------------------------------
function listSegments() {
  const ul = document.getElementById("segments");
  if (!segs.length) {
    ul.replaceChildren(el("li", "No segments yet: no worker has processed a window for this deployment.", "muted"));
    return;
  }
  ul.replaceChildren(...segs.map(g => {
    const li = el("li"), swatch = el("span", undefined, "swatch");
    li.dataset.segment = g.segment;
    swatch.style.background = colour(g.segment);
    li.append(swatch, `${g.segment} `, el("b", g.label), ` · ${g.size} customers · ${g.recommendation} `,
              el("span", g.description, "muted"));
    if (g.rules && g.rules.length) {  // who is in it, in spending terms
      const rules = el("ul", undefined, "rules");
      rules.title = `a shallow tree over the last six months' category shares; ${Math.round(100 * g.rules_accuracy)}% right on held-out customers`;
      rules.append(...g.rules.map(r => el("li", r)));
      li.append(rules);
    }
    return li;
  }));
}

let listed = false;
async function refresh() {
  const status = document.getElementById("status");
  try {
    segs = await getJSON("/api/segments");
    listSegments();
    windows = await getJSON("/api/windows?last=36");
    fillWindowPicker();
    drawSizes();
    drawFlows();
    // a key with the segments scope only may not list customers: the aggregates alone
    try {
      points = await getJSON("/api/map?limit=20000");
      if (!listed) { listCustomers(points.slice(0, 60).map(p => p.customer_id)); listed = points.length > 0; }
    } catch (e) { points = []; listCustomers([], String(e.message)); }
    drawMap();
    if (selected) await select(selected);
    status.textContent = `· ${points.length} customers on the map · ${windows.length} windows · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) { status.textContent = `· ${e.message}`; }
}
refresh();
setInterval(refresh, 10000);
