// Model and system view: the action model's classes and input spec, the ONNX Runtime providers each
// network runs on, the compute processes (if several), the per-stage timings of the compute loop and the
// pipeline's load (GET /system, read from /metrics).
import { $, el } from "./dom.js";

function entries(list, pairs) {
  const nodes = [];
  for (const [term, value] of pairs) nodes.push(el("dt", null, term), el("dd", null, value));
  list.replaceChildren(...nodes);
}

function ms(value) {
  return value === null ? "–" : value.toFixed(1) + " ms";
}

export function createView({ api }) {
  async function refresh() {
    let info;
    try {
      info = await api.json("/system");
    } catch (err) {
      $("system-error").textContent = "Could not read the system information: " + err.message;
      return;
    }
    $("system-error").textContent = "";
    const model = info.model;
    $("model-none").classList.toggle("hidden", model !== null);
    if (model) {
      const trained =
        model.trained === false
          ? "NO: this model was never trained; its labels are noise (train one: actwatch train)"
          : model.trained
            ? "yes"
            : "not recorded";
      entries($("model-spec"), [
        ["Trained", trained],
        ["Backbone weights", model.backbone || "not recorded"],
        ["Architecture", model.arch || "unknown"],
        ["Window", model.seq_len + " crops at " + model.fps + " fps"],
        ["Crop size", model.input_size[0] + " × " + model.input_size[1] + " px (height × width)"],
        ["Normalisation", "mean " + model.mean.join(", ") + "; std " + model.std.join(", ")],
        ["Feature cache", model.feature_cache ? "yes (encoder once per crop, head per window)" : "no (whole clip)"],
      ]);
      $("model-classes").replaceChildren(...model.classes.map((name) => el("li", null, name)));
    } else {
      $("model-spec").replaceChildren();
      $("model-classes").replaceChildren();
    }
    const providers = Object.entries(info.providers).map(([network, list]) => [network, list.join(" → ")]);
    entries($("providers"), providers.length ? providers : [["none", "no network loaded"]]);
    entries($("service-spec"), [
      ["Version", info.version],
      ["Cameras", String(info.cameras)],
      ["Stride", "classify every " + info.stride + " new samples"],
      ["Uploads", info.uploads.available ? "on, " + Math.round(info.uploads.compute_share * 100) + "% of compute at most" : "off"],
    ]);
    showProcesses(info.processes);
    $("stages").replaceChildren(
      ...info.stages.map((s) => {
        const tr = el("tr");
        tr.dataset.stage = s.stage;
        tr.append(el("td", null, s.stage), el("td", null, String(s.count)), el("td", null, ms(s.mean_ms)), el("td", null, s.total_s.toFixed(2) + " s"));
        return tr;
      }),
    );
    showLoad(info.pipeline);
  }

  // pipeline.processes > 1: each compute process's state and cameras (a dead one shows while it restarts).
  function showProcesses(processes) {
    $("processes-block").classList.toggle("hidden", !processes);
    if (!processes) {
      $("processes").replaceChildren();
      return;
    }
    entries(
      $("processes"),
      processes.map((p) => {
        const parts = [p.state + (p.pid ? " (pid " + p.pid + ")" : "")];
        parts.push("cameras: " + (p.cameras.length ? p.cameras.join(", ") : "none"));
        parts.push("restarts: " + p.restarts);
        if (p.reason) parts.push(p.reason);
        return ["Process " + p.index, parts.join("; ")];
      }),
    );
  }

  // Each stage thread's share of the time (a detector near 100% is the box's limit) and what was dropped.
  function showLoad(load) {
    if (!load) {
      entries($("pipeline-load"), [["Runtime", "sequential, or not running: no per-stage load"]]);
      return;
    }
    const counts = (record) => Object.entries(record).map(([name, n]) => name + " " + n).join(", ");
    const busy = Object.entries(load.occupancy).map(([stage, share]) => stage + " " + Math.round(share * 100) + "%");
    entries($("pipeline-load"), [
      ["Busy", busy.join(", ")],
      ["Queue drops", counts(load.queue_drops)],
      ["Stale frames dropped", String(load.stale_frames)],
      ["Events stored without evidence", String(load.evidence_dropped)],
      ["Failed batches", String(load.failures)],
      ["Waited for fresh frames", load.frame_wait_s.toFixed(1) + " s"],
    ]);
  }

  $("system-refresh").addEventListener("click", refresh);
  return {
    show() {
      refresh();
    },
    hide() {},
    stop() {},
  };
}
