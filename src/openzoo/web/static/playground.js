// Playground: chat streamed token by token from the Ollama chat endpoint (stream.js),
// with a stop button (AbortController) and an optional per-token probability view from logprobs.
// A base model (data-kind="base") is prompted as a completion instead: the generate endpoint with
// raw:true (no chat template), each message on its own, unless "Use chat template" is ticked.
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form) { return; }
  var transcript = document.getElementById("transcript");
  var prompt = document.getElementById("prompt");
  var send = document.getElementById("send");
  var stop = document.getElementById("stop");
  var clear = document.getElementById("clear");
  var status = document.getElementById("status");
  var showProbs = document.getElementById("show_probs");
  var probsPanel = document.getElementById("probs-panel");
  var probs = document.getElementById("probs");
  var probDetail = document.getElementById("prob-detail");
  var endpoint = form.getAttribute("data-endpoint");
  var generateEndpoint = form.getAttribute("data-generate-endpoint");
  var modelSelect = document.getElementById("model");
  var useChat = document.getElementById("use_chat");
  var kindNote = document.getElementById("kind-note");
  var messages = [];
  var controller = null;

  function number(id) {
    var v = parseFloat(document.getElementById(id).value);
    return isNaN(v) ? undefined : v;
  }

  function completionMode() {
    var option = modelSelect.options[modelSelect.selectedIndex];
    return !!option && option.getAttribute("data-kind") === "base" && !useChat.checked;
  }

  function updateNote() {
    var option = modelSelect.options[modelSelect.selectedIndex];
    var base = !!option && option.getAttribute("data-kind") === "base";
    kindNote.hidden = !base;
    kindNote.querySelector(".kind-model").textContent = option ? option.value : "";
    prompt.placeholder = completionMode() ? "Text for the model to continue, e.g. The sky looks blue because" : "";
  }

  function bubble(role, text) {
    var li = document.createElement("li");
    li.className = "msg " + role;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Model";
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    li.appendChild(who);
    li.appendChild(body);
    transcript.appendChild(li);
    li.scrollIntoView({block: "end"});
    return body;
  }

  function busy(on) {
    send.disabled = on;
    stop.disabled = !on;
    prompt.disabled = on;
  }

  function pct(logprob) { return Math.exp(logprob) * 100; }

  function describe(item) {
    var text = JSON.stringify(item.token) + " " + pct(item.logprob).toFixed(1) + "%";
    var alts = (item.top_logprobs || []).filter(function (t) { return t.token !== item.token; }).slice(0, 4);
    if (alts.length) {
      text += "; alternatives: " + alts.map(function (t) {
        return JSON.stringify(t.token) + " " + pct(t.logprob).toFixed(1) + "%";
      }).join(", ");
    }
    return text;
  }

  function renderProbs(items) {
    probs.textContent = "";
    probDetail.textContent = "";
    probsPanel.hidden = !items.length;
    items.forEach(function (item) {
      var span = document.createElement("span");
      span.className = "tok";
      span.tabIndex = 0;
      span.textContent = item.token;
      var p = Math.exp(item.logprob);
      // Low probability = warmer, stronger shade; text stays dark on every shade (contrast).
      span.style.setProperty("--p", String(p));
      span.setAttribute("aria-label", describe(item));
      span.title = describe(item);
      var show = function () { probDetail.textContent = describe(item); };
      span.addEventListener("mouseenter", show);
      span.addEventListener("focus", show);
      probs.appendChild(span);
    });
  }

  async function run(text) {
    var completion = completionMode();
    if (!completion) { messages.push({role: "user", content: text}); }
    bubble("user", text);
    var out = bubble("assistant", "");
    out.parentNode.classList.add("streaming");
    var wantProbs = showProbs.checked;
    var collected = [];
    var reply = "";
    var tokens = 0;
    controller = new AbortController();
    busy(true);
    status.textContent = "Generating…";
    var started = performance.now();
    // Empty fields are left out (undefined), so the model's own parameters apply.
    var body = {
      model: modelSelect.value,
      stream: true,
      options: {temperature: number("temperature"), top_p: number("top_p"), num_predict: number("num_predict")}
    };
    if (completion) { body.prompt = text; body.raw = true; } else { body.messages = messages; }
    if (wantProbs) { body.logprobs = true; body.top_logprobs = 5; }
    try {
      await window.openzooStream(completion ? generateEndpoint : endpoint, body, function (event) {
        var piece = event.message ? event.message.content : event.response;
        if (piece && !event.done) {
          reply += piece;
          out.textContent = reply;
          tokens += 1;
        }
        if (event.logprobs && !event.done) { collected = collected.concat(event.logprobs); }
        if (event.done) {
          var secs = (performance.now() - started) / 1000;
          status.textContent = "Done (" + (event.done_reason || "stop") + "): " + (event.eval_count || tokens) +
            " tokens in " + secs.toFixed(1) + " s.";
        }
      }, controller.signal);
    } catch (e) {
      if (e.name === "AbortError") {
        status.textContent = "Stopped.";
      } else {
        status.textContent = "Error: " + e.message;
        out.parentNode.classList.add("error");
        if (!reply) { out.textContent = "(no reply: " + e.message + ")"; }
      }
    } finally {
      out.parentNode.classList.remove("streaming");
      if (!completion) {
        if (reply) { messages.push({role: "assistant", content: reply}); } else { messages.pop(); }
      }
      controller = null;
      busy(false);
      prompt.focus();
      if (wantProbs) { renderProbs(collected); }
    }
  }

  modelSelect.addEventListener("change", updateNote);
  useChat.addEventListener("change", updateNote);
  updateNote();

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = prompt.value.trim();
    if (!text || controller) { return; }
    prompt.value = "";
    run(text);
  });
  prompt.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", function () { if (controller) { controller.abort(); } });
  clear.addEventListener("click", function () {
    if (controller) { controller.abort(); }
    messages = [];
    transcript.textContent = "";
    probs.textContent = "";
    probsPanel.hidden = true;
    status.textContent = "New conversation.";
    prompt.focus();
  });
})();
