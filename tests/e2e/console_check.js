// console_check.js: drives the web console in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core): saves the token, creates an
// instance, imports a folder, waits for the progress bar to finish, searches
// with an uploaded image and expects the right first result. Prints "OK" and
// exits 0, or prints the failure and exits 1. Saves a screenshot either way.
// usage: node console_check.js CONFIG_JSON
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const cfg = JSON.parse(process.argv[2]);

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "imgsearch-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: cfg.chromium || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1200, height: 1000 },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  const logs = [];
  page.on("console", (m) => logs.push(m.type() + ": " + m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  let ok = false;
  try {
    await page.goto(cfg.base + "/console/");
    await page.fill("#project", cfg.project);
    await page.fill("#token", cfg.token);
    await page.click("#auth button[type=submit]");
    await page.waitForSelector("#auth-state:has-text('saved')");

    // Instances: create one with a tag key; it shows up in the table.
    await page.fill("#new-name", cfg.instance);
    await page.fill("#new-tags", "color");
    await page.click("#create-instance button");
    await page.waitForSelector(`tr[data-name="${cfg.instance}"]`);
    const views = await page.textContent(`tr[data-name="${cfg.instance}"] td.views`);
    if (views !== "on") throw new Error("views cell: " + views);

    // Imports: start one; watch the bar reach 100% and the job succeed.
    await page.selectOption("#import-instance", cfg.instance);
    await page.fill("#import-source", cfg.source);
    await page.click("#start-import button");
    await page.waitForSelector(".job .bar");
    await page.waitForSelector('.job[data-status="SUCCEEDED"]', { timeout: 120000 });
    const width = await page.$eval('.job[data-status="SUCCEEDED"] .bar > div', (d) => d.style.width);
    if (width !== "100%") throw new Error("progress bar at " + width);
    const info = await page.textContent('.job[data-status="SUCCEEDED"] .info');
    if (!info.includes(`${cfg.expect_done}/${cfg.expect_done}`)) throw new Error("job info: " + info);
    await page.waitForFunction(
      ([n, c]) => document.querySelector(`tr[data-name="${n}"] .count`).textContent === String(c),
      [cfg.instance, cfg.expect_done]);

    // Search: upload an image; the first result is the expected item,
    // with its thumbnail loaded through the token-authenticated fetch.
    await page.selectOption("#search-instance", cfg.instance);
    await page.setInputFiles("#search-file", cfg.query);
    await page.click("#search-form button");
    await page.waitForSelector(".result .id");
    const first = await page.textContent(".result .id");
    const score = parseFloat(await page.textContent(".result .score"));
    if (first !== cfg.expect_first) throw new Error(`first result ${first}, want ${cfg.expect_first}`);
    if (!(score > 0.95)) throw new Error("score " + score);
    await page.waitForFunction(() => {
      const img = document.querySelector(".result img");
      return img && img.src.startsWith("blob:") && img.complete && img.naturalWidth > 0;
    });
    const msg = await page.textContent("#message");
    if (msg.trim()) throw new Error("console message: " + msg);
    ok = true;
  } catch (e) {
    console.log("FAIL: " + e.message);
    console.log(logs.join("\n"));
  } finally {
    await page.screenshot({ path: cfg.screenshot, fullPage: true }).catch(() => {});
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (ok) console.log("OK");
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.log("FAIL: " + e.stack); process.exit(1); });
