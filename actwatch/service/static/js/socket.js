// The dashboard's one WebSocket (/ws/events): alerts for every view, track boxes only while a view asks
// for them (the service then serialises overlays only for the cameras someone watches).

export class LiveSocket {
  constructor(token, { onStatus, onEvent, onTracks, onDropped, onUnauthorised }) {
    this.token = token;
    this.handlers = { onStatus, onEvent, onTracks, onDropped, onUnauthorised };
    this.ws = null;
    this.delay = 1000;
    this.timer = null;
    this.tracks = false; // whether a visible view draws track boxes
  }

  start() {
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/ws/events");
    this.ws = ws;
    this.handlers.onStatus("connecting");
    // The token goes in the first message, not the URL, so it stays out of server access logs.
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (msg) => {
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch (err) {
        return;
      }
      if (data.type === "hello") {
        this.delay = 1000;
        this.handlers.onStatus("live");
        this.sendSubscription();
      } else if (data.type === "event") {
        this.handlers.onEvent(data.event);
      } else if (data.type === "tracks") {
        this.handlers.onTracks(data);
      } else if (data.type === "dropped") {
        this.handlers.onDropped(data.count);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 1008) {
        this.handlers.onStatus("unauthorised");
        this.handlers.onUnauthorised("The token was not accepted.");
        return;
      }
      this.handlers.onStatus("offline");
      this.timer = setTimeout(() => this.start(), this.delay);
      this.delay = Math.min(this.delay * 2, 30000);
    };
  }

  stop() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.handlers.onStatus("offline");
  }

  /** Ask for track boxes (`true`) or stop them (`false`); alerts keep coming either way. */
  watchTracks(wanted) {
    this.tracks = wanted;
    this.sendSubscription();
  }

  sendSubscription() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "subscribe", cameras: null, labels: null, tracks: this.tracks }));
  }
}
