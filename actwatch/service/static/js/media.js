// Signed media URLs for <img>/<video> tags, reused until shortly before they expire (the signature
// covers the path and expiry; extra query parameters such as overlay or a cache-buster are free).

const RENEW_BEFORE_S = 10;

export class SignedUrls {
  constructor(api) {
    this.api = api;
    this.cache = new Map(); // path -> { url, expires }
  }

  /** A signed URL of `path`, with `params` (an object) appended. */
  async url(path, params) {
    let entry = this.cache.get(path);
    const now = Date.now() / 1000;
    if (!entry || entry.expires - RENEW_BEFORE_S < now) {
      const signed = await this.api.signed(path);
      const expires = Number(new URL(signed, location.href).searchParams.get("expires"));
      entry = { url: signed, expires };
      this.cache.set(path, entry);
    }
    if (!params) return entry.url;
    const url = new URL(entry.url, location.href);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value));
    return url.pathname + url.search;
  }
}
