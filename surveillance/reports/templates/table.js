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
  // default: the page's order (band, then score within the band, highest first)
  var sortKey = "rank";
  var ascending = true;

  function cell(row, col) {
    var td = document.createElement("td");
    var value = row[col.key];
    if (col.numeric) { td.classList.add("num"); }
    if (col.css) { td.classList.add(col.css); }
    if (col.key === "trust_name") {
      var a = document.createElement("a");
      a.setAttribute("href", row.href);
      a.textContent = value;
      td.appendChild(a);
    } else if (col.key === "band") {
      var span = document.createElement("span");
      span.className = "band " + row.band_class;
      span.textContent = row.band_text;
      td.appendChild(span);
      if (row.override) {
        var tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = row.override;
        td.appendChild(document.createTextNode(" "));
        td.appendChild(tag);
      }
    } else if (col.key === "drivers") {
      td.classList.add("drivers");
      value.forEach(function (d, i) {
        if (i > 0) { td.appendChild(document.createTextNode("; ")); }
        var node = document.createElement(d.flag === "elevated_risk" ? "strong" : "span");
        node.textContent = d.name;
        td.appendChild(node);
      });
    } else {
      td.textContent = value === null ? "" : String(value);
    }
    return td;
  }

  function compare(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (x === y) { return a.rank - b.rank; }
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
