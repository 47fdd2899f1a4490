// dgsearch serve: the page. Vanilla JS, no build step, no network but this server.
// State lives in the URL (?q=TEXT or ?like=SEGMENT_ID, plus the filters: kind, duration=MIN..MAX, sample_rate,
// channels, folder, tag, label: the API's own parameters), so a search can be shared, reloaded, and the back button works.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || sessionStorage.getItem("dgsearch-token") || "";
  if (token) sessionStorage.setItem("dgsearch-token", token);
  const player = $("#player");
  const hitsEl = $("#hits");
  const statusEl = $("#status");
  // folder: the deepest folder holding every indexed file (dgsearch info's "library folder"); paths below it are
  // shown from it, as the CLI shows them from the working directory, the whole path on hover
  const state = { hits: [], selected: -1, playing: null, peaks: new Map(), seq: 0, folder: "" };
  // map.js: hits, called with the hits shown (or []); selection.js: rendered (li, hit, i), drawn (i, g, w, h, dur)
  const hooks = { hits: [], rendered: [], drawn: [] };

  function withToken(url) {
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }
  async function api(url, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (token) opts.headers.Authorization = "Bearer " + token;
    const res = await fetch(url, opts);
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && body.message ? body.message : res.status + " " + res.statusText;
      const err = new Error(msg);
      err.exitCode = body ? body.exit_code : null;
      throw err;
    }
    return body;
  }
  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.className = kind || "";
  }
  function timecode(s) {
    const t = Math.round(s * 10), m = Math.floor(t / 600), r = (t % 600) / 10;
    return m + ":" + (r < 10 ? "0" : "") + r.toFixed(1);
  }

  // -- filters: controls <-> URL parameters (the names /api/search takes) ----------------------------
  const FILTERS = ["kind", "duration", "sample_rate", "channels", "folder", "tag", "label", "pinpoint", "timeline"];
  const controls = { kind: $("#f-kind"), sample_rate: $("#f-rate"), channels: $("#f-channels"), folder: $("#f-folder"),
                     tag: $("#f-tag"), label: $("#f-label"), pinpoint: $("#f-pinpoint"), timeline: $("#f-timeline") };
  const FILE_ONLY = ["timeline"];  // asked only of a file's search (words and "more like this" have no windows)
  function filtersFromControls() {
    const out = new URLSearchParams();
    for (const name of FILTERS) {
      if (name === "duration") {
        const lo = $("#f-dmin").value.trim(), hi = $("#f-dmax").value.trim();
        if (lo || hi) out.set("duration", lo + ".." + hi);
      } else if (controls[name].type === "checkbox") {
        if (controls[name].checked) out.set(name, "true");
      } else if (controls[name].value.trim()) out.set(name, controls[name].value.trim());
    }
    return out;
  }
  function controlsFromUrl(p) {
    for (const name of FILTERS) {
      if (name === "duration") {
        const parts = (p.get("duration") || "").split("..");
        $("#f-dmin").value = parts[0] || ""; $("#f-dmax").value = parts.length > 1 ? parts[1] : "";
      } else if (controls[name].type === "checkbox") controls[name].checked = p.get(name) === "true";
      else controls[name].value = p.get(name) || "";
    }
  }
  function filterQuery(p, ofFile) {  // "&kind=audio&..." from the URL's filters
    return FILTERS.filter((n) => p.get(n) && (ofFile || !FILE_ONLY.includes(n)))
      .map((n) => "&" + n + "=" + encodeURIComponent(p.get(n))).join("");
  }

  // -- searching ------------------------------------------------------------------------------------
  function searchFromUrl() {
    const p = new URLSearchParams(location.search);
    const q = p.get("q"), like = p.get("like"), file = p.get("file");
    $("#q").value = q || "";
    controlsFromUrl(p);
    if (q && q.trim()) return run("/api/search?q=" + encodeURIComponent(q) + filterQuery(p), "“" + q + "”");
    if (like) return run("/api/search?like=" + encodeURIComponent(like) + filterQuery(p), "sounds like segment " + like);
    if (file) {  // a span of an indexed file (selection.js)
      const span = ["file", "start", "end"].filter((n) => p.get(n)).map((n) => n + "=" + encodeURIComponent(p.get(n)));
      return run("/api/search?" + span.join("&") + filterQuery(p, true), "sounds like file " + file +
                 (p.get("start") ? " from " + timecode(+p.get("start")) + " to " + timecode(+p.get("end")) : ""));
    }
    showEmpty();
  }
  function navigate(key, value) {  // navigate("q", words), or navigate({file, start, end})
    const p = new URLSearchParams(typeof key === "object" ? key : { [key]: value });
    filtersFromControls().forEach((v, n) => p.set(n, v));
    history.pushState(null, "", "?" + p.toString());
    searchFromUrl();
  }
  function filtersChanged() {  // the same search again, with the filters now set
    const p = new URLSearchParams(location.search), q = p.get("q"), like = p.get("like");
    if (q) navigate("q", q);
    else if (like) navigate("like", like);
    else if (p.get("file")) navigate(Object.fromEntries(["file", "start", "end"].filter((n) => p.get(n)).map((n) => [n, p.get(n)])));
    else { const f = filtersFromControls().toString(); history.replaceState(null, "", f ? "?" + f : location.pathname); }
  }
  async function run(url, what, options) {
    const seq = ++state.seq;
    stopPlayback();
    setStatus("Searching " + what + "…", "loading");
    $("#empty").hidden = true;
    hitsEl.setAttribute("aria-busy", "true");
    try {
      const result = await api(url, options);
      if (seq !== state.seq) return;  // a newer search has started
      render(result, what);
    } catch (err) {
      if (seq !== state.seq) return;
      state.hits = [];
      hitsEl.replaceChildren();
      hooks.hits.forEach((f) => f([]));
      setStatus("Error" + (err.exitCode != null ? " (exit code " + err.exitCode + ")" : "") + ": " + err.message, "error");
    } finally {
      if (seq === state.seq) hitsEl.removeAttribute("aria-busy");
    }
  }
  function searchWithFile(file) {
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    const f = filtersFromControls();
    f.forEach((v, n) => form.append(n, v));
    history.pushState(null, "", f.toString() ? "?" + f.toString() : location.pathname);
    $("#q").value = "";
    run("/api/search/file", "with " + file.name, { method: "POST", body: form });
  }
  function showEmpty() {
    state.seq++;
    stopPlayback();
    state.hits = [];
    hitsEl.replaceChildren();
    hooks.hits.forEach((f) => f([]));
    $("#empty").hidden = false;
    setStatus("");
  }

  // -- results --------------------------------------------------------------------------------------
  function render(result, what) {
    if (result.windows) return renderTimeline(result, what);
    state.hits = result.hits;
    hooks.hits.forEach((f) => f(result.hits));
    state.selected = -1;
    hitsEl.replaceChildren();
    const ms = result.timings_ms && result.timings_ms.total;
    if (!result.hits.length) {
      setStatus("No results for " + what + ".", "");
      return;
    }
    const n = result.hits.length;
    setStatus(n + (n === 1 ? " result for " : " results for ") + what + (ms != null ? " in " + Math.round(ms) + " ms" : ""), "");
    const tpl = $("#hit-template");
    result.hits.forEach((hit, i) => {
      const li = tpl.content.firstElementChild.cloneNode(true);
      li.dataset.index = i;
      li.dataset.segment = hit.segment_id;
      li.querySelector(".rank").textContent = i + 1;
      li.querySelector(".score").textContent = hit.score.toFixed(3);
      li.querySelector(".time").textContent = timecode(hit.start_s) + " → " + timecode(hit.end_s);
      if (hit.window) li.querySelector(".time").title = "pinpointed in the window " + timecode(hit.window[0]) + " → " + timecode(hit.window[1]);
      li.querySelector(".caption").textContent = hit.caption || "";
      showPath(li.querySelector(".path"), hit.path);
      showCopies(li.querySelector(".copies"), hit.copies || []);
      li.querySelector(".play").addEventListener("click", (e) => { e.stopPropagation(); select(i); toggleWindow(i); });
      li.querySelector(".play-file").addEventListener("click", (e) => { e.stopPropagation(); select(i); playFile(i); });
      li.querySelector(".like").addEventListener("click", (e) => { e.stopPropagation(); navigate("like", hit.segment_id); });
      saveLinks(li, hit);
      const canvas = li.querySelector(".wave");
      canvas.addEventListener("click", (e) => {
        if (canvas.dataset.dragged) { delete canvas.dataset.dragged; return; }  // the end of a selection (selection.js)
        const r = canvas.getBoundingClientRect(), d = (state.peaks.get(hit.file_id) || {}).duration_s;
        select(i);
        if (d) playFrom(i, d * (e.clientX - r.left) / r.width, null);
      });
      li.addEventListener("click", () => select(i));
      hitsEl.appendChild(li);
      hooks.rendered.forEach((f) => f(li, hit, i));
      loadPeaks(hit.file_id).then((doc) => { draw(i); if (doc && doc.exitCode === 3) markGone(li, doc.error); });
    });
    select(0, false);
  }
  // --timeline: each window of the query file with its own hits, in its order; one list, each window's first
  // hit headed by the window's seconds (the list's items stay the hits alone: playback and keys index them)
  function renderTimeline(result, what) {
    const firsts = new Map();
    const hits = [];
    for (const w of result.windows) {
      if (w.hits.length) firsts.set(hits.length, w);
      hits.push(...w.hits);
    }
    render({ hits: hits, timings_ms: result.timings_ms }, what);
    const n = result.windows.length;
    if (hits.length) setStatus(hits.length + " results for " + n + (n === 1 ? " window of " : " windows of ") + what, "");
    firsts.forEach((w, i) => {
      const head = document.createElement("p");
      head.className = "query-window";
      head.textContent = "For " + timecode(w.start_s) + " → " + timecode(w.end_s) + " of the query";
      hitsEl.children[i].prepend(head);
    });
  }
  // a file moved or deleted since it was indexed (the server answers exit code 3): say so where its waveform was
  // drawn and offer nothing to play
  function markGone(li, message) {
    if (li.classList.contains("gone")) return;
    li.classList.add("gone");
    const note = document.createElement("p");
    note.className = "gone-note";
    note.textContent = message;
    li.lastElementChild.after(note);
    li.querySelectorAll(".play, .play-file").forEach((b) => { b.disabled = true; b.title = "The file is gone"; });
    li.querySelectorAll(".actions a").forEach((a) => { a.removeAttribute("href"); a.title = "The file is gone"; });
  }
  // take the sound away: the window as WAV (cut by the server at the file's own rate) or the file itself
  function saveLinks(li, hit) {
    const file = "/files/" + hit.file_id;
    const save = li.querySelector(".save-window");
    save.href = withToken(file + "/window?start=" + hit.start_s + "&end=" + hit.end_s);
    // dragged out of the page (onto a DAW's track, a folder), the link is the WAV itself: Chromium's DownloadURL,
    // named as the server names it (media/cut.window_name)
    save.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("DownloadURL", "audio/wav:" + windowName(hit).replace(/:/g, "_") + ":" + save.href);
    });
    li.querySelector(".save-file").href = withToken(file + "/original");
    li.querySelectorAll(".actions a").forEach((a) => a.addEventListener("click", (e) => e.stopPropagation()));
  }
  // "long take 10-20s.wav": the file's stem and the span's seconds to the millisecond (media/cut.window_name)
  function windowName(hit) {
    const seconds = (x) => x.toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
    const base = hit.path.slice(hit.path.lastIndexOf("/") + 1), dot = base.lastIndexOf(".");
    return (dot > 0 ? base.slice(0, dot) : base) + " " + seconds(hit.start_s) + "-" + seconds(hit.end_s) + "s.wav";
  }
  // a path below the library folder, from it (the whole path is each element's title)
  function shownPath(path) {
    const below = state.folder && state.folder !== "/" ? state.folder + "/" : "";
    return below && path.startsWith(below) ? path.slice(below.length) : path;
  }
  // the file's folder muted, its name in the text's colour: the name is what a listener scans for
  function showPath(el, path) {
    const shown = shownPath(path), cut = shown.lastIndexOf("/") + 1;
    const dir = document.createElement("span"), name = document.createElement("span");
    dir.className = "dir"; dir.textContent = shown.slice(0, cut);
    name.className = "name"; name.textContent = shown.slice(cut);
    el.replaceChildren(dir, name);
    el.title = path;
  }
  function showPaths() {  // again, once the library folder is known
    hitsEl.querySelectorAll(".hit").forEach((li, i) => {
      const hit = state.hits[i];
      if (!hit) return;
      showPath(li.querySelector(".path"), hit.path);
      li.querySelectorAll(".copies li").forEach((item, j) => labelCopy(item, hit.copies[j]));
    });
  }
  function labelCopy(item, path) {
    item.textContent = shownPath(path);
    item.title = path;
  }
  // other files with the same content, collapsed into this hit: "+3 copies", opened to list their paths
  function showCopies(el, copies) {
    if (!copies.length) return;
    el.hidden = false;
    el.querySelector("summary").textContent = "+" + copies.length + (copies.length === 1 ? " copy" : " copies");
    const ul = el.querySelector("ul");
    copies.forEach((path) => { const item = document.createElement("li"); labelCopy(item, path); ul.appendChild(item); });
    el.addEventListener("click", (e) => e.stopPropagation());
  }
  function loadPeaks(fileId) {
    if (!state.peaks.has(fileId)) {
      state.peaks.set(fileId, null);
      const p = api("/files/" + fileId + "/peaks").then((doc) => { state.peaks.set(fileId, doc); return doc; },
        (err) => { const doc = { duration_s: 0, peaks: [], error: err.message, exitCode: err.exitCode };
                   state.peaks.set(fileId, doc); return doc; });
      state.peaks.set(fileId + ":p", p);
    }
    return state.peaks.get(fileId + ":p");
  }
  function draw(i) {
    const li = hitsEl.children[i], hit = state.hits[i];
    if (!li || !hit) return;
    const canvas = li.querySelector(".wave"), doc = state.peaks.get(hit.file_id);
    const w = canvas.clientWidth || 300, h = canvas.clientHeight || 48, dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    const css = getComputedStyle(document.documentElement);
    const dur = doc && doc.duration_s ? doc.duration_s : Math.max(hit.end_s, 1e-6);
    g.fillStyle = css.getPropertyValue("--win");
    const x0 = w * hit.start_s / dur, x1 = w * Math.min(hit.end_s, dur) / dur;
    g.fillRect(x0, 0, Math.max(2, x1 - x0), h);
    const peaks = doc ? doc.peaks : [];
    g.fillStyle = css.getPropertyValue("--muted");
    for (let x = 0; x < w; x++) {
      const a = Math.floor(x * peaks.length / w), b = Math.max(a + 1, Math.floor((x + 1) * peaks.length / w));
      let p = 0;
      for (let j = a; j < b && j < peaks.length; j++) p = Math.max(p, peaks[j]);
      const t = (x + 0.5) / w * dur;
      g.fillStyle = t >= hit.start_s && t <= hit.end_s ? css.getPropertyValue("--accent") : css.getPropertyValue("--muted");
      const bar = Math.max(1, p * (h - 4));
      g.fillRect(x, (h - bar) / 2, 1, bar);
    }
    hooks.drawn.forEach((f) => f(i, g, w, h, dur));
    if (state.playing && state.playing.index === i) {
      g.fillStyle = css.getPropertyValue("--fg");
      g.fillRect(w * player.currentTime / dur, 0, 1.5, h);
    }
  }
  function select(i, focus) {
    if (i < 0 || i >= state.hits.length) return;
    const old = hitsEl.children[state.selected];
    if (old) old.classList.remove("selected");
    state.selected = i;
    const li = hitsEl.children[i];
    li.classList.add("selected");
    if (focus !== false) { li.focus({ preventScroll: true }); li.scrollIntoView({ block: "nearest" }); }
  }

  // -- playback: a window plays from its start and stops at its end --------------------------------
  function stopPlayback() {
    if (!player.paused) player.pause();
    const was = state.playing;
    state.playing = null;
    if (was && was.timer) clearTimeout(was.timer);
    if (was && hitsEl.children[was.index]) { hitsEl.children[was.index].classList.remove("playing"); draw(was.index); }
  }
  function toggleWindow(i) {
    if (state.playing && state.playing.index === i && !player.paused) { stopPlayback(); return; }
    const hit = state.hits[i];
    playFrom(i, hit.start_s, hit.end_s);
  }
  function playFile(i) { playFrom(i, 0, null); }
  function playFrom(i, start, end) {
    stopPlayback();
    const hit = state.hits[i], gone = hitsEl.children[i].querySelector(".gone-note");
    if (gone) { setStatus("Cannot play: " + gone.textContent, "error"); return; }  // the keyboard, the waveform
    const src = withToken("/files/" + hit.file_id + "/audio");
    if (player.dataset.src !== src) { player.src = src; player.dataset.src = src; }
    state.playing = { index: i, start: start, end: end };
    hitsEl.children[i].classList.add("playing");
    const begin = () => {
      player.currentTime = start;
      player.play().catch((err) => { if (state.playing) setStatus("Cannot play: " + err.message, "error"); });
      requestAnimationFrame(tick);
    };
    if (player.readyState >= 1) begin(); else player.addEventListener("loadedmetadata", begin, { once: true });
  }
  function endWindow(p) {
    if (state.playing !== p) return;
    player.pause();
    player.currentTime = p.end;
    stopPlayback();
  }
  function tick() {
    const p = state.playing;
    if (!p) return;
    if (p.end != null && !p.timer) {
      const left = (p.end - player.currentTime) / (player.playbackRate || 1);
      if (left <= 0) { endWindow(p); return; }
      // the last stretch is timed precisely rather than left to the next frame
      if (left < 0.1 && !player.paused && !player.seeking) p.timer = setTimeout(() => endWindow(p), left * 1000);
    }
    draw(p.index);
    if (!player.paused || player.seeking || player.readyState < 3) requestAnimationFrame(tick);
  }
  player.addEventListener("timeupdate", () => {
    const p = state.playing;
    if (p && p.end != null && player.currentTime >= p.end) endWindow(p);
  });
  player.addEventListener("ended", stopPlayback);
  player.addEventListener("error", () => {
    if (state.playing) { setStatus("Cannot play this file (" + (player.error ? player.error.message || player.error.code : "error") + ")", "error"); stopPlayback(); }
  });

  // -- input ----------------------------------------------------------------------------------------
  $("#search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("#q").value.trim();
    if (!q) { history.pushState(null, "", location.pathname); showEmpty(); return; }
    navigate("q", q);
  });
  $("#filters").addEventListener("change", filtersChanged);
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); filtersChanged(); });
  $("#f-clear").addEventListener("click", () => { controlsFromUrl(new URLSearchParams()); filtersChanged(); });
  $("#file").addEventListener("change", (e) => { searchWithFile(e.target.files[0]); e.target.value = ""; });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("#filters")) return;  // typing a filter: no shortcuts
    const typing = e.target === $("#q");
    if (e.key === "/" && !typing) { e.preventDefault(); $("#q").focus(); return; }
    if (typing) { if (e.key === "ArrowDown" && state.hits.length) { e.preventDefault(); $("#q").blur(); select(Math.max(0, state.selected)); } return; }
    if (!state.hits.length || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "ArrowDown") { e.preventDefault(); select(Math.min(state.hits.length - 1, state.selected + 1)); }
    else if (e.key === "ArrowUp") { e.preventDefault(); if (state.selected === 0) $("#q").focus(); else select(state.selected - 1); }
    else if (e.key === " " || e.code === "Space") { e.preventDefault(); if (state.selected >= 0) toggleWindow(state.selected); }
    else if (e.key === "m" && state.selected >= 0) { navigate("like", state.hits[state.selected].segment_id); }
  });
  let dragDepth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
  window.addEventListener("dragenter", (e) => { if (hasFiles(e)) { dragDepth++; $("#drop").hidden = false; } });
  window.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; $("#drop").hidden = true; } });
  window.addEventListener("dragover", (e) => { e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    dragDepth = 0;
    $("#drop").hidden = true;
    const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (file) searchWithFile(file);
  });
  window.addEventListener("popstate", searchFromUrl);
  window.addEventListener("resize", () => state.hits.forEach((_, i) => draw(i)));

  // what map.js (the library map) shares with this page
  window.dgsearch = { api: api, withToken: withToken, navigate: navigate, stopPlayback: stopPlayback, player: player,
                      setStatus: setStatus, onHits: (f) => hooks.hits.push(f), hits: () => state.hits,
                      onRendered: (f) => hooks.rendered.push(f), onDrawn: (f) => hooks.drawn.push(f), draw: draw,
                      playFrom: playFrom, select: select, timecode: timecode,
                      duration: (fileId) => (state.peaks.get(fileId) || {}).duration_s || 0 };

  api("/api/info").then((info) => {
    const s = info.summary, folder = s["library folder"];
    state.folder = folder && folder !== "-" ? folder : "";
    $("#index-info").textContent = s.files + " files" + (state.folder ? " in " + state.folder : "") + ", " +
      s.segments + " windows, model " + s.model;
    $("#index-info").title = state.folder;
    document.querySelector(".brand").title = $("#index-info").textContent;  // seen beside the results too
    showPaths();
  }, () => {});
  searchFromUrl();
})();
