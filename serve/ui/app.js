// app.js - the status page: polls GET /v1/status and draws it.
//
// Plain DOM, no framework. Every value from the server goes in with
// textContent (never innerHTML): model names and reasons are user input.
// Polls never overlap: the next one is scheduled when the last has ended.
"use strict";

(function () {
  const TOKEN_KEY = "mcache.token";
  const params = new URLSearchParams(location.search);
  const refreshS = parseRefresh(params.get("refresh"));
  let lastOk = null;   // Date of the last good answer
  let timer = null;

  function parseRefresh(v) {
    if (v === null || v === "") return 2;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) return 2;
    return n === 0 ? 0 : Math.min(Math.max(n, 0.5), 3600);
  }

  const $ = (id) => document.getElementById(id);

  // el("td", {class: "x", title: "y"}, child, "text", ...)
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-") || k === "title" || k === "role" || k.startsWith("aria-"))
        e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of kids.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ---- formatting -------------------------------------------------------

  function fmtSize(n) {
    if (n === null || n === undefined) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0, v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)) + " " + units[i];
  }

  function pct(a, b) {
    return b > 0 ? (100 * a) / b : 0;
  }

  // "3 min ago" against the server's clock (now_ns), so a skewed browser clock does not matter.
  function ago(ns, nowNs) {
    if (!ns) return "?";
    let s = Math.max(0, (nowNs - ns) / 1e9);
    if (s < 60) return Math.round(s) + " s ago";
    if ((s /= 60) < 60) return Math.round(s) + " min ago";
    if ((s /= 60) < 48) return Math.round(s) + " h ago";
    return Math.round(s / 24) + " days ago";
  }

  function isoOf(ns) {
    return ns ? new Date(ns / 1e6).toISOString().replace(/\.\d+Z$/, "Z") : "";
  }

  function fmtDuration(s) {
    s = Math.round(s);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " days";
  }

  // ---- fetching ---------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  async function fetchStatus() {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    const ctl = new AbortController();
    const limit = setTimeout(() => ctl.abort(), 10000);
    try {
      return await fetch("/v1/status", { headers, cache: "no-store", signal: ctl.signal });
    } finally {
      clearTimeout(limit);
    }
  }

  async function errorText(resp) {
    try {
      const j = await resp.json();
      if (j && j.error && j.error.message) return j.error.message;
    } catch (e) { /* not JSON */ }
    return "HTTP " + resp.status + " " + resp.statusText;
  }

  async function poll() {
    timer = null;
    try {
      const resp = await fetchStatus();
      if (resp.status === 401) {
        const had = token();
        showTokenForm(had ? "The token was refused (" + (await errorText(resp)) +
                            "). Enter another." : null);
      } else if (!resp.ok) {
        showError("The server answered /v1/status with an error: " + (await errorText(resp)));
      } else {
        const st = await resp.json();
        hideTokenForm();
        render(st);
        lastOk = new Date();
        $("error-banner").hidden = true;
        setUpdated();
      }
    } catch (e) {
      showError("Cannot reach mcache-serve at " + location.host + " (" +
                (e.name === "AbortError" ? "no answer in 10 s" : e.message) + ").");
    }
    schedule();
  }

  // A tab in the background does not poll: it catches up when shown again.
  let waitingVisible = false;
  function schedule() {
    if (refreshS <= 0 || timer) return;
    timer = setTimeout(() => {
      timer = null;
      if (document.hidden) waitingVisible = true;
      else poll();
    }, refreshS * 1000);
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && waitingVisible) {
      waitingVisible = false;
      poll();
    }
  });

  function showError(msg) {
    const b = $("error-banner");
    b.textContent = msg + (lastOk
      ? " Showing what it said at " + lastOk.toLocaleTimeString() + "."
      : "") + (refreshS > 0 ? " Retrying every " + refreshS + " s." : "");
    b.hidden = false;
    document.body.classList.add("stale");
    setUpdated();
  }

  function setUpdated() {
    const u = $("updated");
    if (lastOk) {
      u.textContent = "updated " + lastOk.toLocaleTimeString();
      u.title = lastOk.toISOString();
    }
    if (!$("error-banner").hidden) u.classList.add("old");
    else { u.classList.remove("old"); document.body.classList.remove("stale"); }
  }

  // ---- tokens -----------------------------------------------------------

  function showTokenForm(why) {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
    $("token-why").textContent = why || "This server needs a token to show its status.";
    $("token-form").hidden = false;
    $("main").hidden = true;
    $("error-banner").hidden = true;
    $("token-forget").hidden = true;
  }

  function hideTokenForm() {
    $("token-form").hidden = true;
    $("token-forget").hidden = !token();
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token-input").value.trim();
    if (!v) return;
    try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { /* private mode */ }
    $("token-input").value = "";
    if (timer) { clearTimeout(timer); timer = null; }
    poll();
  });

  $("token-forget").addEventListener("click", (ev) => {
    ev.preventDefault();
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
    if (timer) { clearTimeout(timer); timer = null; }
    poll();
  });

  // ---- drawing ----------------------------------------------------------

  function render(st) {
    const now = st.generated_ns;
    $("main").hidden = false;
    $("where").textContent = "cache " + st.cache + " · store " + st.registry.store;
    $("generation-pill").textContent = "registry generation " + st.registry.generation;
    renderMcached(st.mcached);
    renderArena(st.arena);
    renderLoads(st.loads, st.mcached);
    renderModels(st.models, st.registry, st.mcached);
    renderMoves(st.moves, now);
    renderReaders(st.readers, now);
  }

  function renderMcached(m) {
    const pill = $("mcached-pill"), banner = $("mcached-banner");
    if (m.up) {
      pill.dataset.state = m.serves_store ? "up" : "warn";
      pill.textContent = "mcached up";
      pill.title = "pid " + m.pid + ", version " + m.version + ", up " + fmtDuration(m.uptime_s) +
                   (m.socket ? ", socket " + m.socket : "");
      banner.hidden = m.serves_store;
      banner.textContent = m.serves_store ? "" :
        "The mcached answering on " + m.socket + " serves another store: " +
        "residency and loads shown are its own.";
    } else {
      pill.dataset.state = "down";
      pill.textContent = "mcached DOWN";
      pill.title = m.error || "";
      banner.hidden = false;
      // mcached's message names the socket and how to start it: shown as it is.
      banner.textContent = "mcached is down. " + (m.error || "It does not answer.").replace(/\.?$/, ".") +
        " Models and aliases come from the registry, residency from the arena;" +
        " loads in progress are unknown.";
    }
  }

  function renderArena(a) {
    const used = $("arena-used"), text = $("arena-text");
    if (!a || a.error) {
      used.style.width = "0";
      text.textContent = "No arena: " + ((a && a.error) || "unknown");
      return;
    }
    const p = pct(a.data_used, a.data_size);
    used.style.width = p.toFixed(2) + "%";
    used.classList.toggle("high", p >= 90);
    $("arena-bar").setAttribute("aria-label", "arena " + p.toFixed(0) + "% used");
    text.replaceChildren(
      el("strong", {}, fmtSize(a.data_used)), " used of ", fmtSize(a.data_size),
      " (" + p.toFixed(1) + "%) · " + fmtSize(a.data_free) + " free, largest free extent ",
      fmtSize(a.largest_free), " · " + a.models_resident + " resident",
      a.source === "arena" ? " · read from the arena (mcached down)" : "");
    text.title = a.path || "";
  }

  function renderLoads(loads, m) {
    const box = $("loads");
    $("loads-count").textContent = m.up ? "(" + loads.length + ")" : "";
    if (!m.up) {
      box.replaceChildren(el("p", { class: "empty" }, "unknown while mcached is down"));
      return;
    }
    if (!loads.length) {
      box.replaceChildren(el("p", { class: "empty" }, "none"));
      return;
    }
    box.replaceChildren(...loads.map((l) => {
      const p = pct(l.loaded_bytes, l.size);
      return el("div", { class: "load", "data-load": l.name + "@" + l.version },
        el("div", { class: "load-name" }, l.name + "@" + l.version),
        el("div", { class: "bar small" },
          el("div", { class: "bar-used", style: "" })),
        el("div", { class: "load-text" },
          fmtSize(l.loaded_bytes) + " of " + fmtSize(l.size) + " (" + p.toFixed(0) + "%)"));
    }));
    // Widths set after creation: the style attribute is not set from data.
    box.querySelectorAll(".load").forEach((d, i) => {
      d.querySelector(".bar-used").style.width = pct(loads[i].loaded_bytes, loads[i].size) + "%";
    });
  }

  function aliasChips(name, aliases) {
    const names = Object.keys(aliases).sort();
    if (!names.length) return el("span", { class: "muted" }, "no aliases");
    return names.map((a) => {
      const t = aliases[a];
      const targets = t.length === 1 ? t[0].version
        : t.map((x) => x.version + " " + x.weight + "%").join(" · ");
      return el("span", { class: "alias", "data-alias": a, title: name + "@" + a },
        el("span", { class: "alias-name" }, a), el("span", { class: "arrow" }, "→"),
        el("span", { class: "alias-target" }, targets));
    });
  }

  const RESIDENCY_LABEL = {
    "resident": "resident", "loading": "loading", "not-resident": "on disk",
    "failed": "load failed", "unknown": "unknown",
  };

  function renderModels(models, reg, m) {
    const box = $("models");
    const plural = (n, what) => n + " " + what + (n === 1 ? "" : "s");
    $("models-count").textContent = "(" + plural(reg.models, "model") + ", " +
      plural(reg.versions, "version") + ")";
    if (!models.length) {
      box.replaceChildren(el("p", { class: "empty" },
        "The registry is empty. Push a model: mcache push NAME VERSION FILE"));
      return;
    }
    box.replaceChildren(...models.map((md) => el("article", { class: "model", "data-model": md.name },
      el("div", { class: "model-head" },
        el("h3", {}, md.name),
        el("span", { class: "muted" }, md.versions.length + " version" +
          (md.versions.length === 1 ? "" : "s") + ", " + fmtSize(md.size)),
        el("div", { class: "aliases" }, aliasChips(md.name, md.aliases))),
      el("table", { class: "versions" },
        el("thead", {}, el("tr", {},
          ["version", "aliases", "size", "residency", "status", "pushed"].map((h) =>
            el("th", { class: h === "size" ? "num" : null }, h)))),
        el("tbody", {}, md.versions.map((v) => el("tr", { "data-version": v.version },
          el("td", { class: "mono" }, v.version,
            v.pinned ? el("span", { class: "tag", title: "never evicted" }, "pinned") : null,
            v.preload ? el("span", { class: "tag", title: "loaded when mcached starts" }, "preload") : null),
          el("td", {}, v.aliases.join(", ")),
          el("td", { class: "num" }, fmtSize(v.size)),
          el("td", {}, el("span", { class: "res", "data-res": v.residency, title: v.error || "" },
            (RESIDENCY_LABEL[v.residency] || v.residency) +
            (v.residency === "loading" && v.loaded_bytes !== undefined
              ? " " + pct(v.loaded_bytes, v.size).toFixed(0) + "%" : ""))),
          el("td", { class: v.status === "ready" ? "" : "warn-text" }, v.status),
          el("td", { title: v.created_at }, isoOf(v.created_ns).slice(0, 16).replace("T", " "))))))))
    );
    if (!m.up) box.classList.add("no-daemon"); else box.classList.remove("no-daemon");
  }

  function renderMoves(moves, now) {
    const box = $("moves");
    if (!moves.length) {
      box.replaceChildren(el("p", { class: "empty" }, "no alias has been set yet"));
      return;
    }
    box.replaceChildren(el("table", { class: "moves" },
      el("thead", {}, el("tr", {},
        ["when", "model", "alias", "what", "from", "to", "by", "why"].map((h) => el("th", {}, h)))),
      el("tbody", {}, moves.map((mv) => el("tr", { "data-generation": String(mv.generation) },
        el("td", { title: mv.at }, ago(mv.at_ns, now)),
        el("td", {}, mv.model),
        el("td", {}, mv.alias),
        el("td", {}, el("span", { class: "action", "data-action": mv.action }, mv.action)),
        el("td", { class: "mono" }, mv.from === null ? "—" : mv.from),
        el("td", { class: "mono" }, mv.to === null ? "—" : mv.to),
        el("td", {}, mv.user),
        el("td", { class: "why" }, mv.why || ""))))));
  }

  function renderReaders(r, now) {
    const box = $("readers");
    $("readers-count").textContent = r.error ? "" : "(" + r.count + ")";
    if (r.error) {
      box.replaceChildren(el("p", { class: "empty" }, "the reader table cannot be read: " + r.error));
      return;
    }
    if (!r.list.length) {
      box.replaceChildren(el("p", { class: "empty" }, "no process is attached to the arena"));
      return;
    }
    box.replaceChildren(el("table", { class: "readers" },
      el("thead", {}, el("tr", {}, ["pid", "attached", "holds"].map((h) => el("th", {}, h)))),
      el("tbody", {}, r.list.map((x) => el("tr", { "data-pid": String(x.pid) },
        el("td", { class: "mono" }, String(x.pid)),
        el("td", { title: x.since }, ago(x.since_ns, now)),
        el("td", { class: "mono" }, x.holds.length ? x.holds.join(", ") : "nothing"))))));
  }

  // ---- start ------------------------------------------------------------

  $("refresh-note").textContent = refreshS > 0
    ? "Refreshes every " + refreshS + " s (?refresh=SECONDS; 0 stops)."
    : "Not refreshing (?refresh=0); reload the page to update.";
  poll();
})();
