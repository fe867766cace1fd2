// The decisions page: a read-only view over policy-server's JSON API for on-call people.
// Everything shown comes from GET calls made with the token the user gave ("Authorize"), so the page shows
// nothing that token may not see. Data goes into the DOM as text (never as markup).
"use strict";

const TOKEN_KEY = "policy-server-token";
const FILTERS = ["namespace", "stage", "promotion", "allow", "policy", "code", "since", "until"];
const PAGE = 200;
const SET_COLOURS = ["#8250df", "#0969da", "#bf8700", "#1b7c83", "#bc4c00", "#6e7781", "#cf222e", "#116329"];

// ---------------------------------------------------------------- DOM and HTTP helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const url = path + (query.toString() ? `?${query}` : "");
  const headers = { accept: "application/json" };
  if (token()) headers.authorization = `Bearer ${token()}`;
  const response = await fetch(url, { headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function notice(message, kind) {
  const box = document.getElementById("notice");
  box.replaceChildren();
  if (!message) {
    box.hidden = true;
    return;
  }
  box.className = `notice ${kind || ""}`;
  box.append(message);
  box.hidden = false;
}

function explain(error) {
  if (!(error instanceof ApiError)) return notice(`The server could not be reached: ${error.message}`, "error");
  if (error.status === 401) {
    notice(el("span", {}, "This server needs a token. ",
      el("a", { href: "#", onclick: (e) => { e.preventDefault(); openAuth(); } }, "Authorize"),
      " with a policy-server token to see decisions."), "error");
    return;
  }
  const code = error.problem && error.problem.code ? ` (${error.problem.code})` : "";
  notice(`${error.status}${code}: ${error.message}`, "error");
}

// ---------------------------------------------------------------- formatting

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return el("time", { datetime: iso, title: iso }, date.toLocaleString());
}

function badge(kind, text) {
  return el("span", { class: `badge ${kind}` }, text || kind);
}

function verdict(decision) {
  if (!decision) return badge("none", "no decision");
  return decision.allow ? badge("allow") : badge("deny");
}

function reasonList(decision) {
  const items = [];
  for (const reason of decision.reasons || []) items.push(["deny", reason]);
  for (const reason of decision.warnings || []) items.push(["warn", reason]);
  for (const reason of decision.dry_run || []) items.push(["dry run", reason]);
  if (!items.length) return el("span", { class: "muted" }, decision.allow ? "every policy allows" : "");
  return el("ul", { class: "reasons" }, items.map(([kind, reason]) =>
    el("li", {}, el("span", { class: "code" }, reason.code), " ", el("span", { class: "muted" }, `${reason.policy}${kind === "deny" ? "" : ` (${kind})`}: `), reason.message,
      reason.retry_after ? el("span", { class: "opens", "data-retry-after": reason.retry_after }, ` — opens at ${new Date(reason.retry_after).toLocaleString()}`) : "")));
}

function policySet(decision) {
  return (decision.policies || []).map((p) => `${p.id}@${p.revision}${p.mode === "enforce" ? "" : ` (${p.mode})`}`).join(", ") || "(no policies)";
}

function decisionLink(decision, text) {
  return el("a", { href: `#/decision/${encodeURIComponent(decision.id)}`, class: text ? "details" : "mono" }, text || decision.id);
}

function filtersHash(filters) {
  const query = new URLSearchParams();
  for (const key of FILTERS) if (filters[key]) query.set(key, filters[key]);
  return `#/?${query}`;
}

// ---------------------------------------------------------------- the sidebar: namespaces and their Stages

async function renderSidebar(current) {
  const list = document.getElementById("namespaces");
  let namespaces;
  try {
    namespaces = await api("/v1/namespaces");
  } catch (error) {
    list.replaceChildren(el("li", { class: "muted" }, error.status === 401 ? "Authorize to see projects" : "unavailable"));
    return;
  }
  if (!namespaces.length) {
    list.replaceChildren(el("li", { class: "muted" }, "No Stages recorded yet"));
    return;
  }
  const items = await Promise.all(namespaces.map(async (ns) => {
    const stages = await api(`/v1/namespaces/${encodeURIComponent(ns.name)}/stages`).catch(() => []);
    const nsCurrent = current.namespace === ns.name && !current.stage;
    return el("li", { class: "ns", "data-namespace": ns.name },
      el("a", { href: filtersHash({ namespace: ns.name }), class: nsCurrent ? "current" : "" },
        ns.name, el("span", { class: "count" }, `${ns.stages}`)),
      el("ul", {}, stages.map((stage) => el("li", { "data-stage": stage.name },
        el("a", {
          href: filtersHash({ namespace: ns.name, stage: stage.name }),
          class: current.namespace === ns.name && current.stage === stage.name ? "current" : "",
          title: `${stage.queued} queued`,
        }, stage.name, el("span", { class: "count" }, stage.queued ? `${stage.queued} queued` : ""))))));
  }));
  list.replaceChildren(...items);
}

// ---------------------------------------------------------------- the overview: a Stage's queue, the timeline, the log

async function renderOverview(filters) {
  const main = document.getElementById("main");
  const title = filters.stage && filters.namespace
    ? `Stage ${filters.namespace}/${filters.stage}`
    : filters.namespace ? `Project ${filters.namespace}` : "All decisions";
  const sections = [el("h1", {}, title)];
  if (filters.namespace && filters.stage) sections.push(await stageSection(filters.namespace, filters.stage));
  else if (filters.namespace) sections.push(await stagesSection(filters.namespace));
  sections.push(filterForm(filters));
  const timeline = el("div", { class: "timeline", id: "timeline" });
  const log = el("div", { id: "log" });
  sections.push(el("h2", {}, "Timeline"), timeline, el("h2", {}, "Decisions"), log);
  main.replaceChildren(...sections);

  const query = {};
  for (const key of FILTERS) if (filters[key]) query[key] = filters[key];
  const decisions = [];
  const more = async (cursor) => {
    const page = await api("/v1/decisions", { ...query, limit: PAGE, cursor });
    decisions.push(...page.items);
    drawTimeline(timeline, decisions);
    drawLog(log, decisions, page.next_cursor ? () => more(page.next_cursor).catch(explain) : null);
  };
  await more(null);
}

async function stageSection(namespace, name) {
  let stage;
  try {
    stage = await api(`/v1/namespaces/${encodeURIComponent(namespace)}/stages/${encodeURIComponent(name)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      return el("p", { class: "empty" }, `Stage ${namespace}/${name} is not recorded; its decisions are below.`);
    }
    throw error;
  }
  const verification = stage.current_verification;
  const freight = stage.current_freight;
  const facts = el("div", { class: "facts", id: "stage-facts" },
    el("div", {}, el("b", {}, "health"), stage.health || "—"),
    el("div", {}, el("b", {}, "promoting"), stage.current_promotion || "—"),
    el("div", {}, el("b", {}, "freight"), freight && freight.freight.length ? freight.freight.join(", ") : "—"),
    el("div", {}, el("b", {}, "verification"),
      verification ? `${verification.name} (${verification.effective_phase || verification.phase})` : stage.has_verification ? "none running" : "not configured"));
  const latest = await Promise.all(stage.queue.map((promotion) =>
    api("/v1/decisions", { namespace, promotion: promotion.name, limit: 1 })
      .then((page) => page.items[0]).catch(() => undefined)));
  const rows = stage.queue.map((promotion, index) => {
    const decision = latest[index];
    return el("tr", { "data-promotion": promotion.name },
      el("td", {}, `${index + 1}`),
      el("td", { class: "mono" }, promotion.name, promotion.abort_requested ? el("div", { class: "muted" }, "abort requested") : null),
      el("td", {}, promotion.phase || "Pending"),
      el("td", { class: "mono", title: promotion.freight || "" }, promotion.freight ? promotion.freight.slice(0, 12) : "—"),
      el("td", {}, verdict(decision), decision ? el("div", { class: "muted" }, when(decision.last_at || decision.evaluated_at)) : null),
      el("td", {}, decision ? reasonList(decision) : ""),
      el("td", {}, decision ? actionsCell(decision) : ""),
      el("td", {}, decision ? decisionLink(decision, "details") : ""));
  });
  const queue = rows.length
    ? el("table", { id: "queue" },
      el("thead", {}, el("tr", {}, ["#", "Promotion", "Phase", "Freight", "Latest decision", "Reasons", "Actions", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))
    : el("p", { class: "empty", id: "queue" }, "The queue is empty.");
  return el("section", {}, facts, el("h2", {}, "Queue, in Kargo's order"), queue);
}

async function stagesSection(namespace) {
  const stages = await api(`/v1/namespaces/${encodeURIComponent(namespace)}/stages`);
  if (!stages.length) return el("p", { class: "empty" }, "No Stages recorded in this namespace.");
  return el("table", { id: "stages" },
    el("thead", {}, el("tr", {}, ["Stage", "Queued", "Promoting", "Health", "Verification"].map((h) => el("th", {}, h)))),
    el("tbody", {}, stages.map((stage) => el("tr", {},
      el("td", {}, el("a", { href: filtersHash({ namespace, stage: stage.name }) }, stage.name)),
      el("td", {}, `${stage.queued}`),
      el("td", { class: "mono" }, stage.current_promotion || "—"),
      el("td", {}, stage.health || "—"),
      el("td", {}, stage.has_verification ? "yes" : "no")))));
}

function actionsCell(decision) {
  const actions = decision.actions || [];
  if (!actions.length) return el("span", { class: "muted" }, "—");
  return el("ul", { class: "reasons" }, actions.map((action) =>
    el("li", {}, `${action.type} `, el("span", { class: "mono" }, action.promotion.name), el("span", { class: "muted" }, ` (${action.policy})`))));
}

function filterForm(filters) {
  const field = (name, label, placeholder) => el("label", {}, label,
    el("input", { name, value: filters[name] || "", placeholder: placeholder || "" }));
  const allow = el("select", { name: "allow" },
    el("option", { value: "" }, "any"),
    el("option", { value: "true", selected: filters.allow === "true" }, "allowed"),
    el("option", { value: "false", selected: filters.allow === "false" }, "denied"));
  const form = el("form", { class: "filters", id: "filters" },
    field("namespace", "Namespace"), field("stage", "Stage"), field("promotion", "Promotion"),
    el("label", {}, "Answer", allow), field("policy", "Policy"), field("code", "Reason code"),
    field("since", "Since", "24h or 2026-12-01T00:00:00Z"), field("until", "Until"),
    el("button", { type: "submit" }, "Apply"),
    el("a", { href: "#/", class: "link" }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const key of FILTERS) if (data.get(key)) next[key] = String(data.get(key)).trim();
    location.hash = filtersHash(next);
  });
  return form;
}

function drawTimeline(box, decisions) {
  if (!decisions.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No decisions match."));
    return;
  }
  const start = (d) => Date.parse(d.evaluated_at);
  const end = (d) => Date.parse(d.last_at || d.evaluated_at);
  let low = Math.min(...decisions.map(start));
  let high = Math.max(...decisions.map(end));
  if (high - low < 60000) { low -= 30000; high += 30000; }
  const width = Math.max(640, box.clientWidth - 20);
  const left = 60, right = width - 14;
  const x = (t) => left + ((t - low) / (high - low)) * (right - left);
  const lanes = { allow: 24, deny: 52 };
  const sets = new Map();
  for (const decision of [...decisions].sort((a, b) => start(a) - start(b))) {
    const key = policySet(decision);
    if (!sets.has(key)) sets.set(key, { colour: SET_COLOURS[sets.size % SET_COLOURS.length], first: start(decision), last: end(decision) });
    const entry = sets.get(key);
    entry.first = Math.min(entry.first, start(decision));
    entry.last = Math.max(entry.last, end(decision));
  }
  const chart = svg("svg", { width, height: 118, role: "img", "aria-label": "Decisions over time" },
    svg("text", { x: 4, y: lanes.allow + 4, class: "lane", fill: "#1a7f37", "font-size": 12 }, document.createTextNode("allow")),
    svg("text", { x: 4, y: lanes.deny + 4, class: "lane", fill: "#cf222e", "font-size": 12 }, document.createTextNode("deny")),
    svg("line", { x1: left, x2: right, y1: 72, y2: 72, stroke: "#d0d7de" }));
  for (const [key, entry] of sets) {
    chart.append(svg("rect", { x: x(entry.first) - 2, y: 78, width: Math.max(4, x(entry.last) - x(entry.first) + 4), height: 8, fill: entry.colour, rx: 2, class: "revision-set" },
      svg("title", {}, document.createTextNode(`policies: ${key}`))));
  }
  for (const decision of decisions) {
    const y = decision.allow ? lanes.allow : lanes.deny;
    const colour = decision.allow ? "#1a7f37" : "#cf222e";
    const codes = [...(decision.reasons || []), ...(decision.warnings || [])].map((r) => r.code).join(", ");
    const label = `${decision.allow ? "allow" : "deny"} ${decision.promotion ? decision.promotion.name : "(prospective)"}` +
      `${codes ? ` — ${codes}` : ""}\n${decision.evaluated_at}${decision.repeat_count > 1 ? ` (×${decision.repeat_count} until ${decision.last_at})` : ""}\npolicies: ${policySet(decision)}`;
    const group = svg("g", { class: `mark ${decision.allow ? "allow" : "deny"}`, "data-id": decision.id, cursor: "pointer",
      onclick: () => { location.hash = `#/decision/${encodeURIComponent(decision.id)}`; } },
      svg("title", {}, document.createTextNode(label)));
    if (end(decision) > start(decision)) {
      group.append(svg("line", { x1: x(start(decision)), x2: x(end(decision)), y1: y, y2: y, stroke: colour, "stroke-width": 4, "stroke-linecap": "round", opacity: 0.5 }));
    }
    group.append(svg("circle", { cx: x(start(decision)), cy: y, r: 5, fill: colour, opacity: 0.85 }));
    chart.append(group);
  }
  const tick = (t, anchor) => svg("text", { x: x(t), y: 106, "text-anchor": anchor, "font-size": 11, fill: "#57606a" }, document.createTextNode(new Date(t).toLocaleString()));
  chart.append(tick(low, "start"), tick(high, "end"));
  const legend = el("div", { class: "legend" },
    el("span", {}, `${decisions.length} decisions: ${decisions.filter((d) => d.allow).length} allowed, ${decisions.filter((d) => !d.allow).length} denied`),
    [...sets].map(([key, entry]) => el("span", { class: "revision-legend" }, el("span", { class: "swatch", style: null, "data-colour": entry.colour }), `policies: ${key}`)));
  for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
  box.replaceChildren(chart, legend);
}

function drawLog(box, decisions, loadMore) {
  if (!decisions.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No decisions match these filters."));
    return;
  }
  const table = el("table", { id: "decisions" },
    el("thead", {}, el("tr", {}, ["When", "Answer", "Promotion", "Stage", "Reasons", "Policies", "Caller", "Decision"].map((h) => el("th", {}, h)))),
    el("tbody", {}, decisions.map((decision) => el("tr", { "data-id": decision.id },
      el("td", {}, when(decision.evaluated_at), decision.repeat_count > 1 ? el("div", { class: "muted" }, `×${decision.repeat_count}, last `, when(decision.last_at)) : null),
      el("td", {}, verdict(decision)),
      el("td", { class: "mono" }, decision.promotion ? decision.promotion.name : el("span", { class: "muted" }, `prospective (${decision.freight || "?"})`)),
      el("td", {}, decision.stage ? el("a", { href: filtersHash({ namespace: decision.stage.namespace, stage: decision.stage.name }) }, `${decision.stage.namespace}/${decision.stage.name}`) : "—"),
      el("td", {}, reasonList(decision)),
      el("td", { class: "muted" }, policySet(decision)),
      el("td", { class: "muted" }, decision.caller || "—"),
      el("td", {}, decisionLink(decision))))));
  const children = [table];
  if (loadMore) children.push(el("button", { class: "more", type: "button", onclick: loadMore }, "Load older decisions"));
  box.replaceChildren(...children);
}

// ---------------------------------------------------------------- one decision

async function renderDecision(id) {
  const decision = await api(`/v1/decisions/${encodeURIComponent(id)}`);
  const main = document.getElementById("main");
  const stage = decision.stage;
  const facts = el("div", { class: "facts" },
    el("div", {}, el("b", {}, "answer"), verdict(decision)),
    el("div", {}, el("b", {}, "promotion"), decision.promotion ? el("span", { class: "mono" }, decision.promotion.name) : `prospective (freight ${decision.freight || "?"})`),
    el("div", {}, el("b", {}, "stage"), stage ? el("a", { href: filtersHash({ namespace: stage.namespace, stage: stage.name }) }, `${stage.namespace}/${stage.name}`) : "—"),
    el("div", {}, el("b", {}, "freight"), decision.freight || "—"),
    el("div", {}, el("b", {}, "evaluated"), when(decision.evaluated_at)),
    decision.repeat_count > 1 ? el("div", {}, el("b", {}, "repeated"), `${decision.repeat_count}× until `, when(decision.last_at)) : null,
    el("div", {}, el("b", {}, "caller"), decision.caller || "—"),
    el("div", {}, el("b", {}, "took"), `${decision.duration_ms.toFixed(1)} ms`),
    decision.claimed ? el("div", {}, el("b", {}, "claim"), "start claimed") : null);

  const rows = [];
  const seen = new Set();
  const resultOf = (policyId) => {
    const mine = (list) => (list || []).filter((r) => r.policy === policyId);
    const denies = mine(decision.reasons), warnings = mine(decision.warnings), dry = mine(decision.dry_run);
    const actions = (decision.actions || []).filter((a) => a.policy === policyId);
    const result = denies.length ? badge("deny") : dry.length ? badge("warn", "would deny (dry run)") : warnings.length ? badge("warn", "warn") : badge("allow");
    const said = [...denies, ...warnings, ...dry];
    return [result, said.length ? el("ul", { class: "reasons" }, said.map((r) => el("li", {}, el("span", { class: "code" }, r.code), " ", r.message))) : el("span", { class: "muted" }, "—"),
      actions.length ? el("ul", { class: "reasons" }, actions.map((a) => el("li", {}, `${a.type} `, el("span", { class: "mono" }, a.promotion.name)))) : el("span", { class: "muted" }, "—")];
  };
  for (const policy of decision.policies || []) {
    seen.add(policy.id);
    rows.push(el("tr", { "data-policy": policy.id }, el("td", { class: "mono" }, policy.id), el("td", {}, `${policy.revision}`), el("td", {}, policy.mode), ...resultOf(policy.id).map((c) => el("td", {}, c))));
  }
  for (const reason of [...(decision.reasons || []), ...(decision.warnings || [])]) {
    if (seen.has(reason.policy)) continue;  // e.g. policy-server itself: an unknown Promotion, an engine failure
    seen.add(reason.policy);
    rows.push(el("tr", { "data-policy": reason.policy }, el("td", { class: "mono" }, reason.policy), el("td", {}, "—"), el("td", {}, "—"), ...resultOf(reason.policy).map((c) => el("td", {}, c))));
  }
  const policies = el("table", { id: "policy-results" },
    el("thead", {}, el("tr", {}, ["Policy", "Revision", "Mode", "Result", "Reasons", "Actions"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));

  // What the enforcer did about each action (applied, already_done, dry_run, failed), newest last.
  const outcomeOf = {};
  for (const o of decision.action_outcomes || []) outcomeOf[o.promotion.name] = o;
  const outcomeCell = (a) => {
    const o = outcomeOf[a.promotion.name];
    if (!o) return el("span", { class: "muted" }, "not taken on");
    const kind = o.outcome === "applied" ? "allow" : o.outcome === "failed" ? "deny" : "none";
    return el("span", {}, badge(kind, o.outcome.replace("_", " ")), " ", el("span", { class: "muted" }, o.detail), " ", when(o.at));
  };
  const actions = (decision.actions || []).length
    ? el("table", { id: "actions" },
      el("thead", {}, el("tr", {}, ["Action", "Promotion", "Policy", "Reason", "Merge patch", "Outcome"].map((h) => el("th", {}, h)))),
      el("tbody", {}, decision.actions.map((a) => el("tr", {},
        el("td", {}, a.type), el("td", { class: "mono" }, `${a.promotion.namespace}/${a.promotion.name}`), el("td", {}, a.policy), el("td", {}, a.reason),
        el("td", {}, el("code", {}, JSON.stringify(a.patch))), el("td", { class: "outcome" }, outcomeCell(a))))))
    : el("p", { class: "muted" }, "No actions.");

  main.replaceChildren(
    el("h1", {}, "Decision ", el("span", { class: "mono" }, decision.id)),
    facts,
    el("h2", {}, "Each policy's result"), policies,
    el("h2", {}, "Actions"), actions,
    el("details", { open: true, id: "input" }, el("summary", {}, "Input evaluated"),
      decision.input ? el("pre", { class: "json" }, JSON.stringify(decision.input, null, 2)) : el("p", { class: "muted" }, "No input was kept for this decision.")),
    el("p", {}, el("a", { href: stage ? filtersHash({ namespace: stage.namespace, stage: stage.name }) : "#/" }, "← back to the Stage")));
}

// ---------------------------------------------------------------- routing and authorization

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const decision = hash.match(/^\/decision\/([^?]+)/);
  if (decision) return { decision: decodeURIComponent(decision[1]), filters: {} };
  const query = new URLSearchParams(hash.split("?")[1] || "");
  const filters = {};
  for (const key of FILTERS) if (query.get(key)) filters[key] = query.get(key);
  return { filters };
}

let rendering = 0;
async function render() {
  const mine = ++rendering;
  const { decision, filters } = route();
  notice(null);
  document.body.dataset.state = "loading";
  renderSidebar(filters);
  try {
    if (decision) await renderDecision(decision);
    else await renderOverview(filters);
  } catch (error) {
    if (mine === rendering) {
      // Nothing of the previous view stays on screen under a failure (it may be another namespace's).
      document.getElementById("main").replaceChildren(el("p", { class: "empty" }, "Nothing to show."));
      explain(error);
    }
  } finally {
    if (mine === rendering) {
      document.body.dataset.state = "ready";
      document.body.dataset.renders = String(mine);  // how many views were drawn (tests wait on it)
    }
  }
}

function openAuth() {
  const dialog = document.getElementById("auth-dialog");
  document.getElementById("token").value = "";
  dialog.showModal();
}

function showAuthState() {
  const button = document.getElementById("authorize");
  button.classList.toggle("locked", Boolean(token()));
  button.textContent = token() ? "Authorized" : "Authorize";
}

document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.getElementById("auth-dialog");
  document.getElementById("authorize").addEventListener("click", openAuth);
  document.getElementById("refresh").addEventListener("click", render);
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "authorize") {
      const value = document.getElementById("token").value.trim();
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
    } else if (dialog.returnValue === "logout") {
      sessionStorage.removeItem(TOKEN_KEY);
    } else {
      return;
    }
    showAuthState();
    render();
  });
  window.addEventListener("hashchange", render);
  showAuthState();
  render();
});
