// keygate web UI: the small amount of script the server-rendered pages need.
// Changes go to the REST API with the session cookie and the CSRF token from the
// page; errors from the server are shown next to what caused them. Secrets shown on
// the Add pages are never written to storage or to a URL.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

async function call(method, url, body) {
  const headers = { "X-CSRF-Token": csrf, "X-Version": "3" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (!res.ok) throw new Error(data.errorMessage || ("request failed: " + res.status));
  return data;
}
const api = (method, path, body) => call(method, "/santaba/rest" + path, body);

function showError(near, err) {
  const slot = near.closest("tr, form, section")?.querySelector(".row-error, .form-error");
  if (slot) slot.textContent = err.message; else alert(err.message);
}

function clearError(near) {
  const slot = near.closest("tr, form, section")?.querySelector(".row-error, .form-error");
  if (slot) slot.textContent = "";
}

// Times: the server writes UTC; show the browser's local time, full timestamp on hover.
for (const t of document.querySelectorAll("time[data-epoch]")) {
  const d = new Date(Number(t.dataset.epoch) * 1000);
  t.title = d.toString();
  t.dateTime = d.toISOString();
  t.textContent = d.toLocaleString();
}

// Filters that apply as soon as they change.
for (const s of document.querySelectorAll("select[data-autosubmit]")) {
  s.addEventListener("change", () => s.form.submit());
}

// Copy buttons.
for (const b of document.querySelectorAll("button[data-copy]")) {
  b.addEventListener("click", async () => {
    const input = document.getElementById(b.dataset.copy);
    const status = b.parentElement.querySelector(".copy-status");
    if (!input || !input.value) return;
    let ok = false;
    try { await navigator.clipboard.writeText(input.value); ok = true; } catch (_) {
      input.select();
      try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    }
    if (status) status.textContent = ok ? "Copied to the clipboard" : "Copy failed: select the text and copy it";
  });
}

// Token rows: enable/disable, note, delete. Each change is confirmed naming the
// token (masked) and its user, and its result is said in words and shown in the row.
const pageStatus = document.getElementById("page-status");
function say(text) { if (pageStatus) pageStatus.textContent = text; }
for (const row of document.querySelectorAll("table.tokens tr[data-id]")) {
  const path = `/setting/admins/${row.dataset.owner}/apitokens/${row.dataset.id}`;
  const named = `the token ${row.dataset.token} of ${row.dataset.user}`;
  const box = row.querySelector('input[data-action="status"]');
  const state = row.querySelector(".token-state");
  const show = (enabled) => {
    if (state) state.textContent = enabled ? "Enabled" : "Disabled";
    row.classList.toggle("disabled-row", !enabled);
  };
  box?.addEventListener("change", async () => {
    clearError(box);
    const enable = box.checked;
    const question = enable
      ? `Enable ${named}? Requests with it work again at once.`
      : `Disable ${named}? Every request with it fails at once, until it is enabled again.`;
    if (!confirm(question)) { box.checked = !enable; return; }
    try {
      await api("PATCH", path, { status: enable ? 2 : 1 });
      show(enable);
      say(`${enable ? "Enabled" : "Disabled"} ${named}.`);
    } catch (e) { box.checked = !enable; showError(box, e); }
  });
  const noteForm = row.querySelector('form[data-action="note"]');
  noteForm?.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(noteForm);
    const button = noteForm.querySelector("button");
    try {
      await api("PATCH", path, { note: noteForm.elements.note.value });
      button.textContent = "Saved";
      say(`Saved the note of ${named}.`);
      setTimeout(() => { button.textContent = "Save"; }, 1500);
    } catch (e) { showError(noteForm, e); }
  });
  const del = row.querySelector('button[data-action="delete"]');
  del?.addEventListener("click", async () => {
    const sure = confirm(`Delete ${named}? It cannot be retrieved afterwards, and requests that use it will fail.`);
    if (!sure) return;
    try {
      await api("DELETE", path);
      const table = row.closest("table");
      row.remove();
      say(`Deleted ${named}.`);
      if (table && !table.querySelector("tbody tr")) {
        table.closest(".table-wrap")?.remove();
        const empty = document.getElementById("empty");
        if (empty) empty.hidden = false;
      }
    } catch (e) { showError(del, e); }
  });
}

