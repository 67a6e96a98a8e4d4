// test_ui.js - the status page end to end: real mcached, mcache-serve and
// mcache CLI on a private store, cache and shm dir; the page in headless
// Chromium (driven by playwright-core). Run by run_ui_test.sh (ctest
// serve_ui), which installs playwright-core and sets:
//   MCACHE_BIN, MCACHED_BIN, MCACHE_SERVE_BIN, MCACHE_LIB   the binaries
//   MCACHE_CHROMIUM      the browser (/usr/bin/chromium)
//   MCACHE_UI_SHOT       where to write the screenshot (docs/img/status-page.png's source)
//   MCACHE_PY_PRELOAD    a sanitizer runtime for the python3 reader ("none": no reader)
//
// What it checks: the page shows a pushed model with its aliases, weights,
// residency, the arena bar, a reader and the recent moves; an alias moved
// with the CLI shows within the refresh interval; mcached stopped is said
// plainly while the models stay; the server gone raises the error banner;
// with --require-tokens the page asks for a token and then shows the status.
// Every wait is for a state of the page or a process, bounded; no sleeps.
"use strict";

const assert = require("assert");
const child = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");
const http = require("http");
const { chromium } = require("playwright-core");

const BIN = {
  mcache: process.env.MCACHE_BIN,
  mcached: process.env.MCACHED_BIN,
  serve: process.env.MCACHE_SERVE_BIN,
  lib: process.env.MCACHE_LIB,
};
const CHROMIUM = process.env.MCACHE_CHROMIUM || "/usr/bin/chromium";
const SHOT = process.env.MCACHE_UI_SHOT;
const CACHE = "ui";
const REFRESH_S = 2; // the page's default: the test uses it as is
const PRELOAD = process.env.MCACHE_PY_PRELOAD;

for (const [k, v] of Object.entries(BIN))
  if (!v || !fs.existsSync(v)) {
    console.error(`test_ui: ${k} binary not found (${v}); run through ctest (serve_ui)`);
    process.exit(1);
  }

const root = fs.mkdtempSync(path.join(os.tmpdir(), "mcui."));
const shm = fs.mkdtempSync(path.join("/dev/shm", "mcui."));
const store = path.join(root, "store");
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MCACHE_")));
Object.assign(env, { MCACHE_STORE: store, MCACHE_SHM_DIR: shm, MCACHE_CACHE: CACHE, TZ: "UTC", LC_ALL: "C" });

const procs = new Set(); // everything started here, stopped by pid at the end

function log(...a) {
  console.log("test_ui:", ...a);
}

// ---- processes ----------------------------------------------------------

