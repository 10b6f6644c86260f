// Sortable tables and the confusion-matrix examples; no network access, no libraries.
(function () {
  "use strict";
  function cellValue(row, i) {
    var cell = row.cells[i];
    var raw = cell.getAttribute("data-sort");
    var text = raw === null ? cell.textContent.trim() : raw;
    var n = parseFloat(text);
    return isNaN(n) ? text.toLowerCase() : n;
  }
  function sortBy(table, th, i) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, i), y = cellValue(b, i);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, i) {
      th.addEventListener("click", function () { sortBy(table, th, i); });
    });
  });
  function showCell(td) {
    var box = td.closest(".confusion");
    var panel = box.querySelector(".cm-panel");
    var key = td.getAttribute("data-cell");
    var store = box.querySelector('.cm-examples[data-for="' + key + '"]');
    box.querySelectorAll("td.active").forEach(function (c) { c.classList.remove("active"); });
    td.classList.add("active");
    panel.innerHTML = "";
    if (store) {
      panel.appendChild(store.cloneNode(true));
    } else {
      var p = document.createElement("p");
      p.textContent = "No test digit in this cell.";
      panel.appendChild(p);
    }
  }
  document.querySelectorAll("td.cm-cell").forEach(function (td) {
    td.addEventListener("click", function () { showCell(td); });
    td.addEventListener("mouseenter", function () { showCell(td); });
    td.addEventListener("keydown", function (e) { if (e.key === "Enter") { showCell(td); } });
  });
})();
