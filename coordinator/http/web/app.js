// The farm's web dashboard: one page that draws the floor, jobs, pipelines, agents and the
// factory from the coordinator's JSON API (coordinator/http/web_app.h), polling it while open.
// No framework and no build step: the coordinator serves this file as it is.
'use strict';

const state = { me: null, stop: null };
const SVG = 'http://www.w3.org/2000/svg';
// The most of one step's output the page keeps; older lines are dropped (and can be paged in).
const LOG_KEEP_BYTES = 2 << 20;
const LOG_PAGE_BYTES = 64 << 10;

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
  every(2000, async () => root.replaceChildren(...floorView(await api('/api/floor'))));
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
    h('td', {}, labelText(j.spec && j.spec.labels)));
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
    table.replaceChildren(h('tr', {}, ['job', 'name', 'state', 'pipeline', 'ran', 'submitted', 'labels']
      .map((t) => h('th', {}, t))), (r.jobs || []).map(jobRow));
    pager.replaceChildren(page > 0 ? h('button', { onclick: () => load(page - 1) }, 'Newer') : null, ' ',
      r.nextPageToken ? h('button', { onclick: () => load(page + 1) }, 'Older') : null);
  };
  load(0).catch((e) => flash(e.message));
}

function pipelinesPage() {
  const table = h('table', {});
  main(h('h1', {}, 'Pipelines'), h('section', {}, table));
  every(3000, async () => {
    const r = await api('/api/pipelines?limit=50');
    table.replaceChildren(h('tr', {}, ['pipeline', 'name', 'state', 'jobs', 'submitted'].map((t) => h('th', {}, t))),
      (r.pipelines || []).map((p) => h('tr', {},
        h('td', {}, h('a', { href: `/pipelines/${p.id}`, 'data-nav': true }, p.id)), h('td', {}, p.name),
        h('td', {}, badge(p.state)),
        h('td', {}, `${(p.jobs || []).filter((j) => j.state === 'SUCCEEDED').length}/${(p.jobs || []).length}`),
        h('td', { class: 'num' }, ago(p.submittedMs)))));
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

// ---- a job, and its output

// Renders text with ANSI SGR colours (30-37, 90-97, bold; 0 resets) as spans; other escapes
// are dropped. `style` carries the open colour from one chunk to the next.
function ansi(text, style) {
  const out = [];
  const re = /\x1b\[([0-9;]*)m|\x1b\[[0-9;?]*[A-Za-z]/g;
  let last = 0;
  let m;
  const emit = (s) => {
    if (!s) return;
    const cls = [style.bold ? 'ansi-bold' : '', style.color ? `ansi-${style.color}` : ''].join(' ').trim();
    out.push(cls ? h('span', { class: cls }, s) : document.createTextNode(s));
  };
  while ((m = re.exec(text)) !== null) {
    emit(text.slice(last, m.index));
    last = re.lastIndex;
    if (m[1] === undefined) continue;
    for (const code of (m[1] || '0').split(';').map(Number)) {
      if (code === 0) { style.bold = false; style.color = 0; }
      else if (code === 1) style.bold = true;
      else if (code === 22) style.bold = false;
      else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) style.color = code;
      else if (code === 39) style.color = 0;
    }
  }
  emit(text.slice(last));
  return out;
}

// One step's output: the tail first, older pages on demand, new output appended while the
// step runs. Holds at most LOG_KEEP_BYTES of text; older lines are dropped from the page.
class StepLog {
  constructor(jobId, attempt, step) {
    this.base = `/api/jobs/${encodeURIComponent(jobId)}/log?attempt=${attempt}&step=${step}`;
    this.pre = h('pre', { class: 'log' });
    this.start = 0;
    this.end = 0;
    this.kept = 0;
    this.style = {};
    this.loaded = false;
  }

  async fetchPage(query) {
    const r = await fetch(`${this.base}&${query}&limit=${LOG_PAGE_BYTES}`, { credentials: 'same-origin' });
    if (!r.ok) throw await failure(r);
    const text = await r.text();
    return { text, start: num(r.headers.get('X-Farm-Log-Start')), end: num(r.headers.get('X-Farm-Log-End')) };
  }

  moreButton() {
    if (this.start === 0) return null;
    return h('a', { class: 'more', href: '#', onclick: (e) => { e.preventDefault(); this.older(); } },
      `... ${this.start} earlier bytes: load more`);
  }

  async tail() {
    const page = await this.fetchPage('before=9223372036854775807');
    this.start = page.start;
    this.end = page.end;
    this.kept = page.end - page.start;
    this.pre.replaceChildren(...ansi(page.text, this.style));
    this.showMore();
    this.loaded = true;
    this.pre.scrollTop = this.pre.scrollHeight;
  }

  // The "load more" line at the top while older output exists.
  showMore() {
    const first = this.pre.firstChild;
    if (first && first.classList && first.classList.contains('more')) first.remove();
    if (this.start > 0) this.pre.prepend(this.moreButton());
  }

  async older() {
    const page = await this.fetchPage(`before=${this.start}`);
    const first = this.pre.firstChild;
    if (first && first.classList && first.classList.contains('more')) first.remove();
    this.pre.prepend(...ansi(page.text, {}));
    this.start = page.start;
    this.kept += page.end - page.start;
    this.showMore();
  }

  // New output since the last read; drops the oldest lines past LOG_KEEP_BYTES.
  async follow() {
    if (!this.loaded) return;
    for (let i = 0; i < 16; i++) {
      const page = await this.fetchPage(`from=${this.end}`);
      if (page.end <= this.end) break;
      const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
      this.pre.append(...ansi(page.text, this.style));
      this.kept += page.end - this.end;
      this.end = page.end;
      if (atBottom) this.pre.scrollTop = this.pre.scrollHeight;
    }
    if (this.kept <= LOG_KEEP_BYTES) return;
    const first = this.pre.firstChild;
    if (first && first.classList && first.classList.contains('more')) first.remove();
    const bytes = new TextEncoder();
    while (this.kept > LOG_KEEP_BYTES && this.pre.firstChild) {
      const node = this.pre.firstChild;
      const n = bytes.encode(node.textContent).length;
      this.kept -= n;
      this.start += n;
      node.remove();
    }
    this.showMore();
  }
}

function jobPage(id) {
  const root = main(h('p', { class: 'muted' }, 'Loading...'));
  const logs = new Map();  // "attempt/step" -> StepLog
  const header = h('div', {});
  const body = h('div', {});
  root.replaceChildren(header, body);
  let drawnAttempt = -1;
  const draw = async () => {
    const j = await api(`/api/jobs/${encodeURIComponent(id)}`);
    const open = ['QUEUED', 'RUNNING', 'WAITING'].includes(j.state);
    header.replaceChildren(
      h('h1', {}, `Job ${j.id} ${(j.spec && j.spec.name) || ''} `, badge(j.state)),
      h('p', { class: 'muted' }, j.pipelineId ? [h('a', { href: `/pipelines/${j.pipelineId}`, 'data-nav': true }, j.pipelineId), ` ${j.pipelineJob} - `] : null,
        `labels ${labelText(j.spec && j.spec.labels)} - submitted ${ago(j.submittedMs)}`, j.reason ? ` - ${j.reason}` : ''),
      h('p', {}, can('submit') && open ? action('Cancel', `/api/jobs/${j.id}/cancel`, draw, true) : null, ' ',
        can('submit') && !open ? action('Retry', `/api/jobs/${j.id}/retry`, draw) : null));
    const attempts = j.attempts || [];
    const last = attempts[attempts.length - 1];
    if (last && last.number !== drawnAttempt) {
      drawnAttempt = last.number;
      body.replaceChildren(attemptTable(attempts), artifactList(j), h('h2', {}, `Output of attempt ${last.number}`),
        ...(j.spec.steps || []).map((s, i) => stepView(j, last, i, logs)));
    }
    for (const [i, s] of (last ? (last.steps || []) : []).entries()) {
      const el = body.querySelector(`details[data-step="${i}"] .state-slot`);
      if (el) el.replaceChildren(badge(s.state), ` ${s.state === 'STEP_RUNNING' ? '' : duration(s.durationMs)}`,
        s.exitCode ? ` exit ${s.exitCode}` : '');
    }
    for (const log of logs.values()) await log.follow();
    const artifacts = body.querySelector('.artifacts');
    if (!open && artifacts) artifacts.replaceWith(artifactList(j));
  };
  every(1000, draw);
}

function attemptTable(attempts) {
  return h('section', {}, h('table', {},
    h('tr', {}, ['attempt', 'agent', 'outcome', 'started', 'ran', 'reason'].map((t) => h('th', {}, t))),
    attempts.map((a) => h('tr', {}, h('td', {}, a.number), h('td', {}, a.agent), h('td', {}, badge(a.outcome)),
      h('td', {}, ago(a.startedMs)),
      h('td', { class: 'num' }, num(a.endedMs) ? duration(num(a.endedMs) - num(a.startedMs)) : '-'),
      h('td', {}, a.reason || '')))));
}

function artifactList(j) {
  const list = j.artifacts || [];
  return h('section', { class: 'artifacts' }, h('h2', {}, 'Artifacts'),
    list.length === 0 ? h('p', { class: 'muted' }, ['QUEUED', 'RUNNING', 'WAITING'].includes(j.state) ? 'None yet.' : 'None.') :
      h('ul', {}, list.map((a) => h('li', {},
        h('a', { href: `/api/artifacts/${j.id}/${a.path.split('/').map(encodeURIComponent).join('/')}`, download: true }, a.path),
        h('span', { class: 'muted' }, ` ${num(a.size)} bytes`)))));
}

function stepView(j, attempt, i, logs) {
  const spec = j.spec.steps[i];
  const result = (attempt.steps || [])[i] || {};
  const key = `${attempt.number}/${i}`;
  const details = h('details', {
    class: 'step', 'data-step': i,
    ontoggle: async () => {
      if (!details.open || logs.has(key)) return;
      const log = new StepLog(j.id, attempt.number, i);
      logs.set(key, log);
      details.append(log.pre);
      try { await log.tail(); } catch (e) { flash(e.message); }
    },
  }, h('summary', {}, h('span', { class: 'name' }, spec.name || `step-${i + 1}`),
    h('span', { class: 'state-slot' }, badge(result.state || 'STEP_PENDING'))));
  // The running step (or the last one) opens by itself.
  if (result.state === 'STEP_RUNNING' || (i === j.spec.steps.length - 1 && !logs.size)) details.open = true;
  return details;
}

// ---- the factory

function factoryPage() {
  const root = main(h('p', { class: 'muted' }, 'Loading...'));
  every(10000, async () => {
    const r = await api('/api/factory?hours=24');
    root.replaceChildren(h('h1', {}, 'The factory, last 24 hours'), ...factoryView(r));
  });
}

// Each stage as a box on the line: its wait (amber) against its work (green), to scale.
function valueStream(stages) {
  const W = 190, H = 92, G = 30;
  const max = Math.max(1, ...stages.map((s) => num(s.queueWait && s.queueWait.meanMs) + num(s.run && s.run.meanMs)));
  return h('svg:svg', { class: 'vsm', viewBox: `0 0 ${20 + stages.length * (W + G)} ${H + 20}`, width: 20 + stages.length * (W + G), height: H + 20 },
    stages.map((s, i) => {
      const x = 10 + i * (W + G);
      const wait = num(s.queueWait && s.queueWait.meanMs), work = num(s.run && s.run.meanMs);
      return h('svg:g', {},
        h('svg:rect', { class: 'box', x, y: 10, width: W, height: H, rx: 6 }),
        h('svg:text', { x: x + 8, y: 28 }, `${s.stage}${s.bottleneck ? '  (bottleneck)' : ''}`),
        h('svg:text', { x: x + 8, y: 46 }, `${num(s.jobs)} jobs`),
        h('svg:rect', { class: 'wait', x: x + 8, y: 56, width: Math.max(1, (W - 16) * wait / max), height: 10 }),
        h('svg:rect', { class: 'work', x: x + 8, y: 72, width: Math.max(1, (W - 16) * work / max), height: 10 }),
        h('svg:text', { x: x + 8, y: 98 }, `wait ${duration(wait)} / work ${duration(work)}`),
        i > 0 ? h('svg:path', { class: 'edge', d: `M${x - G},${10 + H / 2} L${x},${10 + H / 2}` }) : null);
    }));
}

function factoryView(r) {
  const f = r.farm || {};
  const byPipeline = new Map();
  for (const s of r.stages || []) (byPipeline.get(s.pipeline) || byPipeline.set(s.pipeline, []).get(s.pipeline)).push(s);
  const o = r.overstock || {};
  return [
    h('section', {}, h('h2', {}, 'The farm'), h('p', {},
      `${num(f.arrivals)} jobs in, ${num(f.completions)} out; lead time p50 ${duration(f.lead && f.lead.p50Ms)}, p95 ${duration(f.lead && f.lead.p95Ms)}; `,
      `flow efficiency ${pct(f.flowEfficiency)}; first-pass yield ${pct(f.firstPassYield)}; utilisation ${pct(f.utilisation)}`),
    h('p', {}, r.bottleneck ? `Bottleneck: ${r.bottleneck}: ${r.bottleneckReason}` : 'No bottleneck: nothing ran.'),
    (r.advice || []).map((a) => h('p', { class: 'muted' }, a.text))),
    [...byPipeline.entries()].map(([name, stages]) => h('section', {}, h('h2', {}, `Pipeline ${name}: its stages`),
      valueStream(stages.slice().sort((a, b) => (a.stage < b.stage ? -1 : 1))))),
    h('section', {}, h('h2', {}, 'Quality'),
      (r.flaky || []).length === 0 ? h('p', { class: 'muted' }, 'No flaky steps.') :
        h('table', {}, h('tr', {}, ['job', 'step', 'passed', 'failed'].map((t) => h('th', {}, t))),
          r.flaky.map((s) => h('tr', {}, h('td', {}, s.job), h('td', {}, s.step), h('td', { class: 'num' }, num(s.passed)),
            h('td', { class: 'num' }, num(s.failed)))))),
    h('section', {}, h('h2', {}, 'Overstock'), h('p', {},
      `${num(o.unusedArtifacts)} of ${num(o.artifacts)} artifacts never downloaded nor used downstream; `,
      `CAS ${num(o.casBytes)} bytes; logs ${num(o.logBytes)} bytes written.`)),
    (r.targets || []).length ? h('section', {}, h('h2', {}, 'Targets'),
      h('table', {}, h('tr', {}, ['scope', 'figure', 'target', 'now', 'before', '', 'trend'].map((t) => h('th', {}, t))),
        r.targets.map((t) => h('tr', {}, h('td', {}, t.scope), h('td', {}, t.figure),
          h('td', {}, t.figure === 'first-pass yield' ? pct(t.target) : duration(t.target)),
          h('td', {}, t.figure === 'first-pass yield' ? pct(t.current) : duration(t.current)),
          h('td', {}, t.figure === 'first-pass yield' ? pct(t.previous) : duration(t.previous)),
          h('td', {}, t.met ? 'met' : 'MISSED'), h('td', {}, t.trend))))) : null,
  ];
}

route();
