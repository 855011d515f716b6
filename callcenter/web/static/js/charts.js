// The reports page's charts, drawn by the vendored Apache ECharts from the JSON the server
// put in #chart-data (the browser computes no figure). Colours are the Okabe-Ito palette,
// safe for colour-blind readers, and every series also carries a pattern (ECharts' decals),
// so the charts still read in black-and-white print.
"use strict";

(function () {
  const el = document.getElementById("chart-data");
  if (!el || typeof echarts === "undefined") return;
  const d = JSON.parse(el.textContent);
  const w = d.words;
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"];
  const base = {
    color: PALETTE,
    aria: { enabled: true, decal: { show: true } },
    animation: false,
    textStyle: { fontFamily: "DejaVu Sans, Arial, sans-serif" },
    grid: { left: 48, right: 16, top: 48, bottom: 40 },
    tooltip: { trigger: "axis" },
    legend: { top: 22 },
  };
  const charts = [];

  function draw(id, option) {
    const node = document.getElementById(id);
    if (!node) return;
    const chart = echarts.init(node, null, { renderer: "svg" });
    chart.setOption(Object.assign({}, base, option));
    charts.push(chart);
  }

  draw("chart-calls", {
    title: { text: w.chart_calls, textStyle: { fontSize: 14 } },
    xAxis: { type: "category", data: d.keys },
    yAxis: { type: "value", minInterval: 1 },
    series: [
      { name: w.rep_offered, type: "bar", data: d.offered },
      { name: w.rep_answered, type: "bar", data: d.answered },
      { name: w.rep_escalated, type: "line", data: d.escalated, symbol: "triangle", symbolSize: 9 },
      { name: w.rep_overrun, type: "line", data: d.overrun, symbol: "diamond", symbolSize: 9,
        lineStyle: { type: "dashed" } },
    ],
  });

  // bucket i holds talks of i to i+1 minutes: the 10-minute line is the edge before bucket 10
  const minutes = d.talk_minutes.map((_, i) => String(i));
  draw("chart-talk", {
    title: { text: w.chart_talk, textStyle: { fontSize: 14 } },
    legend: { show: false },
    xAxis: { type: "category", data: minutes, name: w.chart_minutes, nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "value", minInterval: 1, name: w.chart_calls_axis },
    series: [{
      name: w.chart_talk, type: "bar", data: d.talk_minutes, barCategoryGap: "10%",
      markLine: {
        symbol: "none",
        label: { formatter: w.chart_window_line, position: "insideEndTop" },
        lineStyle: { color: "#D55E00", width: 2, type: "solid" },
        // the boundary between the 10th and the 11th minute
        data: [{ xAxis: d.window_minutes - 0.5 }],
      },
    }],
  });

  draw("chart-tickets", {
    title: { text: w.chart_tickets, textStyle: { fontSize: 14 } },
    xAxis: { type: "category", data: d.keys },
    yAxis: { type: "value", minInterval: 1 },
    series: [
      { name: w.rep_answered_in_time, type: "bar", stack: "t", data: d.in_time },
      { name: w.rep_breached, type: "bar", stack: "t", data: d.breached, itemStyle: { color: "#D55E00" } },
    ],
  });

  const days = w.chart_weekdays.split(",");
  const hours = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0"));
  const cells = d.heatmap.map(([dow, hour, n]) => [hour, dow - 1, n]);
  const top = cells.reduce((m, c) => Math.max(m, c[2]), 1);
  draw("chart-heatmap", {
    title: { text: w.chart_heatmap, textStyle: { fontSize: 14 } },
    tooltip: { position: "top" },
    legend: { show: false },
    grid: { left: 48, right: 16, top: 40, bottom: 64 },
    xAxis: { type: "category", data: hours, splitArea: { show: true } },
    yAxis: { type: "category", data: days, inverse: true, splitArea: { show: true } },
    // one hue from light to dark (cividis-like): ordered by lightness, so it reads in grey too
    visualMap: { min: 0, max: top, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                 inRange: { color: ["#FFFFE0", "#9ECAE1", "#3182BD", "#08306B"] } },
    series: [{ type: "heatmap", data: cells, label: { show: true, fontSize: 10 } }],
  });

  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  window.addEventListener("beforeprint", () => charts.forEach((c) => c.resize()));
  document.body.dataset.charts = String(charts.length);
})();
