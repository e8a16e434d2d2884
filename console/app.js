// imgsearch console: fetch() against the admin API (instances, imports,
// thumbnails) and the v2 search API, with the token kept in localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { project: localStorage.getItem("project") || "default",
                token: localStorage.getItem("token") || "", polling: {} };

function say(text) { $("message").textContent = text || ""; }

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers["X-Auth-Token"] = state.token;
  const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error_code || r.status) + ": " + (data.error_msg || r.statusText));
  return data;
}

const adm = (suffix) => `/admin/v1/${encodeURIComponent(state.project)}${suffix}`;
const inst = (name) => adm(`/instances/${encodeURIComponent(name)}`);
const csv = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  const { dataset, ...props } = attrs || {};
  Object.assign(e, props);
  Object.assign(e.dataset, dataset || {});
  for (const k of kids) e.append(k);
  return e;
}

async function loadInstances() {
  const { instances } = await api("GET", adm("/instances"));
  const rows = $("instance-rows");
  rows.replaceChildren();
  for (const i of instances) {
    const del = el("button", { textContent: "Delete", className: "delete" });
    del.onclick = () => guard(async () => {
      if (!confirm(`Delete instance ${i.name} and all its items?`)) return;
      await api("DELETE", inst(i.name));
      await loadInstances();
    });
    rows.append(el("tr", { dataset: { name: i.name } }, el("td", { textContent: i.name }),
      el("td", { textContent: i.item_count, className: "count" }),
      el("td", { textContent: i.custom_tags.join(", ") }),
      el("td", { textContent: i.custom_num_tags.join(", ") }),
      el("td", { textContent: (i.views ? "on" : "off") + (i.regions ? " + regions" : ""),
                 className: "views" }),
      el("td", { textContent: i.descriptor || "float", className: "descriptor" }),
      el("td", {}, del)));
  }
  for (const sel of document.querySelectorAll(".instance-select")) {
    const keep = sel.value;
    sel.replaceChildren(...instances.map((i) => el("option", { value: i.name, textContent: i.name })));
    if (instances.some((i) => i.name === keep)) sel.value = keep;
  }
  loadJobs();
}

function jobView(job) {
  const id = "job-" + job.job_id;
  let box = $(id);
  if (!box) {
    box = el("div", { id, className: "job" });
    $("jobs").prepend(box);
  }
  const n = job.done + job.failed;
  // While the server lists the source, total grows: "n/total+" of the keys so far.
  const more = job.listing_done === false;
  const pct = job.total ? Math.floor((100 * n) / job.total) : more ? 0 : 100;
  box.className = "job " + job.status;
  box.dataset.status = job.status;
  const bar = el("div", { className: "bar" }, el("div", {}));
  bar.firstChild.style.width = pct + "%";
  const info = el("div", { className: "info",
    textContent: `${job.instance} ← ${job.source}: ${job.status} ${n}/${job.total}${more ? "+" : ""} ` +
                 `(${job.failed} failed, ${job.images_per_second} img/s${more ? ", listing" : ""})` +
                 (job.error ? `: ${job.error}` : "") });
  const kids = [info, bar];
  if (job.status === "QUEUED" || job.status === "RUNNING") {
    const cancel = el("button", { textContent: "Cancel" });
    cancel.onclick = () => guard(() => api("DELETE", `${inst(job.instance)}/imports/${job.job_id}`));
    kids.push(cancel);
  }
  if (job.errors && job.errors.length) {
    kids.push(el("ul", { className: "errors" },
      ...job.errors.map((e) => el("li", { textContent: `${e.key}: ${e.error_code} ${e.error_msg}` }))));
  }
  box.replaceChildren(...kids);
}

