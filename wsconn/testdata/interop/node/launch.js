// launch.js starts the headless Chromium the browser tests share: Debian's
// (or $CHROMIUM), through playwright-core, with background services off;
// extra flags are appended.
"use strict";
const { chromium } = require("playwright-core");

module.exports = (...extra) =>
  chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", ...extra],
  });
