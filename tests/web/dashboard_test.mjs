// The web dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core.
// Run by tests/integration/web_test.cc, which starts a coordinator with TLS and an agent,
// submits the work this script looks at and passes it in the environment:
//   FARM_WEB_URL          https://127.0.0.1:PORT
//   FARM_WEB_CERT         the coordinator's certificate (its key is pinned: no other is trusted)
//   FARM_WEB_VIEWER, FARM_WEB_SUBMITTER   tokens of those roles
//   FARM_WEB_PIPELINE     a pipeline: "quick" ends in a few seconds, "long" prints a line every
//                         0.2 s for a minute (it is the job to cancel), "after" needs "quick"
//   FARM_WEB_LONG_JOB     the id of "long"; FARM_WEB_BIG_JOB: a finished job with 100 MB of output
//   FARM_WEB_SHOTS        where the screenshots go
// Each check prints "ok - ..." or throws; exit 0 when all passed.
import { chromium } from 'playwright-core';
import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync, mkdirSync } from 'node:fs';

const env = process.env;
const url = env.FARM_WEB_URL;
const shots = env.FARM_WEB_SHOTS;
mkdirSync(shots, { recursive: true });
const spki = createHash('sha256')
  .update(new X509Certificate(readFileSync(env.FARM_WEB_CERT)).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');

function ok(what) { console.log(`ok - ${what}`); }
function check(cond, what) {
  if (!cond) throw new Error(`FAILED - ${what}`);
  ok(what);
}

const browser = await chromium.launch({
  executablePath: env.FARM_CHROMIUM || '/usr/bin/chromium',
  // As root Chromium runs only without its sandbox; the pages are the test's own, on loopback.
  args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${spki}`],
});

const pages = [];

async function signedIn(token, who) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  // What the page itself says goes into the test's output, for when a check fails.
  page.on('console', (m) => console.log(`  [${who} console] ${m.text()}`));
  page.on('pageerror', (e) => console.log(`  [${who} page error] ${e.message}`));
  page.on('requestfailed', (r) => console.log(`  [${who} request failed] ${r.url()}: ${r.failure().errorText}`));
  pages.push(page);
  await page.goto(`${url}/`);
  await page.locator('form.login input[name=token]').fill(token);
  await page.locator('form.login button[type=submit]').click();
  await page.locator('#who', { hasText: who }).waitFor();
  ok(`${who} signed in with a token`);
  return { context, page };
}

try {
  // The viewer: the floor, a running job's live output, the DAG updating, no cancel.
  const viewer = await signedIn(env.FARM_WEB_VIEWER, 'val (viewer)');
  const v = viewer.page;
  await v.locator('h2', { hasText: 'Queues by label pool' }).waitFor();
  await v.locator('td', { hasText: 'a1' }).first().waitFor();
  ok('the floor lists the agent');
  await v.screenshot({ path: `${shots}/floor.png`, fullPage: true });

  await v.goto(`${url}/jobs/${env.FARM_WEB_LONG_JOB}`);
  await v.locator('h1 .state.RUNNING').waitFor();
  await v.locator('pre.log', { hasText: 'line 5' }).waitFor();
  check(await v.locator('h1 .state.RUNNING').count() === 1, 'the job page shows log lines while the job runs');
  const seen = (await v.locator('pre.log').textContent()).match(/line \d+/g).length;
  await v.locator('pre.log', { hasText: `line ${seen + 3}` }).waitFor();
  ok('new lines arrive without a reload');
  check(await v.locator('button', { hasText: 'Cancel' }).count() === 0, 'a viewer sees no Cancel button');
  check((await v.locator('main p.muted').first().textContent()).includes('by admin'), 'the job says who submitted it');
  const refused = await v.evaluate(async (id) => {
    const me = await (await fetch('/api/whoami')).json();
    const r = await fetch(`/api/jobs/${id}/cancel`, { method: 'POST', headers: { 'X-Farm-CSRF': me.csrf } });
    return r.status;
  }, env.FARM_WEB_LONG_JOB);
  check(refused === 403, `the server refuses a viewer's cancel (HTTP ${refused})`);
  await v.screenshot({ path: `${shots}/job.png`, fullPage: true });

  await v.goto(`${url}/pipelines/${env.FARM_WEB_PIPELINE}`);
  const node = (name) => v.locator(`svg a.node[data-job="${name}"]`);
  await node('long').waitFor();
  check(await node('long').getAttribute('data-state') === 'RUNNING', 'the DAG shows the running job');
  await v.locator('svg a.node[data-job="quick"][data-state="SUCCEEDED"]').waitFor();
  await v.locator('svg a.node[data-job="after"][data-state="SUCCEEDED"]').waitFor({ timeout: 30000 });
  ok('the DAG updates as jobs end, without a reload');
  check(await v.locator('button', { hasText: 'Cancel' }).count() === 0, 'no Cancel on the pipeline for a viewer');
  await v.screenshot({ path: `${shots}/pipeline.png`, fullPage: true });

  // 100 MB of output: the tail first, and the page holds a few MB at most.
  await v.goto(`${url}/jobs/${env.FARM_WEB_BIG_JOB}`);
  const log = v.locator('pre.log');
  await log.locator('a.more').waitFor();
  const held = async () => v.evaluate(() => document.querySelector('pre.log').textContent.length);
  const first = await held();
  check(first > 0 && first < 4 << 20, `a 100 MB log opens at its tail, ${first} characters held`);
  check((await log.textContent()).includes('the end of the output'), 'the tail is the last of the output');
  for (let i = 0; i < 3; i++) {
    await log.locator('a.more').click();
    await v.waitForFunction((n) => document.querySelector('pre.log').textContent.length > n, first);
  }
  const after = await held();
  check(after < 4 << 20, `after paging back three times the page holds ${after} characters`);
  await v.screenshot({ path: `${shots}/log.png` });

  // The lists: a row per job (and pipeline), each linking to its page.
  await v.goto(`${url}/jobs`);
  await v.locator(`table a[href="/jobs/${env.FARM_WEB_LONG_JOB}"]`).waitFor();
  check(!(await v.locator('main').textContent()).includes('[object'), 'the jobs list shows its rows');
  await v.goto(`${url}/pipelines`);
  await v.locator(`table a[href="/pipelines/${env.FARM_WEB_PIPELINE}"]`).waitFor();
  check(!(await v.locator('main').textContent()).match(/\[object|null/), 'the pipelines list shows its rows');

  await v.goto(`${url}/factory`);
  await v.locator('h2', { hasText: 'The farm' }).waitFor();
  await v.locator('svg.vsm text', { hasText: 'quick' }).waitFor();
  check(!(await v.locator('main').textContent()).includes('[object'), 'the factory page draws the pipeline\'s stages');
  await v.screenshot({ path: `${shots}/factory.png`, fullPage: true });
  await v.goto(`${url}/agents`);
  await v.locator('td', { hasText: 'a1' }).waitFor();
  await v.screenshot({ path: `${shots}/agents.png`, fullPage: true });

  // The submitter cancels the running job from its page.
  const submitter = await signedIn(env.FARM_WEB_SUBMITTER, 'sam (submitter)');
  const s = submitter.page;
  await s.goto(`${url}/jobs/${env.FARM_WEB_LONG_JOB}`);
  await s.locator('h1 .state.RUNNING').waitFor();
  await s.locator('button', { hasText: 'Cancel' }).click();
  await s.locator('h1 .state.CANCELLED').waitFor();
  await s.locator('.attempts .state.ATTEMPT_CANCELLED').waitFor();
  ok('a submitter cancels a running job from its page, and its attempt shows it');
  await s.screenshot({ path: `${shots}/cancelled.png`, fullPage: true });
} catch (e) {
  // The page as it was when the check failed.
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: `${shots}/failed-${i}.png`, fullPage: true }).catch(() => {});
  }
  throw e;
} finally {
  await browser.close();
}
console.log('all passed');
