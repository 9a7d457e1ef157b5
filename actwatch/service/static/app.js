// actwatch dashboard: cameras, live alerts over the WebSocket, recent alerts from /events.
// No framework and nothing external: the page must work on an offline network. Data goes into the
// page through textContent only (never innerHTML), so camera names and labels cannot inject markup.
"use strict";

(() => {
  const TOKEN_KEY = "actwatch-token";
  const MAX_LIVE = 50;
  const RECENT_LIMIT = 20;
  const $ = (id) => document.getElementById(id);
  let token = null;
  let socket = null;
  let reconnectDelay = 1000;
  let reconnectTimer = null;
  let camerasTimer = null;
  let recentTimer = null;
  let droppedTotal = 0;

  // ------------------------------------------------------------------------------------------ token
  function tokenFromFragment() {
    const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (!match) return null;
    // Remove the token from the address bar (and from history) once read.
    history.replaceState(null, "", location.pathname + location.search);
    return decodeURIComponent(match[1]);
  }

  function showAuth(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    stopLive();
    $("content").classList.add("hidden");
    $("logout").classList.add("hidden");
    $("auth").classList.remove("hidden");
    $("auth-error").textContent = message || "";
    $("token-input").focus();
  }

  function start(newToken) {
    token = newToken;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("auth").classList.add("hidden");
    $("content").classList.remove("hidden");
    $("logout").classList.remove("hidden");
    refreshCameras();
    refreshRecent();
    clearInterval(camerasTimer);
    clearInterval(recentTimer);
    camerasTimer = setInterval(refreshCameras, 3000);
    recentTimer = setInterval(refreshRecent, 30000);
    connect();
  }

  // ------------------------------------------------------------------------------------------- REST
  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: "Bearer " + token } });
    if (response.status === 401) {
      showAuth("The token was not accepted.");
      throw new Error("unauthorised");
    }
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function refreshCameras() {
    if (!token) return;
    let cameras;
    try {
      cameras = await (await api("/cameras")).json();
    } catch (err) {
      return;
    }
    const body = $("cameras");
    body.replaceChildren();
    for (const cam of cameras) {
      const row = el("tr");
      row.dataset.cameraId = cam.id;
      row.append(el("td", "id", cam.id), el("td", "name", cam.name));
      const state = el("td");
      state.append(el("span", "state state-" + cam.state, cam.state));
      if (cam.last_error) state.title = cam.last_error;
      row.append(state, el("td", null, cam.fps.toFixed(1)), el("td", null, cam.frames_read));
      row.append(el("td", "url", cam.url));
      body.append(row);
    }
    $("cameras-empty").classList.toggle("hidden", cameras.length > 0);
  }

  async function loadImage(img, url) {
    // <img src> cannot send the Authorization header: fetch the bytes and show them from a blob URL.
    if (!url) return;
    try {
      const blob = await (await api(url)).blob();
      img.src = URL.createObjectURL(blob);
      img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    } catch (err) {
      img.alt = "snapshot unavailable";
    }
  }

  function eventItem(ev, fresh) {
    const item = el("li", "event" + (fresh ? " fresh" : ""));
    item.dataset.eventId = ev.id;
    const img = el("img", "thumb");
    img.alt = ev.label + " on " + ev.camera_id;
    loadImage(img, ev.snapshot_url);
    const text = el("div");
    text.append(el("div", "label", ev.label + " " + (ev.score * 100).toFixed(0) + "%"));
    text.append(el("div", "meta", "camera " + ev.camera_id + " · track " + ev.track_id));
    text.append(el("div", "meta", new Date(ev.frame_time * 1000).toLocaleString()));
    item.append(img, text);
    return item;
  }

  async function refreshRecent() {
    if (!token) return;
    let page;
    try {
      page = await (await api("/events?limit=" + RECENT_LIMIT)).json();
    } catch (err) {
      return;
    }
    const list = $("recent-events");
    list.replaceChildren(...page.items.map((ev) => eventItem(ev, false)));
    $("recent-total").textContent = "(" + page.total + " stored)";
  }

  // -------------------------------------------------------------------------------------- WebSocket
  function setStatus(state) {
    const pill = $("ws-status");
    pill.textContent = state;
    pill.className = "pill pill-" + state;
  }

  function stopLive() {
    clearTimeout(reconnectTimer);
    clearInterval(camerasTimer);
    clearInterval(recentTimer);
    if (socket) {
      socket.onclose = null;
      socket.close();
      socket = null;
    }
    setStatus("offline");
  }

  function connect() {
    clearTimeout(reconnectTimer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/ws/events");
    socket = ws;
    setStatus("connecting");
    // The token goes in the first message, not the URL, so it stays out of server access logs.
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: token }));
    ws.onmessage = (msg) => {
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch (err) {
        return;
      }
      if (data.type === "hello") {
        reconnectDelay = 1000;
        setStatus("live");
      } else if (data.type === "event") {
        addLive(data.event);
      } else if (data.type === "dropped") {
        droppedTotal += data.count;
        $("dropped").textContent = "(" + droppedTotal + " missed while the page was busy)";
      }
    };
    ws.onclose = (ev) => {
      if (socket !== ws) return;
      socket = null;
      if (ev.code === 1008) {
        setStatus("unauthorised");
        showAuth("The token was not accepted.");
        return;
      }
      setStatus("offline");
      reconnectTimer = setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 30000);
    };
  }

  function addLive(ev) {
    const list = $("live-events");
    list.prepend(eventItem(ev, true));
    while (list.children.length > MAX_LIVE) list.lastElementChild.remove();
    $("live-empty").classList.add("hidden");
    clearTimeout(addLive.timer);
    addLive.timer = setTimeout(refreshRecent, 1000);
  }

  // ------------------------------------------------------------------------------------------- init
  document.addEventListener("DOMContentLoaded", () => {
    $("auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("token-input").value.trim();
      if (value) start(value);
    });
    $("logout").addEventListener("click", () => showAuth(""));
    const initial = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
    if (initial) start(initial);
    else showAuth("");
  });
})();
