// Draws every <canvas data-chart="ID"> from the JSON spec Django wrote into <script id="ID">
// (see dashboard/models_data.py: {type, labels, datasets: [{label, data}], x, y}).
(function () {
  const palette = ["#2457c5", "#c5452f", "#1e7a3c", "#8a4fc2", "#c28a1e", "#1e8a8a", "#5b6670"];
  function draw(canvas) {
    if (canvas.dataset.drawn || typeof Chart === "undefined") return;
    const spec = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
    canvas.dataset.drawn = "1";
    new Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map((d, i) => ({
          label: d.label, data: d.data, spanGaps: true,
          borderColor: palette[i % palette.length],
          backgroundColor: palette[i % palette.length] + (spec.type === "bar" ? "aa" : "33"),
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: spec.x } },
          y: Object.assign({ title: { display: true, text: spec.y } },
            ["accuracy", "share"].includes(spec.y) ? { min: 0, max: 1 } : { beginAtZero: true },
            // Counts step by whole numbers (1, 2, 3), never 0.1.
            spec.integer ? { ticks: { precision: 0 } } : {}),
        },
      },
    });
  }
  function drawAll(root) { (root || document).querySelectorAll("canvas[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", () => drawAll());
  document.addEventListener("htmx:afterSwap", (event) => drawAll(event.target));
})();
