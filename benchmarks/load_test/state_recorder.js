// Runs in every page before the app's own scripts. It records (1) each change of stApp's
// data-test-script-state / data-test-connection-state attributes and (2) the script lifecycle
// messages the server sends over the websocket: a run starting (session_status_changed with
// script_is_running), a run finishing (script_finished), a new session. (2) is needed because on a
// busy renderer React may batch "running" and "not running" into one render, so the attribute never
// shows "running". ForwardMsg fields (streamlit/proto/ForwardMsg.proto): 4 new_session, 6
// script_finished (enum: 2 = finished early for a rerun), 9 session_status_changed (field 2:
// script_is_running). Each entry of window.__lt.log: [performance.now(), kind, value].
(() => {
  if (window.__lt) return;
  const lt = window.__lt = {log: [], app: null};
  const attach = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app === lt.app) return;
    lt.app = app;
    const rec = () => lt.log.push([performance.now(), 'dom', app.getAttribute('data-test-script-state'),
                                   app.getAttribute('data-test-connection-state')]);
    rec();
    new MutationObserver(rec).observe(app, {attributes: true,
      attributeFilter: ['data-test-script-state', 'data-test-connection-state']});
  };
  setInterval(attach, 25);
  const varint = (b, i) => {
    let v = 0, m = 1;
    while (i < b.length) { const x = b[i++]; v += (x & 127) * m; m *= 128; if (x < 128) break; }
    return [v, i];
  };
  const fields = (b, from, to) => {  // top-level fields of a protobuf message: [[number, wire, value | [start, end]]]
    const out = [];
    let i = from;
    while (i < to) {
      let tag, v; [tag, i] = varint(b, i);
      const f = Math.floor(tag / 8), w = tag & 7;
      if (w === 0) { [v, i] = varint(b, i); out.push([f, w, v]); }
      else if (w === 2) { [v, i] = varint(b, i); out.push([f, w, [i, i + v]]); i += v; }
      else if (w === 1) i += 8; else if (w === 5) i += 4; else break;
    }
    return out;
  };
  const onMessage = (ev) => {
    if (!(ev.data instanceof ArrayBuffer)) return;
    const b = new Uint8Array(ev.data), now = performance.now();
    for (const [f, w, v] of fields(b, 0, b.length)) {
      if (f === 4 && w === 2) lt.log.push([now, 'new_session', 1]);
      else if (f === 6 && w === 0) lt.log.push([now, 'finished', v]);
      else if (f === 9 && w === 2) {
        const running = fields(b, v[0], v[1]).some(([g, x, y]) => g === 2 && x === 0 && y === 1);
        lt.log.push([now, running ? 'started' : 'stopped', 1]);
      }
    }
  };
  const Native = window.WebSocket;
  const Wrapped = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', onMessage);
    return ws;
  };
  Wrapped.prototype = Native.prototype;
  Object.assign(Wrapped, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Wrapped;
})();
