// The supervisor's live board and wallboard: one push socket; any change it reports makes
// htmx fetch the board's fragment again (the server renders every figure), and between
// renders the elapsed times tick. No figure is computed here; words come from the page's
// JSON data block (#board-data), rendered in the visitor's language by the server.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const W = data.words;
  const $ = (id) => document.getElementById(id);
  //: the pushes that change something the board shows
  const CHANGES = new Set([
    "window_opened", "call_connected", "window_warning", "window_overrun", "window_extended",
    "window_met", "window_closed", "ticket_created", "ticket_answered", "ticket_withdrawn",
    "ticket_warning", "call_ended", "call_updated", "agent_state", "queue_changed",
    "supervisor_alert",
  ]);
  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let refreshTimer = null;
  let skew = 0; // server clock minus this browser's, from the fragment's data-now

  function link(state) {
    const el = $("link");
    if (!el) return;
    el.dataset.state = state;
    el.dataset.online = String(state === "online");
    el.textContent = W["link_" + state] || state;
  }

  /** Ask htmx for the board's fragment again, at most every 250 ms. */
  function refresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      document.body.dispatchEvent(new CustomEvent("cc-refresh"));
    }, 250);
  }

  function readSkew() {
    const root = document.querySelector(".board-root[data-now]");
    if (root) {
      const server = Date.parse(root.dataset.now);
      if (!Number.isNaN(server)) skew = server - Date.now();
    }
  }

  function fmt(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }

  function tick() {
    const now = Date.now() + skew;
    for (const el of document.querySelectorAll("[data-since]")) {
      const since = Date.parse(el.dataset.since);
      if (!Number.isNaN(since)) el.textContent = fmt((now - since) / 1000);
    }
  }

  async function sessionStands() {
    try {
      const r = await fetch("/api/v1/session", { credentials: "same-origin" });
      return r.status !== 401;
    } catch (e) {
      return true;
    }
  }

  function connect() {
    clearTimeout(reconnectTimer);
    link(attempt ? "offline" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/api/v1/stream");
    socket = ws;
    ws.onopen = () => {
      // anything missed while away: render the board again
      if (attempt) refresh();
      attempt = 0;
      link("online");
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      // a resync: notes were missed (the socket fell behind, or the instances lost each
      // other for a moment), so read the whole board again
      if (CHANGES.has(msg.type) || msg.resync) refresh();
    };
    ws.onclose = async (ev) => {
      if (socket !== ws) return;
      socket = null;
      if (ev.code === 4001 || !(await sessionStands())) {
        link("session_ended");
        location.assign("/login?next=" + encodeURIComponent(location.pathname));
        return;
      }
      attempt += 1;
      link("offline");
      const delay = Math.min(15000, 500 * 2 ** Math.min(attempt - 1, 5)) * (0.75 + Math.random() / 2);
      reconnectTimer = setTimeout(connect, delay);
    };
  }

  document.body.addEventListener("htmx:afterSwap", () => { readSkew(); tick(); });
  readSkew();
  setInterval(tick, 1000);
  connect();
})();
