/* Pulse in-app survey widget: dependency-free, inside a Shadow DOM. Embed with
 *   <script src="https://PULSE_HOST/widget.js" data-pulse-key="pk_..." data-account-id="acme-42"
 *           data-respondent-id="user-7" data-signed-up-at="2026-01-31" async></script>
 * (optional: data-pulse-locale, data-pulse-color, data-pulse-theme, data-pulse-placement), or call
 * Pulse.init({key, host, locale, color, theme, placement}) and Pulse.identify({accountId, respondentId,
 * signedUpAt, properties}). Pulse.show({force}) asks for the survey now, Pulse.hide() closes it; the page
 * hears pulse:shown, pulse:answered and pulse:dismissed on document. Unsent answers wait in localStorage
 * and are retried after network errors, 5xx, 408 and 429, one at a time and in order. */
(function () {
  "use strict";
  var QUEUE_KEY = "pulse.queue.v1";
  var script = document.currentScript;
  var S = { retryMs: 2000, timer: null, busy: false, again: false, cfg: null, who: null, ui: null };

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
    var u = new URL(path, S.cfg.host);
    Object.keys(params || {}).forEach(function (k) { if (params[k] != null) u.searchParams.set(k, params[k]); });
    u.searchParams.set("key", S.cfg.key);
    return u.toString();
  }
  function post(path, body) {
    return fetch(url(path), { method: "POST", headers: { "Content-Type": "application/json" },
                              body: JSON.stringify(body), keepalive: true, credentials: "omit" });
  }
  function person() {
    return { account_id: S.who.accountId, respondent_id: S.who.respondentId };
  }

  /* Send queued answers one at a time, oldest first (an answer's update never overtakes it). */
  function flush() {
    if (!S.cfg) return Promise.resolve();
    if (S.busy) { S.again = true; return Promise.resolve(); }
    var item = loadQueue()[0];
    if (!item) return Promise.resolve();
    var sent = JSON.stringify(item);
    S.busy = true;
    return post("/v1/responses", item).then(function (res) {
      var st = res.status;
      if (st === 202 || (st >= 400 && st < 500 && st !== 429 && st !== 408)) {
        if (st !== 202) console.warn("Pulse: answer refused (" + st + ")");
        saveQueue(loadQueue().filter(function (q) { return JSON.stringify(q) !== sent; }));
        S.retryMs = 2000;
        S.again = true;
        return;
      }
      throw new Error("retry " + st);
    }).catch(function () {
      clearTimeout(S.timer);
      S.timer = setTimeout(flush, S.retryMs);
      S.retryMs = Math.min(S.retryMs * 2, 60000);
    }).then(function () {
      S.busy = false;
      if (S.again) { S.again = false; return flush(); }
    });
  }

  /* Queue an answer; a later version of the same answer replaces an unsent earlier one. */
  function enqueue(body) {
    saveQueue(loadQueue().filter(function (q) { return q.response_id !== body.response_id; }).concat([body]));
    return flush();
  }

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  function h(tag, attrs, text) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text != null) n.textContent = text;
    return n;
  }

  var DARK = "--bg:#1c2128;--fg:#e6edf3;--mu:#9da7b3;--ln:#545d68;--ob:#2d333b";
  var CSS = ":host{--bg:#fff;--fg:#1f2328;--mu:#57606a;--ln:#8c959f;--ob:#f6f8fa}" +
    ":host([data-theme=dark]){" + DARK + "}@media (prefers-color-scheme:dark){:host([data-theme=auto]){" + DARK + "}}" +
    ".card{position:fixed;z-index:2147483000;bottom:20px;right:20px;width:400px;max-width:calc(100vw - 40px);" +
    "box-sizing:border-box;padding:20px;background:var(--bg);color:var(--fg);border:1px solid var(--ln);" +
    "border-radius:14px;box-shadow:0 10px 32px rgba(0,0,0,.18);font-size:15px;line-height:1.45;font-weight:400;" +
    "text-align:start;animation:pulse-in .24s ease-out}" +
    ".left{right:auto;left:20px}.center{bottom:auto;top:50%;left:50%;right:auto;translate:-50% -50%}" +
    "@keyframes pulse-in{from{opacity:0;transform:translateY(12px)}}" +
    "@media (prefers-reduced-motion:reduce){.card{animation:none}}" +
    "h2{font-size:16px;font-weight:600;margin:0 36px 14px 0;line-height:1.35}[dir=rtl] h2{margin:0 0 14px 36px}" +
    "button,textarea,a{font:inherit;color:inherit}" +
    ".x{position:absolute;top:10px;inset-inline-end:10px;width:32px;height:32px;border:0;border-radius:8px;" +
    "background:none;font-size:22px;line-height:1;cursor:pointer;color:var(--mu)}.x:hover{background:var(--ob)}" +
    ".scale{display:flex;gap:4px}.o{flex:1 1 0;min-width:24px;min-height:38px;padding:0;border:1px solid var(--ln);" +
    "border-radius:8px;background:var(--ob);cursor:pointer;font-weight:600;display:flex;flex-direction:column;" +
    "align-items:center;justify-content:center}.o .f{font-size:22px;line-height:1.2}" +
    ".o:hover,.o[aria-checked=true]{background:var(--c);color:var(--on);border-color:var(--c)}" +
    ".ends{display:flex;justify-content:space-between;gap:12px;font-size:13px;color:var(--mu);margin-top:6px}" +
    "label{display:block;font-weight:600;margin:0 36px 10px 0}[dir=rtl] label{margin:0 0 10px 36px}" +
    "textarea{display:block;width:100%;box-sizing:border-box;min-height:84px;padding:8px 10px;resize:vertical;" +
    "border:1px solid var(--ln);border-radius:8px;background:var(--bg)}textarea::placeholder{color:var(--mu)}" +
    ".act{display:flex;justify-content:space-between;align-items:center;gap:8px;margin-top:14px}" +
    ".p{min-height:36px;padding:0 18px;border:0;border-radius:8px;background:var(--c);color:var(--on);" +
    "font-weight:600;cursor:pointer}.p:disabled{opacity:.45;cursor:default}" +
    ".t{min-height:36px;padding:0 4px;border:0;background:none;color:var(--mu);cursor:pointer;text-decoration:underline}" +
    ".done{margin:4px 36px 0 0;font-weight:600}[dir=rtl] .done{margin:4px 0 0 36px}" +
    ".link{display:inline-block;margin-top:12px;padding:8px 14px;border-radius:8px;background:var(--c);" +
    "color:var(--on);font-weight:600;text-decoration:none}" +
    ":focus-visible{outline:2px solid var(--fg);outline-offset:2px}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}" +
    "@media (max-width:479px){.card,.left,.center{left:0;right:0;bottom:0;top:auto;translate:none;width:auto;" +
    "max-width:none;border-radius:16px 16px 0 0;padding:16px 12px}.scale{gap:2px}.o{min-height:44px}" +
    "@keyframes pulse-in{from{transform:translateY(100%)}}}";
  var FACES = ["\ud83d\ude21", "\ud83d\ude41", "\ud83d\ude10", "\ud83d\ude42", "\ud83d\ude0d"];

  /* Close the widget; focus goes back where it was if it was inside. */
  function close() {
    var ui = S.ui;
    if (!ui) return;
    S.ui = null;
    clearTimeout(ui.timer);
    var inside = ui.root.activeElement != null;
    ui.host.remove();
    if (inside && ui.back && ui.back.isConnected && ui.back.focus) ui.back.focus();
  }

  function render(survey) {
    close();
    var w = survey.widget, t = w.texts, rtl = w.dir === "rtl";
    var host = h("pulse-survey", { "data-theme": w.theme });
    var root = host.attachShadow({ mode: "open" });
    var ui = S.ui = { host: host, root: root, back: null, timer: null };
    var css = CSS + ":host{--c:" + w.color + ";--on:" + w.on_color + "}";
    var live = h("div", { "class": "sr", role: "status", "aria-live": "polite" });
    var card = h("div", { "class": "card" + (w.placement === "bottom-left" ? " left" : w.placement === "center" ?
      " center" : ""), role: "dialog", "aria-modal": "false", "aria-label": t.dialog_label, dir: w.dir,
      lang: w.locale });
    var x = h("button", { "class": "x", type: "button", "aria-label": t.close }, "\u00d7");
    var body = h("div");
    card.appendChild(x); card.appendChild(body);
    if (root.adoptedStyleSheets && window.CSSStyleSheet) {  // not inline CSS: pages with a strict CSP allow it
      var sheet = new CSSStyleSheet(); sheet.replaceSync(css); root.adoptedStyleSheets = [sheet];
    } else root.appendChild(h("style", {}, css));
    root.appendChild(live); root.appendChild(card);
    document.body.appendChild(host);
    var answer = null;

    root.addEventListener("focusin", function (e) {
      if (e.relatedTarget && !root.contains(e.relatedTarget) && e.relatedTarget !== host) ui.back = e.relatedTarget;
    });
    function dismiss(how) {
      if (S.ui !== ui) return;
      if (!answer) {
        var later = how === "later" || w.escape === "later";
        post(later ? "/v1/widget/snooze" : "/v1/widget/dismissals", person()).catch(function () {});
        emit("pulse:dismissed", { survey_id: survey.survey_id, reason: later ? "later" : "dismissed" });
      }
      close();
    }
    x.addEventListener("click", function () { dismiss(); });
    card.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { e.preventDefault(); dismiss(); }
    });
    function step(nodes, focus) {
      var had = root.activeElement != null;
      body.textContent = "";
      nodes.forEach(function (n) { body.appendChild(n); });
      if (had && focus) focus.focus();
      return had;
    }

    /* Step 1: the score, sent as soon as it is chosen. */
    var q = h("h2", { id: "q" }, t.question);
    var scale = h("div", { "class": "scale", role: "radiogroup", "aria-labelledby": "q" });
    var opts = [], checked = null;
    for (var v = survey.scale_min; v <= survey.scale_max; v++) {
      var o = h("button", { type: "button", role: "radio", "class": "o", "aria-checked": "false", tabindex: "-1",
                            "data-score": String(v) });
      var end = v === survey.scale_min ? t.low_label : v === survey.scale_max ? t.high_label : null;
      if (end) o.setAttribute("aria-label", v + ", " + end);
      if (w.faces) o.appendChild(h("span", { "class": "f", "aria-hidden": "true" }, FACES[v - survey.scale_min]));
      o.appendChild(h("span", {}, String(v)));
      o.addEventListener("click", choose.bind(null, v));
      opts.push(o); scale.appendChild(o);
    }
    opts[0].tabIndex = 0;
    function check(i) {
      opts.forEach(function (b, j) { b.setAttribute("aria-checked", String(i === j)); b.tabIndex = i === j ? 0 : -1; });
      checked = i; send.disabled = false; opts[i].focus();
    }
    scale.addEventListener("keydown", function (e) {
      var i = checked == null ? opts.indexOf(root.activeElement) : checked, n = opts.length;
      var k = e.key, fwd = k === "ArrowDown" || k === (rtl ? "ArrowLeft" : "ArrowRight");
      var back = k === "ArrowUp" || k === (rtl ? "ArrowRight" : "ArrowLeft");
      if (fwd || back) check(((i < 0 ? 0 : i) + (fwd ? 1 : n - 1)) % n);
      else if (k === "Home") check(0);
      else if (k === "End") check(n - 1);
      else return;
      e.preventDefault();
    });
    var ends = h("div", { "class": "ends", "aria-hidden": "true" });
    ends.appendChild(h("span", {}, t.low_label)); ends.appendChild(h("span", {}, t.high_label));
    var acts = h("div", { "class": "act" });
    var later = h("button", { "class": "t", type: "button" }, t.later);
    var send = h("button", { "class": "p", type: "button", disabled: "" }, t.send);
    later.addEventListener("click", function () { dismiss("later"); });
    send.addEventListener("click", function () { if (checked != null) choose(survey.scale_min + checked); });
    acts.appendChild(later); acts.appendChild(send);
    step([q, scale, ends, acts]);
    setTimeout(function () { live.textContent = t.dialog_label + ": " + t.question; }, 100);  // once in the page

    function choose(score) {
      if (answer) return;
      var category = w.categories[score - survey.scale_min];
      answer = { response_id: uuid(), survey_type: survey.survey_type, score: score, comment: null,
                 account_id: S.who.accountId, respondent_id: S.who.respondentId, properties: S.who.properties || {},
                 submitted_at: new Date().toISOString() };
      enqueue(answer);
      emit("pulse:answered", { survey_id: survey.survey_id, response_id: answer.response_id, score: score,
                               category: category, comment: null });
      followUp(category);
    }

    /* Step 2: the follow-up question of the answer's category, sent as an update of the same answer. */
    function followUp(category) {
      var label = h("label", { "for": "c" }, w.follow_up[category]);
      var text = h("textarea", { id: "c", maxlength: "5000", placeholder: t.comment_hint });
      var acts2 = h("div", { "class": "act" });
      var skip = h("button", { "class": "t", type: "button" }, t.skip);
      var send2 = h("button", { "class": "p", type: "button" }, t.send);
      skip.addEventListener("click", function () { thanks(category); });
      send2.addEventListener("click", function () {
        var comment = text.value.trim();
        if (comment) {
          answer = Object.assign({}, answer, { comment: comment });
          enqueue(answer);
          emit("pulse:answered", { survey_id: survey.survey_id, response_id: answer.response_id, score: answer.score,
                                   category: category, comment: comment });
        }
        thanks(category);
      });
      acts2.appendChild(skip); acts2.appendChild(send2);
      step([label, text, acts2], text);
    }

    /* Step 3: thanks (promoters may be offered a link), then the widget closes itself. */
    function thanks(category) {
      var done = h("p", { "class": "done", tabindex: "-1" }, t.thanks);
      var nodes = [done];
      if (w.promoter_link && category === "promoter") {
        nodes.push(h("a", { "class": "link", href: w.promoter_link, target: "_blank", rel: "noopener" },
                     t.promoter_link_text));
      } else {
        ui.timer = setTimeout(function () { if (S.ui === ui) close(); }, 4000);
      }
      if (!step(nodes, done)) live.textContent = t.thanks;  // else read as it takes the focus
    }
    emit("pulse:shown", { survey_id: survey.survey_id, survey_type: survey.survey_type });
  }

  function locale() {
    var l = (S.cfg.locale || document.documentElement.lang || navigator.language || "").replace(/_/g, "-");
    return /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(l) && l.length <= 35 ? l : null;
  }
  function showing() {
    var c = S.cfg, b = person();
    b.signed_up_at = S.who.signedUpAt || null;
    b.locale = locale();
    ["color", "theme", "placement"].forEach(function (k) { if (c[k]) b[k] = c[k]; });
    return b;
  }
  function json(res) { return res.ok ? res.json() : null; }
  function display(extra) {
    return post("/v1/widget/displays", Object.assign(showing(), extra)).then(json).then(function (shown) {
      if (shown && shown.show && shown.survey) { render(shown.survey); return true; }
      return false;
    });
  }

  /* Ask whether to show the survey (asking records nothing); record the display as it shows. */
  function ask() {
    var b = showing();
    return fetch(url("/v1/widget/eligibility", { account_id: b.account_id, respondent_id: b.respondent_id,
                                                 signed_up_at: b.signed_up_at, locale: b.locale }),
                 { credentials: "omit" }).then(json)
      .then(function (answer) { return answer && answer.show ? display({}) : false; })
      .catch(function () { return false; /* offline: try again on the next page */ });
  }

  function identify(who) {
    if (!who || !who.accountId || !who.respondentId) { console.warn("Pulse: accountId and respondentId are required"); return; }
    S.who = who;
    if (S.cfg && S.cfg.auto !== false) return ask();
  }

  function init(cfg) {
    if (!cfg || !cfg.key) { console.warn("Pulse: key is required"); return; }
    cfg.host = cfg.host || (script ? new URL(script.src).origin : window.location.origin);
    S.cfg = cfg;
    flush();
    if (cfg.accountId || cfg.respondentId) return identify(cfg);
  }

  /* Show now, sampling aside (recontact rules still apply; force sets them aside with a test-mode key). */
  function show(opts) {
    if (!S.cfg || !S.who) { console.warn("Pulse: call init and identify first"); return Promise.resolve(false); }
    return display({ skip_sampling: true, force: !!(opts && opts.force) }).catch(function () { return false; });
  }

  window.Pulse = { init: init, identify: identify, show: show, hide: close, flush: flush };
  window.addEventListener("online", flush);
  if (script && script.dataset.pulseKey) {
    var d = script.dataset;
    var start = function () {
      init({ key: d.pulseKey, accountId: d.accountId, respondentId: d.respondentId, signedUpAt: d.signedUpAt,
             locale: d.pulseLocale, color: d.pulseColor, theme: d.pulseTheme, placement: d.pulsePlacement });
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
  }
})();
