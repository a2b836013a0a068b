// The farm's web dashboard: one page that draws the floor, jobs, pipelines, agents and the
// factory from the coordinator's JSON API (coordinator/http/web_app.h), polling it while open.
// No framework and no build step: the coordinator serves this file (and pages.js) as it is.
'use strict';

const state = { me: null, stop: null };
const SVG = 'http://www.w3.org/2000/svg';

// ---- DOM and formatting

function h(tag, attrs, ...kids) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// Replaces el's children with kids, lists flattened and empty ones (null, false) left out.
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

function main(...kids) {
  const m = document.getElementById('main');
  m.replaceChildren(...kids);
  return m;
}

function num(x) { return Number(x || 0); }

function duration(ms) {
  ms = num(ms);
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

function ago(ms) { return ms ? `${duration(Date.now() - num(ms))} ago` : '-'; }
function pct(x) { return `${Math.round(100 * num(x))}%`; }
function badge(s) { return h('span', { class: `state ${s || ''}` }, (s || '-').replace(/^(STEP_|ATTEMPT_)/, '')); }
function labelText(labels) { return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(',') || '(no labels)'; }
function flash(text) {
  const f = document.getElementById('flash');
  f.textContent = text || '';
  f.hidden = !text;
}

// ---- the API

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function failure(r) {
  let message = `${r.status} ${r.statusText}`;
  try { message = (await r.json()).error || message; } catch (e) { /* not JSON */ }
  if (r.status === 401) showLogin(message);
  return new HttpError(r.status, message);
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (!r.ok) throw await failure(r);
  return r.json();
}

async function post(path) {
  const r = await fetch(path, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'X-Farm-CSRF': state.me ? state.me.csrf : '' },
  });
  if (!r.ok) throw await failure(r);
  return r.json();
}

// An action button; the server refuses it anyway when the role may not.
function action(label, path, after, danger) {
  const b = h('button', {
    class: danger ? 'danger' : null,
    onclick: async () => {
      b.disabled = true;
      try { await post(path); flash(''); if (after) await after(); } catch (e) { flash(e.message); }
      b.disabled = false;
    },
  }, label);
  return b;
}

function can(what) {
  const role = state.me && state.me.role;
  if (what === 'admin') return role === 'admin';
  return role === 'admin' || role === 'submitter';
}

async function loadMe() {
  state.me = await api('/api/whoami');
  const who = document.getElementById('who');
  who.replaceChildren(state.me.insecure ? 'insecure (everyone is admin)' : `${state.me.name} (${state.me.role})`);
  if (state.me.signedIn) {
    who.append(h('button', {
      onclick: async () => { await post('/logout'); state.me = null; showLogin(''); },
    }, 'Sign out'));
  }
}

// ---- routing and polling

function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { if (e.status !== 401) flash(e.message); else stopped = true; }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  state.stop = () => { stopped = true; clearTimeout(timer); };
  tick();
}

function stop() {
  if (state.stop) state.stop();
  state.stop = null;
}

function go(path) {
  history.pushState(null, '', path);
  route();
}

const routes = [
  [/^\/$/, floorPage],
  [/^\/jobs$/, jobsPage],
  [/^\/jobs\/([^/]+)$/, jobPage],
  [/^\/pipelines$/, pipelinesPage],
  [/^\/pipelines\/([^/]+)$/, pipelinePage],
  [/^\/agents$/, agentsPage],
  [/^\/factory$/, factoryPage],
  [/^\/login$/, () => showLogin('')],
];

async function route() {
  stop();
  flash('');
  for (const [re, page] of routes) {
    const m = location.pathname.match(re);
    if (!m) continue;
    if (!state.me && page !== routes[routes.length - 1][1]) {
      try { await loadMe(); } catch (e) { return; }
    }
    return page(...m.slice(1).map(decodeURIComponent));
  }
  main(h('p', {}, `No such page: ${location.pathname}`));
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', route);

function showLogin(message) {
  stop();
  state.me = null;
  document.getElementById('who').replaceChildren();
  const error = h('p', { class: 'error' }, message === 'sign in first' ? '' : message);
  main(h('form', {
    class: 'login',
    onsubmit: async (e) => {
      e.preventDefault();
      const r = await fetch('/login', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: `token=${encodeURIComponent(e.target.token.value)}`,
      });
      if (!r.ok) {
        error.textContent = (await r.json().catch(() => ({}))).error || `${r.status}`;
        return;
      }
      await loadMe();
      if (location.pathname === '/login') history.replaceState(null, '', '/');
      route();
    },
  },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'With a token an admin made for you: farmctl token create --role=viewer --name=you'),
  h('input', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'farm_...', required: true }),
  h('button', { type: 'submit' }, 'Sign in'), error));
}