async function poll(name, jobId) {
  if (state.polling[jobId]) return;
  state.polling[jobId] = true;
  try {
    for (;;) {
      const job = await api("GET", `${inst(name)}/imports/${jobId}?errors_limit=20`);
      jobView(job);
      if (!["QUEUED", "RUNNING"].includes(job.status)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await loadInstanceCounts();
  } finally {
    delete state.polling[jobId];
  }
}

async function loadInstanceCounts() {
  const { instances } = await api("GET", adm("/instances"));
  for (const i of instances) {
    const row = document.querySelector(`tr[data-name="${CSS.escape(i.name)}"] .count`);
    if (row) row.textContent = i.item_count;
  }
}

async function loadJobs() {
  const name = $("import-instance").value;
  $("jobs").replaceChildren();
  if (!name) return;
  const { jobs } = await api("GET", `${inst(name)}/imports`);
  for (const j of jobs.slice(0, 10).reverse()) {
    jobView(j);
    poll(name, j.job_id);
  }
}

function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(",")[1]);
    r.onerror = reject;
    r.readAsDataURL(file);
  });
}

async function thumb(name, itemId) {
  const headers = state.token ? { "X-Auth-Token": state.token } : {};
  const r = await fetch(`${inst(name)}/thumbnail?item_id=${encodeURIComponent(itemId)}`, { headers });
  return r.ok ? URL.createObjectURL(await r.blob()) : "";
}

async function search() {
  const name = $("search-instance").value;
  const body = { search_type: "IMAGE", limit: Number($("search-limit").value) || 10 };
  const file = $("search-file").files[0];
  if (file) body.image_base64 = await fileBase64(file);
  else if ($("search-url").value.trim()) body.image_url = $("search-url").value.trim();
  else throw new Error("choose an image file or enter a URL");
  const res = await api("POST", `/v2/${encodeURIComponent(state.project)}/mms/${encodeURIComponent(name)}/search`, body);
  const out = $("results");
  out.replaceChildren();
  for (const it of res.data.items) {
    const img = el("img", { alt: it.id });
    const tags = Object.entries((it.source && it.source.custom_tags) || {}).map(([k, v]) => `${k}=${v}`);
    out.append(el("div", { className: "result" }, img, el("div", { className: "id", textContent: it.id }),
      el("div", { className: "score", textContent: it.score.toFixed(4) }),
      el("div", { className: "tags", textContent: tags.join(" ") })));
    thumb(name, it.id).then((u) => { if (u) img.src = u; });
  }
  if (!res.data.items.length) out.append(el("p", { textContent: "no results" }));
}

async function guard(fn) {
  say("");
  try { await fn(); return true; } catch (e) { say(e.message); return false; }
}

$("project").value = state.project;
$("token").value = state.token;
$("auth").onsubmit = (ev) => {
  ev.preventDefault();
  state.project = $("project").value.trim();
  state.token = $("token").value;
  localStorage.setItem("project", state.project);
  localStorage.setItem("token", state.token);
  guard(loadInstances).then((ok) => { $("auth-state").textContent = ok ? "saved" : ""; });
};
$("create-instance").onsubmit = (ev) => {
  ev.preventDefault();
  guard(async () => {
    await api("POST", adm("/instances"), { name: $("new-name").value.trim(),
      custom_tags: csv($("new-tags").value), custom_num_tags: csv($("new-num-tags").value),
      views: $("new-views").checked });
    $("new-name").value = "";
    await loadInstances();
  });
};
$("import-instance").onchange = () => guard(loadJobs);
$("start-import").onsubmit = (ev) => {
  ev.preventDefault();
  guard(async () => {
    const name = $("import-instance").value;
    const body = { source: $("import-source").value.trim(), item_id_from: $("import-id-from").value,
                   force: $("import-force").checked };
    if ($("import-manifest").value.trim()) body.manifest = $("import-manifest").value.trim();
    const r = await api("POST", `${inst(name)}/imports`, body);
    jobView({ job_id: r.job_id, instance: name, source: body.source, status: r.status,
              total: r.total, listing_done: r.listing_done, done: 0, failed: 0,
              images_per_second: 0 });
    poll(name, r.job_id);
  });
};
$("search-form").onsubmit = (ev) => { ev.preventDefault(); guard(search); };
guard(loadInstances);
