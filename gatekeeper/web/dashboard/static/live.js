// gatekeeper dashboard: refresh the page's #live part from ?fragment=live every 5 s, without reloading.
// Keeps keyboard focus: no swap while focus is inside #live; pauses while the tab is hidden.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var src = live.getAttribute("data-src") || location.pathname;
  var note = document.getElementById("updated");
  var period = 5000;
  function stamp(text) { if (note) { note.textContent = text; } }
  function tick() {
    if (document.hidden || live.contains(document.activeElement)) { return schedule(); }
    var url = src + (src.indexOf("?") < 0 ? "?" : "&") + "fragment=live";
    fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (html) {
      if (html !== live.innerHTML) { live.innerHTML = html; }
      live.setAttribute("data-updated", String(Date.now()));
      stamp("Updated " + new Date().toISOString().replace(/\.\d+Z$/, "Z") + "; updates by itself every 5 s.");
    }).catch(function (e) {
      stamp("Could not update (" + e.message + "); retrying.");
    }).then(schedule);
  }
  function schedule() { window.setTimeout(tick, period); }
  schedule();
})();
