const palette = i => `hsl(${(i * 137.5) % 360} 65% 48%)`;
const map = document.getElementById("map"), ctx = map.getContext("2d");
const sizesCanvas = document.getElementById("sizes"), sctx = sizesCanvas.getContext("2d");
let points = [], segs = [], selected = null, traj = null, sizeHistory = [];
let view = { minX: -1, maxX: 1, minY: -1, maxY: 1 };

function fit() {
  const xs = points.map(p => p.x).concat(segs.map(s => s.position[0]));
  const ys = points.map(p => p.y).concat(segs.map(s => s.position[1]));
  if (!xs.length) return;
  const pad = 0.05;
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  view = { minX: minX - pad * (maxX - minX), maxX: maxX + pad * (maxX - minX), minY: minY - pad * (maxY - minY), maxY: maxY + pad * (maxY - minY) };
}
const sx = x => (x - view.minX) / (view.maxX - view.minX || 1) * map.width;
const sy = y => map.height - (y - view.minY) / (view.maxY - view.minY || 1) * map.height;

function draw() {
  ctx.clearRect(0, 0, map.width, map.height);
  for (const p of points) {
    ctx.fillStyle = p.segment < 0 ? "#bbb" : palette(p.segment);
    ctx.fillRect(sx(p.x) - 2, sy(p.y) - 2, 4, 4);
  }
  ctx.font = "bold 11px system-ui";
  for (const s of segs) {
    ctx.fillStyle = "#000";
    ctx.fillText(`${s.segment} ${s.label}`, sx(s.position[0]) + 4, sy(s.position[1]) - 4);
  }
  if (traj && traj.trajectory.length) {
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath();
    traj.trajectory.forEach((t, i) => { const [x, y] = [sx(t.position[0]), sy(t.position[1])]; i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke();
    for (const t of traj.trajectory) { ctx.fillStyle = palette(t.segment); ctx.beginPath(); ctx.arc(sx(t.position[0]), sy(t.position[1]), 4, 0, 7); ctx.fill(); }
  }
}

function drawSizes() {
  sctx.clearRect(0, 0, sizesCanvas.width, sizesCanvas.height);
  if (sizeHistory.length < 1) return;
  const max = Math.max(1, ...sizeHistory.flat());
  const n = sizeHistory.length;
  for (let s = 0; s < sizeHistory[0].length; s++) {
    sctx.strokeStyle = palette(s); sctx.beginPath();
    sizeHistory.forEach((row, i) => {
      const x = n === 1 ? sizesCanvas.width / 2 : i / (n - 1) * (sizesCanvas.width - 4) + 2;
      const y = sizesCanvas.height - 2 - row[s] / max * (sizesCanvas.height - 4);
      i ? sctx.lineTo(x, y) : sctx.moveTo(n === 1 ? 2 : x, y);
      if (n === 1) sctx.lineTo(sizesCanvas.width - 2, y);
    });
    sctx.stroke();
  }
}

// Every value from the API goes in as text (textContent), never as markup: a customer id
// or a label cannot become an element or a script, whatever it contains.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

async function select(id) {
  selected = id;
  const r = await fetch(`/api/customers/${encodeURIComponent(id)}`);
  const panel = document.getElementById("trajectory");
  if (!r.ok) { panel.replaceChildren(el("b", "Trajectory "), el("span", (await r.json()).detail, "muted")); return; }
  traj = await r.json();
  const hist = traj.segment_history.map(h => `${h.window_start}: ${h.segment}`).join(" → ");
  const head = [el("b", `Trajectory of ${traj.customer_id}`),
                document.createTextNode(` — segment ${traj.segment} ${traj.segment_label ?? "(warming up)"}`)];
  if (traj.recommendation) head.push(document.createTextNode(", suggested: "), el("i", traj.recommendation));
  const list = el("ul");
  list.append(...traj.trajectory.map(t => el("li", `${t.window_start}: segment ${t.segment}`, "traj-point")));
  panel.replaceChildren(...head, el("br"), el("span", `history: ${hist}`, "muted"), list);
  draw();
}

map.addEventListener("click", ev => {
  const rect = map.getBoundingClientRect(), x = ev.clientX - rect.left, y = ev.clientY - rect.top;
  let best = null, bd = 100;
  for (const p of points) { const d = (sx(p.x) - x) ** 2 + (sy(p.y) - y) ** 2; if (d < bd) { bd = d; best = p; } }
  if (best) select(best.customer_id);
});

async function refresh() {
  try {
    const [s, m] = await Promise.all([fetch("/api/segments"), fetch("/api/map?limit=3000")]);
    if (!s.ok) throw new Error((await s.json()).detail);
    segs = await s.json();
    // a key with the segments scope only may not list customers: show the segments alone
    points = m.ok ? await m.json() : [];
    fit();
    if (!segs.length) {
      document.getElementById("segments").replaceChildren(
        el("li", "No segments yet: no worker has processed a window for this deployment.", "muted"));
    } else document.getElementById("segments").replaceChildren(...segs.map(g => {
      const li = el("li"), swatch = el("span", undefined, "swatch");
      li.dataset.segment = g.segment;
      swatch.style.background = palette(g.segment);
      li.append(swatch, `${g.segment} `, el("b", g.label), ` · ${g.size} customers · ${g.recommendation} `,
                el("span", g.description, "muted"));
      if (g.rules && g.rules.length) {  // who is in it, in spending terms (as text, never markup)
        const ul = el("ul", undefined, "rules");
        ul.title = `a shallow tree over the last six months' category shares; ${Math.round(100 * g.rules_accuracy)}% right on held-out customers`;
        ul.append(...g.rules.map(r => el("li", r)));
        li.append(ul);
      }
      return li;
    }));
    const list = document.getElementById("customers");
    if (!m.ok) list.replaceChildren(el("li", (await m.json()).detail, "muted"));
    else if (!list.children.length || list.children.length < Math.min(60, points.length)) {
      list.replaceChildren(...points.slice(0, 60).map(p => {
        const li = el("li", p.customer_id);
        li.dataset.customer = p.customer_id;
        li.addEventListener("click", () => select(p.customer_id));
        return li;
      }));
    }
    sizeHistory.push(segs.map(g => g.size)); if (sizeHistory.length > 200) sizeHistory.shift();
    document.getElementById("status").textContent = `· ${points.length} customers shown · updated ${new Date().toLocaleTimeString()}`;
    if (selected) await select(selected); else draw();
    drawSizes();
  } catch (e) { document.getElementById("status").textContent = `· ${e}`; }
}
refresh(); setInterval(refresh, 3000);
