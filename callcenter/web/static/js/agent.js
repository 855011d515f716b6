// The agent's desk: one push socket, the countdown, and the actions as JSON calls.
//
// The server decides everything (deadlines, due times, entitlement); this module only shows
// what the `desk` frame and the pushes say (docs/agent-screen.md). Caller-supplied text is
// only ever set with textContent. Words come from the page's JSON data block (#agent-data),
// rendered in the visitor's language by the server: no string here is shown to a user.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("agent-data").textContent);
  const W = data.words;
  const $ = (id) => document.getElementById(id);
  const MOSCOW = "Europe/Moscow";

  /** A word, with %(name)s filled from values. */
  function t(key, values) {
    let text = W[key] !== undefined ? W[key] : key;
    if (values) {
      text = text.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
    }
    return text;
  }

  const locale = data.lang === "en" ? "en-GB" : "ru-RU"; // day before month in both
  const fmtTime = new Intl.DateTimeFormat(locale, {
    timeZone: MOSCOW, hour: "2-digit", minute: "2-digit", hour12: false,
  });
  const fmtDayTime = new Intl.DateTimeFormat(locale, {
    timeZone: MOSCOW, day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit",
    hour12: false,
  });
  const fmtDate = new Intl.DateTimeFormat(locale, {
    timeZone: MOSCOW, day: "2-digit", month: "2-digit", year: "numeric",
  });
  const hhmm = (iso) => (iso ? fmtTime.format(new Date(iso)) : "—");
  const dayTime = (iso) => (iso ? fmtDayTime.format(new Date(iso)) : "—");
  const dateOnly = (d) => (d ? fmtDate.format(new Date(d + "T12:00:00+03:00")) : "—");

  function setText(id, text) {
    const el = $(id);
    if (el) el.textContent = text == null || text === "" ? "—" : String(text);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  // --- state -------------------------------------------------------------------------------

  let agent = null; // the desk's agent part
  let call = null; // the current pop, or null
  let offsetMs = 0; // server clock minus this browser's, from the last desk frame
  const finished = new Set(); // calls the agent pressed Done on

  function serverNow() {
    return Date.now() + offsetMs;
  }

  // --- flash messages ------------------------------------------------------------------------

  let flashTimer = null;

  function flash(text, kind) {
    const box = $("flash");
    box.textContent = text;
    box.dataset.kind = kind || "error";
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { box.hidden = true; }, kind === "ok" ? 3000 : 10000);
  }

  // --- rendering -----------------------------------------------------------------------------

  function renderAgent() {
    if (!agent) return;
    const box = $("agent-state");
    const state = (agent.state && agent.state.state) || "available";
    box.dataset.state = state;
    setText("agent-state-word", t("state_" + state));
    $("agent-state-reason").textContent = (agent.state && agent.state.reason) || "";
    const pause = agent.pause || { available: false };
    const paused = state === "paused";
    $("act-pause").disabled = !pause.available || paused;
    $("act-unpause").disabled = !pause.available || !paused;
    $("pause").querySelector("input[name=reason]").disabled = !pause.available;
    const why = $("pause-why");
    why.hidden = !!pause.available;
    why.textContent = pause.available ? "" : t("pause_unavailable_no_ami");
  }

  function renderCall() {
    const has = !!call;
    $("desk").hidden = !has;
    $("idle").hidden = has;
    if (!has) return;
    setText("caller-number", call.caller_number);
    setText("cert-number", call.certificate_number);
    const status = call.certificate_status || "UNVERIFIED";
    const badge = $("cert-status");
    badge.className = "badge st-" + status;
    setText("cert-status-word", t("status_" + status));
    setText("connected-at", call.ended_at
      ? hhmm(call.connected_at) + " · " + t("ended_at", { time: hhmm(call.ended_at) })
      : hhmm(call.connected_at));
    $("cert-lookup").hidden = !(status === "UNVERIFIED" || status === "UNKNOWN") || !!call.ended_at;
    renderCertificate(call.certificate);
    renderHistory();
    renderIdentity();
    renderTicket();
    renderActions();
    tick();
  }

  function renderCertificate(cert) {
    $("cert").hidden = !cert;
    if (!cert) return;
    const org = cert.holder_type === "organisation";
    setText("holder", org ? cert.organisation : cert.holder_name);
    $("org-label").textContent = org ? t("cert_acting_for") : t("cert_organisation");
    setText("organisation", org ? cert.holder_name : cert.organisation);
    const left = cert.days_left;
    setText("validity", dateOnly(cert.valid_from) + " – " + dateOnly(cert.valid_to) + " · " +
      (left != null && left >= 0 ? t("cert_days_left", { days: left }) : t("cert_expired_days")));
    setText("product", cert.product);
    setText("version", cert.build
      ? t("cert_version_build", { version: cert.version, build: cert.build })
      : cert.version_string || cert.version);
    setText("version-note", cert.version ? t("cert_version_note", { version: cert.version }) : "");
    const contacts = $("contacts");
    contacts.replaceChildren();
    for (const c of cert.contacts || []) {
      const li = el("li", c.is_caller ? "contact is-caller" : "contact");
      li.append(el("span", null, c.full_name), " ", el("span", "mono", c.phone));
      if (c.is_caller) li.append(" ", el("strong", "mark", "★ " + t("cert_is_caller")));
      contacts.append(li);
    }
    if (!contacts.children.length) contacts.append(el("li", "muted", t("cert_no_contacts")));
    const services = $("services");
    services.replaceChildren();
    for (const s of cert.services || []) {
      const li = el("li", s.covered ? "svc covered" : "svc uncovered");
      const title = W["category_" + s.code] !== undefined ? t("category_" + s.code) : s.title;
      li.append(el("span", "sign", s.covered ? "✓" : "✗"), " ",
        el(s.covered ? "span" : "s", null, title), " ",
        el("span", "muted small", s.covered ? t("cert_covered") : t("cert_not_covered")));
      services.append(li);
    }
  }

  function renderHistory() {
    const calls = $("last-calls");
    calls.replaceChildren();
    for (const c of call.last_calls || []) {
      const li = el("li");
      li.append(el("span", null, dayTime(c.started_at)), " · ", el("span", null, c.agent || "—"),
        " · ", el("span", "win win-" + (c.window_status || "none"),
          t("window_" + (c.window_status || "none"))));
      if (c.outcome) li.append(" · ", el("span", null, t("outcome_" + c.outcome)));
      calls.append(li);
    }
    if (!calls.children.length) calls.append(el("li", "muted", t("none_yet")));
    const tickets = $("open-tickets");
    tickets.replaceChildren();
    for (const k of call.open_tickets || []) {
      const li = el("li");
      li.append(el("strong", "mono", "№" + k.id), " · ",
        el("span", null, t("ticket_due_at", { time: dayTime(k.due_at) })), " · ",
        el("span", "tk tk-" + k.status, t("ticket_" + k.status)), " ",
        el("span", "clip", k.description || ""));
      tickets.append(li);
    }
    if (!tickets.children.length) tickets.append(el("li", "muted", t("none_yet")));
  }

  let identityFor = null; // the call whose identity the form shows
  let identityDirty = false;

  function renderIdentity() {
    const form = $("identity");
    if (identityFor === call.call_id && identityDirty) return; // the agent is typing
    if (identityFor !== call.call_id) $("saved").textContent = "";
    identityFor = call.call_id;
    const id = call.identity || {};
    form.elements.caller_name.value = id.caller_name || "";
    form.elements.organisation.value = id.organisation || "";
    form.elements.category.value = call.category || "";
    form.elements.subject.value = call.subject || "";
    form.elements.description.value = call.description || "";
    for (const radio of form.querySelectorAll("input[name=identity_check]")) {
      radio.checked = radio.value === (id.check || "");
    }
    identityDirty = false;
  }

  function renderTicket() {
    const ticket = call.ticket;
    $("ticket").hidden = !ticket;
    if (!ticket) return;
    setText("ticket-id", ticket.id);
    setText("ticket-due", ticket["due_words_" + data.lang] || ticket.due_words_ru ||
      dayTime(ticket.due_at));
    setText("ticket-due-at", t("ticket_due_at", { time: dayTime(ticket.due_at) }));
  }

  function windowRunning() {
    const w = call && call.window;
    return !!w && (w.status === "open" || w.status === "extended");
  }

  function renderActions() {
    const settled = !!call.outcome;
    const running = windowRunning();
    $("act-resolved").disabled = settled;
    $("act-escalate").disabled = settled || !!call.ticket;
    $("act-extend").disabled = settled || !running || !!call.ended_at;
    $("act-refuse").disabled = settled;
    $("act-abusive").disabled = settled;
    $("abuse").elements.note.disabled = settled;
    $("act-done").disabled = !call.ended_at; // the service ends wrap-up only after the call
    const wrap = $("wrapup-note");
    if (wrap) wrap.remove();
    if (call.ended_at && !settled) {
      const note = el("p", "note", t("call_ended_wrapup", { time: hhmm(call.ended_at) }));
      note.id = "wrapup-note";
      $("ticket").before(note);
    }
  }

  // --- the countdown ---------------------------------------------------------------------------

  function phaseOf(w, remaining) {
    if (!w) return "none";
    if (w.status === "met" || (call.outcome && w.status !== "overrun" && w.status !== "escalated")) {
      return "stopped";
    }
    if (w.status === "overrun" || w.status === "escalated" || remaining <= 0) return "overrun";
    const warnAt = w.warn_at ? Date.parse(w.warn_at) : Infinity;
    if (w.warned_at || serverNow() >= warnAt) return "warning";
    return "running";
  }

  function clockText(seconds) {
    const s = Math.abs(Math.trunc(seconds));
    const text = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    return seconds < 0 ? "−" + text : text;
  }

  let lastPhase = null;

  function tick() {
    if (!call) return;
    const w = call.window;
    const box = $("countdown");
    if (!w) {
      box.dataset.phase = "none";
      setText("cd-time", "--:--");
      setText("cd-text", t("window_none"));
      setText("cd-deadline", "");
      return;
    }
    const remaining = (Date.parse(w.deadline_at) - serverNow()) / 1000;
    const phase = phaseOf(w, remaining);
    box.dataset.phase = phase;
    $("cd-time").textContent = phase === "stopped" ? "✓" : clockText(Math.ceil(remaining));
    $("cd-text").textContent = phase === "stopped" ? t("window_" + w.status)
      : t("countdown_" + phase);
    $("cd-deadline").textContent = t("countdown_deadline", { time: hhmm(w.deadline_at) });
    if (phase !== lastPhase) {
      lastPhase = phase;
      renderActions();
    }
  }

  setInterval(tick, 250);

  // --- the push socket -------------------------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;

  function link(state) {
    const box = $("link");
    box.dataset.online = String(state === "online");
    box.dataset.state = state;
    box.textContent = t("link_" + state);
  }

  function refreshList() {
    document.body.dispatchEvent(new CustomEvent("cc-refresh"));
  }

  function sameCall(msg) {
    return call && msg.call_id === call.call_id;
  }

  function setCall(pop) {
    const changed = !call || !pop || call.call_id !== pop.call_id;
    if (changed) identityDirty = false;
    call = pop;
    lastPhase = null;
    renderCall();
  }

  const handlers = {
    desk(msg) {
      if (msg.now) offsetMs = Date.parse(msg.now) - Date.now();
      agent = msg.agent;
      renderAgent();
      setCall(msg.call || null);
      refreshList();
    },
    call_connected(msg) { setCall(msg.call); refreshList(); },
    call_updated(msg) {
      // a late update of a call this page has already finished (Done) does not bring it back
      if (msg.call && finished.has(msg.call.call_id)) return;
      if (!call || !msg.call || msg.call.call_id === call.call_id) setCall(msg.call);
    },
    window_warning(msg) { if (sameCall(msg)) { call.window = msg.window; renderCall(); } },
    window_overrun(msg) { if (sameCall(msg)) { call.window = msg.window; renderCall(); } },
    window_extended(msg) { if (sameCall(msg)) { call.window = msg.window; renderCall(); } },
    ticket_created(msg) {
      if (sameCall(msg)) { call.ticket = msg.ticket; renderCall(); }
      refreshList();
    },
    call_ended(msg) {
      if (sameCall(msg)) { call.ended_at = msg.ended_at; renderCall(); }
      refreshList();
    },
    agent_state(msg) {
      if (agent) { agent.state = msg.state; renderAgent(); }
    },
  };

  async function sessionStands() {
    try {
      const r = await fetch("/api/v1/session", { credentials: "same-origin" });
      return r.status !== 401;
    } catch (e) {
      return true; // the network is down, not the session: keep trying
    }
  }

  function toLogin() {
    link("session_ended");
    location.assign("/login?next=" + encodeURIComponent(location.pathname));
  }

  function connect() {
    clearTimeout(reconnectTimer);
    link(attempt ? "offline" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/api/v1/stream");
    socket = ws;
    ws.onopen = () => { attempt = 0; link("online"); };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      const handler = handlers[msg.type];
      if (handler) handler(msg);
    };
    ws.onclose = async (ev) => {
      if (socket !== ws) return;
      socket = null;
      if (ev.code === 4001 || !(await sessionStands())) { toLogin(); return; }
      attempt += 1;
      link("offline");
      // back-off: 0.5 s, 1 s, 2 s ... up to 15 s, with jitter so a restart is not stampeded
      const delay = Math.min(15000, 500 * 2 ** Math.min(attempt - 1, 5)) * (0.75 + Math.random() / 2);
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  window.addEventListener("online", () => {
    if (!socket) { attempt = Math.min(attempt, 1); connect(); }
  });
  window.addEventListener("offline", () => { if (socket) socket.close(); });

  // --- actions ---------------------------------------------------------------------------------

  async function api(method, path, body) {
    let r;
    try {
      r = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      flash(t("apierr_network"));
      return null;
    }
    let answer = null;
    try { answer = await r.json(); } catch (e) { answer = null; }
    if (r.ok) return answer || {};
    if (r.status === 401) { toLogin(); return null; }
    const code = (answer && answer.error) || String(r.status);
    let text;
    if (W["apierr_" + code] !== undefined) text = t("apierr_" + code);
    else if (r.status === 422) {
      const fields = answer && answer.fields ? Object.keys(answer.fields).join(", ") : "";
      text = t("apierr_validation") + (fields ? ": " + fields : "");
    } else if (r.status === 409) text = t("apierr_conflict");
    else if (r.status === 404) text = t("apierr_not_found");
    else if (r.status === 429) text = t("apierr_throttled");
    else text = t("apierr_other") + " (" + code + ")";
    flash(text);
    return null;
  }

  const callPath = (suffix) => "/api/v1/calls/" + encodeURIComponent(call.call_id) + (suffix || "");

  function identityBody() {
    const f = $("identity").elements;
    const checked = $("identity").querySelector("input[name=identity_check]:checked");
    return {
      caller_name: f.caller_name.value,
      organisation: f.organisation.value,
      category: f.category.value || null,
      subject: f.subject.value,
      description: f.description.value,
      identity_check: checked && checked.value ? checked.value : null,
    };
  }

  async function save() {
    if (!call) return false;
    const answer = await api("PATCH", callPath(), identityBody());
    if (answer === null) return false;
    identityDirty = false;
    $("saved").textContent = "✓ " + t("saved");
    return true;
  }

  function adopt(answer) {
    // an action may answer the new pop (or a call with its ticket); pushes follow anyway
    if (answer && answer.call_id && answer.call_id === (call && call.call_id) && answer.identity) {
      setCall(answer);
    } else if (answer && answer.ticket && call && !(call.ticket && call.ticket.due_words_ru)) {
      call.ticket = answer.ticket; // the push that follows brings the due time in words
      renderCall();
    }
  }

  async function outcome(body) {
    if (!call) return;
    if (identityDirty && !(await save())) return;
    const answer = await api("POST", callPath("/outcome"), body);
    if (answer !== null) { flash(t("done_ok"), "ok"); call.outcome = body.outcome; renderCall(); }
  }

  async function escalate() {
    if (!call || $("act-escalate").disabled) return;
    if (!$("identity").elements.description.value.trim()) {
      flash(t("need_description"));
      $("identity").elements.description.focus();
      return;
    }
    if (identityDirty && !(await save())) return;
    const answer = await api("POST", callPath("/escalate"), {});
    if (answer !== null) adopt(answer);
  }

  async function extend() {
    const form = $("extend");
    if (!call || $("act-extend").disabled) return;
    const reason = form.elements.reason.value.trim();
    if (!reason) { form.elements.reason.focus(); return; }
    const seconds = parseInt(form.elements.seconds.value, 10) || 300;
    const answer = await api("POST", callPath("/extend"), { seconds, reason });
    if (answer !== null) { form.elements.reason.value = ""; flash(t("done_ok"), "ok"); }
  }

  async function done() {
    if ($("act-done").disabled) return;
    const answer = await api("POST", "/api/v1/agent/wrapup/done", {});
    if (answer !== null) {
      if (call) finished.add(call.call_id);
      if (answer.call_id) finished.add(answer.call_id);
      if (answer.state && agent) { agent.state = answer.state; renderAgent(); }
      setCall(null);
      refreshList();
    }
  }

  async function pause(paused) {
    const form = $("pause");
    const body = { paused };
    if (paused) body.reason = form.elements.reason.value.trim() || t("pause_reason_default");
    const answer = await api("PUT", "/api/v1/agent/state", body);
    if (answer !== null && agent) {
      if (answer.state) agent.state = answer.state.state ? answer.state : answer;
      renderAgent();
    }
  }

  async function lookup() {
    const input = $("lookup-number");
    const number = input.value.trim();
    if (!call || !number) { input.focus(); return; }
    const answer = await api("POST", callPath("/certificate"), { number });
    if (answer !== null) { input.value = ""; adopt(answer); }
  }

  function wire() {
    $("identity").addEventListener("input", () => {
      identityDirty = true;
      $("saved").textContent = "";
    });
    $("identity").addEventListener("submit", (ev) => { ev.preventDefault(); save(); });
    $("act-resolved").addEventListener("click", () => outcome({ outcome: "resolved" }));
    $("act-escalate").addEventListener("click", escalate);
    $("extend").addEventListener("submit", (ev) => { ev.preventDefault(); extend(); });
    $("refuse").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const reason = $("refuse").elements.reason.value;
      if (reason) outcome({ outcome: "refused", reason });
    });
    // ending for abuse alerts a supervisor, who reviews it: what happened is required
    $("abuse").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const note = $("abuse").elements.note;
      if (!note.value.trim()) {
        flash(t("abuse_note_required"), "warn");
        note.focus();
        return;
      }
      outcome({ outcome: "abusive", note: note.value.trim() }).then(() => { note.value = ""; });
    });
    $("act-done").addEventListener("click", done);
    $("pause").addEventListener("submit", (ev) => { ev.preventDefault(); pause(true); });
    $("act-unpause").addEventListener("click", () => pause(false));
    $("cert-lookup").addEventListener("submit", (ev) => { ev.preventDefault(); lookup(); });

    const keys = {
      s: save,
      r: () => { if (!$("act-resolved").disabled) outcome({ outcome: "resolved" }); },
      e: () => {
        const reason = $("extend").elements.reason;
        if (!reason.value.trim()) reason.focus(); else extend();
      },
      t: escalate,
      d: done,
      p: () => { if (!$("act-pause").disabled) pause(true); },
      l: () => { if (!$("cert-lookup").hidden) $("lookup-number").focus(); },
    };
    document.addEventListener("keydown", (ev) => {
      if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
      const action = keys[(ev.code || "").replace(/^Key/, "").toLowerCase()];
      if (action) { ev.preventDefault(); action(); }
    });
  }

  wire();
  renderCall();
  connect();
})();