// ---- the floor

function bars(values, title, format) {
  const w = 600, ht = 80;
  const max = Math.max(1, ...values.map((v) => num(v)));
  const bw = w / values.length;
  return h('figure', {},
    h('figcaption', { class: 'muted' }, title),
    h('svg:svg', { class: 'chart', viewBox: `0 0 ${w} ${ht + 14}`, preserveAspectRatio: 'none' },
      values.map((v, i) => (v === null ? null : h('svg:rect', {
        x: i * bw + 1, y: ht - (num(v) / max) * ht, width: Math.max(1, bw - 2),
        height: (num(v) / max) * ht, fill: '#0969da',
      }, h('svg:title', {}, format(v))))),
      h('svg:text', { x: 0, y: ht + 12 }, '-60m'), h('svg:text', { x: w - 24, y: ht + 12 }, 'now')));
}

function floorView(f) {
  const queues = (f.queues.queues || []);
  const now = num(f.queues.nowMs);
  const agents = (f.agents.agents || []);
  const r = f.report || {};
  const refresh = () => floorPage();
  return [
    h('h1', {}, 'The floor'),
    h('div', { class: 'row' },
      h('section', {}, h('h2', {}, 'Queues by label pool'),
        queues.length === 0 ? h('p', { class: 'muted' }, 'Nothing queued.') :
          h('table', {}, h('tr', {}, h('th', {}, 'pool'), h('th', { class: 'num' }, 'queued'),
            h('th', { class: 'num' }, 'oldest waits'), h('th', { class: 'num' }, 'agents'), h('th', {}, '')),
          queues.map((q) => h('tr', {},
            h('td', {}, labelText(q.labels)), h('td', { class: 'num' }, num(q.depth)),
            h('td', { class: 'num' }, q.oldestSubmittedMs ? duration(now - num(q.oldestSubmittedMs)) : '-'),
            h('td', { class: 'num' }, num(q.agents)),
            h('td', {}, q.paused ? h('span', { class: 'state QUEUED' }, 'paused') : null, ' ',
              can('admin') && Object.keys(q.labels || {}).length ?
                action(q.paused ? 'Resume' : 'Pause', `/api/queues/${q.paused ? 'resume' : 'pause'}?labels=${encodeURIComponent(labelText(q.labels))}`, refresh) : null))))),
      h('section', {}, h('h2', {}, 'Agents'), agentTable(agents, refresh))),
    h('div', { class: 'row' },
      h('section', {}, bars(f.series.ended, 'Jobs finished per minute, last hour', (v) => `${v} jobs`)),
      h('section', {}, bars(f.series.waitP95Ms, 'p95 queue wait per minute, last hour', duration))),
    h('section', {}, h('h2', {}, 'Bottleneck (last hour)'),
      h('p', {}, r.bottleneck ? `${r.bottleneck}: ${r.bottleneckReason}` : 'None: nothing ran in the last hour.'),
      (r.advice || []).map((a) => h('p', { class: 'muted' }, a.text))),
  ];
}

function agentTable(agents, refresh) {
  if (agents.length === 0) return h('p', { class: 'muted' }, 'No agents.');
  return h('table', {},
    h('tr', {}, h('th', {}, 'agent'), h('th', {}, 'state'), h('th', {}, 'running'),
      h('th', { class: 'num' }, 'slots'), h('th', {}, 'labels'), h('th', {}, '')),
    agents.map((a) => h('tr', {},
      h('td', {}, a.name), h('td', {}, badge(a.state)),
      h('td', {}, (a.jobs || []).map((j) => [h('a', { href: `/jobs/${j}`, 'data-nav': true }, j), ' '])),
      h('td', { class: 'num' }, num(a.slots)), h('td', {}, labelText(a.labels)),
      h('td', {}, can('admin') && a.state !== 'offline' ?
        (a.state === 'draining' ? action('Resume', `/api/agents/${encodeURIComponent(a.name)}/resume`, refresh) :
          action('Drain', `/api/agents/${encodeURIComponent(a.name)}/drain`, refresh)) : null))));
}

