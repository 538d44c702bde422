// Pull form: posts Ollama's pull request to this server (stream.js) and shows its progress as it streams
// (one list item per status, a progress bar for the bytes of the layer being pulled).
(function () {
  "use strict";
  var form = document.getElementById("pull-form");
  if (!form) { return; }
  var reference = document.getElementById("reference");
  var insecure = document.getElementById("insecure");
  var button = document.getElementById("pull-button");
  var bar = document.getElementById("pull-progress");
  var status = document.getElementById("pull-status");
  var log = document.getElementById("pull-log");
  var endpoint = form.getAttribute("data-endpoint");
  var last = "";

  function note(text, kind) {
    if (text === last) { return; }
    last = text;
    var li = document.createElement("li");
    li.textContent = text;
    if (kind) { li.className = kind; }
    log.appendChild(li);
  }

  function show(event) {
    if (event.total) {
      bar.max = event.total;
      bar.value = event.completed || 0;
      var pct = Math.floor(100 * (event.completed || 0) / event.total);
      status.textContent = event.status + ": " + pct + "%";
    } else {
      status.textContent = event.status;
    }
    note(event.status);
  }

  async function pull(model) {
    button.disabled = true;
    log.textContent = "";
    last = "";
    bar.value = 0;
    status.textContent = "Starting…";
    try {
      var done = false;
      await window.openzooStream(endpoint, {model: model, insecure: insecure.checked, stream: true}, function (event) {
        show(event);
        if (event.status === "success") { done = true; }
      });
      if (!done) { throw new Error("the stream ended before the pull succeeded"); }
      status.textContent = "Pulled " + model + ".";
      note("See it in the catalog.");
    } catch (e) {
      status.textContent = "Error: " + e.message;
      note("Error: " + e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var model = reference.value.trim();
    if (model) { pull(model); }
  });
})();
