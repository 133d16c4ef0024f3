// The entry list's live panel: a watch websocket on the current folder (the admin session
// authenticates it), newest change first, reconnecting after a drop.
(function () {
  "use strict";
  const panel = document.querySelector("[data-kv-live]");
  if (!panel) return;
  const list = panel.querySelector(".kv-live-events");
  const state = panel.querySelector(".kv-live-state");
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const prefix = panel.dataset.kvLive || "";
  const url = scheme + "//" + window.location.host + "/ws/v1/watch?prefix=" + encodeURIComponent(prefix);
  const KEEP = 50;

  function show(event) {
    const item = document.createElement("li");
    item.className = "kv-live-" + event.type;
    const time = new Date(event.timestamp).toISOString().slice(11, 19);
    let text = time + "  " + event.type + "  " + event.key;
    if (event.type === "put") text += " = " + JSON.stringify(event.value).slice(0, 80);
    item.textContent = text;
    list.prepend(item);
    while (list.children.length > KEEP) list.lastChild.remove();
  }

  function connect() {
    const socket = new WebSocket(url);
    socket.onmessage = function (message) {
      const event = JSON.parse(message.data);
      if (event.type === "ready") {
        state.textContent = "live";
        panel.dataset.kvLiveReady = "1";
      } else if (event.type === "put" || event.type === "delete") {
        show(event);
      }
    };
    socket.onclose = function (closed) {
      if (closed.code === 4401 || closed.code === 4403) {  // the session ended or lost access
        state.textContent = closed.code === 4401 ? "signed out" : "no longer allowed";
        return;
      }
      state.textContent = "reconnecting…";
      window.setTimeout(connect, 2000);
    };
  }
  connect();
})();