function floorPage() {
  const root = main(h('p', { class: 'muted' }, 'Loading...'));
  stop();
  every(2000, async () => root.replaceChildren(...floorView(await api('/api/floor')).flat(Infinity).filter(Boolean)));
}

function agentsPage() {
  const root = main(h('p', { class: 'muted' }, 'Loading...'));
  const draw = async () => {
    const a = await api('/api/agents');
    root.replaceChildren(h('h1', {}, 'Agents'), h('section', {}, agentTable(a.agents || [], draw)));
  };
  every(2000, draw);
}

// ---- jobs and pipelines

function jobRow(j) {
  const ran = num(j.finishedMs) && num(j.startedMs) ? duration(num(j.finishedMs) - num(j.startedMs)) :
    (num(j.startedMs) ? duration(Date.now() - num(j.startedMs)) : '-');
  return h('tr', {},
    h('td', {}, h('a', { href: `/jobs/${j.id}`, 'data-nav': true }, j.id)),
    h('td', {}, (j.spec && j.spec.name) || ''), h('td', {}, badge(j.state)),
    h('td', {}, j.pipelineId ? h('a', { href: `/pipelines/${j.pipelineId}`, 'data-nav': true },
      `${j.pipelineId} ${j.pipelineJob || ''}`) : ''),
    h('td', { class: 'num' }, ran), h('td', { class: 'num' }, ago(j.submittedMs)),
    h('td', {}, j.submittedBy || ''), h('td', {}, labelText(j.spec && j.spec.labels)));
}

