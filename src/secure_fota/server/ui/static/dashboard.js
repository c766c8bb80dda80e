// secure-fota dashboard: charts from JSON data blocks, re-drawn after htmx swaps.
// No inline scripts anywhere: a chart's data is JSON in its canvas's data-chart attribute
// (htmx drops <script> elements from swapped content, so no JSON <script> blocks either).
(function () {
  "use strict";

  var COLOURS = ["#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2",
    "#db2777", "#65a30d", "#475569", "#ea580c"];
  var SERIES = { confirmed: "#16a34a", failed: "#dc2626", silent: "#7c3aed",
    pending: "#94a3b8", rolled_back: "#d97706" };

  function colourFor(label, index) {
    return SERIES[label] || COLOURS[index % COLOURS.length];
  }

  function build(canvas) {
    if (canvas.dataset.drawn === "1" || typeof Chart === "undefined") {
      return;
    }
    var spec = JSON.parse(canvas.dataset.chart);
    var datasets = spec.datasets.map(function (set, index) {
      var colour = colourFor(set.key || set.label, index);
      var background = spec.type === "doughnut" ?
        set.data.map(function (_, i) { return COLOURS[i % COLOURS.length]; }) : colour;
      return {
        label: set.label, data: set.data, borderColor: colour,
        backgroundColor: background, fill: false, tension: 0.2,
        stack: spec.stacked ? "all" : undefined
      };
    });
    var scales = spec.type === "doughnut" ? {} : {
      x: { stacked: !!spec.stacked, title: { display: !!spec.x, text: spec.x || "" } },
      y: { stacked: !!spec.stacked, beginAtZero: true,
        title: { display: !!spec.y, text: spec.y || "" } }
    };
    canvas.dataset.drawn = "1";
    canvas.chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        scales: scales, plugins: { legend: { position: "bottom" } } }
    });
  }

  function drawAll(root) {
    var canvases = (root || document).querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      build(canvases[i]);
    }
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var old = event.detail.target.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < old.length; i++) {
      if (old[i].chart) { old[i].chart.destroy(); }
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.detail.elt); });
})();
