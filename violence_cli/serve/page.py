"""The page at ``/``: upload a video, follow its job, open its report.

One self-contained HTML document (no external script, style or font), talking to the same
API a program uses. With tokens, the token typed in is kept in the browser (localStorage)
and sent as ``Authorization: Bearer``; it is also set as a ``SameSite=Strict`` cookie for
this server, because the report and its video are opened by the browser itself, which
cannot add a header (the server accepts the cookie for GET requests only).
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>violence-detect</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 1rem 0; padding: .8rem 1rem; }
  label { display: block; margin: .3rem 0; }
  input[type=number] { width: 5rem; }
  button { font: inherit; padding: .3rem 1rem; }
  #status { margin: 1rem 0; padding: .6rem 1rem; background: #f4f4f4; border-radius: 6px; min-height: 1.5rem; }
  #status.failed { background: #fde8e8; color: #8a1010; }
  #status.done { background: #e8f6ea; }
  progress { width: 100%; }
  .muted { color: #666; font-size: .9rem; }
</style>
</head>
<body>
<h1>violence-detect</h1>
<p class="muted">Upload a video: it is scored by MACIL-SD (audio + picture) on this server, then its report
shows the scores over time beside the video.</p>
<form id="form">
  <fieldset id="token-box">
    <label>Token <input id="token" type="password" autocomplete="off" size="40"
      placeholder="only when the server was started with --token-file"></label>
  </fieldset>
  <fieldset>
    <label>Video <input id="file" name="file" type="file" accept="video/*,audio/*" required></label>
    <label>Threshold <input id="threshold" type="number" min="0" max="1" step="0.05" value="0.5"></label>
    <button id="submit" type="submit">Upload and score</button>
  </fieldset>
</form>
<div id="status" role="status">No job yet.</div>
<progress id="bar" max="1" value="0" hidden></progress>
<p><a id="report" href="#" hidden>Open the report</a></p>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("vd_token") || "";

function headers() {
  const t = tokenInput.value.trim();
  localStorage.setItem("vd_token", t);
  document.cookie = "vd_token=" + encodeURIComponent(t) + "; path=/; SameSite=Strict";
  return t ? { "Authorization": "Bearer " + t } : {};
}

function show(text, kind) {
  const box = $("status");
  box.textContent = text;
  box.className = kind || "";
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

async function follow(id) {
  while (true) {
    const r = await fetch("/v1/jobs/" + id, { headers: headers() });
    if (!r.ok) { show("error: " + await errorText(r), "failed"); return; }
    const job = await r.json();
    const bar = $("bar");
    if (job.duration) { bar.hidden = false; bar.max = job.duration; bar.value = job.progress; }
    if (job.status === "done") {
      bar.value = bar.max;
      show("done: " + job.result.summary, "done");
      const link = $("report");
      link.href = job.links.report;
      link.hidden = false;
      return;
    }
    if (job.status === "failed" || job.status === "cancelled") {
      show(job.status + ": " + (job.error || ""), "failed");
      return;
    }
    show(job.status + (job.duration ? " (" + job.progress.toFixed(1) + " s of " + job.duration.toFixed(1) + " s)" : ""));
    await new Promise((done) => setTimeout(done, 500));
  }
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { show("choose a video first", "failed"); return; }
  $("report").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("params", JSON.stringify({ threshold: Number($("threshold").value) }));
  show("uploading " + file.name + "...");
  const r = await fetch("/v1/jobs", { method: "POST", headers: headers(), body: form });
  if (!r.ok) { show("error: " + await errorText(r), "failed"); return; }
  const job = await r.json();
  show("queued (job " + job.id + ")");
  follow(job.id);
});
</script>
</body>
</html>
"""

__all__ = ["PAGE"]
