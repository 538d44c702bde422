// Shared by the pages that stream from an Ollama handler (playground, pull): POST a JSON body with the
// page's CSRF token and hand each NDJSON object to onEvent as it arrives. An error status before the
// stream, or an {"error": ...} line in it, rejects with that error's message (as Ollama's clients do).
window.openzooStream = async function (endpoint, body, onEvent, signal) {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var response = await fetch(endpoint, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: JSON.stringify(body),
    signal: signal,
    credentials: "same-origin"
  });
  if (!response.ok) {
    var err = await response.text();
    try { err = JSON.parse(err).error || err; } catch (e) { /* not JSON */ }
    throw new Error(typeof err === "string" ? err : JSON.stringify(err));
  }
  var reader = response.body.getReader();
  var decoder = new TextDecoder();
  var buffer = "";
  for (;;) {
    var chunk = await reader.read();
    if (chunk.done) { break; }
    buffer += decoder.decode(chunk.value, {stream: true});
    var lines = buffer.split("\n");
    buffer = lines.pop();
    lines.forEach(function (line) {
      if (!line.trim()) { return; }
      var event = JSON.parse(line);
      if (event.error) { throw new Error(event.error); }
      onEvent(event);
    });
  }
};
