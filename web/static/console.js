// The console's little script: CSRF on htmx requests, the live stream, the new-tip badge.
// No inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var body = document.body;
  var baseTitle = document.title;

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = body.dataset.csrf || "";
  });

  var sound = document.querySelector("[data-setting='sound']");
  if (sound) {
    sound.checked = window.localStorage.getItem("tinbao.sound") === "1";
    sound.addEventListener("change", function () {
      window.localStorage.setItem("tinbao.sound", sound.checked ? "1" : "0");
    });
  }

  function beep() {
    if (window.localStorage.getItem("tinbao.sound") !== "1") return;
    try {
      var context = new (window.AudioContext || window.webkitAudioContext)();
      var tone = context.createOscillator();
      tone.frequency.value = 880;
      tone.connect(context.destination);
      tone.start();
      tone.stop(context.currentTime + 0.2);
    } catch (error) { /* no audio here: the badge still shows */ }
  }

  var url = body.dataset.live;
  if (!url || !window.EventSource) return;
  var first = null;
  var stream = new EventSource(url);
  stream.addEventListener("hello", function (event) {
    var seen = JSON.parse(event.data);
    if (first === null) first = seen.tips;
    body.dataset.liveReady = "true";
  });
  stream.addEventListener("change", function (event) {
    var seen = JSON.parse(event.data);
    var fresh = first === null ? 0 : seen.tips - first;
    var badge = document.getElementById("new-badge");
    if (fresh > 0) {
      document.title = "(" + fresh + ") " + baseTitle;
      if (badge) { badge.textContent = "+" + fresh; badge.hidden = false; }
      beep();
    }
    if (window.htmx) window.htmx.trigger(body, "tinbao:change");
  });
  stream.addEventListener("ended", function () {
    stream.close();
    window.location.reload();  // the session ended: the guard shows the login page
  });
}());

// Fields that matter only for some choices (data-show-when="name=value name=value") are
// hidden otherwise; without this script they all show, and the server ignores the extra ones.
(function () {
  "use strict";
  var dependent = document.querySelectorAll("[data-show-when]");
  if (!dependent.length) return;
  function valueOf(form, name) {
    var field = form.elements[name];
    if (!field) return "";
    if (field instanceof RadioNodeList) return field.value;
    return field.value;
  }
  function update() {
    dependent.forEach(function (element) {
      var form = element.closest("form");
      if (!form) return;
      var shown = element.dataset.showWhen.split(" ").some(function (rule) {
        var parts = rule.split("=");
        return valueOf(form, parts[0]) === parts[1];
      });
      element.hidden = !shown;
    });
  }
  document.addEventListener("change", update);
  update();
}());
