// qurate report: paged, sortable, filterable tables and Plotly charts drawn from the JSON embedded in the page.
// No network: Plotly is embedded in the page. Every error is recorded on <body data-errors> (the browser test
// reads it) and shown at the top of the page.
(function () {
  "use strict";
  var errors = [];
  function fail(message) {
    errors.push(String(message));
    document.body.setAttribute("data-errors", errors.join(" | "));
    var box = document.getElementById("script-errors");
    if (box) { box.hidden = false; box.textContent = "Report script error: " + errors.join(" | "); }
  }
  window.addEventListener("error", function (e) { fail(e.message || e); });

  var PAGE = 10;
  // The same meaning has the same colour on every chart.
  var COLORS = {"kept": "#3569b8", "rejected": "#e0783a", "dead letter": "#8a8f98"};

  function enhanceTable(wrap) {
    var table = wrap.querySelector("table");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var shown = rows, page = 0, sortCol = -1, sortDir = 1;
    var filter = wrap.querySelector("input.filter");
    var info = wrap.querySelector(".pageinfo");
    var prev = wrap.querySelector("button.prev"), next = wrap.querySelector("button.next");

    function key(row, col) {
      var cell = row.cells[col];
      var v = cell.getAttribute("data-v");
      return v !== null ? parseFloat(v) : cell.textContent.toLowerCase();
    }
    function render() {
      var pages = Math.max(1, Math.ceil(shown.length / PAGE));
      page = Math.min(page, pages - 1);
      rows.forEach(function (r) { r.hidden = true; });
      shown.slice(page * PAGE, page * PAGE + PAGE).forEach(function (r) { r.hidden = false; });
      shown.forEach(function (r) { body.appendChild(r); });
      if (info) {
        info.textContent = shown.length === rows.length
          ? "rows " + (shown.length ? page * PAGE + 1 : 0) + "-" + Math.min(shown.length, page * PAGE + PAGE)
            + " of " + rows.length
          : shown.length + " of " + rows.length + " rows match; page " + (page + 1) + " of " + pages;
      }
      if (prev) prev.disabled = page === 0;
      if (next) next.disabled = page >= pages - 1;
    }
    function apply() {
      var q = filter ? filter.value.toLowerCase() : "";
      shown = rows.filter(function (r) { return !q || r.textContent.toLowerCase().indexOf(q) >= 0; });
      if (sortCol >= 0) {
        shown.sort(function (a, b) {
          var x = key(a, sortCol), y = key(b, sortCol);
          return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
        });
      }
      render();
    }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () {
        sortDir = sortCol === col ? -sortDir : (th.classList.contains("num") ? -1 : 1);
        sortCol = col;
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        apply();
      });
    });
    if (filter) filter.addEventListener("input", function () { page = 0; apply(); });
    if (prev) prev.addEventListener("click", function () { page -= 1; render(); });
    if (next) next.addEventListener("click", function () { page += 1; render(); });
    wrap.classList.add("enhanced");
    render();
  }

  function drawChart(div, spec) {
    var traces = Object.keys(spec.series).map(function (name) {
      var ys = spec.series[name];
      var xs = spec.x.slice(0, ys.length).map(String);
      if (spec.kind === "line") {
        var style = (spec.styles || {})[name] || "-";
        return {type: "scatter", mode: style.indexOf("o") >= 0 ? "lines+markers" : "lines", name: name,
                x: spec.x.slice(0, ys.length), y: ys,
                line: {dash: style.indexOf("--") >= 0 ? "dash" : style.indexOf(":") >= 0 ? "dot" : "solid"}};
      }
      var bar = {type: "bar", name: name, x: xs, y: ys, hovertemplate: "%{x}: %{y:,}<extra>" + name + "</extra>"};
      if (COLORS[name]) bar.marker = {color: COLORS[name]};
      return bar;
    });
    var many = spec.x.length > 8;
    var longest = spec.x.reduce(function (m, v) { return Math.max(m, String(v).length); }, 0);
    // Rotated category labels take room below the plot: grow the chart rather than shrink the bars.
    var below = spec.kind === "line" || !many ? 0 : Math.min(220, longest * 6);
    var layout = {
      title: {text: spec.title || "", font: {size: 14}, x: 0, xanchor: "left"},
      barmode: spec.stacked ? "stack" : "group",
      height: 340 + below, margin: {l: 70, r: 20, t: 60, b: 50},
      xaxis: {title: {text: spec.xlabel || ""}, automargin: true, tickangle: many ? -40 : 0,
              type: spec.kind === "line" ? "-" : "category", tickfont: {size: 12}},
      yaxis: {title: {text: spec.ylabel || ""}, automargin: true, type: spec.log ? "log" : "linear",
              tickformat: spec.log ? "" : ",~s", tickfont: {size: 12}},
      showlegend: Object.keys(spec.series).length > 1,
      legend: {orientation: "h", yanchor: "bottom", y: 1.0, xanchor: "right", x: 1},
      font: {family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12}
    };
    Plotly.newPlot(div, traces, layout, {displaylogo: false, responsive: true,
                                         modeBarButtonsToRemove: ["select2d", "lasso2d"]});
    div.setAttribute("data-drawn", "1");
  }

  document.addEventListener("DOMContentLoaded", function () {
    try {
      Array.prototype.forEach.call(document.querySelectorAll(".tablewrap"), function (w) {
        try { enhanceTable(w); } catch (e) { fail("table: " + e); }
      });
      var drawn = 0;
      Array.prototype.forEach.call(document.querySelectorAll("div.chart"), function (div) {
        try {
          if (typeof Plotly === "undefined") throw new Error("Plotly is not loaded");
          drawChart(div, JSON.parse(document.getElementById(div.getAttribute("data-spec")).textContent));
          drawn += 1;
        } catch (e) { fail("chart " + div.id + ": " + e); }
      });
      document.body.setAttribute("data-charts-drawn", String(drawn));
      // Opening a collapsed section resizes its charts (Plotly lays out hidden charts at a default width).
      Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) {
        d.addEventListener("toggle", function () {
          if (d.open) Array.prototype.forEach.call(d.querySelectorAll("div.chart"), function (c) {
            Plotly.Plots.resize(c);
          });
        });
      });
      // A link to a section (the contents, or a #fragment in the address) opens it and the sections around it.
      function reveal() {
        var target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
        for (var el = target; el; el = el.parentElement) if (el.tagName === "DETAILS") el.open = true;
        if (target) target.scrollIntoView();
      }
      window.addEventListener("hashchange", reveal);
      reveal();
      document.getElementById("expand-all").addEventListener("click", function () {
        Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
      });
      document.getElementById("collapse-all").addEventListener("click", function () {
        Array.prototype.forEach.call(document.querySelectorAll("details.section"), function (d) { d.open = false; });
      });
    } catch (e) { fail(e); }
    document.body.setAttribute("data-ready", "1");
  });
})();
