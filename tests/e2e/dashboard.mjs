// The dashboard's end-to-end test in a real headless browser (issue 7). `cargo test` runs it from
// tests/integration/dashboard_e2e.rs against a `fetchflow serve` it started on a temp project:
//   node tests/e2e/dashboard.mjs <base-url> <artifacts-dir>
// with the workflows and what to expect of them in FETCHFLOW_E2E_EXPECT (JSON, written by the Rust
// test). Needs Debian's chromium (/usr/bin/chromium, or FETCHFLOW_CHROMIUM) and `npm ci` in
// tests/e2e; `.ci/run` installs both. Screenshots of every step go to <artifacts-dir>.
//
// It runs a workflow from the Workflows page by keyboard only and watches its operation page
// update live to 100% and Succeeded; opens a failing run's "Failed records"; cancels a running
// one; checks labels, keyboard reach and phone width (375 px) on every page.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [baseArg, artifactsDir] = process.argv.slice(2);
if (!baseArg || !artifactsDir || !process.env.FETCHFLOW_E2E_EXPECT) {
  console.error(
    'usage: FETCHFLOW_E2E_EXPECT=<json> node tests/e2e/dashboard.mjs <base-url> <artifacts-dir>',
  );
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, '');
const expected = JSON.parse(process.env.FETCHFLOW_E2E_EXPECT);
const executablePath = process.env.FETCHFLOW_CHROMIUM || '/usr/bin/chromium';

// How long the page may take to show a change; the Rust test bounds the whole run.
const TIMEOUT_MS = 30_000;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 812 };
const DISPLAY_NAMES = {
  waiting: 'Waiting',
  in_progress: 'In Progress',
  canceling: 'Canceling',
  succeeded: 'Succeeded',
  failed: 'Failed',
  canceled: 'Canceled',
};
const FINAL = ['succeeded', 'failed', 'canceled'];

mkdirSync(artifactsDir, { recursive: true });
console.log(`screenshots: ${artifactsDir}`);

const started = Date.now();
let shots = 0;
let page;

function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

function fail(message) {
  throw new Error(message);
}

