// keygate web UI, REST API page: keygate's OpenAPI document as a console.
//
// The Token field is read on every change and checked here, with the same rules as
// keygate_core::token (prefix, length, alphabet, CRC32 checksum in base62), before
// any request is made. The token lives in this page's memory only: never in storage,
// a cookie or a URL, and it is sent only in the Authorization header of requests
// made from this page, which carry no cookie (credentials: "omit"), so they act as
// the token's owner, as any client would.
"use strict";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX = "kgt";
const TOKEN_LEN = 49;
const CHECKSUM_LEN = 6;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(ascii) {
  let c = 0xffffffff;
  for (let i = 0; i < ascii.length; i++) c = CRC_TABLE[(c ^ ascii.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function checksum(body) {
  let n = crc32(body);
  let out = "";
  for (let i = 0; i < CHECKSUM_LEN; i++) { out = BASE62[n % 62] + out; n = Math.floor(n / 62); }
  return out;
}

// The same masking as the server: first 7, a star for each hidden character, last 4.
function mask(t) {
  const chars = [...t];
  if (chars.length <= 11) return "*".repeat(chars.length);
  return chars.slice(0, 7).join("") + "*".repeat(chars.length - 11) + chars.slice(-4).join("");
}

function describe(ch) {
  if (ch === " ") return "a space";
  if (ch === "\t") return "a tab";
  if (ch === "\n" || ch === "\r") return "a line break";
  if (/\s/u.test(ch)) return "invisible whitespace (U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + ")";
  if (/^[\x21-\x7e]$/.test(ch)) return `'${ch}'`;
  return "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

// What is wrong with a pasted token, in the order the server checks it.
function diagnose(t) {
  if (t === "") return { ok: false, empty: true, text: "No token yet: requests go without one." };
  const chars = [...t];
  if (/^\s/u.test(t)) return { ok: false, text: `There is ${describe(chars[0])} before the token: remove it. Paste the token without blank space or extra characters.` };
  if (/\s$/u.test(t)) return { ok: false, text: `There is ${describe(chars[chars.length - 1])} after the token: remove it. Paste the token without blank space or extra characters.` };
  const bad = chars.findIndex((c) => !/^[A-Za-z0-9]$/.test(c));
  if (bad >= 0) return { ok: false, text: `Character ${bad + 1} is ${describe(chars[bad])}, which a token never has: tokens are letters and digits only.` };
  if (t.length < TOKEN_LEN) {
    const n = TOKEN_LEN - t.length;
    return { ok: false, text: `The token is ${n} character${n === 1 ? "" : "s"} short (${t.length} of ${TOKEN_LEN}): part of it is missing. Copy it again.` };
  }
  if (t.length > TOKEN_LEN) return { ok: false, text: `The token is ${t.length - TOKEN_LEN} character${t.length - TOKEN_LEN === 1 ? "" : "s"} too long (${t.length} of ${TOKEN_LEN}): it is joined with other text.` };
  if (!t.startsWith(PREFIX)) return { ok: false, text: `keygate bearer tokens start with "${PREFIX}"; this is not one (an LMv1 access id is not a bearer token).` };
  if (checksum(t.slice(0, TOKEN_LEN - CHECKSUM_LEN)) !== t.slice(TOKEN_LEN - CHECKSUM_LEN)) {
    return { ok: false, text: "The checksum (the last 6 characters) does not match the rest: a character was mistyped or changed. Copy the token again." };
  }
  return { ok: true, text: `A well-formed keygate token: ${mask(t)}. The server decides whether it is valid.` };
}

const tokenInput = document.getElementById("api-token");
const diagnosis = document.getElementById("token-diagnosis");
let current = diagnose("");

function onToken() {
  current = diagnose(tokenInput.value);
  diagnosis.textContent = current.text;
  diagnosis.className = "diagnosis " + (current.ok ? "good" : current.empty ? "" : "bad");
}
tokenInput.addEventListener("input", onToken);
document.getElementById("api-token-show").addEventListener("change", (ev) => {
  tokenInput.type = ev.target.checked ? "text" : "password";
});
document.getElementById("api-token-clear").addEventListener("click", () => {
  tokenInput.value = "";
  onToken();
  tokenInput.focus();
});
// A token restored by the browser (bfcache, form restoration) is cleared: it is
// meant to live only as long as the page.
window.addEventListener("pageshow", () => { tokenInput.value = ""; onToken(); });

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function resolve(spec, schema) {
  const ref = schema && schema.$ref;
  return ref ? spec.components.schemas[ref.split("/").pop()] : schema;
}

function describeSchema(spec, schema) {
  const s = resolve(spec, schema);
  if (!s || !s.properties) return "";
  return Object.entries(s.properties).map(([name, p]) => {
    let kind = p.enum ? p.enum.join(" | ") : p.type || "object";
    if (p.maxLength) kind += `, at most ${p.maxLength}`;
    return `${name}${(s.required || []).includes(name) ? " (required)" : ""}: ${kind}`;
  }).join("; ");
}

const quote = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";

function curlFor(method, url, body) {
  const parts = ["curl", "-X", method.toUpperCase(), quote(url)];
  if (current.ok) parts.push("-H", quote("Authorization: Bearer " + mask(tokenInput.value)));
  parts.push("-H", quote("X-Version: 3"));
  if (body !== undefined) parts.push("-H", quote("Content-Type: application/json"), "-d", quote(body));
  return parts.join(" ");
}

function operation(spec, base, path, method, op) {
  const form = el("form", { class: "try", "data-operation": op.operationId });
  const inputs = [];
  for (const p of op.parameters || []) {
    const id = `${op.operationId}-${p.name}`;
    const input = el("input", {
      id, name: p.name, "data-in": p.in,
      type: p.schema && p.schema.type === "integer" ? "number" : "text",
      required: p.required ? "required" : null,
      placeholder: p.schema && p.schema.enum ? p.schema.enum.join(" | ") : "",
    });
    inputs.push(input);
    form.append(el("label", { for: id, text: `${p.name} (${p.in}${p.required ? ", required" : ""})` }),
      el("span", { class: "muted hint", text: p.description || "" }), input);
  }
  let bodyField = null;
  const rb = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (rb) {
    const id = `${op.operationId}-body`;
    bodyField = el("textarea", { id, name: "body", rows: "4", spellcheck: "false" });
    bodyField.value = "{}";
    form.append(el("label", { for: id, text: "Body (JSON)" }),
      el("span", { class: "muted hint", text: describeSchema(spec, rb.schema) }), bodyField);
  }
  const status = el("p", { class: "try-status", role: "status" });
  const response = el("pre", { class: "try-response" });
  const curl = el("pre", { class: "try-curl" });
  const result = el("div", { class: "try-result", hidden: "hidden" },
    status, el("h4", { text: "Response" }), response, el("h4", { text: "The same request with curl" }), curl);
  form.append(el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", text: "Try it" })), result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    result.hidden = false;
    response.textContent = "";
    if (!current.ok && !current.empty) {
      status.textContent = "Not sent: " + current.text;
      status.className = "try-status bad";
      curl.textContent = "";
      return;
    }
    let url = base + path.replace(/\{([^}]+)\}/g, (_, name) => {
      const i = inputs.find((x) => x.name === name);
      return encodeURIComponent(i ? i.value : "");
    });
    const query = new URLSearchParams();
    for (const i of inputs) if (i.dataset.in === "query" && i.value !== "") query.append(i.name, i.value);
    if ([...query].length) url += "?" + query.toString();
    let body;
    if (bodyField) {
      body = bodyField.value.trim() || undefined;
      if (body !== undefined) {
        try { JSON.parse(body); } catch (e) {
          status.textContent = "Not sent: the body is not JSON (" + e.message + ")";
          status.className = "try-status bad";
          return;
        }
      }
    }
    curl.textContent = curlFor(method, location.origin + url, body);
    const headers = { "X-Version": "3", Accept: "application/json" };
    if (current.ok) headers.Authorization = "Bearer " + tokenInput.value;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    status.textContent = "Sending…";
    status.className = "try-status";
    try {
      const res = await fetch(url, { method: method.toUpperCase(), headers, body, credentials: "omit", cache: "no-store", redirect: "error" });
      const text = await res.text();
      status.textContent = `${res.status} ${res.statusText}`;
      status.className = "try-status " + (res.ok ? "good" : "bad");
      try { response.textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { response.textContent = text; }
    } catch (e) {
      status.textContent = "No answer: " + e.message;
      status.className = "try-status bad";
    }
  });
  const summary = el("summary", {},
    el("span", { class: `method method-${method}`, text: method.toUpperCase() }), " ",
    el("code", { text: path }), " ", el("span", { text: op.summary || "" }));
  return el("details", { class: "op", id: `op-${op.operationId}` }, summary, form);
}

async function load() {
  const host = document.getElementById("api-operations");
  let spec;
  try {
    const res = await fetch(host.dataset.spec, { credentials: "omit", cache: "no-store" });
    spec = await res.json();
  } catch (e) {
    host.textContent = "Could not load the OpenAPI document: " + e.message;
    return;
  }
  const base = (spec.servers && spec.servers[0] && spec.servers[0].url) || "/santaba/rest";
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  host.textContent = "";
  for (const [tag, ops] of byTag) {
    const section = el("section", { class: "op-group", "data-tag": tag }, el("h2", { text: tag }));
    for (const [path, method, op] of ops) section.append(operation(spec, base, path, method, op));
    host.append(section);
  }
  host.dataset.loaded = "true";
}
load();
