// History view: stored events filtered by camera, label, time range and review state, a page at a time;
// the selected event's evidence (snapshot, crop strip, clip) and its review (acknowledge, false positive,
// delete).
import { $, el, percent, timeText } from "./dom.js";
import { SignedUrls } from "./media.js";

const PAGE_SIZE = 20;
const CLIP_WAIT_S = 60; // a clip is written a few seconds after its event: look again until this old
const CLIP_POLL_MS = 2000;
const REVIEW_TEXT = { new: "new", acknowledged: "acknowledged", false_positive: "false positive" };

function unixOf(input) {
  return input.value ? String(new Date(input.value).getTime() / 1000) : null;
}

export function createView({ api }) {
  const urls = new SignedUrls(api);
  let offset = 0;
  let total = 0;
  let selected = null; // the event shown in the detail panel
  let visible = false;
  let clipTimer = null;

  function query() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
    const filters = {
      camera: $("filter-camera").value,
      label: $("filter-label").value.trim(),
      since: unixOf($("filter-since")),
      until: unixOf($("filter-until")),
      review_state: $("filter-review").value,
    };
    for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
    return params;
  }

  async function refreshCameraChoices() {
    let cameras;
    try {
      cameras = await api.json("/cameras");
    } catch (err) {
      return;
    }
    const select = $("filter-camera");
    const chosen = select.value;
    const options = [el("option", null, "all")];
    options[0].value = "";
    for (const camera of cameras) {
      const option = el("option", null, camera.name ? camera.name + " (" + camera.id + ")" : camera.id);
      option.value = camera.id;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = chosen;
  }

  function row(ev) {
    const tr = el("tr", "history-row");
    tr.dataset.eventId = ev.id;
    tr.tabIndex = 0;
    tr.setAttribute("aria-label", ev.label + " on " + ev.camera_id + ", " + timeText(ev.frame_time));
    tr.append(
      el("td", null, timeText(ev.frame_time)),
      el("td", null, ev.camera_id),
      el("td", null, ev.track_id),
      el("td", "label", ev.label),
      el("td", null, percent(ev.score)),
      el("td", "review review-" + ev.review_state, REVIEW_TEXT[ev.review_state] || ev.review_state),
    );
    if (selected && selected.id === ev.id) tr.classList.add("selected");
    tr.addEventListener("click", () => showDetail(ev));
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        showDetail(ev);
      }
    });
    return tr;
  }

  async function refresh() {
    let page;
    try {
      page = await api.json("/events?" + query().toString());
    } catch (err) {
      $("history-page").textContent = err.message;
      return;
    }
    total = page.total;
    $("history-rows").replaceChildren(...page.items.map(row));
    $("history-empty").classList.toggle("hidden", page.items.length > 0);
    const first = total ? offset + 1 : 0;
    $("history-page").textContent = first + "–" + (offset + page.items.length) + " of " + total;
    $("history-prev").disabled = offset === 0;
    $("history-next").disabled = offset + PAGE_SIZE >= total;
  }

  async function setMedia(node, path) {
    node.removeAttribute("src");
    if (!path) return false;
    try {
      node.src = await urls.url(path);
      return true;
    } catch (err) {
      return false;
    }
  }

  async function showDetail(ev) {
    clearTimeout(clipTimer);
    selected = ev;
    for (const tr of document.querySelectorAll("#history-rows tr")) {
      tr.classList.toggle("selected", tr.dataset.eventId === ev.id);
    }
    $("event-detail").classList.remove("hidden");
    $("event-detail").dataset.eventId = ev.id;
    $("detail-title").textContent = ev.label + " " + percent(ev.score) + " on " + ev.camera_id;
    $("detail-meta").textContent =
      "track " + ev.track_id + " · " + timeText(ev.frame_time) + " · review: " + (REVIEW_TEXT[ev.review_state] || ev.review_state);
    $("event-detail").dataset.reviewState = ev.review_state;
    $("detail-snapshot").alt = "Snapshot of " + ev.label + " on " + ev.camera_id;
    $("detail-crops").alt = "Crops the model classified";
    await setMedia($("detail-snapshot"), ev.snapshot_url);
    await setMedia($("detail-crops"), ev.crops_url);
    const clip = await setMedia($("detail-clip"), ev.clip_url);
    $("detail-clip").classList.toggle("hidden", !clip);
    $("detail-clip-missing").classList.toggle("hidden", clip);
    if (!clip && Date.now() / 1000 - ev.frame_time < CLIP_WAIT_S) {
      clipTimer = setTimeout(() => {
        if (selected && selected.id === ev.id) openById(ev.id);
      }, CLIP_POLL_MS);
    }
  }

  async function openById(id) {
    try {
      await showDetail(await api.json("/events/" + encodeURIComponent(id)));
    } catch (err) {
      $("history-page").textContent = err.message;
    }
  }

  async function review(state) {
    if (!selected) return;
    const updated = await api.json("/events/" + encodeURIComponent(selected.id), {
      method: "PATCH",
      body: { review_state: state },
    });
    await showDetail(updated);
    await refresh();
  }

  async function remove() {
    if (!selected) return;
    await api.json("/events/" + encodeURIComponent(selected.id), { method: "DELETE" });
    selected = null;
    $("event-detail").classList.add("hidden");
    await refresh();
  }

  const listeners = [
    ["history-filters", "submit", (e) => { e.preventDefault(); offset = 0; refresh(); }],
    ["history-prev", "click", () => { offset = Math.max(0, offset - PAGE_SIZE); refresh(); }],
    ["history-next", "click", () => { if (offset + PAGE_SIZE < total) { offset += PAGE_SIZE; refresh(); } }],
    ["review-ack", "click", () => review("acknowledged")],
    ["review-fp", "click", () => review("false_positive")],
    ["review-delete", "click", remove],
  ];
  for (const [id, type, handler] of listeners) $(id).addEventListener(type, handler);

  return {
    show(params) {
      visible = true;
      refreshCameraChoices();
      refresh();
      const id = params && params.get("event");
      if (id) openById(id);
    },
    hide() {
      visible = false;
      clearTimeout(clipTimer);
    },
    stop() {
      visible = false;
      clearTimeout(clipTimer);
      for (const [id, type, handler] of listeners) $(id).removeEventListener(type, handler);
    },
    onEvent() {
      if (visible && offset === 0) refresh();
    },
  };
}