function jobsPage() {
  const q = new URLSearchParams(location.search);
  const form = h('form', {
    class: 'filters',
    onsubmit: (e) => {
      e.preventDefault();
      const p = new URLSearchParams();
      for (const k of ['state', 'labels', 'pipeline']) if (e.target[k].value) p.set(k, e.target[k].value);
      go(`/jobs?${p}`);
    },
  },
  h('select', { name: 'state' }, ['', 'queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'skipped']
    .map((s) => h('option', { value: s, selected: q.get('state') === s }, s || 'any state'))),
  h('input', { name: 'labels', placeholder: 'labels k=v,...', value: q.get('labels') || '' }),
  h('input', { name: 'pipeline', placeholder: 'pipeline name', value: q.get('pipeline') || '' }),
  h('button', { type: 'submit' }, 'Filter'));
  const table = h('table', {});
  const pager = h('p', {});
  main(h('h1', {}, 'Jobs'), form, h('section', {}, table, pager));
  const tokens = [''];
  const load = async (page) => {
    const p = new URLSearchParams(q);
    p.set('limit', '50');
    if (tokens[page]) p.set('page_token', tokens[page]);
    const r = await api(`/api/jobs?${p}`);
    tokens[page + 1] = r.nextPageToken || '';
    fill(table, h('tr', {}, ['job', 'name', 'state', 'pipeline', 'ran', 'submitted', 'by', 'labels']
      .map((t) => h('th', {}, t))), (r.jobs || []).map(jobRow));
    fill(pager, page > 0 ? h('button', { onclick: () => load(page - 1) }, 'Newer') : null, ' ',
      r.nextPageToken ? h('button', { onclick: () => load(page + 1) }, 'Older') : null);
  };
  load(0).catch((e) => flash(e.message));
}

function pipelinesPage() {
  const table = h('table', {});
  main(h('h1', {}, 'Pipelines'), h('section', {}, table));
  every(3000, async () => {
    const r = await api('/api/pipelines?limit=50');
    fill(table, h('tr', {}, ['pipeline', 'name', 'state', 'jobs', 'submitted', 'by'].map((t) => h('th', {}, t))),
      (r.pipelines || []).map((p) => h('tr', {},
        h('td', {}, h('a', { href: `/pipelines/${p.id}`, 'data-nav': true }, p.id)), h('td', {}, p.name),
        h('td', {}, badge(p.state)),
        h('td', {}, `${(p.jobs || []).filter((j) => j.state === 'SUCCEEDED').length}/${(p.jobs || []).length}`),
        h('td', { class: 'num' }, ago(p.submittedMs)), h('td', {}, p.submittedBy || ''))));
  });
}

const COLORS = {
  SUCCEEDED: '#1f883d', FAILED: '#cf222e', RUNNING: '#0969da', QUEUED: '#9a6700',
  WAITING: '#bf8700', CANCELLED: '#8c959f', SKIPPED: '#afb8c1',
};

// The pipeline's jobs as a graph: a column per depth (the longest chain of needs before it).
function dag(p) {
  const jobs = p.jobs || [];
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const depth = new Map();
  const depthOf = (j, seen = new Set()) => {
    if (depth.has(j.name)) return depth.get(j.name);
    if (seen.has(j.name)) return 0;
    seen.add(j.name);
    const d = Math.max(-1, ...(j.needs || []).map((n) => (byName.has(n) ? depthOf(byName.get(n), seen) : -1))) + 1;
    depth.set(j.name, d);
    return d;
  };
  jobs.forEach((j) => depthOf(j));
  const columns = [];
  for (const j of jobs) (columns[depth.get(j.name)] = columns[depth.get(j.name)] || []).push(j);
  const W = 190, H = 44, GX = 70, GY = 18;
  const at = new Map();
  columns.forEach((col, c) => col.forEach((j, r) => at.set(j.name, { x: 10 + c * (W + GX), y: 10 + r * (H + GY) })));
  const width = 20 + columns.length * (W + GX);
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY);
  return h('svg:svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'dag' },
    jobs.flatMap((j) => (j.needs || []).filter((n) => at.has(n)).map((n) => {
      const a = at.get(n), b = at.get(j.name);
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      return h('svg:path', { class: 'edge', d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}` });
    })),
    jobs.map((j) => {
      const { x, y } = at.get(j.name);
      return h('svg:a', { href: `/jobs/${j.jobId}`, 'data-nav': true, class: 'node', 'data-job': j.name, 'data-state': j.state },
        h('svg:rect', { x, y, width: W, height: H, fill: COLORS[j.state] || '#8c959f' }),
        h('svg:text', { x: x + 10, y: y + 18, fill: '#fff' }, j.name.length > 26 ? `${j.name.slice(0, 25)}...` : j.name),
        h('svg:text', { x: x + 10, y: y + 35, fill: '#fff' }, `${j.state}${num(j.attempts) > 1 ? ` (${j.attempts} attempts)` : ''}`));
    }));
}

function pipelinePage(id) {
  const root = main(h('p', { class: 'muted' }, 'Loading...'));
  const draw = async () => {
    const p = await api(`/api/pipelines/${encodeURIComponent(id)}`);
    const open = ['QUEUED', 'RUNNING', 'WAITING'].includes(p.state);
    root.replaceChildren(
      h('h1', {}, `Pipeline ${p.id} ${p.name} `, badge(p.state)),
      h('p', {}, can('submit') && open ? action('Cancel', `/api/pipelines/${p.id}/cancel`, draw, true) : null, ' ',
        can('submit') && !open ? action('Retry', `/api/pipelines/${p.id}/retry`, draw) : null),
      h('section', { class: 'dag-section' }, dag(p)),
      h('section', {}, h('table', {}, h('tr', {}, ['job', 'state', 'attempts', 'ran'].map((t) => h('th', {}, t))),
        (p.jobs || []).map((j) => h('tr', {},
          h('td', {}, h('a', { href: `/jobs/${j.jobId}`, 'data-nav': true }, j.name)), h('td', {}, badge(j.state)),
          h('td', { class: 'num' }, num(j.attempts)),
          h('td', { class: 'num' }, num(j.finishedMs) && num(j.startedMs) ? duration(num(j.finishedMs) - num(j.startedMs)) : '-'))))));
    return open;
  };
  every(1000, draw);
}

route();
