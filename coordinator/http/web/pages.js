// The dashboard's larger pages: a job with its output (StepLog), and the factory's value
// stream. Loaded before app.js, whose helpers (h, api, post, ...) they call when drawn.
'use strict';

// The most of one step's output the page keeps; older lines are dropped (and can be paged in).
const LOG_KEEP_BYTES = 2 << 20;
const LOG_PAGE_BYTES = 64 << 10;

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
        `labels ${labelText(j.spec && j.spec.labels)} - submitted ${ago(j.submittedMs)}`,
        j.submittedBy ? ` by ${j.submittedBy}` : '', j.reason ? ` - ${j.reason}` : ''),
      h('p', {}, can('submit') && open ? action('Cancel', `/api/jobs/${j.id}/cancel`, draw, true) : null, ' ',
        can('submit') && !open ? action('Retry', `/api/jobs/${j.id}/retry`, draw) : null));
    const attempts = j.attempts || [];
    const last = attempts[attempts.length - 1];
    if (last && last.number !== drawnAttempt) {
      drawnAttempt = last.number;
      body.replaceChildren(attemptTable(attempts), artifactList(j), h('h2', {}, `Output of attempt ${last.number}`),
        ...(j.spec.steps || []).map((s, i) => stepView(j, last, i, logs)));
    } else if (last) {
      // The attempts' outcomes change as they end; the steps (and their output) stay.
      body.querySelector('.attempts').replaceWith(attemptTable(attempts));
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
  return h('section', { class: 'attempts' }, h('table', {},
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
    root.replaceChildren(h('h1', {}, 'The factory, last 24 hours'), ...factoryView(r).flat(Infinity).filter(Boolean));
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
      // Along the line: a stage that waits longer for the jobs it needs comes later.
      valueStream(stages.slice().sort((a, b) => num(a.blocked && a.blocked.meanMs) - num(b.blocked && b.blocked.meanMs) ||
        (a.stage < b.stage ? -1 : 1))))),
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

