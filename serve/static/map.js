// dgsearch serve: the library map. Every audio window of the index as a point (GET /api/map: a PCA projection
// of its embedding, computed when the index was published), coloured by folder or tag. Hover a point to hear
// its window, click it for "more like this"; the current search's hits are lit. One canvas, no library.
"use strict";
(function () {
  const dg = window.dgsearch;
  const panel = document.querySelector("#map-panel"), canvas = document.querySelector("#map");
  const info = document.querySelector("#map-info"), legend = document.querySelector("#map-legend");
  const colourSel = document.querySelector("#map-colour");
  // eleven colours told apart at a glance; past eleven folders (or tags) the largest ten keep one each and the
  // rest share OTHER, so a colour always means one group (a real library has hundreds of folders)
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
                   "#9c755f", "#1b9e77", "#d95f02"];
  const OTHER = "#c9c4c1";
  const HOVER_PX = 8, HOVER_DELAY_MS = 150;
  const m = { doc: null, sx: null, sy: null, grid: new Map(), lit: new Set(), hover: -1, timer: null, playing: null,
              colours: [], order: [] };

  function colourOf(key) { return m.colours[key] || OTHER; }

  // each key's colour and the drawing order (grey first, so the named groups sit on top); the legend's entries
  function rank(doc) {
    const counts = new Array(doc.keys.length).fill(0);
    for (let i = 0; i < doc.count; i++) counts[doc.key[i]]++;
    const present = counts.map((_, k) => k).filter((k) => counts[k] > 0).sort((a, b) => counts[b] - counts[a] || a - b);
    const named = present.length <= PALETTE.length ? present : present.slice(0, PALETTE.length - 1);
    m.colours = doc.keys.map(() => OTHER);
    named.forEach((k, j) => { m.colours[k] = PALETTE[j]; });
    const rest = present.filter((k) => m.colours[k] === OTHER);
    m.order = [...rest, ...named];
    const entries = named.map((k) => ({ text: (doc.keys[k] || "(none)") + " " + counts[k], colour: m.colours[k] }));
    if (rest.length) {
      const points = rest.reduce((sum, k) => sum + counts[k], 0);
      entries.push({ text: rest.length + " other " + (doc.colour === "folder" ? "folders" : doc.colour + "s") + " " + points, colour: OTHER });
    }
    return entries;
  }

  function load() {
    dg.api("/api/map?colour=" + encodeURIComponent(colourSel.value)).then((doc) => {
      m.doc = doc;
      panel.hidden = doc.count === 0;
      info.textContent = doc.count + (doc.count < doc.total ? " of " + doc.total : "") + " windows · " + doc.method;
      legend.replaceChildren();
      rank(doc).forEach((entry) => {
        const item = document.createElement("span");
        item.className = "key";
        const dot = document.createElement("i");
        dot.style.background = entry.colour;
        item.append(dot, document.createTextNode(entry.text));
        legend.appendChild(item);
      });
      light(dg.hits());
    }, () => { panel.hidden = true; });
  }

  // screen positions (CSS pixels), a grid of them for hovering, then the points and the lit hits
  function draw() {
    const doc = m.doc;
    if (!doc) return;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 300, dpr = window.devicePixelRatio || 1, pad = 10;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    const n = doc.count;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, doc.x[i]); x1 = Math.max(x1, doc.x[i]); y0 = Math.min(y0, doc.y[i]); y1 = Math.max(y1, doc.y[i]);
    }
    const kx = (w - 2 * pad) / ((x1 - x0) || 1), ky = (h - 2 * pad) / ((y1 - y0) || 1);
    m.sx = new Float32Array(n); m.sy = new Float32Array(n); m.grid = new Map();
    for (let i = 0; i < n; i++) {
      const sx = pad + (doc.x[i] - x0) * kx, sy = h - pad - (doc.y[i] - y0) * ky;
      m.sx[i] = sx; m.sy[i] = sy;
      const cell = Math.floor(sx / HOVER_PX) + "," + Math.floor(sy / HOVER_PX);
      if (!m.grid.has(cell)) m.grid.set(cell, []);
      m.grid.get(cell).push(i);
    }
    const r = n > 20000 ? 1 : n > 2000 ? 1.5 : 3;
    g.globalAlpha = n > 20000 ? 0.6 : 0.85;
    for (const k of m.order) {  // one fill colour at a time, the grey of the many small groups first
      g.fillStyle = colourOf(k);
      g.beginPath();
      for (let i = 0; i < n; i++) if (doc.key[i] === k) { g.moveTo(m.sx[i] + r, m.sy[i]); g.arc(m.sx[i], m.sy[i], r, 0, 2 * Math.PI); }
      g.fill();
    }
    g.globalAlpha = 1;
    const css = getComputedStyle(document.documentElement);
    g.lineWidth = 2;
    g.strokeStyle = css.getPropertyValue("--fg");
    g.fillStyle = css.getPropertyValue("--accent");
    for (let i = 0; i < n; i++) {
      if (!m.lit.has(doc.segment_id[i])) continue;
      g.beginPath(); g.arc(m.sx[i], m.sy[i], 6, 0, 2 * Math.PI); g.fill(); g.stroke();
    }
    if (m.hover >= 0) { g.strokeStyle = css.getPropertyValue("--accent"); g.beginPath(); g.arc(m.sx[m.hover], m.sy[m.hover], 9, 0, 2 * Math.PI); g.stroke(); }
    canvas.dataset.points = String(n);
    canvas.dataset.lit = String(Array.from(m.lit).filter((s) => doc.segment_id.includes(s)).length);
  }

  function light(hits) {
    m.lit = new Set(hits.map((h) => h.segment_id));
    draw();
  }

  // the point nearest (x, y) within HOVER_PX CSS pixels, or -1
  function nearest(x, y) {
    if (!m.sx) return -1;
    const cx = Math.floor(x / HOVER_PX), cy = Math.floor(y / HOVER_PX);
    let best = -1, bestD = HOVER_PX * HOVER_PX;
    for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) {
      for (const i of m.grid.get((cx + dx) + "," + (cy + dy)) || []) {
        const d = (m.sx[i] - x) ** 2 + (m.sy[i] - y) ** 2;
        if (d <= bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }

  // hover: play the window (from its start, stopped at its end) after a short dwell
  function playPoint(i) {
    const doc = m.doc, p = dg.player;
    dg.stopPlayback();
    const src = dg.withToken("/files/" + doc.file_id[i] + "/audio");
    if (p.dataset.src !== src) { p.src = src; p.dataset.src = src; }
    const playing = { segment: doc.segment_id[i], start: doc.start_s[i], end: doc.end_s[i] };
    m.playing = playing;
    const begin = () => {
      if (m.playing !== playing) return;
      p.currentTime = playing.start;
      p.play().catch(() => {});
    };
    if (p.readyState >= 1) begin(); else p.addEventListener("loadedmetadata", begin, { once: true });
  }
  function stopPoint() {
    if (!m.playing) return;
    m.playing = null;
    if (!dg.player.paused) dg.player.pause();
  }
  dg.player.addEventListener("timeupdate", () => {
    if (m.playing && dg.player.currentTime >= m.playing.end) stopPoint();
  });

  function at(e) {
    const r = canvas.getBoundingClientRect();
    return nearest(e.clientX - r.left, e.clientY - r.top);
  }
  canvas.addEventListener("mousemove", (e) => {
    const i = at(e);
    if (i === m.hover) return;
    m.hover = i;
    clearTimeout(m.timer);
    canvas.style.cursor = i >= 0 ? "pointer" : "default";
    canvas.title = i >= 0 ? "segment " + m.doc.segment_id[i] + " (" + (m.doc.keys[m.doc.key[i]] || "no " + m.doc.colour) + ")" : "";
    draw();
    if (i >= 0) m.timer = setTimeout(() => playPoint(i), HOVER_DELAY_MS); else stopPoint();
  });
  canvas.addEventListener("mouseleave", () => { clearTimeout(m.timer); m.hover = -1; stopPoint(); draw(); });
  canvas.addEventListener("click", (e) => {
    const i = at(e);
    if (i < 0) return;
    clearTimeout(m.timer);
    stopPoint();
    dg.navigate("like", m.doc.segment_id[i]);
  });
  colourSel.addEventListener("change", load);
  window.addEventListener("resize", draw);
  dg.onHits(light);
  // for tests and the curious: where each point is drawn, and which are lit
  window.dgsearchMap = {
    points: () => (m.doc ? m.doc.segment_id.map((s, i) => ({ segment: s, file: m.doc.file_id[i], x: m.sx[i], y: m.sy[i],
                                                         start: m.doc.start_s[i], end: m.doc.end_s[i] })) : []),
    lit: () => (m.doc ? m.doc.segment_id.filter((s) => m.lit.has(s)) : []),
    playing: () => m.playing,
  };
  load();
})();
