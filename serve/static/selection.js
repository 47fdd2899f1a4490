// dgsearch serve: drag across a hit's waveform to select a span of its file, which plays at once; then play it
// again, search for sounds like it (/api/search?file=ID&start=S&end=E, a shareable URL), or save it as WAV
// (/files/ID/window). One selection at a time; a click without a drag still plays from that point (app.js).
// Keys: space plays (or stops) the selection while its hit is selected, Escape drops it.
"use strict";
(function () {
  const dg = window.dgsearch;
  const MIN_DRAG_PX = 4;  // less is a click
  const MIN_SPAN_S = 0.05;
  let sel = null;  // { index, fileId, start, end }

  const seconds = (x) => Math.round(x * 1000) / 1000;

  function spanAt(canvas, fileId, x0, x1) {
    const r = canvas.getBoundingClientRect(), dur = dg.duration(fileId);
    const at = (x) => Math.min(dur, Math.max(0, dur * (x - r.left) / r.width));
    const a = at(Math.min(x0, x1)), b = at(Math.max(x0, x1));
    return { start: seconds(a), end: seconds(Math.max(b, a + MIN_SPAN_S)) };
  }
  function show(li, hit) {
    const box = li.querySelector(".span-actions");
    const mine = sel && sel.fileId === hit.file_id && li.dataset.index === String(sel.index);
    box.hidden = !mine;
    if (!mine) return;
    box.querySelector(".span-time").textContent = "selection " + dg.timecode(sel.start) + " → " + dg.timecode(sel.end);
    box.querySelector(".span-save").href = dg.withToken("/files/" + hit.file_id + "/window?start=" + sel.start +
                                                        "&end=" + sel.end);
  }
  function clear() {
    if (!sel) return;
    const old = sel.index;
    sel = null;
    const li = document.querySelectorAll("#hits .hit")[old];
    if (li) { li.querySelector(".span-actions").hidden = true; dg.draw(old); }
  }

  dg.onHits(() => { sel = null; });
  dg.onRendered((li, hit, i) => {
    const canvas = li.querySelector(".wave"), box = li.querySelector(".span-actions");
    let down = null;
    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || !dg.duration(hit.file_id) || li.classList.contains("gone")) return;
      down = { x: e.clientX, moved: false };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!down) return;
      if (!down.moved && Math.abs(e.clientX - down.x) < MIN_DRAG_PX) return;
      if (!down.moved) { down.moved = true; clear(); }
      sel = Object.assign({ index: i, fileId: hit.file_id }, spanAt(canvas, hit.file_id, down.x, e.clientX));
      dg.draw(i);
    });
    canvas.addEventListener("pointerup", () => {
      if (!down) return;
      const dragged = down.moved;
      down = null;
      if (!dragged || !sel) return;
      canvas.dataset.dragged = "1";  // the click that follows is not a "play from here"
      dg.select(i);
      show(li, hit);
      dg.playFrom(i, sel.start, sel.end);  // audition it at once, as an editor does
    });
    box.querySelector(".span-play").addEventListener("click", (e) => {
      e.stopPropagation();
      if (sel) dg.playFrom(sel.index, sel.start, sel.end);
    });
    box.querySelector(".span-search").addEventListener("click", (e) => {
      e.stopPropagation();
      if (sel) dg.navigate({ file: sel.fileId, start: sel.start, end: sel.end });
    });
    box.querySelector(".span-save").addEventListener("click", (e) => e.stopPropagation());
  });
  // keys: space plays the selection (not the window) while its hit is the selected one; Escape drops it
  window.addEventListener("keydown", (e) => {
    if (!sel || (e.target.closest && e.target.closest("input, select, textarea"))) return;
    const li = document.querySelectorAll("#hits .hit")[sel.index];
    if (e.key === "Escape") { clear(); return; }
    if ((e.key === " " || e.code === "Space") && li && li.classList.contains("selected")) {
      e.preventDefault();
      e.stopImmediatePropagation();  // app.js would play the window
      if (li.classList.contains("playing") && !dg.player.paused) dg.stopPlayback();
      else dg.playFrom(sel.index, sel.start, sel.end);
    }
  }, true);
  dg.onDrawn((i, g, w, h, dur) => {
    if (!sel || sel.index !== i || !dur) return;
    const x0 = w * sel.start / dur, x1 = w * sel.end / dur;
    g.fillStyle = "rgba(255, 170, 0, 0.35)";
    g.fillRect(x0, 0, Math.max(2, x1 - x0), h);
    g.fillStyle = "rgba(255, 140, 0, 0.9)";
    g.fillRect(x0, 0, 1.5, h);
    g.fillRect(Math.max(x0, x1 - 1.5), 0, 1.5, h);
  });
})();
