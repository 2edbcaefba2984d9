/* The seqd console (served by server/console.c): one script for every page; the path
 * names the page. Pages poll the JSON endpoints under /ui/api/ and render tables (the
 * exact values) and charts (Chart.js, vendored). Nothing here changes data. When a page
 * has rendered live data once, <body data-ready="1"> says so (the browser test waits on
 * it); errors go to errors.js's collector. */
(function () {
  "use strict";

  // ---- helpers ----
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function fmtTime(ms) {
    if (!ms) return "none";
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function fmtClock(ms) { return new Date(ms).toISOString().slice(11, 19); }
  function fmtDur(s) {
    if (s === null || s === undefined) return "–";
    if (s < 0) s = 0;
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }
  function fmtNum(v, digits) {
    if (v === null || v === undefined) return "–";
    return digits === undefined ? String(v) : Number(v).toFixed(digits);
  }
  function getJSON(url) {
    return fetch(url, {cache: "no-store"}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
        return body;
      });
    });
  }
  function main() { return document.getElementById("main"); }
  function ready() {
    document.body.setAttribute("data-ready", "1");
    document.getElementById("updated").textContent = "updated " + fmtClock(Date.now()) + " UTC";
  }
  function failed(err) {
    var box = document.getElementById("fetch-error");
    if (!box) {
      box = el("div", {id: "fetch-error", cls: "error-box"});
      main().insertBefore(box, main().firstChild);
    }
    box.textContent = "Cannot reach seqd: " + err.message;
  }
  function clearFailed() {
    var box = document.getElementById("fetch-error");
    if (box) box.remove();
  }
  function poll(fn, ms) {
    function tick() {
      fn().then(function () { clearFailed(); ready(); }, failed);
    }
    tick();
    setInterval(tick, ms);
  }
  function table(headers, rows, attrs) {
    var t = el("table", attrs || {});
    var tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", {cls: h.num ? "num" : "", text: h.label || h})); });
    t.appendChild(el("thead", null, tr));
    var body = el("tbody");
    rows.forEach(function (r) { body.appendChild(r); });
    t.appendChild(body);
    return t;
  }
  function card(label, value, id) {
    return el("div", {cls: "card"}, el("div", {cls: "label", text: label}),
              el("div", {cls: "value", id: id, text: value}));
  }

  // ---- charts ----
  var PALETTE = ["#2f5bd3", "#d35f2f", "#1a7f37", "#8e44ad", "#b26a00", "#00838f", "#c2185b", "#5d4037"];
  var charts = {};
  function chartBox(id, title) {
    return el("div", {cls: "chart"}, el("h3", {text: title}),
              el("div", {cls: "box"}, el("canvas", {id: id})));
  }
  function drawChart(id, labels, series) {
    var datasets = series.map(function (s, i) {
      return {label: s.label, data: s.data, borderColor: PALETTE[i % PALETTE.length],
              backgroundColor: PALETTE[i % PALETTE.length], borderWidth: 1.5,
              pointRadius: labels.length < 40 ? 2 : 0, // lone points must show
              spanGaps: true, tension: 0};
    });
    if (charts[id]) {
      charts[id].data.labels = labels;
      charts[id].data.datasets = datasets;
      charts[id].update("none");
      return;
    }
    if (typeof Chart === "undefined") return; // the table still carries the values
    charts[id] = new Chart(document.getElementById(id), {
      type: "line", data: {labels: labels, datasets: datasets},
      options: {animation: false, responsive: true, maintainAspectRatio: false,
                interaction: {mode: "index", intersect: false},
                plugins: {legend: {display: datasets.length <= 16, labels: {boxWidth: 10}}},
                scales: {x: {ticks: {maxTicksLimit: 8}}, y: {beginAtZero: true}}}
    });
  }

  // ---- Overview ----
  function overview() {
    var m = main();
    m.textContent = "";
    m.appendChild(el("h1", {text: "Overview"}));
    m.appendChild(el("div", {id: "ready-banner", cls: "banner"}));
    m.appendChild(el("div", {cls: "cards"},
      card("Stream watermark behind now", "–", "c-wm"), card("Lag (messages)", "–", "c-lag"),
      card("Ingest (messages/s)", "–", "c-ingest"), card("Reads/s", "–", "c-reads"),
      card("Read p50 / p99 (ms)", "–", "c-lat"), card("Applied events", "–", "c-applied"),
      card("Malformed", "–", "c-malformed"), card("Too far in the future", "–", "c-future"),
      card("Damaged data", "–", "c-damaged"), card("Late, batch-owned", "–", "c-late")));
    m.appendChild(el("div", {cls: "charts"},
      chartBox("ch-age", "Watermark age per partition (s since it last advanced), last hour"),
      chartBox("ch-lag", "Lag per partition (messages), last hour"),
      chartBox("ch-ingest", "Ingest (messages/s), last hour"),
      chartBox("ch-reads", "Reads/s and errors/s, last hour"),
      chartBox("ch-lat", "Read latency p50 / p99 (ms), last hour")));
    m.appendChild(el("h2", {text: "Partitions"}));
    m.appendChild(el("div", {id: "parts"}));
    m.appendChild(el("h2", {text: "Errors by code (since start)"}));
    m.appendChild(el("div", {id: "errcodes"}));
    poll(function () { return getJSON("/ui/api/overview").then(renderOverview); }, 5000);
  }

  function last(a) { return a.length ? a[a.length - 1] : null; }

  function renderOverview(o) {
    var b = document.getElementById("ready-banner");
    b.className = "banner " + (o.ready ? "ok" : "bad");
    b.textContent = o.ready ? "Ready: brokers reachable, store writes succeed, stream caught up"
                            : "Not ready: " + o.not_ready;
    var s = o.series;
    document.getElementById("c-wm").textContent =
      o.stream_watermark_ms ? fmtDur((o.now_ms - o.stream_watermark_ms) / 1000) : "no events";
    document.getElementById("c-lag").textContent = String(o.lag);
    document.getElementById("c-ingest").textContent = fmtNum(last(s.ingest_per_s), 1);
    document.getElementById("c-reads").textContent = fmtNum(last(s.reads_per_s), 1);
    document.getElementById("c-lat").textContent =
      fmtNum(last(s.p50_ms), 2) + " / " + fmtNum(last(s.p99_ms), 2);
    document.getElementById("c-applied").textContent = String(o.counts.applied);
    document.getElementById("c-malformed").textContent = String(o.counts.malformed);
    document.getElementById("c-future").textContent = String(o.counts.future);
    document.getElementById("c-damaged").textContent = String(o.counts.damaged);
    document.getElementById("c-late").textContent = String(o.counts.late_batch_owned);

    var labels = s.t_ms.map(fmtClock);
    var parts = Object.keys(s.age_s);
    drawChart("ch-age", labels, parts.map(function (p) { return {label: "p" + p, data: s.age_s[p]}; }));
    drawChart("ch-lag", labels, parts.map(function (p) { return {label: "p" + p, data: s.lag[p]}; }));
    drawChart("ch-ingest", labels, [{label: "messages/s", data: s.ingest_per_s}]);
    drawChart("ch-reads", labels, [{label: "reads/s", data: s.reads_per_s},
                                   {label: "errors/s", data: s.errors_per_s}]);
    drawChart("ch-lat", labels, [{label: "p50", data: s.p50_ms}, {label: "p99", data: s.p99_ms}]);

    var rows = o.partitions.map(function (p) {
      return el("tr", {"data-partition": p.partition},
        el("td", {text: p.partition}), el("td", {cls: "num lag", text: p.lag}),
        el("td", {cls: "num age", text: fmtDur(p.age_s)}),
        el("td", {text: fmtTime(p.watermark_ms)}),
        el("td", {cls: "num", text: p.next_offset}),
        el("td", {cls: "num", text: p.high_offset < 0 ? "unknown" : p.high_offset}));
    });
    var pt = document.getElementById("parts");
    pt.textContent = "";
    pt.appendChild(table(["Partition", {label: "Lag", num: 1}, {label: "Watermark age", num: 1},
                          "Event-time watermark", {label: "Next offset", num: 1},
                          {label: "High offset", num: 1}], rows, {id: "partitions"}));
    var codes = Object.keys(o.errors);
    var et = document.getElementById("errcodes");
    et.textContent = "";
    if (!codes.length) et.appendChild(el("p", {cls: "muted", text: "No call has failed."}));
    else et.appendChild(table(["Code", {label: "Calls", num: 1}], codes.map(function (c) {
      return el("tr", {"data-code": c}, el("td", {text: c}), el("td", {cls: "num", text: o.errors[c]}));
    }), {id: "errors-by-code"}));
  }

  // ---- Batches ----
  function batches() {
    var m = main();
    m.textContent = "";
    m.appendChild(el("h1", {text: "Batches"}));
    m.appendChild(el("p", {cls: "muted", text: "Committed coverage per sequence: each generation's ranges as bars over [now − retention, now], the horizon cut (now − H) and now as lines. The completeness gap is the part of [now − retention, now − H) no batch covers."}));
    m.appendChild(el("div", {id: "seqs"}));
    m.appendChild(el("h2", {text: "LoadBatch calls (this process)"}));
    m.appendChild(el("div", {id: "loads"}));
    poll(function () { return getJSON("/ui/api/batches").then(renderBatches); }, 10000);
  }

  // The coverage over [now - retention, now] in HTML (positions in %, so text keeps its
  // shape at any width): a bar per committed range, labelled with its generation, and the
  // horizon cut and now as lines.
  function timeline(b, q) {
    var x0 = q.floor_ms, span = b.now_ms - x0;
    function pct(t) { return Math.max(0, Math.min(100, (t - x0) / span * 100)); }
    var track = el("div", {cls: "track"});
    var gens = {};
    q.coverage.forEach(function (c) { gens[c.generation] = 1; });
    var genList = Object.keys(gens).map(Number).sort(function (a, b) { return a - b; });
    q.coverage.forEach(function (c) {
      var i = genList.indexOf(c.generation), left = pct(c.start_ms);
      var bar = el("div", {cls: "bar" + (left > 80 ? " right" : ""), "data-generation": c.generation,
                           title: "generation " + c.generation + ": " + fmtTime(c.start_ms) + " → " + fmtTime(c.end_ms)},
                   el("span", {text: "gen " + c.generation}));
      bar.style.left = left + "%";
      bar.style.width = (pct(c.end_ms) - left) + "%";
      bar.style.background = PALETTE[i % PALETTE.length];
      track.appendChild(bar);
    });
    [[b.cut_ms, "horizon"], [b.now_ms, "now"]].forEach(function (l) {
      var line = el("div", {cls: "line " + l[1]}, el("span", {text: l[1]}));
      line.style.left = pct(l[0]) + "%";
      track.appendChild(line);
    });
    return el("div", {cls: "timeline", "data-sequence": q.name}, track,
              el("div", {cls: "axis"}, el("span", {text: fmtTime(q.floor_ms)}), el("span", {text: fmtTime(b.now_ms)})));
  }

  function renderBatches(b) {
    var root = document.getElementById("seqs");
    root.textContent = "";
    b.sequences.forEach(function (q) {
      var sec = el("section", {"data-sequence": q.name});
      sec.appendChild(el("h2", {text: q.name}));
      sec.appendChild(el("div", {cls: "cards"},
        card("Batch generation", q.generation ? String(q.generation) : "none"),
        card("Batch coverage ends", q.watermark_ms ? fmtTime(q.watermark_ms) : "none"),
        card("Completeness gap", fmtDur(q.gap_ms / 1000)),
        card("Retention", fmtDur(q.retention_ms / 1000))));
      sec.appendChild(timeline(b, q));
      if (q.coverage.length)
        sec.appendChild(table(["Generation", "From", "To"], q.coverage.map(function (c) {
          return el("tr", {"data-generation": c.generation}, el("td", {cls: "gen", text: c.generation}),
                    el("td", {text: fmtTime(c.start_ms)}), el("td", {text: fmtTime(c.end_ms)}));
        }), {cls: "coverage"}));
      else sec.appendChild(el("p", {cls: "muted", text: "No batch committed: the stream serves all of it."}));
      // The persisted load history (engine/history.h): loads in effect, replaced by newer
      // ones, undone by a rollback, or reclaimed (their data gone).
      var hist = q.history || [];
      if (hist.length) {
        sec.appendChild(el("h3", {text: "Loads kept"}));
        sec.appendChild(table([{label: "Generation", num: 1}, "Range", "Committed", "State", "Since",
                               {label: "Users", num: 1}, {label: "Events", num: 1}], hist.map(function (l) {
          var since = l.reclaimed_ms || l.undone_ms || l.replaced_ms;
          return el("tr", {"data-generation": l.generation, "data-state": l.state},
            el("td", {cls: "num", text: l.generation}),
            el("td", {text: fmtTime(l.start_ms) + " → " + fmtTime(l.end_ms)}),
            el("td", {text: fmtTime(l.committed_ms)}),
            el("td", {cls: "state", text: l.state}),
            el("td", {text: since ? fmtTime(since) : ""}),
            el("td", {cls: "num", text: l.users}), el("td", {cls: "num", text: l.events}));
        }), {cls: "loads-kept"}));
      }
      root.appendChild(sec);
    });
    var lt = document.getElementById("loads");
    lt.textContent = "";
    if (!b.loads.length) lt.appendChild(el("p", {cls: "muted", text: "No LoadBatch since this seqd started."}));
    else lt.appendChild(table(["Finished", "Sequence", {label: "Generation", num: 1}, "Range", "Result",
                               {label: "Files", num: 1}, {label: "Users", num: 1}, {label: "Events", num: 1},
                               {label: "Took", num: 1}], b.loads.map(function (l) {
      return el("tr", {"data-generation": l.generation},
        el("td", {text: fmtTime(l.done_ms)}), el("td", {text: l.sequence}),
        el("td", {cls: "num", text: l.generation}),
        el("td", {text: fmtTime(l.start_ms) + " → " + fmtTime(l.end_ms)}),
        el("td", {cls: l.ok ? "okc" : "err", text: l.ok ? "OK" : l.code + ": " + l.message}),
        el("td", {cls: "num", text: l.files}), el("td", {cls: "num", text: l.users}),
        el("td", {cls: "num", text: l.events}), el("td", {cls: "num", text: l.duration_ms + " ms"}));
    }), {id: "load-history"}));
  }

  // ---- Sequence inspector ----
  function inspect() {
    var m = main();
    m.textContent = "";
    m.appendChild(el("h1", {text: "Sequence inspector"}));
    var params = new URLSearchParams(location.search);
    var user = el("input", {name: "user", inputmode: "numeric", placeholder: "user id", value: params.get("user") || ""});
    var seq = el("select", {name: "sequence"});
    var limit = el("input", {name: "limit", inputmode: "numeric", placeholder: "all", value: params.get("limit") || ""});
    var view = el("select", {name: "view"},
      el("option", {value: "merged", text: "merged (what readers get)"}),
      el("option", {value: "stream_only", text: "stream only"}),
      el("option", {value: "batch_only", text: "batch only"}));
    view.value = params.get("view") || "merged";
    var asOf = el("input", {name: "as_of", inputmode: "numeric", placeholder: "now (or ms since epoch)",
                            value: params.get("as_of") || ""});
    var form = el("form", {cls: "inspect"},
      el("label", null, "User id", user), el("label", null, "Sequence", seq),
      el("label", null, "View", view), el("label", null, "As of", asOf),
      el("label", null, "Newest N", limit), el("button", {type: "submit", text: "Show"}));
    m.appendChild(form);
    m.appendChild(el("div", {id: "result"}));
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var q = new URLSearchParams();
      q.set("user", user.value.trim());
      q.set("sequence", seq.value);
      if (view.value !== "merged") q.set("view", view.value);
      if (asOf.value.trim()) q.set("as_of", asOf.value.trim());
      if (limit.value.trim()) q.set("limit", limit.value.trim());
      history.pushState(null, "", "/ui/inspect?" + q.toString());
      show(q);
    });
    window.addEventListener("popstate", function () { location.reload(); });
    getJSON("/ui/api/batches").then(function (b) {
      b.sequences.forEach(function (q) { seq.appendChild(el("option", {value: q.name, text: q.name})); });
      if (params.get("sequence")) seq.value = params.get("sequence");
      if (params.get("user") && params.get("sequence")) show(params);
      else ready();
    }, failed);
  }

  function show(params) {
    var res = document.getElementById("result");
    res.textContent = "";
    return getJSON("/ui/api/sequence?" + params.toString()).then(function (r) {
      res.appendChild(el("div", {cls: "cards"},
        card("Events", String(r.count), "event-count"),
        card("Stream watermark", fmtTime(r.stream_watermark_ms)),
        card("Batch generation", r.batch_generation ? String(r.batch_generation) : "none", "batch-generation"),
        card("Batch coverage ends", fmtTime(r.batch_watermark_ms)),
        card("Completeness gap", fmtDur(r.completeness_gap_ms / 1000), "completeness-gap"),
        card("View", r.view.replace("_", " "), "view"),
        card("As of", fmtTime(r.as_of_ms), "as-of")));
      var heads = ["#", "Time", "Type", {label: "Item", num: 1}];
      r.columns.forEach(function (c) { heads.push({label: c, num: 1}); });
      if (r.provenance) heads.push("Source", {label: "Generation", num: 1});
      var rows = r.events.map(function (e, i) {
        var tr = el("tr", null, el("td", {text: i + 1}), el("td", {text: fmtTime(e.time_ms)}),
                    el("td", {text: e.type}), el("td", {cls: "num item", text: e.item}));
        e.columns.forEach(function (v) { tr.appendChild(el("td", {cls: "num", text: v === null ? "NaN" : v})); });
        if (r.provenance) {
          tr.appendChild(el("td", {cls: "source", text: e.source || ""}));
          tr.appendChild(el("td", {cls: "num", text: e.generation || ""}));
        }
        return tr;
      });
      res.appendChild(rows.length ? table(heads, rows, {id: "events"})
                                  : el("p", {cls: "muted", text: "No events for this user in this sequence."}));
      ready();
    }, function (err) {
      res.appendChild(el("div", {cls: "error-box", id: "query-error", text: err.message}));
      ready();
    });
  }

  // ---- Cluster ----
  function cluster() {
    var m = main();
    m.textContent = "";
    m.appendChild(el("h1", {text: "Cluster"}));
    m.appendChild(el("div", {id: "cluster"}));
    poll(function () {
      return Promise.all([getJSON("/ui/api/cluster"), getJSON("/ui/api/overview")]).then(function (x) {
        renderCluster(x[0], x[1]);
      });
    }, 10000);
  }

  function nodeField(n, names) {
    for (var i = 0; i < names.length; i++) if (n[names[i]] !== undefined) return n[names[i]];
    return undefined;
  }

  function renderCluster(c, o) {
    var root = document.getElementById("cluster");
    root.textContent = "";
    if (!c.cluster) {
      root.appendChild(el("p", {id: "single-node", text: "Single node: this seqd is not part of a cluster; it holds every partition of the topic."}));
      root.appendChild(el("h2", {text: "Partitions of this node"}));
      var g = el("div", {cls: "grid"});
      o.partitions.forEach(function (p) {
        g.appendChild(el("div", {cls: "cell " + (p.lag === 0 && p.high_offset >= 0 ? "caught" : "held"),
                                 title: "lag " + p.lag}, el("b", {text: "p" + p.partition}), el("span", {text: "lag " + p.lag})));
      });
      root.appendChild(g);
      return;
    }
    var map = c.map, nodes = map.nodes || [];
    var groups = {};
    nodes.forEach(function (n) {
      var gname = nodeField(n, ["group", "group_id"]) || "default";
      (groups[gname] = groups[gname] || []).push(n);
    });
    Object.keys(groups).sort().forEach(function (gname) {
      var sec = el("section", {"data-group": gname});
      sec.appendChild(el("h2", {text: "Group " + gname}));
      var owner = {}, maxp = -1;
      sec.appendChild(table(["Node", "Address", "Ready", {label: "Held", num: 1}, {label: "Caught up", num: 1}],
        groups[gname].map(function (n) {
          var id = nodeField(n, ["id", "node_id", "node"]);
          var held = nodeField(n, ["held", "partitions", "held_partitions"]) || [];
          var caught = nodeField(n, ["caught_up", "caught_up_partitions"]) || [];
          // caught up with a gap: the Kafka log no longer reached back when it began reading
          var gaps = {};
          (nodeField(n, ["gaps"]) || []).forEach(function (g) { gaps[g.partition] = g.stream_from_ms; });
          held.forEach(function (p) { owner[p] = {id: id, caught: caught.indexOf(p) >= 0, gap: gaps[p]}; maxp = Math.max(maxp, p); });
          return el("tr", {"data-node": id}, el("td", {text: id}),
                    el("td", {text: nodeField(n, ["address", "advertise", "grpc"]) || ""}),
                    el("td", {text: nodeField(n, ["ready"]) ? "yes" : "no"}),
                    el("td", {cls: "num", text: held.length}), el("td", {cls: "num", text: caught.length}));
        })));
      var grid = el("div", {cls: "grid"});
      for (var p = 0; p <= maxp; p++) {
        var w = owner[p];
        var gapNote = w && w.gap ? "; caught up with a gap: holds the stream from " + new Date(w.gap).toISOString() : "";
        grid.appendChild(el("div", {cls: "cell " + (w ? (w.caught ? "caught" : "held") : ""), title: w ? "node " + w.id + gapNote : "not held"},
                            el("b", {text: "p" + p}), el("span", {text: w ? String(w.id) + (w.gap ? " (gap)" : "") : "–"})));
      }
      sec.appendChild(grid);
      root.appendChild(sec);
    });
  }

  // ---- routing ----
  var path = location.pathname.replace(/\/+$/, "") || "/ui";
  var page = {"/ui": "overview", "/ui/batches": "batches", "/ui/inspect": "inspect", "/ui/cluster": "cluster"}[path] || "overview";
  document.querySelectorAll("header nav a").forEach(function (a) {
    if (a.getAttribute("data-page") === page) a.className = "active";
  });
  ({overview: overview, batches: batches, inspect: inspect, cluster: cluster})[page]();
})();
