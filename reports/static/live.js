// The live audit: the network runs in this page over the weights embedded in #live-data
// (float32, little-endian, base64). No network access, no libraries. The drawn grid is centred
// exactly as reports/live.py center_digit does (same steps, same order, float64).
(function () {
  "use strict";
  var store = document.getElementById("live-data");
  var root = document.getElementById("live");
  if (!store || !root) { return; }
  var data = JSON.parse(store.textContent);
  var SIDE = data.side, BOX = data.box, SCALE = 10;
  var R_IN = 0.8, R_OUT = 1.6; // brush: full ink within R_IN grid pixels, none beyond R_OUT

  function floats(b64) {
    var bin = atob(b64), view = new DataView(new ArrayBuffer(bin.length));
    for (var i = 0; i < bin.length; i++) { view.setUint8(i, bin.charCodeAt(i)); }
    var out = new Float64Array(bin.length / 4);
    for (var k = 0; k < out.length; k++) { out[k] = view.getFloat32(4 * k, true); }
    return out;
  }
  function prepare(net) {
    net.convs.forEach(function (c) { c.w = floats(c.weight); c.b = floats(c.bias); });
    net.H = floats(net.head.weight); net.hb = floats(net.head.bias); // fc5 . fc4, folded
    return net;
  }
  var nets = data.networks.map(prepare);

  function conv2d(x, C, s, L) {
    var O = L.out, k = L.k, pad = L.pad, n = s * s, y = new Float64Array(O * n);
    for (var o = 0; o < O; o++) {
      var yo = o * n;
      for (var p = 0; p < n; p++) { y[yo + p] = L.b[o]; }
      for (var j = 0; j < C; j++) {
        var xj = j * n;
        for (var ky = 0; ky < k; ky++) {
          for (var kx = 0; kx < k; kx++) {
            var w = L.w[((o * C + j) * k + ky) * k + kx];
            if (w === 0) { continue; }
            var dy = ky - pad, dx = kx - pad;
            var r0 = Math.max(0, -dy), r1 = Math.min(s, s - dy);
            var c0 = Math.max(0, -dx), c1 = Math.min(s, s - dx);
            for (var r = r0; r < r1; r++) {
              var yr = yo + r * s, xr = xj + (r + dy) * s + dx;
              for (var c = c0; c < c1; c++) { y[yr + c] += w * x[xr + c]; }
            }
          }
        }
      }
    }
    return y;
  }
  function reluPool(y, C, s) {
    var t = Math.floor(s / 2), out = new Float64Array(C * t * t);
    for (var c = 0; c < C; c++) {
      for (var r = 0; r < t; r++) {
        for (var q = 0; q < t; q++) {
          var i = c * s * s + 2 * r * s + 2 * q;
          var m = Math.max(y[i], y[i + 1], y[i + s], y[i + s + 1], 0);
          out[(c * t + r) * t + q] = m;
        }
      }
    }
    return out;
  }
  function forward(net, grid) {
    var h = new Float64Array(SIDE * SIDE), C = 1, s = SIDE, last = null;
    for (var i = 0; i < h.length; i++) { h[i] = (grid[i] - net.mean) / net.std; }
    net.convs.forEach(function (L) {
      var pre = conv2d(h, C, s, L);
      last = { input: h, channels: C, side: s, pre: pre, layer: L };
      h = reluPool(pre, L.out, s); C = L.out; s = Math.floor(s / 2);
    });
    var K = net.classes, n = s * s, F = C * n;
    var logits = Array.from(net.hb), split = [];
    for (var k = 0; k < K; k++) {
      var row = [];
      for (var c = 0; c < C; c++) {
        var acc = 0;
        for (var p = 0; p < n; p++) { acc += net.H[k * F + c * n + p] * h[c * n + p]; }
        row.push(acc); logits[k] += acc;
      }
      split.push(row);
    }
    var top = Math.max.apply(null, logits), z = 0;
    var probs = logits.map(function (v) { var e = Math.exp(v - top); z += e; return e; });
    probs = probs.map(function (e) { return e / z; });
    return { logits: logits, probs: probs, predicted: logits.indexOf(top), split: split, last: last };
  }
  function dissect(run, o) {
    var L = run.last.layer, C = run.last.channels, s = run.last.side, k = L.k, pad = L.pad;
    var n = s * s, best = 0;
    for (var p = 1; p < n; p++) { if (run.last.pre[o * n + p] > run.last.pre[o * n + best]) { best = p; } }
    var py = Math.floor(best / s), px = best % s, rows = [], c = 0;
    var inner = nets[state.net].convs[nets[state.net].convs.indexOf(L) - 1].descriptions;
    for (var j = 0; j < C; j++) {
      var a = 0, wsum = 0;
      for (var ky = 0; ky < k; ky++) {
        for (var kx = 0; kx < k; kx++) {
          var w = L.w[((o * C + j) * k + ky) * k + kx], r = py + ky - pad, q = px + kx - pad;
          wsum += w;
          if (r >= 0 && r < s && q >= 0 && q < s) { a += w * run.last.input[j * n + r * s + q]; }
        }
      }
      c += a;
      rows.push({ j: j + 1, description: inner[j], x: run.last.input[j * n + best], w: wsum, a: a, c: c });
    }
    return { layer: L.name, channel: o + 1, description: L.descriptions[o], position: [py, px], side: s, k: k,
             rows: rows, bias: L.b[o], y: run.last.pre[o * n + best] };
  }

  function floorHalf(v) { return Math.floor(v + 0.5); }
  function resizeAxis(src, nIn, count, nOut) { // along an axis of nIn, `count` lines
    var out = new Float64Array(nOut * count), step = nIn / nOut;
    for (var i = 0; i < nOut; i++) {
      var lo = i * step, hi = (i + 1) * step;
      for (var t = 0; t < count; t++) { out[i * count + t] = 0; }
      for (var sIdx = Math.floor(lo); sIdx < Math.min(nIn, Math.ceil(hi)); sIdx++) {
        var overlap = Math.min(hi, sIdx + 1) - Math.max(lo, sIdx);
        if (overlap > 0) {
          for (var u = 0; u < count; u++) { out[i * count + u] += overlap * src(sIdx, u); }
        }
      }
      for (var v = 0; v < count; v++) { out[i * count + v] /= step; }
    }
    return out;
  }
  function centre(raw) {
    var r0 = SIDE, r1 = -1, c0 = SIDE, c1 = -1, out = new Float64Array(SIDE * SIDE);
    for (var r = 0; r < SIDE; r++) {
      for (var c = 0; c < SIDE; c++) {
        if (raw[r * SIDE + c] > 0) { r0 = Math.min(r0, r); r1 = r; c0 = Math.min(c0, c); c1 = Math.max(c1, c); }
      }
    }
    if (r1 < 0) { return out; }
    var h = r1 - r0 + 1, w = c1 - c0 + 1, factor = BOX / Math.max(h, w);
    var nh = Math.max(1, floorHalf(h * factor)), nw = Math.max(1, floorHalf(w * factor));
    // rows first ([nh, w]), then columns ([nw, nh] transposed back), as area_resize
    var rows = resizeAxis(function (s, u) { return raw[(r0 + s) * SIDE + c0 + u]; }, h, w, nh);
    var cols = resizeAxis(function (s, u) { return rows[u * w + s]; }, w, nh, nw);
    var mass = 0, my = 0, mx = 0, rowSum = new Float64Array(nh), colSum = new Float64Array(nw);
    for (var i = 0; i < nh; i++) {
      for (var q = 0; q < nw; q++) { var v = cols[q * nh + i]; rowSum[i] += v; colSum[q] += v; mass += v; }
    }
    for (i = 0; i < nh; i++) { my += rowSum[i] * (i + 0.5); }
    for (q = 0; q < nw; q++) { mx += colSum[q] * (q + 0.5); }
    var top = Math.min(Math.max(floorHalf(SIDE / 2 - my / mass), 0), SIDE - nh);
    var left = Math.min(Math.max(floorHalf(SIDE / 2 - mx / mass), 0), SIDE - nw);
    for (i = 0; i < nh; i++) {
      for (q = 0; q < nw; q++) {
        out[(top + i) * SIDE + left + q] = Math.min(1, Math.max(0, cols[q * nh + i]));
      }
    }
    return out;
  }

  var state = { net: 0, raw: new Float64Array(SIDE * SIDE), grid: new Float64Array(SIDE * SIDE),
                picked: false, run: null, channel: 0, pending: false, lastUpdateMs: null };
  var canvas = root.querySelector("#live-canvas"), preview = root.querySelector("#live-input");

  function paint(cv, grid) {
    var g = cv.getContext("2d"), cell = cv.width / SIDE;
    g.fillStyle = "#000"; g.fillRect(0, 0, cv.width, cv.height);
    for (var i = 0; i < grid.length; i++) {
      if (grid[i] <= 0) { continue; }
      var v = Math.round(255 * Math.min(1, grid[i]));
      g.fillStyle = "rgb(" + v + "," + v + "," + v + ")";
      g.fillRect((i % SIDE) * cell, Math.floor(i / SIDE) * cell, cell, cell);
    }
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function fmt(v) { return (Math.abs(v) < 5e-4 && v !== 0 ? v.toExponential(1) : v.toFixed(3)); }
  function tableOf(head, rows, onRow) {
    var t = el("table", undefined, "live-table"), hr = el("tr");
    head.forEach(function (h) { hr.appendChild(el("th", h)); });
    t.appendChild(el("thead")).appendChild(hr);
    var body = t.appendChild(el("tbody"));
    rows.forEach(function (r, i) {
      var tr = el("tr");
      r.forEach(function (v) { tr.appendChild(el("td", typeof v === "number" ? fmt(v) : v)); });
      if (onRow) { onRow(tr, i); }
      body.appendChild(tr);
    });
    return t;
  }
  function render() {
    var run = state.run, net = nets[state.net], L = net.convs[net.convs.length - 1];
    paint(canvas, state.raw); paint(preview, state.grid);
    var probs = root.querySelector("#live-probs"); probs.textContent = "";
    probs.appendChild(tableOf(["class", "probability", "score"], run.probs.map(function (p, k) {
      return [String(k), (100 * p).toFixed(1) + "%", run.logits[k]];
    }), function (tr, k) {
      if (k === run.predicted) { tr.className = "predicted"; }
      tr.children[1].style.setProperty("--p", run.probs[k].toFixed(4));
    }));
    var head = ["channel", "description"];
    for (var k = 0; k < net.classes; k++) { head.push(String(k)); }
    var rows = L.descriptions.map(function (d, c) {
      return [String(c + 1), d].concat(run.split.map(function (row) { return row[c]; }));
    });
    rows.push(["", "head bias"].concat(Array.from(net.hb)));
    rows.push(["", "class score"].concat(run.logits));
    var split = root.querySelector("#live-split"); split.textContent = "";
    split.appendChild(tableOf(head, rows, function (tr, c) {
      tr.children[2 + run.predicted].className = "predicted";
      if (c >= L.out) { return; }
      tr.className = "live-channel" + (c === state.channel ? " active" : "");
      tr.tabIndex = 0; tr.dataset.channel = String(c + 1);
      tr.addEventListener("click", function () { api.selectChannel(c + 1); });
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") { api.selectChannel(c + 1); } });
    }));
    var d = dissect(run, state.channel), box = root.querySelector("#live-dissection");
    box.textContent = "";
    box.appendChild(el("p", d.layer + " channel " + d.channel + " (" + d.description + ") at its most active position, row " +
      (d.position[0] + 1) + ", column " + (d.position[1] + 1) + " of its " + d.side + "x" + d.side +
      " map: a_j sums inner channel j's " + d.k + "x" + d.k + " patch there times w[o, j]; y = bias + sum of a_j (before ReLU).", "meta"));
    var drows = d.rows.map(function (r) { return [String(r.j), r.description, r.x, r.w, r.a, r.c, ""]; });
    drows.push(["bias", "", "", "", d.bias, d.rows.length ? d.rows[d.rows.length - 1].c + d.bias : d.bias, d.y]);
    box.appendChild(tableOf(["inner channel j", "x_j: description", "x_j at the position", "w_j (kernel sum)",
      "a_j", "c_j (running sum)", "y"], drows));
  }
  function update() {
    var t0 = performance.now();
    if (!state.picked) { state.grid = centre(state.raw); }
    state.run = forward(nets[state.net], state.grid);
    render();
    state.lastUpdateMs = performance.now() - t0;
  }
  function schedule() {
    if (state.pending) { return; }
    state.pending = true;
    requestAnimationFrame(function () { state.pending = false; update(); });
  }
  function stamp(x0, y0, x1, y1) { // a segment of the stroke, in grid coordinates
    var dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    var rA = Math.max(0, Math.floor(Math.min(y0, y1) - R_OUT)), rB = Math.min(SIDE - 1, Math.ceil(Math.max(y0, y1) + R_OUT));
    var cA = Math.max(0, Math.floor(Math.min(x0, x1) - R_OUT)), cB = Math.min(SIDE - 1, Math.ceil(Math.max(x0, x1) + R_OUT));
    for (var r = rA; r <= rB; r++) {
      for (var c = cA; c <= cB; c++) {
        var px = c + 0.5, py = r + 0.5;
        var t = len2 ? Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / len2)) : 0;
        var d = Math.hypot(px - x0 - t * dx, py - y0 - t * dy);
        var v = Math.max(0, Math.min(1, (R_OUT - d) / (R_OUT - R_IN)));
        if (v > state.raw[r * SIDE + c]) { state.raw[r * SIDE + c] = v; }
      }
    }
  }
  var last = null;
  function at(e) {
    var box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * SIDE / box.width, (e.clientY - box.top) * SIDE / box.height];
  }
  canvas.addEventListener("pointerdown", function (e) {
    if (state.picked) { state.raw = new Float64Array(SIDE * SIDE); state.picked = false; }
    canvas.setPointerCapture(e.pointerId);
    last = at(e); stamp(last[0], last[1], last[0], last[1]); schedule();
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!last) { return; }
    var p = at(e); stamp(last[0], last[1], p[0], p[1]); last = p; schedule();
  });
  function finish() { if (last) { last = null; update(); } }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  var api = {
    grid: function () { return Array.from(state.grid); },
    rawGrid: function () { return Array.from(state.raw); },
    centre: function (raw) { return Array.from(centre(raw)); },
    network: function () { return nets[state.net].key; },
    scores: function () { return { logits: state.run.logits.slice(), probs: state.run.probs.slice(), predicted: state.run.predicted }; },
    contributions: function () {
      var L = nets[state.net].convs[nets[state.net].convs.length - 1];
      return { layer: L.name, descriptions: L.descriptions.slice(), bias: Array.from(nets[state.net].hb),
               values: state.run.split.map(function (r) { return r.slice(); }) };
    },
    dissection: function () { return dissect(state.run, state.channel); },
    timing: function () { return { lastUpdateMs: state.lastUpdateMs }; },
    selectChannel: function (c) { state.channel = c - 1; render(); },
    setNetwork: function (key) {
      var i = nets.findIndex(function (n) { return n.key === key; });
      if (i < 0) { throw new Error("no live network " + key); }
      state.net = i; state.channel = 0; root.querySelector("#live-net").value = key; update();
    },
    pickDigit: function (i) { state.raw = floats(data.digits[i].pixels); state.grid = state.raw; state.picked = true; update(); },
    clear: function () { state.raw = new Float64Array(SIDE * SIDE); state.picked = false; update(); },
  };
  var select = root.querySelector("#live-net");
  nets.forEach(function (n) { var o = el("option", n.title); o.value = n.key; select.appendChild(o); });
  select.addEventListener("change", function () { api.setNetwork(select.value); });
  var digits = root.querySelector("#live-digits");
  data.digits.forEach(function (d, i) {
    var b = el("button", String(d.label)); b.type = "button"; b.title = "test digit #" + d.index;
    b.addEventListener("click", function () { api.pickDigit(i); });
    digits.appendChild(b);
  });
  root.querySelector("#live-clear").addEventListener("click", api.clear);
  window.liveAudit = api;
  update();
})();
