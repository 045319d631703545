// refused.js opens the chat demo page of a wsgate that checks tokens,
// without a token, and waits for the page to say why it is not connected:
// the server's in-band refusal (4401 and its reason), with no retry.
// Usage: node refused.js http://host:port
"use strict";
const launch = require("./launch");

(async () => {
  const [url] = process.argv.slice(2);
  if (!url) {
    console.error("usage: node refused.js http://host:port");
    process.exit(2);
  }
  const browser = await launch();
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(15000);
    await page.goto(url);
    await page.fill("#name", "mallory");
    await page.fill("#room", "playwright");
    await page.click("#joinBtn");
    await page.waitForFunction(() => /reload to try again/.test(document.getElementById("status").textContent));
    const status = await page.textContent("#status");
    if (!/\(4401\)/.test(status) || !/token/.test(status)) throw new Error(`status says "${status}", want the 4401 refusal`);
    console.log("ok: " + status);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