/** Polls `probe` until it returns a truthy value; fails with `message()` after `timeout`. */
async function until(probe, message, timeout = TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) fail(`${message(last)} (waited ${timeout / 1000} s)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function screenshot(name) {
  shots += 1;
  const file = join(artifactsDir, `${String(shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

/** Runs one named step; on failure saves a screenshot and the page's HTML, then rethrows. */
async function step(name, body) {
  console.log(`[${elapsed()}] ${name}`);
  try {
    return await body();
  } catch (error) {
    console.error(`FAILED: ${name}: ${error.message}`);
    if (page) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      const file = join(artifactsDir, `failure-${slug}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      const html = await page.content().catch((cause) => `(no content: ${cause.message})`);
      writeFileSync(join(artifactsDir, `failure-${slug}.html`), html);
      console.error(`  url: ${page.url()}`);
      console.error(`  screenshot: ${file}`);
      console.error(`  html (first 4000 characters):\n${html.slice(0, 4000)}`);
    }
    throw error;
  }
}

async function goto(path) {
  const response = await page.goto(base + path);
  if (!response || response.status() !== 200) {
    fail(`GET ${path} answered ${response ? response.status() : 'nothing'}`);
  }
}

function nav(name) {
  return page.getByRole('navigation').getByRole('link', { name, exact: true });
}

/** The section of the Workflows page whose h2 is the workflow's name. */
function workflowSection(name) {
  return page
    .locator('section')
    .filter({ has: page.getByRole('heading', { level: 2, name, exact: true }) });
}

function runNow(name) {
  return workflowSection(name).getByRole('button', { name: 'Run now', exact: true });
}

async function isFocused(locator) {
  return locator.evaluate((element) => element === document.activeElement);
}

/** The operation's id from the page's URL, after "Run now" redirected to it. */
async function operationId() {
  await page.waitForURL(/\/operations\/[^/?#]+$/, { timeout: TIMEOUT_MS });
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  console.log(`  operation ${id}`);
  return id;
}

/**
 * What the operation page shows now: status, its text, and the progress bar; null while a form
 * (Cancel) navigates and there is no document to ask.
 */
async function shown() {
  return page
    .evaluate(() => {
    const badge = document.querySelector('[data-status]');
    const bar = document.querySelector('progress[aria-label="Progress"]');
    return {
      status: badge ? badge.getAttribute('data-status') : null,
      text: badge ? badge.textContent.trim().replace(/\s+/g, ' ') : null,
      value: bar && bar.hasAttribute('value') ? Number(bar.value) : null,
      max: bar && bar.hasAttribute('max') ? Number(bar.max) : null,
    };
    })
    .catch(() => null);
}

function checkStatusText(state) {
  const name = DISPLAY_NAMES[state.status];
  if (!name) fail(`data-status="${state.status}" is not a store status`);
  if (!state.text.includes(name)) {
    fail(`data-status="${state.status}" shows "${state.text}", not "${name}"`);
  }
}

/** Waits, without reloading, until the operation page shows `status`; returns every state seen. */
async function watchUntil(status, timeout = TIMEOUT_MS) {
  const seen = [];
  const last = await until(
    async () => {
      const state = await shown();
      if (!state) return null;
      const previous = seen[seen.length - 1];
      if (!previous || JSON.stringify(previous) !== JSON.stringify(state)) {
        seen.push(state);
        if (state.status) checkStatusText(state);
      }
      if (state.status && FINAL.includes(state.status) && state.status !== status) {
        fail(`the operation ended ${state.status}, not ${status}`);
      }
      return state.status === status ? state : null;
    },
    () => `the page never showed ${status}; it showed ${JSON.stringify(seen)}`,
    timeout,
  );
  console.log(`  seen: ${seen.map((s) => `${s.status} ${s.value}/${s.max}`).join(' → ')}`);
  return { last, seen };
}

async function checkOperationPage() {
  await page.getByRole('heading', { level: 1, name: /Operation/ }).waitFor();
  await page.locator('[data-status]').first().waitFor();
  await page.getByRole('progressbar', { name: 'Progress', exact: true }).waitFor();
}

/** Every form control a person types into or picks from has an accessible name. */
async function checkLabels(where) {
  const unlabelled = await page.evaluate(() => {
    const named = (element) => {
      if (element.labels && [...element.labels].some((label) => label.textContent.trim())) {
        return true;
      }
      if ((element.getAttribute('aria-label') || '').trim()) return true;
      const ids = (element.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
      return ids.some((id) => (document.getElementById(id)?.textContent || '').trim());
    };
    return [...document.querySelectorAll('input, select, textarea')]
      .filter((element) => !['hidden', 'submit', 'button', 'reset', 'image'].includes(element.type))
      .filter((element) => !named(element))
      .map((element) => element.outerHTML);
  });
  if (unlabelled.length) fail(`${where}: controls without a label: ${unlabelled.join(' ')}`);
}

/** At phone width the page itself never scrolls sideways; only table containers may. */
async function checkNoOverflow(where) {
  const overflow = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const scrolls = (element) => {
      for (let node = element.parentElement; node; node = node.parentElement) {
        if (node === document.body || node === document.documentElement) return false;
        const style = getComputedStyle(node);
        if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX)) return true;
      }
      return false;
    };
    const offenders = [...document.body.querySelectorAll('*')]
      .filter((element) => {
        const box = element.getBoundingClientRect();
        return box.width > 0 && box.right > width + 1 && !scrolls(element);
      })
      .slice(0, 5)
      .map((element) => element.outerHTML.slice(0, 200));
    return {
      width,
      scrollWidth: document.documentElement.scrollWidth,
      offenders,
    };
  });
  if (overflow.scrollWidth > overflow.width || overflow.offenders.length) {
    fail(
      `${where}: the page is ${overflow.scrollWidth} px wide at ${overflow.width} px; ` +
        `outside any scroll container: ${overflow.offenders.join(' | ')}`,
    );
  }
}

/**
 * WCAG 2.1 contrast of every visible text: at least 4.5:1, or 3:1 for large text (24 px, or
 * 18.66 px bold). The background is the first opaque one up the tree (colours with alpha are
 * blended over it).
 */
async function checkContrast(where) {
  const problems = await page.evaluate(() => {
    const parse = (css) => {
      const m = css.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = '1'] = m[1].split(/[ ,/]+/).filter(Boolean);
      return [Number(r), Number(g), Number(b), Number(a)];
    };
    const luminance = ([r, g, b]) => {
      const channel = (v) => {
        const c = v / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const blend = (top, bottom) => {
      const a = top[3];
      return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
    };
    const background = (element) => {
      const layers = [];
      for (let node = element; node; node = node.parentElement) {
        const colour = parse(getComputedStyle(node).backgroundColor);
        if (colour && colour[3] > 0) {
          layers.push(colour);
          if (colour[3] >= 1) break;
        }
      }
      let result = [255, 255, 255, 1];
      for (const layer of layers.reverse()) result = blend(layer, result);
      return result;
    };
    const found = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
      if (!text.textContent.trim()) continue;
      const element = text.parentElement;
      const style = getComputedStyle(element);
      const box = element.getBoundingClientRect();
      if (style.visibility === 'hidden' || style.display === 'none' || box.width === 0) continue;
      if (element.closest('[hidden], .visually-hidden, .sr-only')) continue;
      const fg = parse(style.color);
      if (!fg) continue;
      const bg = background(element);
      const shown = blend(fg, bg);
      const [l1, l2] = [luminance(shown), luminance(bg)].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(style.fontSize);
      const bold = Number(style.fontWeight) >= 700;
      const large = size >= 24 || (bold && size >= 18.66);
      if (ratio < (large ? 3 : 4.5)) {
        found.push(`"${text.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}:1 (${style.color} on rgb(${bg.slice(0, 3).map(Math.round).join(', ')}))`);
      }
    }
    return found;
  });
  if (problems.length > 0) {
    fail(`${where}: text below the WCAG contrast minimum:\n  ${problems.slice(0, 10).join('\n  ')}`);
  }
}

async function checkPage(where) {
  await checkLabels(where);
  await checkContrast(where);
  const lang = await page.evaluate(() => document.documentElement.lang);
  if (lang !== 'en') fail(`${where}: <html lang="${lang}">, not "en"`);
  if (!(await page.title()).trim()) fail(`${where}: the page has no <title>`);
}

/** Opens the Workflows page through its nav link. */
async function openWorkflows() {
  await nav('Workflows').click();
  await page.waitForURL(`${base}/workflows`);
  const heading = { level: 2, name: expected.succeeding.name, exact: true };
  await page.getByRole('heading', heading).waitFor();
}

const profile = mkdtempSync(join(tmpdir(), 'fetchflow-e2e-chromium-'));
let context;
const ids = {};
let exitCode = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: DESKTOP,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  context.setDefaultTimeout(TIMEOUT_MS);
  page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (error) => console.error(`  page error: ${error.message}`));

  await step('operations list at /', async () => {
    await goto('/');
    await page.getByRole('table', { name: 'Operations' }).waitFor();
    for (const [name, path] of [
      ['Operations', '/'],
      ['Workflows', '/workflows'],
    ]) {
      const href = await nav(name).getAttribute('href');
      if (new URL(href, base + '/').pathname !== path) {
        fail(`the nav link "${name}" goes to ${href}, not ${path}`);
      }
    }
    await checkPage('/');
    await screenshot('operations-empty');
  });

  await step('workflows page', async () => {
    await openWorkflows();
    for (const workflow of [expected.succeeding, expected.failing, expected.slow]) {
      const section = workflowSection(workflow.name);
      if ((await section.count()) !== 1) fail(`no one section for workflow ${workflow.name}`);
      await section.getByRole('button', { name: 'Run now', exact: true }).waitFor();
    }
    await checkPage('/workflows');
    await screenshot('workflows');
  });

  const succeeding = expected.succeeding;
  const keyboardStep = `keyboard only: Tab to ${succeeding.name}'s "${succeeding.var}", "Run now"`;
  await step(keyboardStep, async () => {
    const section = workflowSection(succeeding.name);
    const input = section.getByLabel(succeeding.var, { exact: true });
    const button = section.getByRole('button', { name: 'Run now', exact: true });
    await page.evaluate(() => document.activeElement?.blur());
    const tabTo = async (target, what) => {
      for (let presses = 0; presses < 200; presses += 1) {
        await page.keyboard.press('Tab');
        if (await isFocused(target)) return;
      }
      fail(`200 presses of Tab never reached ${what}`);
    };
    await tabTo(input, `the "${succeeding.var}" input`);
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type(succeeding.value);
    await tabTo(button, `"Run now" of ${succeeding.name}`);
    await screenshot('run-now-focused');
    const [posted] = await Promise.all([
      page.waitForResponse((response) => response.request().method() === 'POST'),
      page.keyboard.press('Enter'),
    ]);
    const location = posted.headers()['location'] || '';
    if (posted.status() !== 303 || !/\/operations\/[^/?#]+$/.test(location)) {
      fail(
        `"Run now" answered ${posted.status()} to ${location || 'nowhere'}, ` +
          'not 303 to /operations/{id}',
      );
    }
    ids.succeeded = await operationId();
  });

  await step('the operation page updates live to 100% and Succeeded', async () => {
    await checkOperationPage();
    let navigations = 0;
    const counter = (frame) => {
      if (frame === page.mainFrame()) navigations += 1;
    };
    page.on('framenavigated', counter);
    const first = await until(shown, () => 'the operation page cannot be read');
    await screenshot('succeeding-first-sight');
    if (FINAL.includes(first.status)) {
      fail(
        `the operation was already ${first.status} when its page opened, so live updates are ` +
          'not shown; the succeeding workflow needs to be slower',
      );
    }
    const { last } = await watchUntil('succeeded');
    await until(
      async () => {
        const state = await shown();
        return state && state.value === succeeding.count && state.max === succeeding.count;
      },
      () =>
        `the progress bar did not reach ${succeeding.count} of ${succeeding.count}: ` +
        JSON.stringify(last),
    );
    page.off('framenavigated', counter);
    if (navigations) fail(`the page navigated ${navigations} time(s) instead of updating in place`);
    if (await page.getByRole('button', { name: 'Cancel', exact: true }).count()) {
      fail('a finished operation still offers "Cancel"');
    }
    await checkPage('operation page (succeeded)');
    await screenshot('succeeded');
  });

  const failing = expected.failing;
  await step(`run ${failing.name}: its failed records`, async () => {
    await openWorkflows();
    await runNow(failing.name).click();
    ids.failed = await operationId();
    await checkOperationPage();
    await watchUntil(failing.status);
    const table = page.getByRole('table', { name: 'Failed records' });
    await table.waitFor();
    await until(
      async () => {
        const text = await table.innerText();
        return failing.ids.every((id) => text.includes(id)) && text.includes(failing.code);
      },
      () => `"Failed records" does not list ${failing.ids.join(', ')} with ${failing.code}`,
    );
    const rows = await table.locator('tbody tr').count();
    if (rows !== failing.ids.length) {
      fail(`"Failed records" has ${rows} rows, not ${failing.ids.length}`);
    }
    await page.getByRole('button', { name: 'Retry failed', exact: true }).waitFor();
    const download = page.getByRole('link', { name: 'Download CSV', exact: true });
    const href = await download.getAttribute('href');
    const csv = await page.request.get(new URL(href, page.url()).href);
    if (csv.status() !== 200) fail(`Download CSV (${href}) answered ${csv.status()}`);
    const type = csv.headers()['content-type'] || '';
    if (!type.startsWith('text/csv')) fail(`Download CSV is ${type}, not text/csv`);
    const body = await csv.text();
    for (const id of failing.ids) {
      if (!body.includes(id)) fail(`the CSV does not list ${id}:\n${body.slice(0, 1000)}`);
    }
    await checkPage('operation page (failed)');
    await screenshot('failed-records');
  });

  const slow = expected.slow;
  await step(`run ${slow.name} and cancel it while it runs`, async () => {
    await openWorkflows();
    await runNow(slow.name).click();
    ids.canceled = await operationId();
    await checkOperationPage();
    await watchUntil('in_progress');
    await screenshot('slow-in-progress');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const { last } = await watchUntil('canceled');
    if (last.value !== null && last.max !== null && last.value >= last.max) {
      fail(`the run finished (${last.value} of ${last.max}) before the cancel took effect`);
    }
    if (await page.getByRole('button', { name: 'Cancel', exact: true }).count()) {
      fail('a canceled operation still offers "Cancel"');
    }
    await checkPage('operation page (canceled)');
    await screenshot('canceled');
  });

  await step('the operations list shows the three runs', async () => {
    await nav('Operations').click();
    await page.waitForURL(`${base}/`);
    const table = page.getByRole('table', { name: 'Operations' });
    await table.waitFor();
    const text = await table.innerText();
    for (const name of [succeeding.name, failing.name, slow.name]) {
      if (!text.includes(name)) fail(`the operations list does not show ${name}`);
    }
    for (const status of ['Succeeded', DISPLAY_NAMES[failing.status], 'Canceled']) {
      if (!text.includes(status)) fail(`the operations list shows no "${status}"`);
    }
    await checkPage('/ with operations');
    await screenshot('operations');
  });

  await step(`phone width (${PHONE.width}x${PHONE.height}): no sideways scrolling`, async () => {
    await page.setViewportSize(PHONE);
    const pages = [
      ['/', 'phone-operations'],
      ['/workflows', 'phone-workflows'],
      [`/operations/${ids.succeeded}`, 'phone-succeeded'],
      [`/operations/${ids.failed}`, 'phone-failed'],
      [`/operations/${ids.canceled}`, 'phone-canceled'],
    ];
    for (const [path, name] of pages) {
      await goto(path);
      await checkNoOverflow(path);
      await checkLabels(`${path} at phone width`);
      await screenshot(name);
    }
    await nav('Workflows').waitFor();
  });

  console.log(`E2E-OPERATIONS ${JSON.stringify(ids)}`);
  console.log(`passed in ${elapsed()}; ${shots} screenshots in ${artifactsDir}`);
} catch (error) {
  console.error(error.stack || String(error));
  exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
