// index.html: click a column header to sort the videos by it (again: the other way).
"use strict";
(function () {
  const table = document.getElementById("videos");
  if (!table) return;
  const body = table.tBodies[0];
  for (const th of table.querySelectorAll("th[data-key]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key, text = th.dataset.type === "text";
      const desc = th.classList.contains("asc") ? true : th.classList.contains("desc") ? false : !text;
      for (const other of table.querySelectorAll("th")) other.classList.remove("asc", "desc");
      th.classList.add(desc ? "desc" : "asc");
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = a.dataset[key], y = b.dataset[key];
        const c = text ? x.localeCompare(y) : parseFloat(x) - parseFloat(y);
        return desc ? -c : c;
      });
      for (const row of rows) body.appendChild(row);
    });
  }
  document.body.dataset.ready = "1";
})();
