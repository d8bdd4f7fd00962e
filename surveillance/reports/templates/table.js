(function () {
  "use strict";
  var dataNode = document.getElementById("band-data");
  var table = document.getElementById("band-table");
  if (!dataNode || !table) { return; }
  var rows = JSON.parse(dataNode.textContent);
  var columns = JSON.parse(document.getElementById("band-columns").textContent);
  var tbody = table.querySelector("tbody");
  var select = document.getElementById("region-filter");
  var counter = document.getElementById("band-shown");
  var sortKey = "band_order";
  var ascending = true;

  function cell(row, col) {
    var td = document.createElement("td");
    var value = row[col.key];
    if (col.numeric) { td.className = "num"; }
    if (col.key === "trust_name") {
      var a = document.createElement("a");
      a.setAttribute("href", row.href);
      a.textContent = value;
      td.appendChild(a);
    } else if (col.key === "band") {
      var span = document.createElement("span");
      span.className = "band " + row.band_class;
      span.textContent = value;
      td.appendChild(span);
    } else {
      td.textContent = value === null ? "" : String(value);
    }
    return td;
  }

  function compare(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (x === y) { return a.trust_code < b.trust_code ? -1 : 1; }
    if (x === null) { return 1; }
    if (y === null) { return -1; }
    var r = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
    return ascending ? r : -r;
  }

  function render() {
    var region = select ? select.value : "";
    var shown = rows.filter(function (r) { return !region || r.region === region; });
    shown.sort(compare);
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    shown.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-region", row.region);
      columns.forEach(function (col) { tr.appendChild(cell(row, col)); });
      tbody.appendChild(tr);
    });
    if (counter) { counter.textContent = String(shown.length); }
  }

  table.querySelectorAll("th[data-key]").forEach(function (th) {
    th.classList.add("sortable");
    th.setAttribute("tabindex", "0");
    function activate() {
      var key = th.getAttribute("data-sort-key");
      if (key === sortKey) { ascending = !ascending; } else { sortKey = key; ascending = true; }
      table.querySelectorAll("th[data-key]").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      render();
    }
    th.addEventListener("click", activate);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { activate(); } });
  });
  if (select) { select.addEventListener("change", render); }
  render();
}());
