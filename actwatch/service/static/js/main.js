// actwatch dashboard: sign-in, navigation between views (#/live, #/history, ...) and the shared
// WebSocket. No framework and nothing external: the page works on an offline network.
import { ApiClient } from "./api.js";
import { $ } from "./dom.js";
import { LiveSocket } from "./socket.js";
import { VIEWS } from "./views.js";

const TOKEN_KEY = "actwatch-token";
const DEFAULT_VIEW = "live";
let session = null; // { api, socket, views: {name: view}, current }

function tokenFromFragment() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!match) return null;
  // Remove the token from the address bar (and from history) once read.
  history.replaceState(null, "", location.pathname + location.search + "#/" + DEFAULT_VIEW);
  return decodeURIComponent(match[1]);
}

function setStatus(state) {
  const pill = $("ws-status");
  pill.textContent = state;
  pill.className = "pill pill-" + state;
}

function stopSession() {
  if (!session) return;
  for (const view of Object.values(session.views)) view.stop();
  session.socket.stop();
  session = null;
}

function showAuth(message) {
  stopSession();
  sessionStorage.removeItem(TOKEN_KEY);
  $("content").classList.add("hidden");
  $("nav").classList.add("hidden");
  $("logout").classList.add("hidden");
  $("auth").classList.remove("hidden");
  $("auth-error").textContent = message || "";
  $("token-input").focus();
}

/** The view name and parameters of the address's fragment: #/history?camera=door. */
function route() {
  const match = location.hash.match(/^#\/([a-z]+)(?:\?(.*))?$/);
  const name = match && match[1];
  return { name: name && VIEWS[name] ? name : DEFAULT_VIEW, params: new URLSearchParams((match && match[2]) || "") };
}

function navigate(name, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  location.hash = "#/" + name + query;
}

function showRoute() {
  if (!session) return;
  const { name, params } = route();
  for (const section of document.querySelectorAll("#content > .view")) {
    section.classList.toggle("hidden", section.dataset.view !== name);
  }
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (session.current && session.current !== name) session.views[session.current].hide();
  session.current = name;
  session.views[name].show(params);
}

function start(token) {
  stopSession();
  sessionStorage.setItem(TOKEN_KEY, token);
  const api = new ApiClient(token, showAuth);
  const views = {};
  const forEachView = (method, arg) => {
    for (const view of Object.values(views)) if (view[method]) view[method](arg);
  };
  const socket = new LiveSocket(token, {
    onStatus: setStatus,
    onEvent: (event) => forEachView("onEvent", event),
    onTracks: (message) => forEachView("onTracks", message),
    onDropped: (count) => forEachView("onDropped", count),
    onUnauthorised: showAuth,
  });
  const ctx = { api, socket, navigate };
  for (const [name, module] of Object.entries(VIEWS)) views[name] = module.createView(ctx);
  session = { api, socket, views, current: null };
  $("auth").classList.add("hidden");
  $("content").classList.remove("hidden");
  $("nav").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  socket.start();
  showRoute();
}

document.addEventListener("DOMContentLoaded", () => {
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token-input").value.trim();
    if (value) start(value);
  });
  $("logout").addEventListener("click", () => showAuth(""));
  window.addEventListener("hashchange", showRoute);
  const initial = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (initial) start(initial);
  else showAuth("");
});
