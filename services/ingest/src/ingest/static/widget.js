/* Pulse in-app survey widget. Dependency-free; embed with:
 *   <script src="https://PULSE_HOST/widget.js" data-pulse-key="pk_..." data-account-id="acme-42"
 *           data-respondent-id="user-7" data-signed-up-at="2026-01-31" async></script>
 * or call Pulse.init({key, accountId, respondentId, signedUpAt, properties, host}) yourself.
 * Unsent answers wait in localStorage and are retried after network errors, 5xx, 503 and 429. */
(function () {
  "use strict";
  var QUEUE_KEY = "pulse.queue.v1";
  var script = document.currentScript;
  var state = { retryMs: 2000, timer: null, cfg: null };

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "r-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }
  function loadQueue() {
    try { return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]"); } catch (e) { return []; }
  }
  function saveQueue(q) {
    try { localStorage.setItem(QUEUE_KEY, JSON.stringify(q.slice(-50))); } catch (e) { /* storage full or off */ }
  }
  function url(path, params) {
    var u = new URL(path, state.cfg.host);
    Object.keys(params || {}).forEach(function (k) { if (params[k] != null) u.searchParams.set(k, params[k]); });
    u.searchParams.set("key", state.cfg.key);
    return u.toString();
  }

  /* Send every queued answer; keep those the server could not take yet. */
  function flush() {
    var queue = loadQueue();
    if (!queue.length || !state.cfg) return Promise.resolve();
    var item = queue[0];
    return fetch(url("/v1/responses"), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(item),
      keepalive: true, credentials: "omit"
    }).then(function (res) {
      if (res.status === 202 || (res.status >= 400 && res.status < 500 && res.status !== 429 && res.status !== 408)) {
        if (res.status !== 202) console.warn("Pulse: answer refused (" + res.status + ")");
        saveQueue(loadQueue().filter(function (q) { return q.response_id !== item.response_id; }));
        state.retryMs = 2000;
        return flush();
      }
      throw new Error("retry " + res.status);
    }).catch(function () {
      clearTimeout(state.timer);
      state.timer = setTimeout(flush, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 60000);
    });
  }

  function submit(survey, score, comment) {
    var cfg = state.cfg;
    var q = loadQueue();
    q.push({ response_id: uuid(), survey_type: survey.survey_type, score: score, comment: comment || null,
             account_id: cfg.accountId, respondent_id: cfg.respondentId, properties: cfg.properties || {},
             submitted_at: new Date().toISOString() });
    saveQueue(q);
    return flush();
  }

  function el(tag, attrs, text) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text != null) n.textContent = text;
    return n;
  }

  var CSS = ".pulse-w{position:fixed;right:16px;bottom:16px;max-width:420px;background:#fff;color:#111;" +
    "border:1px solid #ccc;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.15);padding:16px;" +
    "font:14px/1.4 system-ui,sans-serif;z-index:2147483000}.pulse-w h2{font-size:15px;margin:0 24px 12px 0}" +
    ".pulse-s{display:flex;flex-wrap:wrap;gap:4px}.pulse-s button{min-width:32px;min-height:32px;border:1px solid #888;" +
    "border-radius:4px;background:#f6f6f6;cursor:pointer}.pulse-s button[aria-pressed=true]{background:#1a5fd0;color:#fff}" +
    ".pulse-w textarea{width:100%;box-sizing:border-box;margin-top:10px;min-height:60px}" +
    ".pulse-a{display:flex;justify-content:space-between;margin-top:10px}.pulse-x{position:absolute;top:8px;right:10px;" +
    "border:0;background:none;font-size:18px;cursor:pointer}.pulse-l{display:flex;justify-content:space-between;" +
    "font-size:12px;color:#555;margin-top:4px}.pulse-w :focus-visible{outline:2px solid #1a5fd0;outline-offset:2px}";

  function render(survey) {
    var style = el("style"); style.textContent = CSS; document.head.appendChild(style);
    var box = el("div", { "class": "pulse-w", role: "dialog", "aria-modal": "false", "aria-labelledby": "pulse-q" });
    var close = el("button", { "class": "pulse-x", type: "button", "aria-label": "Close survey" }, "\u00d7");
    var title = el("h2", { id: "pulse-q" }, survey.question);
    var scale = el("div", { "class": "pulse-s", role: "group", "aria-labelledby": "pulse-q" });
    var chosen = null;
    for (var s = survey.scale_min; s <= survey.scale_max; s++) {
      (function (value) {
        var b = el("button", { type: "button", "aria-pressed": "false", "data-score": String(value),
                                "aria-label": "Score " + value + " of " + survey.scale_max }, String(value));
        b.addEventListener("click", function () {
          chosen = value;
          Array.prototype.forEach.call(scale.children, function (c) { c.setAttribute("aria-pressed", "false"); });
          b.setAttribute("aria-pressed", "true");
          send.disabled = false;
        });
        scale.appendChild(b);
      })(s);
    }
    var labels = el("div", { "class": "pulse-l", "aria-hidden": "true" });
    labels.appendChild(el("span", {}, survey.survey_type === "nps" ? "Not likely" : "Low"));
    labels.appendChild(el("span", {}, survey.survey_type === "nps" ? "Very likely" : "High"));
    var commentLabel = el("label", { "for": "pulse-c" }, "Anything you would like to tell us? (optional)");
    var comment = el("textarea", { id: "pulse-c", maxlength: "5000" });
    var actions = el("div", { "class": "pulse-a" });
    var later = el("button", { type: "button" }, "Ask me later");
    var send = el("button", { type: "button", disabled: "disabled" }, "Send");
    actions.appendChild(later); actions.appendChild(send);
    [close, title, scale, labels, commentLabel, comment, actions].forEach(function (n) { box.appendChild(n); });
    document.body.appendChild(box);
    function done(message) {
      box.innerHTML = "";
      box.appendChild(el("p", { role: "status" }, message));
      setTimeout(function () { box.remove(); }, 2500);
    }
    close.addEventListener("click", function () { box.remove(); });
    later.addEventListener("click", function () {
      fetch(url("/v1/widget/snooze"), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ account_id: state.cfg.accountId, respondent_id: state.cfg.respondentId }),
        credentials: "omit" }).catch(function () {});
      box.remove();
    });
    send.addEventListener("click", function () {
      if (chosen === null) return;
      submit(survey, chosen, comment.value.trim());
      done("Thank you for your feedback!");
    });
    scale.firstChild && scale.firstChild.focus();
  }

  function init(cfg) {
    if (!cfg || !cfg.key || !cfg.accountId || !cfg.respondentId) {
      console.warn("Pulse: key, accountId and respondentId are required"); return;
    }
    cfg.host = cfg.host || (script ? new URL(script.src).origin : window.location.origin);
    state.cfg = cfg;
    flush();
    var who = { account_id: cfg.accountId, respondent_id: cfg.respondentId, signed_up_at: cfg.signedUpAt };
    function json(res) { return res.ok ? res.json() : null; }
    // Asking is free of side effects; the display is recorded (and claimed against other tabs) as it shows.
    return fetch(url("/v1/widget/eligibility", who), { credentials: "omit" }).then(json)
      .then(function (answer) {
        if (!answer || !answer.show) return null;
        return fetch(url("/v1/widget/displays"), { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(who), credentials: "omit" }).then(json);
      })
      .then(function (shown) { if (shown && shown.show && shown.survey) render(shown.survey); })
      .catch(function () { /* offline: try again on the next page */ });
  }

  window.Pulse = { init: init, flush: flush };
  window.addEventListener("online", flush);
  if (script && script.dataset.pulseKey) {
    var d = script.dataset;
    var start = function () { init({ key: d.pulseKey, accountId: d.accountId, respondentId: d.respondentId,
                                     signedUpAt: d.signedUpAt }); };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
  }
})();
