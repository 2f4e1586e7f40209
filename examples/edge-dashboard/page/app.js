// The dashboard's page: it reads /api/healthz and, with the API token the
// user typed (kept in this tab's sessionStorage only), /api/messages, every
// few seconds. Everything the backend returns is shown as text, never as
// HTML: payloads come from any MQTT client.
"use strict";

const every = 3000;
const tokenKey = "edge-api-token";

function show(id, text, cls) {
  const el = document.getElementById(id);
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}

async function health() {
  try {
    const r = await fetch("api/healthz", { cache: "no-store" });
    const h = await r.json();
    show("health", `backend ${h.version}: ${h.status} (MQTT ${h.mqtt}, Redis ${h.redis}, waiting ${h.waiting})`, r.ok ? "ok" : "bad");
  } catch (e) {
    show("health", "backend: unreachable", "bad");
  }
}

function render(messages) {
  const body = document.querySelector("#messages tbody");
  body.replaceChildren(...messages.map((m) => {
    const tr = document.createElement("tr");
    for (const v of [new Date(m.received).toLocaleString(), m.topic, m.payload]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  }));
  document.getElementById("messages").hidden = false;
}

async function messages() {
  const token = sessionStorage.getItem(tokenKey);
  if (!token) return;
  try {
    const r = await fetch("api/messages?limit=100", { cache: "no-store", headers: { Authorization: "Bearer " + token } });
    if (r.status === 401) {
      sessionStorage.removeItem(tokenKey);
      document.getElementById("messages").hidden = true;
      show("status", "The backend refused this token: enter it again.");
      return;
    }
    if (!r.ok) {
      show("status", `Messages unavailable (${r.status}); retrying.`);
      return;
    }
    const data = await r.json();
    render(data.messages);
    show("status", `${data.messages.length} messages, newest first; updated ${new Date().toLocaleTimeString()}.`);
  } catch (e) {
    show("status", "The backend does not answer; retrying.");
  }
}

function tick() { health(); messages(); }

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  if (input.value) sessionStorage.setItem(tokenKey, input.value);
  input.value = "";
  messages();
});
document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(tokenKey);
  document.getElementById("messages").hidden = true;
  show("status", "Token forgotten.");
});
tick();
setInterval(tick, every);
