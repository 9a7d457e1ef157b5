// Live view: one tile per camera (its newest frame from latest.jpg, track boxes with ids and labels
// drawn on a canvas from the WebSocket's `tracks` messages, the camera's state and last error), the
// alert feed and the recent alerts.
import { $, el, percent, timeText } from "./dom.js";
import { SignedUrls } from "./media.js";

const MAX_LIVE = 50;
const RECENT_LIMIT = 20;
const CAMERAS_EVERY_MS = 3000;
const FRAME_EVERY_MS = 400; // at most ~2.5 frames per second per tile: the boxes come at full rate
const STALE_TRACKS_S = 2;

/** The feed's list item of event `ev` (snapshot via a signed URL). */
export function eventItem(ev, fresh, urls, onOpen) {
  const item = el("li", "event" + (fresh ? " fresh" : ""));
  item.dataset.eventId = ev.id;
  const img = el("img", "thumb");
  img.alt = ev.label + " on " + ev.camera_id;
  if (ev.snapshot_url) {
    urls.url(ev.snapshot_url).then((url) => (img.src = url)).catch(() => (img.alt = "snapshot unavailable"));
  }
  const text = el("div");
  text.append(el("div", "label", ev.label + " " + percent(ev.score)));
  text.append(el("div", "meta", "camera " + ev.camera_id + " · track " + ev.track_id));
  text.append(el("div", "meta", timeText(ev.frame_time)));
  const open = el("button", "link-button", "Review");
  open.type = "button";
  open.setAttribute("aria-label", "Review " + ev.label + " on " + ev.camera_id);
  open.addEventListener("click", () => onOpen(ev));
  text.append(open);
  item.append(img, text);
  return item;
}

class Tile {
  constructor(camera, urls) {
    this.id = camera.id;
    this.urls = urls;
    this.node = el("article", "tile");
    this.node.dataset.cameraId = camera.id;
    const frame = el("div", "frame");
    this.img = el("img", "live-frame");
    this.img.alt = "Live view of " + (camera.name || camera.id);
    this.canvas = el("canvas", "overlay");
    this.canvas.dataset.boxes = "0";
    this.canvas.setAttribute("aria-hidden", "true");
    frame.append(this.img, this.canvas);
    const caption = el("div", "tile-caption");
    this.name = el("span", "name");
    this.state = el("span", "state");
    this.error = el("div", "tile-error");
    caption.append(this.name, this.state);
    this.node.append(frame, caption, this.error);
    this.frames = 0;
    this.tracks = null; // the newest tracks message of this camera
    this.running = false;
    this.timer = null;
    this.img.addEventListener("load", () => {
      this.frames += 1;
      this.img.dataset.frames = String(this.frames);
      this.draw();
      this.schedule();
    });
    this.img.addEventListener("error", () => this.schedule(2000));
    this.update(camera);
  }

  update(camera) {
    this.camera = camera;
    this.name.textContent = camera.name || camera.id;
    this.state.textContent = camera.state;
    this.state.className = "state state-" + camera.state;
    this.error.textContent = camera.last_error ? "last error: " + camera.last_error : "";
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.refresh();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }

  schedule(delay = FRAME_EVERY_MS) {
    clearTimeout(this.timer);
    if (this.running) this.timer = setTimeout(() => this.refresh(), delay);
  }

  async refresh() {
    if (!this.running) return;
    // A `tracks` message is sent for every processed frame: until one came there is no frame to load.
    if (this.camera.state !== "streaming" || !this.tracks) {
      this.schedule(1000);
      return;
    }
    try {
      this.img.src = await this.urls.url("/cameras/" + encodeURIComponent(this.id) + "/latest.jpg", { t: Date.now() });
    } catch (err) {
      this.schedule(2000);
    }
  }

  setTracks(message) {
    const first = !this.tracks;
    this.tracks = message;
    if (first && this.running) this.refresh();
    else this.draw();
  }

