// dgsearch serve: your labels on each hit (as `dgsearch label` puts them): a chip per label with × to take it off,
// "+ label" (or the key l on the selected hit) to put one on: POST /api/labels, a JSON body, from this page only.
// The status line offers Undo after each change.
// The filter bar's label box offers the index's labels (GET /api/labels).
"use strict";
(function () {
  const dg = window.dgsearch;
  const names = document.querySelector("#label-names");

  function refreshNames() {
    dg.api("/api/labels").then((doc) => {
      names.replaceChildren(...doc.labels.map((l) => {
        const option = document.createElement("option");
        option.value = l.label;
        option.label = l.files + (l.files === 1 ? " file" : " files");
        return option;
      }));
    }, () => {});
  }
  function hitItems(fileId) {  // every shown window of the file (one per file unless "segments")
    return Array.from(document.querySelectorAll("#hits .hit")).filter((li) => dg.hits()[li.dataset.index].file_id === fileId);
  }
  function showLabels(li, hit) {
    const chips = li.querySelector(".labels .chips");
    chips.replaceChildren();
    (hit.labels || []).forEach((label) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = label;
      const off = document.createElement("button");
      off.type = "button";
      off.className = "unlabel";
      off.textContent = "×";
      off.title = "Take the label “" + label + "” off this file";
      off.addEventListener("click", (e) => { e.stopPropagation(); change(hit, label, true); });
      chip.appendChild(off);
      chips.appendChild(chip);
    });
  }
  function offerUndo(undo) {  // an Undo button at the end of the status line, until the next status
    const button = document.createElement("button");
    button.type = "button";
    button.className = "undo";
    button.textContent = "Undo";
    button.addEventListener("click", (e) => { e.stopPropagation(); button.disabled = true; undo(); });
    document.querySelector("#status").append(" ", button);
  }
  async function change(hit, label, remove, undoing) {
    try {
      const doc = await dg.api("/api/labels", { method: "POST", headers: { "Content-Type": "application/json" },
                                               body: JSON.stringify({ label: label, file_ids: [hit.file_id], remove: remove }) });
      dg.hits().filter((h) => h.file_id === hit.file_id).forEach((h) => {
        const others = (h.labels || []).filter((l) => l !== doc.label);
        h.labels = remove ? others : others.concat([doc.label]);
      });
      hitItems(hit.file_id).forEach((li) => showLabels(li, hit));
      const name = hit.path.split("/").pop();
      if (undoing) {
        dg.setStatus("Undone: " + (remove ? "“" + doc.label + "” is off " : "“" + doc.label + "” is back on ") + name, "");
      } else if (doc.changed) {  // a change made can be taken back (a label put on again comes last)
        dg.setStatus((remove ? "Took “" + doc.label + "” off " : "Labelled “" + doc.label + "”: ") + name, "");
        offerUndo(() => change(hit, doc.label, !remove, true));
      } else {
        dg.setStatus(name + (remove ? " did not carry “" : " carries “") + doc.label + "” already", "");
      }
      refreshNames();
    } catch (err) {
      dg.setStatus("Could not change the labels: " + err.message, "error");
    }
  }
  function openInput(li) {
    const form = li.querySelector(".label-add");
    form.hidden = false;
    form.querySelector("input").focus();
  }

  dg.onRendered((li, hit) => {
    showLabels(li, hit);
    const form = li.querySelector(".label-add"), input = form.querySelector("input");
    li.querySelector(".label-open").addEventListener("click", (e) => { e.stopPropagation(); openInput(li); });
    form.addEventListener("click", (e) => e.stopPropagation());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      form.hidden = true;
      change(hit, text, false);
    });
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();  // typing a label: no page shortcuts
      if (e.key === "Escape") { input.value = ""; form.hidden = true; li.focus(); }
    });
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "l" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.matches && e.target.matches("input, select, textarea")) return;
    const li = document.querySelector("#hits .hit.selected");
    if (li) { e.preventDefault(); openInput(li); }
  });
  refreshNames();
})();
