// FlowFleet web console: draws the charts the server describes in data-chart attributes with uPlot, and
// on the fleet page shows new samples as the collector writes them (Server-Sent Events from /events).
// All collector text is set with textContent, never as markup.
"use strict";

function drawCharts() {
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var c = JSON.parse(el.getAttribute("data-chart"));
    if (!c.x || c.x.length === 0) {
      el.textContent = "no data";
      return;
    }
    var small = el.classList.contains("small");
    var bars = el.classList.contains("bars");
    var opts = {
      width: small ? 240 : Math.min(900, el.clientWidth || 900),
      height: small ? 50 : 220,
      legend: { show: !small },
      cursor: { show: !small },
      scales: { x: { time: !bars } },
      axes: small ? [{ show: false }, { show: false }] : [{}, {}],
      series: [{}, { label: c.name, stroke: "#1d3557", fill: "rgba(29,53,87,0.2)", points: { show: true, size: small ? 4 : 6 } }],
    };
    if (bars) {
      opts.series[1].paths = uPlot.paths.bars({ size: [0.6, 60] });
      opts.width = Math.max(opts.width, 110 * c.x.length);
      opts.axes = [{ values: function (u, vals) { return vals.map(function (v) { var l = c.labels[v] || ""; return l.length > 16 ? l.slice(0, 15) + "…" : l; }); }, rotate: 0 }, {}];
      opts.scales.x.range = [-0.5, c.x.length - 0.5];
    }
    new uPlot(opts, [c.x, c.y], el);
  });
}

function watch() {
  var table = document.getElementById("hosts");
  if (!table || !window.EventSource) return;
  var live = document.getElementById("live");
  var lost = document.getElementById("lost");
  var lostTotal = 0;
  var es = new EventSource("/events");
  es.addEventListener("open", function () { live.textContent = "Live: connected, waiting for new samples…"; });
  es.addEventListener("sample", function (e) {
    var d = JSON.parse(e.data);
    live.textContent = "Live: sample " + d.id + " (" + d.flows + " flows, " + d.state + ")";
    var row = table.querySelector('tr[data-host="' + CSS.escape(d.host) + '"]');
    if (!row) {
      lost.hidden = false;
      lost.textContent = "New host " + d.host + ": reload the page to see it.";
      return;
    }
    var cell = row.querySelector(".latest");
    cell.textContent = "";
    var a = document.createElement("a");
    a.href = "/samples/" + encodeURIComponent(d.id);
    a.textContent = d.id + " (" + d.flows + " flows)";
    cell.appendChild(a);
  });
  es.addEventListener("lost", function (e) {
    lostTotal += JSON.parse(e.data).count;
    lost.hidden = false;
    lost.textContent = lostTotal + " live updates were lost (the console fell behind); reload the page for the current state.";
  });
  es.addEventListener("failed", function (e) {
    live.textContent = "Live updates stopped: " + JSON.parse(e.data).error;
  });
}

document.addEventListener("DOMContentLoaded", function () {
  drawCharts();
  watch();
});
