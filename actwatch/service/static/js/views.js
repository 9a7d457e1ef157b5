// The dashboard's views, one ES module each, in navigation order. A view module exports
// `createView(ctx)` returning { show(), hide(), stop(), onEvent?(event), onTracks?(message) };
// ctx is { api: ApiClient, socket: LiveSocket, navigate(name, params) }.
import * as live from "./live.js";
import * as history from "./history.js";
import * as cameras from "./cameras.js";
import * as upload from "./upload.js";
import * as system from "./system.js";

export const VIEWS = { live, history, cameras, upload, system };
