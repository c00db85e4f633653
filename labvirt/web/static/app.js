// labvirt class serve: live rows over Server-Sent Events; actions with the token in a header.
"use strict";
(function () {
  const TOKEN_KEY = "labvirt-token";
  const rowsHtml = new Map();
  let token = null;
  let offset = 0;     // server clock minus client clock, for the elapsed counters

  const $ = (sel) => document.querySelector(sel);

  function say(text, bad) {
    const box = $("#messages");
    const p = document.createElement("p");
    p.textContent = text;
    if (bad) p.className = "bad";
    box.prepend(p);
    while (box.children.length > 4) box.lastChild.remove();
    setTimeout(() => p.remove(), bad ? 20000 : 8000);
  }

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST", credentials: "omit", cache: "no-store",
      headers: {"Content-Type": "application/json", "X-Labvirt-Token": token || ""},
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await r.json(); } catch (e) { /* 204 */ }
    return {status: r.status, ok: r.ok, data};
  }

  function enable(on) {
    document.body.classList.toggle("can-act", on);
    document.body.classList.toggle("read-only", !on);
  }

  async function useToken(candidate, quiet) {
    if (!candidate) return;
    token = candidate;
    const r = await post("/api/token", {});
    if (r.ok) {
      sessionStorage.setItem(TOKEN_KEY, candidate);
      enable(true);
      if (!quiet) say("actions enabled");
    } else {
      token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      enable(false);
      say(r.data.error || "token refused", true);
    }
  }

  function applyState(s) {
    offset = s.now * 1000 - Date.now();
    if (rowsHtml.size === 0 && String(s.version) === document.body.dataset.version) {
      for (const st of s.order) rowsHtml.set(st, s.rows[st]);   // the page was rendered from this very version
      return;
    }
    document.body.dataset.version = s.version;
    const tbody = $("#rows");
    const current = Array.from(tbody.rows).map((r) => r.dataset.student);
    if (current.join(",") !== s.order.join(",")) {
      tbody.innerHTML = s.order.map((st) => s.rows[st]).join("");
      rowsHtml.clear();
      for (const st of s.order) rowsHtml.set(st, s.rows[st]);
    } else {
      for (const st of s.order) {
        const html = s.rows[st];
        if (rowsHtml.get(st) === html) continue;
        const row = document.getElementById("row-" + st);
        const sel = row && row.querySelector("select.snapshot");
        const keep = sel ? sel.value : null;
        row.outerHTML = html;
        rowsHtml.set(st, html);
        const fresh = document.getElementById("row-" + st).querySelector("select.snapshot");
        if (keep && fresh && Array.from(fresh.options).some((o) => o.value === keep)) fresh.value = keep;
      }
    }
    if ($("#hosts").innerHTML !== s.hosts) $("#hosts").innerHTML = s.hosts;
    $("#summary").innerHTML = s.summary;
    const err = $("#error");
    err.hidden = !s.error;
    err.textContent = s.error || "";
    const cs = $("#class-snapshot");
    const keep = cs.value;
    const names = Array.from(cs.options).map((o) => o.value).join(",");
    if (names !== s.snapshots.join(",")) {
      cs.replaceChildren(...s.snapshots.map((n) => new Option(n, n)));
      if (s.snapshots.includes(keep)) cs.value = keep;
    }
    tick();
  }

  function tick() {
    const now = (Date.now() + offset) / 1000;
    for (const el of document.querySelectorAll(".elapsed[data-since]")) {
      el.textContent = Math.max(0, Math.round(now - parseFloat(el.dataset.since))) + " s";
    }
  }

  const CONFIRM = {
    rebuild: "Rebuild throws the disks, seeds and snapshots away. Rebuild {who}?",
    stop: "Shut down {who}?",
    revert: "Revert {who} to {snap}?",
  };

  async function act(button) {
    const action = button.dataset.action;
    const row = button.closest("tr[data-student]");
    const students = row ? [row.dataset.student] : null;
    let snapshot = null;
    if (action === "revert") {
      snapshot = (row ? row.querySelector("select.snapshot") : $("#class-snapshot")).value;
      if (!snapshot) { say("no snapshot to revert to", true); return; }
    }
    const who = students ? students[0] : "the whole class";
    if ((!students && CONFIRM[action]) || action === "rebuild") {
      if (!window.confirm(CONFIRM[action].replace("{who}", who).replace("{snap}", snapshot))) return;
    }
    const r = await post("/api/action", {action, students, snapshot});
    if (r.status === 202 || r.status === 409) {
      const refused = (r.data && r.data.refused) || {};
      const accepted = (r.data && r.data.accepted) || [];
      if (accepted.length) say(`${action}: started for ${accepted.length === 1 ? accepted[0] : accepted.length + " students"}`);
      for (const [st, why] of Object.entries(refused)) say(`refused for ${st}: ${why}`, true);
      if (!accepted.length && !Object.keys(refused).length) say(r.data.error || "refused", true);
    } else {
      say(r.data.error || `refused (${r.status})`, true);
      if (r.status === 403 && /token/.test(r.data.error || "")) enable(false);
    }
  }

  async function showConsole(button) {
    const row = button.closest("tr[data-student]");
    const node = button.dataset.console;
    const dlg = $("#console-dialog");
    $("#console-title").textContent = `${row.dataset.student} · ${node}: last console lines`;
    $("#console-text").textContent = "reading…";
    dlg.showModal();
    const r = await post("/api/console", {student: row.dataset.student, node});
    $("#console-text").textContent = r.ok ? (r.data.text || r.data.error || "(the console has shown nothing yet)") : (r.data.error || "refused");
  }

  document.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b || b.disabled) return;
    if (b.dataset.action) { e.preventDefault(); act(b); }
    else if (b.dataset.console) { e.preventDefault(); showConsole(b); }
  });

  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("state", (e) => applyState(JSON.parse(e.data)));
    es.addEventListener("open", () => { $("#live").classList.remove("off"); $("#live").textContent = "live"; });
    es.addEventListener("error", () => { $("#live").classList.add("off"); $("#live").textContent = "reconnecting…"; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    offset = parseFloat(document.body.dataset.now) * 1000 - Date.now();
    const form = $("#token-form");
    if (form) {
      form.addEventListener("submit", (e) => { e.preventDefault(); useToken($("#token").value.trim()); $("#token").value = ""; });
      const m = location.hash.match(/token=([A-Za-z0-9_-]+)/);
      if (m) history.replaceState(null, "", location.pathname + location.search);   // out of the address bar and history
      useToken(m ? m[1] : sessionStorage.getItem(TOKEN_KEY), true);
    }
    connect();
    setInterval(tick, 1000);
  });
})();