  /** Boxes, ids and labels of the newest tracks message, in frame pixels (the canvas has the frame's size). */
  draw() {
    const { canvas, img } = this;
    if (!img.naturalWidth) return;
    if (canvas.width !== img.naturalWidth || canvas.height !== img.naturalHeight) {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const message = this.tracks;
    const fresh = message && Date.now() / 1000 - message.frame_time < STALE_TRACKS_S;
    const tracks = fresh ? message.tracks : [];
    const line = Math.max(2, Math.round(canvas.width / 320));
    ctx.lineWidth = line;
    ctx.font = Math.max(12, Math.round(canvas.width / 50)) + "px system-ui, sans-serif";
    for (const t of tracks) {
      const [x1, y1, x2, y2] = t.bbox;
      const color = t.label ? "#f97316" : "#22c55e";
      ctx.strokeStyle = color;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const caption = "#" + t.track_id + (t.label ? " " + t.label + " " + percent(t.score) : "");
      const width = ctx.measureText(caption).width + 8;
      const height = parseInt(ctx.font, 10) + 6;
      const top = y1 - height >= 0 ? y1 - height : y1;
      ctx.fillStyle = color;
      ctx.fillRect(x1, top, width, height);
      ctx.fillStyle = "#000";
      ctx.fillText(caption, x1 + 4, top + height - 5);
    }
    canvas.dataset.boxes = String(tracks.length);
    canvas.dataset.labels = tracks.map((t) => "#" + t.track_id + (t.label ? " " + t.label : "")).join(",");
  }
}

export function createView({ api, socket, navigate }) {
  const urls = new SignedUrls(api);
  const tiles = new Map();
  let visible = false;
  let camerasTimer = null;
  let recentTimer = null;
  let droppedTotal = 0;
  const open = (ev) => navigate("history", { event: ev.id });

  async function refreshCameras() {
    let cameras;
    try {
      cameras = await api.json("/cameras");
    } catch (err) {
      return;
    }
    const grid = $("tiles");
    const seen = new Set();
    for (const camera of cameras) {
      if (!camera.enabled) continue;
      seen.add(camera.id);
      let tile = tiles.get(camera.id);
      if (!tile) {
        tile = new Tile(camera, urls);
        tiles.set(camera.id, tile);
        grid.append(tile.node);
      } else {
        tile.update(camera);
      }
      if (visible) tile.start();
    }
    for (const [id, tile] of tiles) {
      if (!seen.has(id)) {
        tile.stop();
        tile.node.remove();
        tiles.delete(id);
      }
    }
    $("tiles-empty").classList.toggle("hidden", tiles.size > 0);
  }

  async function refreshRecent() {
    let page;
    try {
      page = await api.json("/events?limit=" + RECENT_LIMIT);
    } catch (err) {
      return;
    }
    $("recent-events").replaceChildren(...page.items.map((ev) => eventItem(ev, false, urls, open)));
    $("recent-total").textContent = "(" + page.total + " stored)";
  }

  let recentSoon = null;
  // Alerts arrive whether or not the view is visible: the feed is complete when the user comes back.
  refreshRecent();
  recentTimer = setInterval(refreshRecent, 30000);

  return {
    show() {
      visible = true;
      socket.watchTracks(true);
      refreshCameras();
      clearInterval(camerasTimer);
      camerasTimer = setInterval(refreshCameras, CAMERAS_EVERY_MS);
      for (const tile of tiles.values()) tile.start();
    },
    hide() {
      visible = false;
      socket.watchTracks(false);
      clearInterval(camerasTimer);
      for (const tile of tiles.values()) tile.stop();
    },
    stop() {
      this.hide();
      clearInterval(recentTimer);
      clearTimeout(recentSoon);
    },
    onEvent(ev) {
      const list = $("live-events");
      list.prepend(eventItem(ev, true, urls, open));
      while (list.children.length > MAX_LIVE) list.lastElementChild.remove();
      $("live-empty").classList.add("hidden");
      // at most one refresh a second: a debounce would never fire while alerts keep coming
      if (recentSoon === null) {
        recentSoon = setTimeout(() => {
          recentSoon = null;
          refreshRecent();
        }, 1000);
      }
    },
    onTracks(message) {
      const tile = tiles.get(message.camera_id);
      if (tile) tile.setTracks(message);
    },
    onDropped(count) {
      droppedTotal += count;
      $("dropped").textContent = "(" + droppedTotal + " missed while the page was busy)";
    },
  };
}
