// The dashboard's page: everything comes from the JSON API, sent the
// token (from this page's URL) in the Authorization header. Names from
// the home and the snapshots are only ever set as text, never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (!r.ok) throw new Error(r.status + " " + r.statusText + ": " + (await r.text()));
  return r.json();
}

// el("td", {class: "num"}, "text", child, ...)
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function ago(unix) {
  if (unix === null || unix === undefined) return "never";
  const s = Math.round(Date.now() / 1000 - unix);
  const span = (s) => {
    s = Math.abs(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    if (s < 172800) return Math.floor(s / 3600) + "h";
    return Math.floor(s / 86400) + "d";
  };
  return s >= 0 ? span(s) + " ago" : "in " + span(s);
}

function utc(ns) {
  return new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
}

function fill(tableId, rows, empty) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const cols = document.querySelectorAll("#" + tableId + " thead th").length;
    body.append(el("tr", {}, el("td", { colspan: cols, class: "muted" }, empty)));
  }
}

function downloadLink(snapshot, path, label) {
  const q = new URLSearchParams({ snapshot, path, token });
  return el("a", { href: "/api/download?" + q, download: "" }, label);
}

function renderStatus(s) {
  fill("containers", s.containers.map((c) => {
    const health = [c.packs_total + " pack(s)", c.packs_degraded + " degraded"];
    if (c.packs_to_repair > 0) health.push(c.packs_to_repair + " to repair");
    if (c.packs_unreadable > 0) health.push(c.packs_unreadable + " UNREADABLE");
    const state = c.packs_unreadable > 0 ? "unreadable" : c.packs_degraded > 0 ? "degraded" : "full";
    const word = { full: "healthy", degraded: "degraded", unreadable: "unreadable" }[state];
    return el("tr", {},
      el("td", {}, el("strong", {}, c.name)),
      el("td", {}, c.last_snapshot_unix ? ago(c.last_snapshot_unix) : "no snapshot yet",
        el("div", { class: "muted" }, c.snapshots + " in all")),
      el("td", {}, el("span", { class: "badge " + state }, word), " ", health.join(", ")),
      el("td", {}, c.k + "+" + c.m, el("div", { class: "muted" }, c.failure_domains + " failure domain(s)")),
      el("td", { class: "num" }, bytes(c.bytes_stored), el("div", { class: "muted" }, bytes(c.bytes_packed) + " packed")),
      el("td", {}, c.durability_text));
  }), "no containers yet: trove container create NAME PATH...");

  const packs = document.getElementById("packs");
  packs.replaceChildren(...s.packs.map((p) => {
    const grid = el("div", { class: "grid" }, ...p.cells.map((c) =>
      el("span", {
        class: "cell " + c.state,
        title: "pack " + c.id + ": " + c.online + " of " + (p.k + p.m) +
          " fragments on online peers, " + c.readable + " on reachable or suspect ones (" + c.state + ")",
      })));
    const more = p.cells_omitted > 0 ? " (" + p.cells_omitted + " more not drawn)" : "";
    return el("div", {},
      el("strong", {}, p.container), " ",
      el("span", { class: "muted" }, p.k + "+" + p.m + ": " + p.full + " full, " + p.degraded +
        " degraded, " + p.unreadable + " unreadable" + more),
      grid);
  }));
  if (s.packs.length === 0) packs.append(el("p", { class: "muted" }, "no packs yet"));

  fill("peers", s.peers.map((p) => {
    const audits = p.last_audit_unix
      ? p.audit_rounds_passed + " passed, " + p.audit_rounds_failed + " failed, last " + ago(p.last_audit_unix)
      : "never audited";
    return el("tr", {},
      el("td", {}, el("strong", {}, p.name)),
      el("td", {}, p.site || el("span", { class: "muted" }, "none")),
      el("td", {}, el("span", { class: "badge " + p.state }, p.state),
        p.error ? el("div", { class: "muted" }, p.error) : null),
      el("td", {}, p.state === "online" ? "now" : ago(p.last_seen_unix)),
      el("td", {}, audits),
      el("td", { class: "num" }, bytes(p.bytes_held), el("div", { class: "muted" }, p.fragments_held + " fragment(s)")),
      el("td", {}, el("code", {}, p.location)));
  }), "no peers: trove peer add NAME dir:PATH");

  const storm = document.getElementById("storm");
  storm.hidden = !s.storm;
  storm.textContent = s.storm ? "Storm guard: " + JSON.stringify(s.storm) : "";

  const claims = document.getElementById("claims");
  const open = s.inheritance_claims || [];
  claims.hidden = open.length === 0;
  claims.textContent = open.length === 0 ? "" :
    "Inheritance claim open on " + open.map((c) => c.custodian).join(", ") +
    ": your heir asked for your escrowed master secret. If you did not expect it, run `trove inherit veto` now.";
}

function renderSnapshots(rows) {
  fill("snapshots", rows.map((r) =>
    el("tr", {},
      el("td", {}, el("code", {}, r.short_id)),
      el("td", {}, r.container),
      el("td", {}, r.time),
      el("td", {}, r.host),
      el("td", { class: "num" }, r.files),
      el("td", { class: "num" }, bytes(r.bytes)),
      el("td", {},
        el("button", { class: "link", type: "button", onclick: () => browse(r.short_id, "") }, "browse"),
        " · ", downloadLink(r.short_id, "", "download .tar")))),
    "no snapshots yet: trove backup NAME");
}

// The folder shown is kept in the URL's fragment (#snapshot=ID&path=P), so
// it can be bookmarked and survives a reload.
async function browse(snapshot, path) {
  history.replaceState(null, "", "#" + new URLSearchParams({ snapshot, path }));
  const section = document.getElementById("browser");
  section.hidden = false;
  document.getElementById("browse-title").textContent = snapshot;
  const crumbs = document.getElementById("crumbs");
  const parts = path ? path.split("/") : [];
  crumbs.replaceChildren(
    el("button", { class: "link", type: "button", onclick: () => browse(snapshot, "") }, "/"),
    ...parts.flatMap((p, i) => [" / ",
      el("button", { class: "link", type: "button", onclick: () => browse(snapshot, parts.slice(0, i + 1).join("/")) }, p)]));
  try {
    const l = await api("/api/ls?" + new URLSearchParams({ snapshot, path }));
    fill("entries", l.entries.map((e) =>
      el("tr", {},
        el("td", {}, e.kind === "dir"
          ? el("button", { class: "link", type: "button", onclick: () => browse(snapshot, e.path) }, e.name + "/")
          : e.name),
        el("td", {}, e.kind),
        el("td", { class: "num" }, e.kind === "file" ? bytes(e.size) : ""),
        el("td", {}, utc(e.mtime_ns)),
        el("td", {}, downloadLink(snapshot, e.path, "download .tar")))),
      "empty folder");
    section.scrollIntoView();
  } catch (err) {
    showError(err);
  }
}

function showError(err) {
  const e = document.getElementById("error");
  e.hidden = false;
  e.textContent = String(err.message || err);
}

async function refresh() {
  try {
    const [status, snaps] = [await api("/api/status"), await api("/api/snapshots")];
    renderStatus(status);
    renderSnapshots(snaps);
    document.getElementById("error").hidden = true;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    showError(err);
  }
}

document.getElementById("refresh").addEventListener("click", refresh);
refresh();
const shown = new URLSearchParams(location.hash.slice(1));
if (shown.get("snapshot")) browse(shown.get("snapshot"), shown.get("path") || "");
// Every minute: each refresh asks every peer whether it answers.
setInterval(refresh, 60000);
