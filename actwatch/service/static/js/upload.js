// Upload view: drop (or choose) a video, send it to POST /predictions with an upload progress bar, then
// follow the job (GET /predictions/{id}) with its progress bar until the per-person table and the
// annotated video are ready. The job id is kept in the address (#/upload?job=...), so a reload finds it.
import { $, el, percent } from "./dom.js";
import { SignedUrls } from "./media.js";

const POLL_MS = 1000;
const STATE_TEXT = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };

function mib(bytes) {
  return (bytes / 1048576).toFixed(bytes < 10485760 ? 1 : 0) + " MiB";
}

function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  return dot >= 0 ? name.slice(dot).toLowerCase() : "";
}

/** The service's error message of a finished XMLHttpRequest, as text. */
function problemOf(xhr) {
  try {
    const data = JSON.parse(xhr.responseText);
    if (typeof data.detail === "string") return data.detail;
    if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg).join("; ");
  } catch (err) {
    // not JSON
  }
  return "the upload failed (HTTP " + xhr.status + ")";
}

export function createView({ api, navigate }) {
  const urls = new SignedUrls(api);
  let limits = null;
  let jobId = null;
  let timer = null;
  let uploading = null; // the XMLHttpRequest in flight
  let shownVideoFor = null;

  function setError(message) {
    $("upload-error").textContent = message || "";
  }

  function stopPolling() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  async function loadLimits() {
    if (limits) return limits;
    try {
      limits = await api.json("/predictions/limits");
    } catch (err) {
      setError("Could not read the upload limits: " + err.message);
      return null;
    }
    const text = limits.available
      ? "Up to " + mib(limits.max_upload_bytes) + " and " + limits.max_duration_s + " s; " +
        limits.allowed_extensions.join(", ") + ". Results are kept " + Math.round(limits.retention_s / 60) + " min."
      : "This service does not take uploads (it runs no compute pipeline).";
    $("upload-limits").textContent = text;
    $("upload-file").disabled = !limits.available;
    return limits;
  }

  /** The reason `file` would be refused, in the service's own words; null when it may be sent. */
  function refusal(file) {
    const ext = extensionOf(file.name);
    if (!limits.allowed_extensions.includes(ext)) {
      return "'" + (ext || file.name) + "' is not an accepted video type; upload one of: " + limits.allowed_extensions.join(", ");
    }
    if (file.size > limits.max_upload_bytes) {
      return "the video is larger than " + mib(limits.max_upload_bytes) + ", the most accepted (predictions.max_upload_mb): upload a shorter or smaller one";
    }
    return null;
  }

  function showProgress(title, stateText, value) {
    $("upload-job").classList.remove("hidden");
    $("job-title").textContent = title;
    $("job-state").textContent = stateText;
    const bar = $("job-progress");
    bar.value = value;
    bar.setAttribute("aria-valuetext", Math.round(value * 100) + "%");
  }

  async function send(file) {
    setError("");
    if (!(await loadLimits()) || !limits.available) return;
    const reason = refusal(file);
    if (reason) {
      setError("Not uploaded: " + reason + ".");
      return;
    }
    stopPolling();
    $("job-result").classList.add("hidden");
    $("job-error").textContent = "";
    const form = new FormData();
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    uploading = xhr;
    xhr.open("POST", "/predictions");
    xhr.setRequestHeader("Authorization", "Bearer " + api.token);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) showProgress(file.name, "Uploading " + percent(e.loaded / e.total), e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      uploading = null;
      if (xhr.status === 401) {
        api.onUnauthorised("The token was not accepted.");
      } else if (xhr.status === 202) {
        navigate("upload", { job: JSON.parse(xhr.responseText).id });
      } else {
        $("upload-job").classList.add("hidden");
        setError("Not accepted: " + problemOf(xhr) + ".");
      }
    });
    xhr.addEventListener("error", () => {
      uploading = null;
      setError("The upload did not reach the service (network error).");
    });
    showProgress(file.name, "Uploading 0%", 0);
    xhr.send(form);
  }

  function probabilities(person) {
    const list = el("ul", "probs");
    for (const p of person.probabilities) {
      const item = el("li");
      const meter = el("meter");
      meter.min = 0;
      meter.max = 1;
      meter.value = p.score;
      meter.setAttribute("aria-label", p.label + " " + percent(p.score));
      item.append(el("span", null, p.label), meter, el("span", null, percent(p.score)));
      list.append(item);
    }
    return list;
  }

  function showPersons(job) {
    const rows = job.persons.map((person) => {
      const tr = el("tr");
      tr.dataset.trackId = String(person.track_id);
      const probs = el("td");
      probs.append(probabilities(person));
      tr.append(
        el("td", null, "#" + person.track_id),
        el("td", null, person.start_s.toFixed(1) + "–" + person.end_s.toFixed(1) + " s"),
        el("td", "top", person.top_label),
        probs,
      );
      return tr;
    });
    $("persons").replaceChildren(...rows);
    const empty = $("persons-empty");
    empty.textContent = job.persons.length ? "" : "Nobody was tracked long enough for the model to classify.";
    empty.classList.toggle("hidden", job.persons.length > 0);
    if (job.unclassified_tracks && job.persons.length) {
      empty.textContent = job.unclassified_tracks + " more tracks were too short to classify.";
      empty.classList.remove("hidden");
    }
  }

  async function showVideo(job) {
    if (shownVideoFor === job.id) return;
    shownVideoFor = job.id;
    const path = job.annotated_video_url;
    $("job-video").src = await urls.url(path);
    $("job-download").href = await urls.url(path, { download: "true" });
    $("job-download").setAttribute("download", job.filename.replace(/\.[^.]*$/, "") + "-annotated.mp4");
  }

  async function poll() {
    timer = null;
    if (!jobId) return;
    let job;
    try {
      job = await api.json("/predictions/" + jobId);
    } catch (err) {
      $("job-error").textContent = "Could not read the job: " + err.message;
      return;
    }
    if (job.id !== jobId) return; // another job was opened meanwhile
    const state = STATE_TEXT[job.state] || job.state;
    const detail = job.state === "running" ? " " + percent(job.progress) : "";
    showProgress(job.filename + " (" + job.video.duration_s.toFixed(1) + " s)", state + detail, job.progress);
    if (job.state === "done") {
      showPersons(job);
      $("job-result").classList.remove("hidden");
      await showVideo(job);
    } else if (job.state === "failed") {
      $("job-error").textContent = "The job failed: " + (job.error || "unknown error") + ".";
    } else {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  function onDrop(e) {
    e.preventDefault();
    $("drop-zone").classList.remove("over");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) send(file);
  }

  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", onDrop);
  $("upload-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // the same file may be chosen again
    if (file) send(file);
  });
  $("upload-form").addEventListener("submit", (e) => e.preventDefault());

  return {
    show(params) {
      loadLimits();
      const wanted = params && params.get("job");
      if (wanted && wanted !== jobId) {
        jobId = wanted;
        shownVideoFor = null;
        $("job-result").classList.add("hidden");
        $("job-error").textContent = "";
      }
      stopPolling();
      if (jobId) poll();
    },
    hide() {
      stopPolling();
    },
    stop() {
      stopPolling();
      if (uploading) uploading.abort();
    },
  };
}
