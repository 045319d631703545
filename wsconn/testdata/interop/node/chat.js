// chat.js drives the chat demo page in headless Chromium: two pages join a
// room, see each other (the server's presence), and exchange messages; a
// third page joins later and is shown the room's last messages (history);
// a screenshot is saved. Then it prints "RESTART NOW" and waits for the
// pages to lose the server and reconnect by themselves (the test restarts
// the server on the same address, with file storage), checks that they
// recovered (recovered:true, no line lost or doubled), and talk again.
// Usage: node chat.js http://host:port screenshot.png
"use strict";
const launch = require("./launch");

(async () => {
  const [url, shot] = process.argv.slice(2);
  if (!url || !shot) {
    console.error("usage: node chat.js http://host:port screenshot.png");
    process.exit(2);
  }
  // Each step is logged before it starts, so that a failure says where it
  // was even if its message is lost.
  const step = (what) => console.log("step:", what);
  step("launch Chromium");
  const browser = await launch();
  try {
    const join = async (name) => {
      step(`${name} joins`);
      const page = await (await browser.newContext()).newPage();
      page.setDefaultTimeout(15000);
      await page.goto(url);
      await page.fill("#name", name);
      await page.fill("#room", "playwright");
      await page.click("#joinBtn");
      await page.waitForSelector("#status.up");
      return page;
    };
    const alice = await join("alice");
    const bob = await join("bob");
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => document.getElementById("count").textContent === "2");
    }
    const say = async (page, text) => {
      await page.fill("#text", text);
      await page.press("#text", "Enter");
    };
    const heard = (page, line) =>
      page.waitForFunction((l) => document.getElementById("log").innerText.includes(l), line);
    step("alice and bob talk");
    await say(alice, "hello bob");
    await heard(bob, "alice: hello bob");
    await say(bob, "hi alice, over wsgate");
    await heard(alice, "bob: hi alice, over wsgate");
    const carol = await join("carol");
    await heard(carol, "alice: hello bob"); // from the history, on join
    await heard(carol, "bob: hi alice, over wsgate");
    for (const page of [alice, bob, carol]) {
      await page.waitForFunction(() => document.getElementById("count").textContent === "3");
    }
    await heard(alice, "carol joined");
    await alice.screenshot({ path: shot, fullPage: true });
    console.log("ok: pages joined, counted by presence, exchanged messages, history on join; screenshot", shot);
    const once = async (page, line) => {
      const n = await page.evaluate((l) => document.getElementById("log").innerText.split(l).length - 1, line);
      if (n !== 1) throw new Error(`"${line}" shown ${n} times, want once`);
    };

    console.log("RESTART NOW");
    step("the pages see the server go");
    for (const page of [alice, bob, carol]) {
      await page.waitForSelector("#status.down", { timeout: 20000 });
    }
    step("the pages reconnect and recover");
    for (const page of [alice, bob, carol]) {
      await page.waitForSelector("#status.up", { timeout: 30000 });
      await page.waitForFunction(() => document.body.dataset.recovered === "true", null, { timeout: 30000 });
      await once(page, "alice: hello bob");
    }
    // Alice's subscription may be a moment behind Bob's publish: say it
    // again until she hears it (each try is a new line).
    for (let i = 1; ; i++) {
      await say(bob, `back after the restart (${i})`);
      try {
        await alice.waitForFunction(() => document.getElementById("log").innerText.includes("bob: back after the restart"),
          null, { timeout: 1000 });
        break;
      } catch (e) {
        if (i === 10) throw new Error("alice never heard bob after the restart");
      }
    }
    await once(alice, "bob: back after the restart (1)");
    console.log("ok: the pages reconnected by themselves, recovered with no line lost or doubled, and talk again");
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error("FAIL", e.stack || e.message);
  process.exitCode = 1; // and let the output drain before exiting
});
