(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var canvas = document.getElementById("canvas");
  var detail = document.getElementById("detail");
  var body = document.getElementById("detail-body");
  var svgs = Array.prototype.slice.call(document.querySelectorAll("svg.graph"));
  var current = svgs[0];
  var views = {};
  function setHidden(node, hide) { if (hide) node.setAttribute("hidden", ""); else node.removeAttribute("hidden"); }
  svgs.forEach(function (svg, i) { setHidden(svg, i !== 0); views[svg.id] = {x: 0, y: 0, k: 1, fitted: false}; });

  function apply() {
    var v = views[current.id];
    current.querySelector(".viewport").setAttribute("transform", "translate(" + v.x + "," + v.y + ") scale(" + v.k + ")");
  }
  function fit() {
    var v = views[current.id], w = canvas.clientWidth, h = canvas.clientHeight;
    var gw = +current.getAttribute("data-width"), gh = +current.getAttribute("data-height");
    // The whole picture when its names stay legible; else the full width, from the top, to scroll down.
    v.k = Math.min(1.2, w / gw, Math.max(0.45, Math.min(w / gw, h / gh)));
    v.x = Math.max(0, (w - gw * v.k) / 2); v.y = Math.max(0, (h - gh * v.k) / 2); v.fitted = true; apply();
  }
  function zoomAt(factor, cx, cy) {
    var v = views[current.id], k = Math.min(4, Math.max(0.05, v.k * factor));
    v.fitted = false;
    v.x = cx - (cx - v.x) * (k / v.k); v.y = cy - (cy - v.y) * (k / v.k); v.k = k; apply();
  }
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, {passive: false});
  var drag = null;
  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) return;
    drag = {x: ev.clientX, y: ev.clientY, moved: false};
  });
  window.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true; canvas.classList.add("dragging");
    var v = views[current.id]; v.x += dx; v.y += dy; v.fitted = false; drag.x = ev.clientX; drag.y = ev.clientY; apply();
  });
  window.addEventListener("pointerup", function () {
    canvas.classList.remove("dragging");
    if (drag && drag.moved) { canvas.dataset.justDragged = "1"; setTimeout(function () { delete canvas.dataset.justDragged; }, 0); }
    drag = null;
  });
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("zoom-in").addEventListener("click", function () { zoomAt(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomAt(0.8, canvas.clientWidth / 2, canvas.clientHeight / 2); });
  var toggle = document.getElementById("toggle");
  function show(svg) {
    setHidden(current, true); current = svg; setHidden(current, false);
    if (!views[current.id].fitted) fit(); else apply();
    if (toggle) toggle.textContent = current.getAttribute("data-view") === "full" ? "Collapse unchanged" : "Show all " + data.nodes.length + " nodes";
    runFilter(); markSelected();
  }
  if (toggle) toggle.addEventListener("click", function () { show(svgs[current === svgs[0] ? 1 : 0]); });

  // --- detail panel ---
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function num(n) { return n === null || n === undefined ? "\u2013" : Number(n).toLocaleString("en-US"); }
  function signed(n) { return n > 0 ? "+" + num(n) : n < 0 ? "\u2212" + num(-n) : "\u00b10"; }
  function text(v) { return v === null || v === undefined ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v); }
  function same(a, b) { return JSON.stringify(a === undefined ? null : a) === JSON.stringify(b === undefined ? null : b); }
  var selected = null;
  function reveal() {
    // The panel takes room from the canvas: bring the selected box back into view if it went under it.
    var box = selected && current.querySelector(selected);
    if (!box) return;
    var r = box.getBoundingClientRect(), c = canvas.getBoundingClientRect(), v = views[current.id], m = 24;
    if (r.right > c.right - m) v.x -= r.right - c.right + m;
    if (r.left < c.left + m) v.x += c.left + m - r.left;
    if (r.bottom > c.bottom - m) v.y -= r.bottom - c.bottom + m;
    if (r.top < c.top + m) v.y += c.top + m - r.top;
    apply();
  }
  function showDetail() {
    var wasHidden = detail.hidden;
    detail.hidden = false;
    // Still the fitted picture (the reader has not panned or zoomed): fit it to the narrower canvas.
    if (wasHidden && views[current.id].fitted) fit(); else reveal();
  }
  function markSelected() {
    Array.prototype.forEach.call(document.querySelectorAll(".box.selected"), function (b) { b.classList.remove("selected"); });
    Array.prototype.forEach.call(current.querySelectorAll(".edge.lit"), function (e) { e.classList.remove("lit"); });
    if (!selected) return;
    var box = current.querySelector(selected);
    if (!box) return;
    box.classList.add("selected");
    var id = box.hasAttribute("data-node") ? "n:" + box.getAttribute("data-node") : "g:" + box.getAttribute("data-group");
    Array.prototype.forEach.call(current.querySelectorAll(".edge"), function (e) {
      if (e.getAttribute("data-from") === id || e.getAttribute("data-to") === id) e.classList.add("lit");
    });
  }
  function openNode(i) {
    var n = data.nodes[i];
    selected = '[data-node="' + i + '"]'; markSelected();
    body.textContent = "";
    var state = el("span", {"class": "pill", style: "background:var(--" + n.state + ");border-color:var(--" + n.state + "-border)"}, [n.state]);
    body.appendChild(el("h2", {}, [n.name]));
    body.appendChild(el("div", {"class": "muted"}, [n.type + " \u00b7 ", el("code", {}, [n.uid]), " ", state,
      n.in_selection ? "" : " (one hop outside the selection)"]));
    if (!n.compared) { body.appendChild(el("p", {"class": "muted"}, ["Not compared: outside the diff's selection."])); showDetail(); return; }
    body.appendChild(el("h3", {}, ["Rows"]));
    var r = n.rows, delta = (r.base !== null && r.head !== null) ? " (" + signed(r.head - r.base) + ")" : "";
    body.appendChild(el("p", {"id": "detail-rows"}, ["base " + num(r.base) + " \u2192 head " + num(r.head) + delta]));
    body.appendChild(el("h3", {}, ["Columns"]));
    var c = n.columns, list = el("ul", {"class": "cols"});
    c.added.forEach(function (name) { list.appendChild(el("li", {"class": "plus"}, ["+ " + name])); });
    c.removed.forEach(function (name) { list.appendChild(el("li", {"class": "minus"}, ["\u2212 " + name])); });
    c.type_changed.forEach(function (t) { list.appendChild(el("li", {}, ["~ " + t.name + ": " + t.base + " \u2192 " + t.head])); });
    if (c.order_changed) list.appendChild(el("li", {"class": "muted"}, ["column order changed (not a difference)"]));
    body.appendChild(list.childNodes.length ? list : el("p", {"class": "muted"}, ["No columns added, removed or retyped."]));
    body.appendChild(el("h3", {}, ["Values"]));
    var v = n.values;
    if (!v) { body.appendChild(el("p", {"class": "muted"}, [n.values_skipped ? "Not compared: " + n.values_skipped : "Not compared."])); showDetail(); return; }
    body.appendChild(el("p", {}, ["key ", el("code", {}, [v.key.join(", ")]), " \u00b7 ",
      el("span", {"class": "plus"}, ["+" + num(v.added) + " added"]), " \u00b7 ",
      el("span", {"class": "minus"}, ["\u2212" + num(v.removed) + " removed"]), " \u00b7 ",
      "~" + num(v.changed) + " changed \u00b7 " + num(v.unchanged) + " unchanged"]));
    body.appendChild(el("p", {"id": "changed-columns"}, [el("b", {}, [String(v.changed_columns.length)]),
      v.changed_columns.length === 1 ? " column changed" : " columns changed",
      " of " + Object.keys(v.columns).length + " compared"]));
    var matched = v.changed + v.unchanged;
    var table = el("table", {"class": "per-column"}, [el("tr", {}, [el("th", {}, ["column"]), el("th", {}, ["rows changed"]), el("th", {}, ["share of matched rows"])])]);
    Object.keys(v.columns).sort(function (a, b) { return v.columns[b] - v.columns[a]; }).forEach(function (name) {
      var share = matched ? v.columns[name] / matched : 0;
      var bar = el("span", {"class": "bar-share"}, [el("i", {style: "width:" + Math.round(share * 100) + "%"})]);
      table.appendChild(el("tr", {}, [el("td", {}, [name]), el("td", {"class": "num"}, [num(v.columns[name])]),
        el("td", {}, [bar, " " + (share * 100).toFixed(1) + "%"])]));
    });
    body.appendChild(table);
    var s = n.samples;
    if (s && s.rows.length) {
      body.appendChild(el("h3", {}, ["Samples (base | head)"]));
      var head = el("tr", {}, [el("th", {rowspan: "2"}, ["kind"])].concat(s.key.length ? [el("th", {rowspan: "2"}, [s.key.join(", ")])] : []));
      var sub = el("tr");
      s.columns.forEach(function (col) { head.appendChild(el("th", {colspan: "2"}, [col])); sub.appendChild(el("th", {}, ["base"])); sub.appendChild(el("th", {}, ["head"])); });
      var samples = el("table", {"class": "samples"}, [head, sub]);
      s.rows.forEach(function (row) {
        var tr = el("tr", {"class": "kind-" + row.kind}, [el("td", {}, [row.kind])].concat(s.key.length ? [el("td", {}, [row.key.map(text).join(", ")])] : []));
        s.columns.forEach(function (col, j) {
          var b = row.base ? row.base[j] : undefined, h = row.head ? row.head[j] : undefined;
          var differs = row.base && row.head && !same(b, h);
          [["base", row.base, b], ["head", row.head, h]].forEach(function (side) {
            var cls = "side-" + side[0] + (side[1] ? (differs ? " differs" : "") + (side[2] === null ? " null" : "") : " absent");
            tr.appendChild(el("td", {"class": cls}, [side[1] ? text(side[2]) : ""]));
          });
        });
        samples.appendChild(tr);
      });
      body.appendChild(el("div", {"class": "scroll"}, [samples]));
    }
    showDetail();
  }
  function openGroup(g) {
    selected = '[data-group="' + g + '"]'; markSelected();
    body.textContent = "";
    var members = data.groups[g];
    body.appendChild(el("h2", {}, [members.length + " unchanged nodes"]));
    body.appendChild(el("p", {"class": "muted"}, ["Same code, same data on both sides; collapsed to keep the picture on the changes."]));
    var list = el("ul", {"class": "cols"});
    members.forEach(function (i) {
      var a = el("a", {href: "#"}, [data.nodes[i].name]);
      a.addEventListener("click", function (ev) { ev.preventDefault(); if (toggle && current.getAttribute("data-view") !== "full") show(svgs[1]); openNode(i); });
      list.appendChild(el("li", {}, [a]));
    });
    body.appendChild(list);
    showDetail();
  }
  canvas.addEventListener("click", function (ev) {
    if (canvas.dataset.justDragged) return;
    var box = ev.target.closest && ev.target.closest(".box");
    if (!box) return;
    if (box.hasAttribute("data-node")) openNode(+box.getAttribute("data-node"));
    else openGroup(+box.getAttribute("data-group"));
  });
  canvas.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && ev.target.classList && ev.target.classList.contains("box")) ev.target.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  });
  document.getElementById("close").addEventListener("click", function () {
    detail.hidden = true; selected = null; markSelected();
    if (views[current.id].fitted) fit();
  });

  // --- filter by name ---
  var filter = document.getElementById("filter"), matches = document.getElementById("matches");
  function runFilter() {
    var q = filter.value.trim().toLowerCase(), found = 0;
    current.classList.toggle("filtering", q !== "");
    Array.prototype.forEach.call(current.querySelectorAll(".box"), function (box) {
      var names = box.getAttribute("data-name") || box.getAttribute("data-names") || "";
      var hit = q !== "" && names.indexOf(q) !== -1;
      box.classList.toggle("match", hit);
      if (hit) found++;
    });
    matches.textContent = q ? found + (found === 1 ? " match" : " matches") : "";
  }
  filter.addEventListener("input", runFilter);
  filter.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") return;
    var box = current.querySelector(".box.match");
    if (!box) return;
    box.dispatchEvent(new MouseEvent("click", {bubbles: true}));
    var r = box.getBoundingClientRect(), c = canvas.getBoundingClientRect(), v = views[current.id];
    v.x += c.width / 2 - (r.left - c.left + r.width / 2); v.y += c.height / 2 - (r.top - c.top + r.height / 2);
    v.fitted = false; apply();
  });
  window.addEventListener("resize", function () { if (views[current.id].fitted) fit(); });
  fit();
})();
