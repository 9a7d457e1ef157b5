// Cameras view: the cameras with their state; add, rename, enable/disable and remove them; draw a
// camera's alert zone by clicking corners on its live frame. Everything goes through the /cameras API,
// which keeps the registry (cameras.yaml) so it survives a restart.
import { $, button, el } from "./dom.js";
import { SignedUrls } from "./media.js";

const REFRESH_MS = 3000;

export function createView({ api }) {
  const urls = new SignedUrls(api);
  let timer = null;
  let editing = null; // id of the camera in the form, null when adding
  let zoneCamera = null;
  let zonePoints = [];
  let cursor = null; // keyboard drawing: [x, y] in frame pixels, moved with the arrow keys

  async function act(work) {
    $("camera-error").textContent = "";
    try {
      await work();
    } catch (err) {
      $("camera-error").textContent = err.message;
    }
    await refresh();
  }

  function row(cam) {
    const tr = el("tr");
    tr.dataset.cameraId = cam.id;
    tr.append(el("td", "id", cam.id), el("td", "name", cam.name));
    const state = el("td");
    state.append(el("span", "state state-" + cam.state, cam.state));
    if (cam.last_error) state.append(el("div", "tile-error", cam.last_error));
    tr.append(state, el("td", null, cam.fps.toFixed(1)), el("td", null, cam.frames_read), el("td", "url", cam.url));
    const actions = el("td", "actions");
    const path = "/cameras/" + encodeURIComponent(cam.id);
    actions.append(
      button("Edit", "secondary edit", () => startEdit(cam)),
      button(cam.enabled ? "Disable" : "Enable", "secondary toggle", () =>
        act(() => api.json(path, { method: "PATCH", body: { enabled: !cam.enabled } })),
      ),
      button("Zone", "secondary zone", () => openZone(cam)),
      button("Remove", "danger remove", () => {
        if (confirm("Remove camera " + cam.id + "? Its stored events stay.")) act(() => api.json(path, { method: "DELETE" }));
      }),
    );
    for (const b of actions.children) b.setAttribute("aria-label", b.textContent + " " + cam.id);
    tr.append(actions);
    return tr;
  }

  async function refresh() {
    let cameras;
    try {
      cameras = await api.json("/cameras");
    } catch (err) {
      return;
    }
    $("cameras").replaceChildren(...cameras.map(row));
    $("cameras-empty").classList.toggle("hidden", cameras.length > 0);
  }

  function resetForm() {
    editing = null;
    $("camera-form").reset();
    $("camera-id").disabled = false;
    $("camera-url").disabled = false;
    $("camera-form-title").textContent = "Add a camera";
    $("camera-save").textContent = "Add camera";
    $("camera-cancel").classList.add("hidden");
  }

  function startEdit(cam) {
    editing = cam.id;
    $("camera-id").value = cam.id;
    $("camera-id").disabled = true;
    $("camera-name").value = cam.name;
    $("camera-url").value = cam.url;
    $("camera-url").disabled = true; // the API changes name, zone and enabled; a new URL is a new camera
    $("camera-enabled").checked = cam.enabled;
    $("camera-form-title").textContent = "Edit camera " + cam.id;
    $("camera-save").textContent = "Save";
    $("camera-cancel").classList.remove("hidden");
    $("camera-name").focus();
  }

  function submit(e) {
    e.preventDefault();
    const name = $("camera-name").value.trim();
    const enabled = $("camera-enabled").checked;
    if (editing) {
      const body = { enabled };
      if (name) body.name = name;
      const id = editing;
      act(async () => {
        await api.json("/cameras/" + encodeURIComponent(id), { method: "PATCH", body });
        resetForm();
      });
    } else {
      const body = { id: $("camera-id").value.trim(), name, url: $("camera-url").value.trim(), enabled };
      act(async () => {
        await api.json("/cameras", { method: "POST", body });
        resetForm();
      });
    }
  }

  // ------------------------------------------------------------------------------------ zone editor
  async function openZone(cam) {
    zoneCamera = cam.id;
    zonePoints = (cam.zone || []).map((p) => [p[0], p[1]]);
    $("zone-editor").classList.remove("hidden");
    $("zone-editor").dataset.cameraId = cam.id;
    $("zone-title").textContent = "Alert zone of " + (cam.name || cam.id);
    $("zone-status").textContent = cam.zone ? "Stored zone: " + cam.zone.length + " corners." : "No zone: alerts anywhere.";
    try {
      $("zone-image").src = await urls.url("/cameras/" + encodeURIComponent(cam.id) + "/latest.jpg", { t: Date.now() });
    } catch (err) {
      $("zone-status").textContent = "No frame yet: " + err.message;
    }
    $("zone-canvas").focus();
  }

  function drawZone() {
    const img = $("zone-image");
    const canvas = $("zone-canvas");
    if (!img.naturalWidth) return;
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!zonePoints.length) {
      canvas.dataset.points = "0";
      drawCursor(ctx);
      return;
    }
    ctx.lineWidth = Math.max(2, canvas.width / 300);
    ctx.strokeStyle = "#facc15";
    ctx.fillStyle = "rgba(250, 204, 21, 0.25)";
    ctx.beginPath();
    zonePoints.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = "#facc15";
    for (const [x, y] of zonePoints) ctx.fillRect(x - 4, y - 4, 8, 8);
    canvas.dataset.points = String(zonePoints.length);
    drawCursor(ctx);
  }

  function drawCursor(ctx) {
    if (!cursor || document.activeElement !== $("zone-canvas")) return;
    const [x, y] = cursor;
    ctx.strokeStyle = "#38bdf8";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x - 12, y);
    ctx.lineTo(x + 12, y);
    ctx.moveTo(x, y - 12);
    ctx.lineTo(x, y + 12);
    ctx.stroke();
  }

  function addCorner(e) {
    const canvas = $("zone-canvas");
    const rect = canvas.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((e.clientY - rect.top) * canvas.height) / rect.height;
    addPoint(x, y);
  }

  function addPoint(x, y) {
    zonePoints.push([Math.round(x), Math.round(y)]);
    $("zone-status").textContent = zonePoints.length + " corners (not saved).";
    drawZone();
  }

  // Keyboard drawing: arrows move a cross (Shift: faster), Enter or Space adds a corner, Backspace undoes.
  function zoneKey(e) {
    const canvas = $("zone-canvas");
    if (!canvas.width) return;
    cursor = cursor || [canvas.width / 2, canvas.height / 2];
    const step = e.shiftKey ? 40 : 8;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      cursor = [
        Math.min(canvas.width, Math.max(0, cursor[0] + moves[e.key][0])),
        Math.min(canvas.height, Math.max(0, cursor[1] + moves[e.key][1])),
      ];
      drawZone();
    } else if (e.key === "Enter" || e.key === " ") {
      addPoint(cursor[0], cursor[1]);
    } else if (e.key === "Backspace") {
      zonePoints.pop();
      drawZone();
    } else {
      return;
    }
    e.preventDefault();
  }

  async function saveZone(zone) {
    if (zone && zone.length < 3) {
      $("zone-status").textContent = "A zone needs at least 3 corners.";
      return;
    }
    try {
      await api.json("/cameras/" + encodeURIComponent(zoneCamera), { method: "PATCH", body: { zone } });
      $("zone-status").textContent = zone ? "Zone saved: " + zone.length + " corners." : "Zone removed: alerts anywhere.";
    } catch (err) {
      $("zone-status").textContent = err.message;
    }
    refresh();
  }

  const listeners = [
    ["camera-form", "submit", submit],
    ["camera-cancel", "click", resetForm],
    ["zone-image", "load", drawZone],
    ["zone-canvas", "click", addCorner],
    ["zone-canvas", "keydown", zoneKey],
    ["zone-canvas", "focus", () => drawZone()],
    ["zone-canvas", "blur", () => drawZone()],
    ["zone-undo", "click", () => { zonePoints.pop(); drawZone(); }],
    ["zone-clear", "click", () => { zonePoints = []; drawZone(); saveZone(null); }],
    ["zone-save", "click", () => saveZone(zonePoints)],
    ["zone-close", "click", () => { $("zone-editor").classList.add("hidden"); zoneCamera = null; }],
  ];
  for (const [id, type, handler] of listeners) $(id).addEventListener(type, handler);

  return {
    show() {
      refresh();
      clearInterval(timer);
      timer = setInterval(refresh, REFRESH_MS);
    },
    hide() {
      clearInterval(timer);
    },
    stop() {
      clearInterval(timer);
      for (const [id, type, handler] of listeners) $(id).removeEventListener(type, handler);
    },
  };
}