function cli(...args) {
  const r = child.spawnSync(BIN.mcache, args, { env, encoding: "utf8", timeout: 60000 });
  if (r.status !== 0)
    throw new Error(`mcache ${args.join(" ")} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function start(name, bin, args, opts = {}) {
  const logPath = path.join(root, name + ".log");
  const out = fs.openSync(logPath, "w");
  const p = child.spawn(bin, args, { env: opts.env || env, stdio: [opts.stdin || "ignore", out, out] });
  fs.closeSync(out);
  p.logPath = logPath;
  p.exited = new Promise((res) => p.on("exit", (code, sig) => res(code === null ? sig : code)));
  procs.add(p);
  p.exited.then(() => procs.delete(p));
  return p;
}

async function stop(p) {
  if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
  const killer = setTimeout(() => p.kill("SIGKILL"), 10000);
  await p.exited;
  clearTimeout(killer);
}

// A sanitizer build reports into the process's log: a report there fails the test.
function assertClean(p) {
  const text = fs.readFileSync(p.logPath, "utf8");
  assert.ok(!/ERROR: (Address|Leak|Thread)Sanitizer|runtime error:/.test(text),
            `${path.basename(p.logPath)} has a sanitizer report:\n${text}`);
}

function tail(p) {
  try {
    return fs.readFileSync(p.logPath, "utf8").split("\n").slice(-30).join("\n");
  } catch (e) {
    return "(no log)";
  }
}

// Poll cond() (async, truthy = done) until it holds or ms have passed.
async function until(what, ms, cond) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = s.address().port;
      s.close(() => res(port));
    });
  });
}

function get(url, headers = {}) {
  return new Promise((res, rej) => {
    const rq = http.get(url, { headers }, (r) => {
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (d) => (body += d));
      r.on("end", () => res({ status: r.statusCode, headers: r.headers, body }));
    });
    rq.on("error", rej);
    rq.setTimeout(5000, () => rq.destroy(new Error("no answer in 5 s")));
  });
}

async function startDaemon() {
  const sock = path.join(shm, `mcache.${CACHE}.sock`);
  const p = start("mcached", BIN.mcached, ["--store", store, "--shm-dir", shm, "--cache", CACHE,
                                           "--size", "64M"]);
  await until("mcached's socket", 15000, async () => {
    if (p.exitCode !== null) throw new Error("mcached exited:\n" + tail(p));
    return new Promise((res) => {
      const c = net.connect(sock, () => { c.destroy(); res(true); });
      c.on("error", () => res(false));
    });
  });
  return p;
}

async function startServe(extra = []) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p = start("mcache-serve", BIN.serve, ["--listen", `127.0.0.1:${port}`, "--store", store,
                                              "--cache", CACHE, "--shm-dir", shm, ...extra]);
  await until("mcache-serve's /healthz", 15000, async () => {
    if (p.exitCode !== null) throw new Error("mcache-serve exited:\n" + tail(p));
    return (await get(url + "/healthz")).status === 200;
  });
  p.url = url;
  return p;
}

// A worker holding name@version through libmcache (a reader the page lists).
function startHolder(name, version) {
  const code = `
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
c = ctypes.c_void_p(); m = ctypes.c_void_p()
rc = lib.mc_attach_dir(sys.argv[2].encode(), sys.argv[3].encode(), ctypes.byref(c))
if rc == 0:
    rc = lib.mc_get(c, sys.argv[4].encode(), sys.argv[5].encode(), ctypes.byref(m))
print("held", rc, flush=True)
sys.stdin.read()
`;
  const penv = { ...env };
  if (PRELOAD) penv.LD_PRELOAD = PRELOAD;
  return start("holder", "/usr/bin/python3", ["-c", code, BIN.lib, shm, CACHE, name, version],
               { stdin: "pipe", env: penv });
}

function writeFile(name, size, seed) {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  const p = path.join(root, name);
  fs.writeFileSync(p, b);
  return p;
}

// ---- the page -------------------------------------------------------------

// Text of a selector, or null while it is absent.
async function textOf(page, sel) {
  const h = await page.$(sel);
  return h ? (await h.textContent()).trim() : null;
}

// Does this mcache-serve take --require-tokens? (A build without the registry's tokens says so.)
async function tokensSupported() {
  const r = child.spawnSync(BIN.serve, ["--require-tokens", "--listen", "127.0.0.1:1", "--store", store,
                                        "--cache", CACHE, "--shm-dir", shm],
                            { env, encoding: "utf8", timeout: 10000 });
  return !/needs token support, which this build lacks/.test(r.stderr);
}

async function tokenForm(ctx) {
  const tokenOut = cli("token", "add", "--role", "reader", "ui-page");
  const tok = (tokenOut.match(/mct_[A-Za-z0-9_-]+/) || [])[0];
  assert.ok(tok, "no token in: " + tokenOut);
  const serve = await startServe(["--require-tokens"]);
  assert.strictEqual((await get(serve.url + "/v1/status")).status, 401);
  assert.strictEqual((await get(serve.url + "/")).status, 200); // the page itself is open
  const page = await ctx.newPage();
  await page.goto(serve.url + "/");
  await page.waitForSelector("#token-form:not([hidden])", { timeout: 10000 });
  assert.ok(!(await page.isVisible("#main")));
  await page.fill("#token-input", "mct_wrong");
  await page.click("#token-form button");
  await page.waitForFunction(() => /refused/.test(document.getElementById("token-why").textContent),
                             null, { timeout: 10000 });
  await page.fill("#token-input", tok);
  await page.click("#token-form button");
  await page.waitForSelector('[data-model="resnet50"]', { timeout: 10000 });
  assert.strictEqual(await page.evaluate(() => sessionStorage.getItem("mcache.token")), tok);
  assert.ok(await page.isVisible("#token-forget"));
  log("the token form works");
  await stop(serve);
  assertClean(serve);
}

async function main() {
  // A registry worth looking at: two models, a weighted alias, a resident version.
  cli("push", "resnet50", "1.0.0", writeFile("r1.bin", 3 << 20, 1));
  cli("push", "resnet50", "1.1.0", writeFile("r2.bin", 3 << 20, 2));
  cli("push", "resnet50", "1.2.0-beta.1", writeFile("r3.bin", 3 << 20, 5)); // stays on disk
  cli("push", "org/llama-7b", "2.0.0", writeFile("l2.bin", 5 << 20, 3));
  cli("push", "org/llama-7b", "2.1.0-rc.1", writeFile("l3.bin", 5 << 20, 4));
  const daemon = await startDaemon();
  cli("alias", "resnet50", "production", "1.0.0", "--why", "first release");
  cli("alias", "org/llama-7b", "production", "2.0.0=90", "2.1.0-rc.1=10", "--why", "canary");
  cli("load", "resnet50@1.1.0");
  // (Under TSan, whose runtime cannot be preloaded into python3, there is no reader.)
  const holder = PRELOAD === "none" ? null : startHolder("resnet50", "1.0.0");
  if (holder)
    await until("the holder to hold resnet50@1.0.0", 15000, async () => {
      if (holder.exitCode !== null) throw new Error("holder exited:\n" + tail(holder));
      return fs.readFileSync(holder.logPath, "utf8").includes("held 0");
    });

  let serve = await startServe();
  log("mcache-serve at", serve.url);

  // The page's files: types, caching, the policy that keeps it to its own script.
  const page0 = await get(serve.url + "/");
  assert.strictEqual(page0.status, 200);
  assert.match(page0.headers["content-type"], /^text\/html/);
  assert.match(page0.headers["content-security-policy"], /script-src 'self'/);
  assert.ok(page0.headers.etag);
  const js = await get(serve.url + "/ui/app.js");
  assert.strictEqual(js.status, 200);
  assert.match(js.headers["content-type"], /^text\/javascript/);
  assert.strictEqual(js.headers["cache-control"], "no-cache");
  assert.strictEqual((await get(serve.url + "/ui/app.js", { "If-None-Match": js.headers.etag })).status, 304);
  const css = await get(serve.url + "/ui/style.css");
  assert.strictEqual(css.status, 200);
  assert.match(css.headers["content-type"], /^text\/css/);

  // /v1/status itself, as the page will read it.
  const st = JSON.parse((await get(serve.url + "/v1/status")).body);
  assert.strictEqual(st.mcached.up, true, JSON.stringify(st.mcached));
  const llama = st.models.find((m) => m.name === "org/llama-7b");
  assert.deepStrictEqual(llama.aliases.production,
                         [{ version: "2.0.0", weight: 90 }, { version: "2.1.0-rc.1", weight: 10 }]);
  const r110 = st.models.find((m) => m.name === "resnet50").versions.find((v) => v.version === "1.1.0");
  assert.strictEqual(r110.residency, "resident");
  const r120 = st.models.find((m) => m.name === "resnet50").versions.find((v) => v.version === "1.2.0-beta.1");
  assert.strictEqual(r120.residency, "not-resident");
  assert.ok(st.arena.data_size > 0 && st.arena.data_used > 0, JSON.stringify(st.arena));
  if (holder)
    assert.ok(st.readers.list.some((r) => r.pid === holder.pid && r.holds.includes("resnet50@1.0.0")),
              JSON.stringify(st.readers));
  assert.ok(!st.readers.list.some((r) => r.pid === serve.pid), "the server lists itself as a reader");
  assert.strictEqual(st.moves[0].model, "org/llama-7b");
  assert.strictEqual(st.moves[0].to, "2.0.0=90 2.1.0-rc.1=10");

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const problems = [];
    let expectNetErrors = false;
    page.on("pageerror", (e) => problems.push("page error: " + e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && !expectNetErrors) problems.push("console: " + m.text());
    });

    await page.goto(serve.url + "/");
    await page.waitForSelector('[data-model="resnet50"] [data-alias="production"]', { timeout: 10000 });
    assert.strictEqual(await textOf(page, '[data-model="resnet50"] [data-alias="production"] .alias-target'), "1.0.0");
    assert.strictEqual(await textOf(page, '[data-model="org/llama-7b"] [data-alias="production"] .alias-target'),
                       "2.0.0 90% · 2.1.0-rc.1 10%");
    assert.strictEqual(await textOf(page, '[data-model="resnet50"] tr[data-version="1.1.0"] .res'), "resident");
    assert.strictEqual(await textOf(page, '[data-model="resnet50"] tr[data-version="1.2.0-beta.1"] .res'), "on disk");
    assert.strictEqual(await textOf(page, "#mcached-pill"), "mcached up");
    assert.match(await textOf(page, "#arena-text"), /used of .* largest free extent .* resident/);
    if (holder) assert.ok(await page.$(`#readers tr[data-pid="${holder.pid}"]`), "the holder is not listed");
    assert.match(await textOf(page, "#updated"), /^updated /);
    log("the page shows the models");

    // An alias move by the CLI shows within the refresh interval (and a little for the fetch).
    const before = await textOf(page, "#moves tbody tr:first-child");
    const moved = Date.now();
    cli("alias", "resnet50", "production", "1.1.0", "--why", "better top-1");
    // One refresh interval, plus the CLI's own time and 2 s for a poll's fetch and drawing on a loaded machine.
    const bound = REFRESH_S * 1000 + 2000 + (Date.now() - moved);
    await page.waitForFunction(() => {
      const t = document.querySelector('[data-model="resnet50"] [data-alias="production"] .alias-target');
      return t && t.textContent === "1.1.0";
    }, null, { timeout: bound });
    log(`the move showed after ${Date.now() - moved} ms (bound ${bound} ms)`);
    const first = await textOf(page, "#moves tbody tr:first-child");
    assert.notStrictEqual(first, before);
    assert.match(first, /resnet50\s*production\s*move\s*1\.0\.0\s*1\.1\.0/);
    assert.match(first, /better top-1/);
    assert.strictEqual(await textOf(page, '[data-model="resnet50"] tr[data-version="1.1.0"] td:nth-child(2)'), "production");

    if (SHOT) {
      fs.mkdirSync(path.dirname(SHOT), { recursive: true });
      await page.screenshot({ path: SHOT, fullPage: true });
      log("screenshot:", SHOT);
    }

    // mcached down: said plainly, the registry still shown, residency from the arena.
    if (holder) {
      holder.stdin.end();
      await stop(holder);
    }
    await stop(daemon);
    assertClean(daemon);
    await page.waitForFunction(() => document.getElementById("mcached-pill").textContent === "mcached DOWN",
                               null, { timeout: REFRESH_S * 1000 + 3000 });
    assert.ok(await page.isVisible("#mcached-banner"));
    assert.match(await textOf(page, "#mcached-banner"), /^mcached is down\. .*mcache\.ui\.sock/);
    assert.ok(await page.$('[data-model="resnet50"]'));
    assert.match(await textOf(page, "#loads"), /unknown while mcached is down/);
    log("mcached down is shown");

    // The server gone: the error banner, the last data kept.
    expectNetErrors = true;
    await stop(serve);
    assertClean(serve);
    await page.waitForSelector("#error-banner:not([hidden])", { timeout: REFRESH_S * 1000 + 12000 });
    assert.match(await textOf(page, "#error-banner"), /Cannot reach mcache-serve/);
    assert.ok(await page.$('[data-model="resnet50"]'));
    log("the server gone is shown");

    // Tokens required: the page asks for one, keeps it for the tab and sends it.
    if (await tokensSupported()) await tokenForm(ctx);
    else log("SKIPPED the token form: this mcache-serve was built without token support");

    assert.deepStrictEqual(problems, []);
  } finally {
    await browser.close();
  }
}

async function cleanup() {
  for (const p of [...procs]) await stop(p);
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(shm, { recursive: true, force: true });
}

main().then(
  async () => {
    await cleanup();
    log("ok");
  },
  async (e) => {
    console.error("test_ui: FAILED:", e && e.stack ? e.stack : e);
    for (const p of procs) console.error(`--- ${path.basename(p.logPath)}:\n${tail(p)}`);
    await cleanup();
    process.exit(1);
  });
