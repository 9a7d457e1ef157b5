// The REST client of the dashboard: every request carries the bearer token in a header. Media shown in
// <img>/<video> tags (which cannot send headers) use short-lived signed URLs from POST /media/sign, so
// the token never appears in a URL.

export class Unauthorised extends Error {}

export class ApiClient {
  /** `onUnauthorised(message)` is called when the service refuses the token. */
  constructor(token, onUnauthorised) {
    this.token = token;
    this.onUnauthorised = onUnauthorised;
  }

  async request(path, { method = "GET", body = undefined } = {}) {
    const headers = { Authorization: "Bearer " + this.token };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      this.onUnauthorised("The token was not accepted.");
      throw new Unauthorised(path);
    }
    if (!response.ok) throw new Error(await problem(response));
    return response;
  }

  async json(path, options) {
    const response = await this.request(path, options);
    return response.status === 204 ? null : response.json();
  }

  /** A signed URL of a media `path` (latest.jpg, stream.mjpeg, event snapshot/crops/clip) for a tag. */
  async signed(path) {
    const answer = await this.json("/media/sign", { method: "POST", body: { path } });
    return answer.url;
  }
}

/** The service's error message of a failed response, as text. */
async function problem(response) {
  let detail = "HTTP " + response.status;
  try {
    const data = await response.json();
    if (typeof data.detail === "string") detail = data.detail;
    else if (Array.isArray(data.detail)) detail = data.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
  } catch (err) {
    // not JSON: keep the status
  }
  return detail;
}