// Users and roles rows.
for (const b of document.querySelectorAll('button[data-action="user-status"]')) {
  b.addEventListener("click", async () => {
    try { await api("PATCH", `/setting/admins/${b.closest("tr").dataset.id}`, { status: b.dataset.status }); location.reload(); }
    catch (e) { showError(b, e); }
  });
}
for (const [action, base, what] of [["user-delete", "/setting/admins/", "user"], ["role-delete", "/setting/roles/", "role"]]) {
  for (const b of document.querySelectorAll(`button[data-action="${action}"]`)) {
    b.addEventListener("click", async () => {
      const row = b.closest("tr");
      const extra = what === "user" ? " Its API tokens are deleted too." : "";
      if (!confirm(`Delete the ${what} "${row.dataset.name}"?${extra}`)) return;
      try { await api("DELETE", base + row.dataset.id); row.remove(); }
      catch (e) { showError(b, e); }
    });
  }
}

// Forms that save through the API: fields become JSON by name and data-type.
for (const form of document.querySelectorAll("form[data-api-form]")) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(form);
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.name === "roles" || el.name === "privilege") continue;
      if (el.type === "checkbox") body[el.name] = el.checked;
      else if (el.dataset.type === "int") body[el.name] = Number(el.value);
      else if (el.name === "password" && el.value === "") continue;
      else body[el.name] = el.value;
    }
    const roles = [...form.querySelectorAll('input[name="roles"]')];
    if (roles.length) body.roles = roles.filter((r) => r.checked).map((r) => ({ id: Number(r.value) }));
    const privs = [...form.querySelectorAll('input[name="privilege"]')];
    if (privs.length) {
      body.privileges = JSON.parse(form.dataset.kept || "[]").concat(privs.filter((p) => p.checked).map((p) => ({
        objectType: p.dataset.objectType, objectId: p.dataset.objectId, operation: p.dataset.operation,
      })));
    }
    try { await api(form.dataset.method, form.dataset.path, body); location.assign(form.dataset.next); }
    catch (e) { showError(form, e); }
  });
}

// Add Bearer Token: selecting a user generates a token at once; Save stores it.
const bearerForm = document.getElementById("add-bearer-form");
if (bearerForm) {
  const owner = bearerForm.elements.adminId;
  const token = document.getElementById("token");
  const generate = async () => {
    clearError(bearerForm);
    token.value = "";
    if (!owner.value) return;
    try { token.value = (await call("POST", "/ui/pending-token", { adminId: Number(owner.value) })).token; }
    catch (e) { showError(bearerForm, e); }
  };
  owner.addEventListener("change", generate);
  // Back after Save (or a reload) brings the page back with the user still selected
  // but no token: the one generated before was saved or discarded. Start over.
  window.addEventListener("pageshow", () => {
    if (owner.value && !token.value) { owner.value = ""; bearerForm.reset(); }
  });
  bearerForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(bearerForm);
    if (!token.value) { showError(bearerForm, new Error("Select a user first: that generates the token.")); return; }
    try {
      const saved = await call("POST", "/ui/bearer-tokens", { adminId: Number(owner.value), note: bearerForm.elements.note.value });
      token.value = "";
      owner.value = "";
      location.assign(`${bearerForm.dataset.next}?added=${saved.id}`);
    } catch (e) { showError(bearerForm, e); }
  });
}

// Add LMv1 API Token: Save creates it and shows the access id and key once.
const lmv1Form = document.getElementById("add-lmv1-form");
if (lmv1Form) {
  lmv1Form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError(lmv1Form);
    const owner = lmv1Form.elements.adminId.value;
    if (!owner) { showError(lmv1Form, new Error("Select a user.")); return; }
    try {
      const t = await api("POST", `/setting/admins/${owner}/apitokens?type=lmv1`, { note: lmv1Form.elements.note.value });
      document.getElementById("access-id").value = t.accessId;
      document.getElementById("access-key").value = t.accessKey;
      lmv1Form.hidden = true;
      document.getElementById("lmv1-result").hidden = false;
      document.getElementById("done").focus();
    } catch (e) { showError(lmv1Form, e); }
  });
}
