// The dashboard over https:// and wss:// in Debian's headless Chromium,
// served by `tickcastd --tls-self-signed`, trusted the way its log says:
// Chromium's --ignore-certificate-errors-spki-list with the printed hash
// (only that key is accepted; any other certificate error still fails).
// Usage: node wss.mjs <https-base-url> <spki-sha256-base64>
import { chromium } from "playwright-core";

const [base, spki] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--ignore-certificate-errors-spki-list=" + spki],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "live", null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll("#rows tr").length >= 10, null, { timeout: 10000 });
  const scheme = await page.evaluate(() => location.protocol);
  if (scheme !== "https:") throw new Error("not over https: " + scheme);
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log("live over wss");
} finally {
  await browser.close();
}
