// violence-detect report: the score timeline under the player, kept in sync with it.
// Curves are drawn once into an off-screen canvas (redrawn on resize or a toggle); each
// animation frame only copies it and draws the playhead, so 16,200 snippets stay fast.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const result = data.result;
  const snippets = result.snippets;
  const segments = result.segments;
  const n = snippets.length;
  const extent = data.extent; // seconds the timeline spans
  const step = n ? snippets[0].end - snippets[0].start : 2 / 3; // one snippet, s
  const threshold = result.params.threshold;
  const video = document.getElementById("video");
  const canvas = document.getElementById("timeline");
  const tooltip = document.getElementById("tooltip");
  const ctx = canvas.getContext("2d");
  const layer = document.createElement("canvas");
  const COLORS = { av: "#c0392b", audio: "#2e86c1", visual: "#27ae60", segment: "rgba(231, 76, 60, 0.18)" };
  const SERIES = [
    ["audio", "audio_score", 1.3],
    ["visual", "visual_score", 1.3],
    ["av", "score", 2.4],
  ];
  const shown = { av: true, audio: true, visual: true };
  const PAD = { left: 34, right: 8, top: 8, bottom: 22 }; // css px
  let width = 0, height = 0, dpr = 1;

  canvas.dataset.snippets = String(n);
  canvas.dataset.extent = String(extent);

  const xOf = (t) => PAD.left + (t / extent) * (width - PAD.left - PAD.right);
  const yOf = (s) => PAD.top + (1 - s) * (height - PAD.top - PAD.bottom);
  const tOf = (x) => Math.min(extent, Math.max(0, ((x - PAD.left) / (width - PAD.left - PAD.right)) * extent));

  // as violence_cli.timefmt.clock: round to the last digit shown first, then carry
  // (59.96 s reads 1:00.0)
  function clock(t, withTenths) {
    t = Math.max(0, t);
    if (data.hours) {
      const s = Math.round(t);
      return Math.floor(s / 3600) + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") + ":" +
        String(s % 60).padStart(2, "0");
    }
    const scale = withTenths ? 10 : 1;
    const n = Math.round(t * scale);
    const m = Math.floor(n / (60 * scale)), rest = n - 60 * scale * m;
    const secs = String(Math.floor(rest / scale)).padStart(2, "0") + (withTenths ? "." + (rest % scale) : "");
    return m + ":" + secs;
  }

  function tickStep() {
    const target = extent / Math.max(2, Math.floor((width - PAD.left) / 90));
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    for (const s of steps) if (s >= target) return s;
    return 3600 * Math.ceil(target / 3600);
  }

  function drawLayer() {
    layer.width = canvas.width;
    layer.height = canvas.height;
    const g = layer.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, width, height);
    // segments
    g.fillStyle = COLORS.segment;
    for (const seg of segments) {
      const x0 = xOf(seg.start), x1 = xOf(seg.end);
      g.fillRect(x0, PAD.top, Math.max(1, x1 - x0), height - PAD.top - PAD.bottom);
    }
    // grid + axes
    g.strokeStyle = "#e3e7eb";
    g.lineWidth = 1;
    g.fillStyle = "#5d6975";
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const s of [0, 0.25, 0.5, 0.75, 1]) {
      g.beginPath();
      g.moveTo(PAD.left, yOf(s));
      g.lineTo(width - PAD.right, yOf(s));
      g.stroke();
      g.fillText(s.toFixed(2).replace(/0$/, ""), PAD.left - 4, yOf(s));
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const ts = tickStep();
    for (let t = 0; t <= extent + 1e-9; t += ts) {
      const x = xOf(t);
      g.beginPath();
      g.moveTo(x, height - PAD.bottom);
      g.lineTo(x, height - PAD.bottom + 4);
      g.stroke();
      const label = clock(t, false), half = g.measureText(label).width / 2;
      g.fillText(label, Math.min(Math.max(x, half + 2), width - half - 2), height - PAD.bottom + 6);
    }
    // curves: a step per snippet, or per pixel column the highest score when snippets outnumber pixels
    const plotWidth = width - PAD.left - PAD.right;
    let drawn = 0; // snippets the audio-visual curve went through
    for (const [name, key, lw] of SERIES) {
      if (!shown[name] || !n || snippets[0][key] === null) continue; // null: the model has no such head
      g.strokeStyle = COLORS[name];
      g.lineWidth = lw;
      g.globalAlpha = name === "av" ? 1 : 0.85;
      g.beginPath();
      if (n <= plotWidth * dpr) {
        g.moveTo(xOf(snippets[0].start), yOf(snippets[0][key]));
        for (let i = 0; i < n; i++) {
          const s = snippets[i];
          g.lineTo(xOf(s.start), yOf(s[key]));
          g.lineTo(xOf(s.end), yOf(s[key]));
          if (name === "av") drawn++;
        }
      } else {
        const cols = Math.ceil(plotWidth * dpr);
        const top = new Float32Array(cols).fill(-1);
        for (let i = 0; i < n; i++) {
          const c = Math.min(cols - 1, Math.floor(((xOf(snippets[i].start) - PAD.left) / plotWidth) * cols));
          if (snippets[i][key] > top[c]) top[c] = snippets[i][key];
          if (name === "av") drawn++;
        }
        let started = false;
        for (let c = 0; c < cols; c++) {
          if (top[c] < 0) continue;
          const x = PAD.left + (c / cols) * plotWidth;
          if (started) g.lineTo(x, yOf(top[c])); else g.moveTo(x, yOf(top[c]));
          started = true;
        }
      }
      g.stroke();
    }
    g.globalAlpha = 1;
    if (shown.av) canvas.dataset.drawn = String(drawn);
    // threshold
    g.strokeStyle = "#333";
    g.lineWidth = 1;
    g.setLineDash([5, 4]);
    g.beginPath();
    g.moveTo(PAD.left, yOf(threshold));
    g.lineTo(width - PAD.right, yOf(threshold));
    g.stroke();
    g.setLineDash([]);
  }

  function resize() {
    dpr = window.devicePixelRatio || 1;
    width = canvas.clientWidth;
    height = canvas.clientHeight;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.dataset.plotLeft = String(PAD.left); // css px within the canvas: where t = 0 and t = extent lie
    canvas.dataset.plotRight = String(width - PAD.right);
    canvas.dataset.plotTop = String(PAD.top); // css px: where score 1 and score 0 lie
    canvas.dataset.plotBottom = String(height - PAD.bottom);
    const t0 = performance.now();
    drawLayer();
    draw();
    canvas.dataset.drawMs = (performance.now() - t0).toFixed(1);
  }

  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(layer, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const x = xOf(Math.min(video.currentTime || 0, extent));
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, PAD.top - 4);
    ctx.lineTo(x, height - PAD.bottom);
    ctx.stroke();
    ctx.fillStyle = "#111";
    ctx.beginPath();
    ctx.moveTo(x - 5, PAD.top - 6);
    ctx.lineTo(x + 5, PAD.top - 6);
    ctx.lineTo(x, PAD.top);
    ctx.fill();
    canvas.dataset.playhead = (video.currentTime || 0).toFixed(3);
    markCurrentRow();
  }

  // playhead: on time updates and seeks, and every animation frame while playing
  let animating = false;
  function loop() {
    draw();
    if (!video.paused && !video.ended) requestAnimationFrame(loop); else animating = false;
  }
  function startLoop() {
    if (!animating) { animating = true; requestAnimationFrame(loop); }
  }
  for (const ev of ["timeupdate", "seeked", "seeking", "loadedmetadata", "pause"]) video.addEventListener(ev, draw);
  video.addEventListener("play", startLoop);
  video.addEventListener("playing", startLoop);

  function seek(t) {
    video.currentTime = Math.max(0, Math.min(t, extent));
    draw();
  }

  // click or drag on the timeline seeks; hover shows the time and the three scores
  let dragging = false;
  const localX = (ev) => ev.clientX - canvas.getBoundingClientRect().left;
  canvas.addEventListener("pointerdown", (ev) => {
    dragging = true;
    canvas.setPointerCapture(ev.pointerId);
    seek(tOf(localX(ev)));
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (dragging) seek(tOf(localX(ev)));
    showTooltip(localX(ev));
  });
  for (const ev of ["pointerup", "pointercancel"]) canvas.addEventListener(ev, () => { dragging = false; });
  canvas.addEventListener("pointerleave", () => { tooltip.hidden = true; });

  function snippetAt(t) {
    if (!n) return -1;
    return Math.max(0, Math.min(n - 1, Math.floor(t / step)));
  }

  function showTooltip(x) {
    const t = tOf(x);
    const i = snippetAt(t);
    let text = clock(t, true);
    if (i >= 0 && t < snippets[n - 1].end) {
      const s = snippets[i];
      text += " · av " + s.score.toFixed(2);
      if (s.audio_score !== null) text += " · audio " + s.audio_score.toFixed(2);
      if (s.visual_score !== null) text += " · visual " + s.visual_score.toFixed(2);
    } else {
      text += " · not scored";
    }
    tooltip.textContent = text;
    tooltip.hidden = false;
    const w = tooltip.offsetWidth;
    tooltip.style.left = Math.max(0, Math.min(x + 12, width - w)) + "px";
  }

  // the segments table: a row seeks to its start
  const rows = Array.from(document.querySelectorAll("#segments tbody tr"));
  for (const row of rows) {
    const go = () => { seek(parseFloat(row.dataset.start)); };
    row.addEventListener("click", go);
    row.addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
  }
  function markCurrentRow() {
    const t = video.currentTime || 0;
    rows.forEach((row, k) => {
      row.classList.toggle("current", t >= segments[k].start && t < segments[k].end);
    });
  }

  // keyboard: space play/pause, n/p next/previous segment, arrows one snippet
  document.addEventListener("keydown", (ev) => {
    const tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const t = video.currentTime || 0;
    if (ev.key === " ") {
      if (tag === "VIDEO" || tag === "BUTTON") return; // their own space handling
      ev.preventDefault();
      if (video.paused) video.play(); else video.pause();
    } else if (ev.key === "n") {
      const next = segments.find((s) => s.start > t + 0.05);
      if (next) seek(next.start);
    } else if (ev.key === "p") {
      const before = segments.filter((s) => s.start < t - 0.3);
      if (before.length) seek(before[before.length - 1].start);
    } else if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
      if (tag === "VIDEO") return;
      ev.preventDefault();
      seek(t + (ev.key === "ArrowRight" ? step : -step));
    }
  });

  for (const name of Object.keys(shown)) {
    const box = document.getElementById("show-" + name);
    if (!box) continue; // a model without audio/visual heads has no such checkbox
    box.addEventListener("change", () => { shown[name] = box.checked; drawLayer(); draw(); });
  }
  window.addEventListener("resize", resize);
  resize();
  document.body.dataset.ready = "1";
})();
