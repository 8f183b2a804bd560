// Resolves once the app is idle after t0: {done, ran, latency, ready, script, runs, drops, state, conn}:
// latency (ms after t0) is the last script-state change or lifecycle message, ready also waits for the
// widgets' loading skeletons to be gone, script sums the time from each run's "started" to its
// "finished" message (the server's run time, as the page saw the messages arrive).
// mode "rerun": an input was made at t0; idle means a script run started after t0 (a websocket
// "started" or "finished", or the attribute showing "running"), the last run has finished, the
// attribute says not running and connected, no widget is still a loading skeleton (a fresh page
// loads widget code lazily, seconds after the run), and nothing changed for quietMs (or, when no run
// started, startMs passed). mode "load": a fresh document (t0 = 0 is navigation start).
// __PROBLEMS__ stands for problems.js (page_scripts.py puts it in).
async ([t0, mode, startMs, quietMs, timeoutMs]) => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  while (true) {
    const now = performance.now();
    const app = document.querySelector('[data-testid="stApp"]');
    const s = app && app.getAttribute('data-test-script-state');
    const c = app && app.getAttribute('data-test-connection-state');
    const log = window.__lt ? window.__lt.log.filter(e => e[0] >= t0) : [];
    let runs = 0, drops = 0, open = false, connected = mode === 'rerun', wasRunning = false, wasConnected = true;
    let script = 0, since = null;  // time between the server's "started" and "finished" messages
    for (const [t, kind, a, b] of log) {
      if (kind === 'started') { runs++; open = true; since = t; }
      else if (kind === 'finished') {
        if (!open) runs++;
        if (since !== null) script += t - since;
        since = null;
        open = a === 2;  // 2: ended early, a rerun follows
      }
      else if (kind === 'stopped') open = false;
      else if (kind === 'dom') {
        if (a === 'running' && !wasRunning && runs === 0) runs = 1;  // seen in the page before any message
        wasRunning = a === 'running';
        if (b === 'CONNECTED') connected = true;
        else if (connected && wasConnected) drops++;
        wasConnected = b === 'CONNECTED';
      }
    }
    if (document.querySelector('[data-testid="stSkeleton"]')) window.__lt.drawing = now;  // widgets still loading
    const settled = log.length ? log[log.length - 1][0] : t0;
    const last = Math.max(settled, window.__lt.drawing || 0);
    const idle = s === 'notRunning' && c === 'CONNECTED' && !open && now - last >= quietMs;
    if (idle && (runs > 0 || mode === 'load'))
      return {done: true, ran: runs > 0, latency: settled - t0, ready: last - t0, script, runs, drops, state: s,
              conn: c, problems: (__PROBLEMS__)()};
    if (idle && now - t0 >= startMs)
      return {done: true, ran: false, latency: null, runs, drops, state: s, conn: c,
              problems: (__PROBLEMS__)()};
    if (now - t0 >= timeoutMs)
      return {done: false, ran: runs > 0, latency: null, runs, drops, state: s, conn: c,
              problems: (__PROBLEMS__)()};
    await sleep(40);
  }
}
