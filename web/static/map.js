// A tip's location on a Leaflet map, from the tile server the deployment names
// (TINBAO_CONSOLE_TILE_URL). When no tile loads (the police network cannot reach it), the map
// gives way to a note: the coordinates and the link above stay the answer.
(function () {
  "use strict";
  var box = document.getElementById("map");
  var fallback = document.getElementById("map-fallback");
  if (!box) return;
  function giveUp() {
    box.hidden = true;
    box.dataset.state = "failed";
    if (fallback) fallback.hidden = false;
  }
  if (!window.L) { giveUp(); return; }
  var lat = parseFloat(box.dataset.lat);
  var lon = parseFloat(box.dataset.lon);
  var credit = document.createElement("span");
  credit.textContent = box.dataset.attribution || "";  // Leaflet takes attribution as HTML
  var map = window.L.map(box, { scrollWheelZoom: false }).setView([lat, lon], 16);
  var loaded = 0;
  var layer = window.L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: credit.innerHTML });
  layer.on("tileload", function () {
    loaded += 1;
    box.dataset.state = "loaded";
  });
  layer.on("tileerror", function () {
    if (loaded === 0) giveUp();
  });
  layer.addTo(map);
  window.L.marker([lat, lon], { keyboard: false }).addTo(map);
}());
