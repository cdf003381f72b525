/**
 * The web console in a real browser (Debian's chromium, driven by playwright-core)
 * against real processes on loopback: `kiln manager` (serving the built console),
 * `kiln scheduler` and a seed peer, and a test origin. Every page (every route of
 * console/src/app.tsx, and the states worth seeing) is screenshotted into
 * test/e2e/screenshots/ on a desktop and at 390 px, and scanned by axe-core at both
 * widths: no serious or critical violation.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { TestCluster, type PeerHandle } from "../helpers/cluster.js";
import { spawnKiln, type KilnProcess } from "../helpers/proc.js";
import { freePort } from "../helpers/registry.js";
import { makeFile, startOrigin, type TestOrigin } from "../helpers/origin.js";
import { api } from "../helpers/manager.js";
import { browserMissing, screenshot, seriousViolations, startBrowser, type TestBrowser } from "../helpers/browser.js";

const NEW_ROOT_PASSWORD = "root-chose-this-one";
const GUEST_FIRST = "guest-first-password";
const GUEST_OWN = "guest-own-password";
const WAIT = { timeout: 30_000 };
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
describe("web console end to end", () => {
  let skip: string | undefined;
  let dir: string;
  let manager: KilnProcess;
  let managerUrl: string;
  let cluster: TestCluster;
  let peer: PeerHandle;
  let origin: TestOrigin;
  let browser: TestBrowser;
  let page: Page;
  let printedPassword: string;
  let closedUrl: string;

  /**
   * Screenshot and accessibility scan of the page as it is now, on a desktop and at 390 px:
   * at 390 px nothing is wider than the screen, and a table of three columns or fewer fits
   * without scrolling (only wider tables, and a matrix marked wide, scroll within themselves).
   * Each width is shot once the layout's transitions (the navigation folding) have ended.
   */
  const check = async (name: string) => {
    await page.waitForLoadState("networkidle");
    await screenshot(page, name);
    assert.deepEqual(await seriousViolations(page), [], `axe on ${name}`);
    await page.setViewportSize(PHONE);
    try {
      await settled();
      await screenshot(page, `${name}-390`);
      assert.deepEqual(await seriousViolations(page), [], `axe on ${name} at 390 px`);
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(wide <= PHONE.width, `${name} at 390 px is ${wide} px wide: something does not fit or scroll within itself`);
      const cut = await page.evaluate(() =>
        [...document.querySelectorAll<HTMLElement>(".table-scroll")]
          .filter((el) => !el.dataset.wide && !el.querySelector("tr > :nth-child(4)") && el.scrollWidth > el.clientWidth)
          .map((el) => el.getAttribute("aria-label")),
      );
      assert.deepEqual(cut, [], `${name} at 390 px: narrow tables with a column out of sight`);
    } finally {
      await page.setViewportSize(DESKTOP);
      await settled();
    }
  };
  /** Until no CSS transition or animation is running (Mantine's navbar slides when the width changes). */
  const settled = () =>
    page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running" || a.effect?.getTiming().iterations === Infinity), null, WAIT);
  /** "8.0 MiB of 16.0 MiB" → 8 (MiB). */
  const mibDone = (text: string | null) => Number(/([\d.]+) MiB of/.exec(text ?? "")?.[1]);
  const go = async (path: string, heading: string | RegExp) => {
    await page.goto(`${managerUrl}${path}`);
    try {
      await page.getByRole("heading", { level: 1, name: heading }).waitFor(WAIT);
    } catch (err) {
      await screenshot(page, `failed-${path.replaceAll("/", "_")}`);
      throw err;
    }
  };
  const signIn = async (name: string, password: string) => {
    await page.getByLabel(/^User name/).fill(name);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  };
  const changePassword = async (from: string, to: string) => {
    await page.getByLabel(/^Current password/).fill(from);
    await page.getByLabel(/^New password(?! again)/).fill(to);
    await page.getByLabel(/^New password again/).fill(to);
    await page.getByRole("button", { name: /Change password/ }).click();
  };
  const signOut = async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to kiln" }).waitFor(WAIT);
  };
  /** Creates a file preheat in the form and returns its id (the detail page it lands on). */
  const createFilePreheat = async (url: string) => {
    await go("/preheats/new", "Add preheat");
    await page.getByLabel(/^URL, or URLs/).fill(url);
    await page.getByRole("button", { name: "Create preheat" }).click();
    await page.waitForURL(/\/preheats\/\d+$/, WAIT);
    return Number(/\/preheats\/(\d+)$/.exec(page.url())![1]);
  };
  const waitForState = (state: "SUCCESS" | "FAILURE") => page.locator(`[data-state="${state}"]`).first().waitFor(WAIT);

  before(async () => {
    skip = await browserMissing();
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), "kiln-console-e2e-"));
    origin = await startOrigin();
    origin.add("/files/console.bin", makeFile(3 * 1024 * 1024));
    closedUrl = `http://127.0.0.1:${await freePort()}/missing.bin`;
    const port = await freePort();
    // No KILN_ROOT_PASSWORD: the manager generates root's first password and prints it once.
    manager = await spawnKiln(
      [
        "manager",
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--database-url",
        `sqlite:${join(dir, "manager.db")}`,
        "--data-dir",
        dir,
        "--job-poll-ms",
        "100",
        "--keepalive-ms",
        "500",
      ],
      { env: { KILN_ROOT_PASSWORD: "" } },
    );
    managerUrl = `http://127.0.0.1:${port}`;
    const line = manager.stderr.find((l) => /created user "root" with password/.test(l));
    assert.ok(line, manager.stderr.join("\n"));
    printedPassword = /with password (\S+) /.exec(line)![1]!;
    cluster = await TestCluster.start({ schedulerArgs: ["--manager", managerUrl, "--advertise-ip", "127.0.0.1", "--hosts-report-ms", "300"] });
    await cluster.addPeer("seed-1", { seed: true, args: ["--manager", managerUrl] });
    peer = await cluster.addPeer("peer-1", { args: ["--label", "zone=a"] });
    browser = await startBrowser();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    await cluster?.stop();
    await manager?.kill();
    await origin?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("signs in with the printed password, forces the change, and signs in again with the new one", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await page.goto(`${managerUrl}/preheats`);
    await page.getByRole("heading", { name: "Sign in to kiln" }).waitFor(WAIT);
    await check("01-sign-in");
    await signIn("root", "not-the-password");
    await page.getByRole("alert").filter({ hasText: "Wrong user name or password." }).waitFor(WAIT);
    await signIn("root", printedPassword);
    await page.getByRole("heading", { name: "Choose your own password" }).waitFor(WAIT);
    await check("02-forced-password-change");
    await changePassword(printedPassword, "short");
    // The API's own message, next to the field.
    await page.getByText("must be at least 8 characters").waitFor(WAIT);
    await changePassword(printedPassword, NEW_ROOT_PASSWORD);
    await page.getByText("Password changed. Sign in with your new password.").waitFor(WAIT);
    await signIn("root", printedPassword);
    await page.getByText("Wrong user name or password.").waitFor(WAIT);
    await signIn("root", NEW_ROOT_PASSWORD);
    // Where the browser was going before signing in: the preheats.
    await page.getByRole("heading", { level: 1, name: "Preheats" }).waitFor(WAIT);
    assert.equal(await page.getByTestId("whoami").textContent(), "root (root)");
  });

  it("reloads once when a page's code chunk cannot be fetched (an upgrade changed the asset names) instead of going blank", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/", "Overview");
    let aborted = 0;
    await page.route(/\/assets\/tokens-[^/]+\.js$/, (route) => (aborted++ === 0 ? route.abort() : route.continue()));
    try {
      await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Access tokens" }).click();
      await page.getByRole("heading", { level: 1, name: "Access tokens" }).waitFor(WAIT);
    } finally {
      await page.unroute(/\/assets\/tokens-[^/]+\.js$/);
    }
    assert.equal(aborted, 2, "the chunk was asked for again after the reload");
    assert.ok(await page.evaluate(() => sessionStorage.getItem("kiln-console-chunk-reload")), "the app reloaded itself");
  });

  it("at 390 px the navigation is behind a menu button that opens and closes it", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await page.setViewportSize(PHONE);
    try {
      await go("/", "Overview");
      const nav = page.getByRole("navigation", { name: "Pages" });
      const menu = page.getByRole("button", { name: "Open the menu" });
      const onScreen = async () => ((await nav.boundingBox())?.x ?? -1) >= 0;
      assert.equal(await onScreen(), false, "closed: the navigation is off screen, the page readable");
      await screenshot(page, "00a-menu-closed-390");
      assert.deepEqual(await seriousViolations(page), [], "axe with the menu closed at 390 px");
      await menu.click();
      await page.getByRole("button", { name: "Close the menu" }).waitFor(WAIT);
      await page.waitForFunction(() => (document.querySelector('nav[aria-label="Pages"]')?.getBoundingClientRect().x ?? -1) >= 0);
      await screenshot(page, "00b-menu-open-390");
      assert.deepEqual(await seriousViolations(page), [], "axe with the menu open at 390 px");
      await nav.getByRole("link", { name: "Peers", exact: true }).click();
      await page.getByRole("heading", { level: 1, name: "Peers" }).waitFor(WAIT);
      await page.getByRole("button", { name: "Open the menu" }).waitFor(WAIT);
      await page.waitForFunction(() => (document.querySelector('nav[aria-label="Pages"]')?.getBoundingClientRect().x ?? 0) < 0);
    } finally {
      await page.setViewportSize(DESKTOP);
    }
  });

  it("shows the scheduler and the seed peer up, with address, port and last keepalive", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/members", "Schedulers and seed peers");
    const seedRow = page.getByTestId("seed-peers-table").getByRole("row").filter({ hasText: "seed-1" });
    await seedRow.filter({ hasText: "Active" }).waitFor(WAIT);
    assert.match((await seedRow.textContent())!, /127\.0\.0\.1/);
    assert.match((await seedRow.textContent())!, /s ago/);
    await page.getByTestId("schedulers-table").getByRole("row").filter({ hasText: "Active" }).first().waitFor(WAIT);
    // The cluster by its name, not its ID.
    await page.getByTestId("schedulers-table").getByRole("row").filter({ hasText: "cluster-1" }).first().waitFor(WAIT);
    await check("03-schedulers-and-seed-peers");
    await go("/", "Overview");
    await page.getByRole("region", { name: "Seed peers" }).getByText("1", { exact: true }).first().waitFor(WAIT);
    await check("04-overview");
  });

  it("refuses a piece length outside the API's bounds with the API's message next to the field", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/preheats/new", "Add preheat");
    await page.getByLabel(/^URL, or URLs/).fill(`${origin.url}/files/console.bin`);
    const piece = page.getByLabel(/^Piece length \(MiB\)/);
    await piece.fill("2");
    await page.getByRole("button", { name: "Create preheat" }).click();
    // A sentence in the field's own unit (the API says 4194304 bytes).
    await page.getByText("Must be at least 4 MiB.").waitFor(WAIT);
    // Tied to the input for screen readers, not just placed near it.
    assert.equal(await piece.getAttribute("aria-invalid"), "true");
    const describedBy = (await piece.getAttribute("aria-describedby")) ?? "";
    const described = await Promise.all(
      describedBy
        .split(" ")
        .filter(Boolean)
        .map((id) => page.locator(`[id="${id}"]`).textContent()),
    );
    assert.ok(
      described.some((d) => d?.includes("Must be at least 4 MiB.")),
      described.join(" | "),
    );
    await check("05-preheat-create-refused");
  });

  it("preheats a file from a local origin: SUCCESS, with the seed peer listed as the host that got it", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    const id = await createFilePreheat(`${origin.url}/files/console.bin`);
    await waitForState("SUCCESS");
    const got = page.getByTestId("success-tasks");
    await got.getByRole("row").filter({ hasText: "seed-1" }).waitFor(WAIT);
    assert.match((await got.textContent())!, /127\.0\.0\.1/);
    assert.match((await page.getByText(/1 of 1 URL×cluster tasks done: 1 succeeded, 0 failed/).textContent())!, /1 succeeded/);
    assert.equal(origin.sent.get("/files/console.bin"), 3 * 1024 * 1024, "the origin served it once, to the seed peer");
    await check("06-preheat-success");
    const job = await page.evaluate((jobId) => fetch(`/api/v1/jobs/${jobId}`).then((r) => r.json()), id);
    assert.equal(job.state, "SUCCESS");
  });

  it("preheats an unreachable URL: FAILURE, and the cause in its log and next to the host", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await createFilePreheat(closedUrl);
    await waitForState("FAILURE");
    const log = (await page.getByTestId("job-log").textContent())!;
    assert.match(log, /missing\.bin/);
    assert.match(log, /refused|unreachable|ECONNREFUSED/i, log);
    const failed = (await page.getByTestId("failure-tasks").textContent())!;
    assert.match(failed, /refused|unreachable|ECONNREFUSED/i, failed);
    await page
      .getByRole("alert")
      .filter({ hasText: /refused|unreachable|ECONNREFUSED/i })
      .waitFor(WAIT);
    await check("07-preheat-failure");
  });

  it("lists the preheats with server-side state filter and URL search, kept in the address", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/preheats", "Preheats");
    await page.getByRole("row").filter({ hasText: "console.bin" }).waitFor(WAIT);
    await page.getByRole("row").filter({ hasText: "missing.bin" }).waitFor(WAIT);
    await check("08-preheats");
    await page.getByLabel("State").selectOption("FAILURE");
    await page.waitForURL(/state=FAILURE/, WAIT);
    await page
      .getByRole("row")
      .filter({ hasText: "console.bin" })
      .waitFor({ state: "detached", ...WAIT });
    assert.equal(await page.getByRole("row").filter({ hasText: "missing.bin" }).count(), 1);
    await page.getByLabel("State").selectOption("");
    await page.getByLabel("URL contains").fill("CONSOLE.BIN");
    await page.getByRole("button", { name: "Search" }).click();
    await page.waitForURL(/url=CONSOLE.BIN/, WAIT);
    await page
      .getByRole("row")
      .filter({ hasText: "missing.bin" })
      .waitFor({ state: "detached", ...WAIT });
    assert.equal(await page.getByRole("row").filter({ hasText: "console.bin" }).count(), 1);
    // A reload keeps the search: the filter lives in the URL, and the manager answers the client route.
    await page.reload();
    await page.getByRole("row").filter({ hasText: "console.bin" }).waitFor(WAIT);
    assert.equal(await page.getByLabel("URL contains").inputValue(), "CONSOLE.BIN");
  });

  it("shows clusters and lets root add one", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/clusters", "Clusters");
    await page.getByRole("row").filter({ hasText: "cluster-1" }).filter({ hasText: "1 of 1 up" }).first().waitFor(WAIT);
    await page.getByRole("button", { name: "Add cluster" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel(/^Name/).fill("edge-east");
    await dialog.getByLabel(/^Job rate limit/).fill("5");
    await dialog.getByLabel(/^Candidate parent limit/).fill("2");
    await dialog.getByLabel(/^IDC/).fill("east-1|east-2");
    await dialog.getByLabel(/^CIDRs/).fill("10.8.0.0/16\n10.9.0.0/33");
    await dialog.getByRole("button", { name: "Create cluster" }).click();
    // The API's own message, next to the field.
    await dialog.getByText("line 2: must be a CIDR like 10.0.0.0/8 or fd00::/8").waitFor(WAIT);
    await check("09-cluster-form");
    await dialog.getByLabel(/^CIDRs/).fill("10.8.0.0/16\n10.9.0.0/16");
    await dialog.getByRole("button", { name: "Create cluster" }).click();
    const row = page.getByRole("row").filter({ hasText: "edge-east" });
    await row.filter({ hasText: "5 jobs/s, 2 parents of 40 sampled" }).filter({ hasText: "idc east-1|east-2; CIDR 10.8.0.0/16, 10.9.0.0/16" }).waitFor(WAIT);
    await dialog.waitFor({ state: "detached", ...WAIT });
    await check("10-clusters");
  });

  it("lists the peers with their labels and traffic, and charts the bytes the swarm saved the origin", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    // console.bin was preheated on seed-1: peer-1 gets it from the swarm.
    const got = await cluster.get(peer, `${origin.url}/files/console.bin`, join(dir, "console-1.bin"));
    assert.equal(got.code, 0, got.stderr);
    await go("/peers", "Peers");
    const table = page.getByTestId("peers-table");
    // The peer's counters reach the inventory with its next announce and its scheduler's next report.
    await table.getByRole("row").filter({ hasText: "peer-1" }).filter({ hasText: "zone=a" }).filter({ hasText: "3.0 MiB" }).waitFor(WAIT);
    await table.getByRole("row").filter({ hasText: "seed-1" }).filter({ hasText: "Seed peer" }).waitFor(WAIT);
    await page.getByLabel(/^Labels/).fill("zone=a");
    await table
      .getByRole("row")
      .filter({ hasText: "seed-1" })
      .waitFor({ state: "detached", ...WAIT });
    assert.equal(await table.getByRole("row").filter({ hasText: "peer-1" }).count(), 1);
    await check("11a-peers");
    await go("/", "Overview");
    await page
      .getByTestId("traffic-saved")
      .filter({ hasText: /^3\.0 MiB$/ })
      .waitFor(WAIT);
    assert.equal(await page.getByTestId("traffic-origin").textContent(), "3.0 MiB", "the seed peer's preheat fetched it from the origin once");
    assert.equal(await page.getByTestId("traffic-share").textContent(), "50 %");
    await page.getByRole("img", { name: /^Chart: 3\.0 MiB from the swarm and 3\.0 MiB from origins, last hour$/ }).waitFor(WAIT);
    await check("11b-overview-traffic");
  });

  it("finds the preheated task on the Tasks page, deletes it after typing DELETE, and the next download goes to the origin", {
    timeout: 120_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    const url = `${origin.url}/files/console.bin`;
    await go("/tasks", "Tasks");
    await page.getByRole("textbox", { name: /^URL/ }).fill(url);
    await page.getByRole("button", { name: "Find" }).click();
    const holders = page.getByTestId("holders-table");
    await holders.getByText("2 host(s) hold this task or part of it.").waitFor(WAIT);
    for (const host of ["seed-1", "peer-1"])
      assert.equal(await holders.getByRole("row").filter({ hasText: host }).filter({ hasText: "finished" }).count(), 1, host);
    await check("11c-tasks-found");
    await page.getByRole("button", { name: "Delete from every peer…" }).click();
    const dialog = page.getByRole("dialog", { name: "Delete from every peer" });
    const confirm = dialog.getByRole("button", { name: "Delete", exact: true });
    assert.equal(await confirm.isDisabled(), true, "nothing is deleted before DELETE is typed");
    await dialog.getByLabel("Type DELETE to confirm").fill("DELETE");
    await confirm.click();
    const outcome = page.getByTestId("delete-table");
    for (const host of ["seed-1", "peer-1"]) await outcome.getByRole("row").filter({ hasText: host }).filter({ hasText: "✓ deleted" }).waitFor(WAIT);
    await check("11d-tasks-deleted");
    const before = origin.sent.get("/files/console.bin") ?? 0;
    const again = await cluster.get(peer, url, join(dir, "console-2.bin"));
    assert.equal(again.code, 0, again.stderr);
    assert.equal((origin.sent.get("/files/console.bin") ?? 0) - before, 3 * 1024 * 1024, "the origin served it again, once");
  });

  it("adds a pull schedule in the page; its matrix shows the selected peer failed with the reason, the seed peer not selected", {
    timeout: 120_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    const registryHost = new URL(closedUrl).host; // nothing listens there
    await go("/pulls", "Pull schedules");
    await page.getByLabel(/^Name/).fill("warm-apps");
    await page.getByLabel(/^Images/).fill(`app=${registryHost}/team/app:v1;`);
    await page.getByLabel(/^Node selector/).fill("zone=a");
    await page.getByLabel(/^Plain-HTTP registries/).fill(registryHost);
    await page.getByRole("button", { name: "Add schedule" }).click();
    await page.getByRole("heading", { level: 1, name: "Pull schedule warm-apps" }).waitFor(WAIT);
    const failed = page.locator('[data-cell="app@peer-1"]');
    await failed.getByText("failed").waitFor(WAIT);
    assert.match((await failed.textContent())!, /cannot resolve .*team\/app:v1.*(unreachable|refused)/i);
    assert.match((await page.locator('[data-cell="app@seed-1"]').textContent())!, /not selected/);
    await check("11e-pull-schedule");
    // Edited in the page: a selector no peer matches leaves peer-1 not selected at the next run.
    await page.getByRole("button", { name: "Edit" }).click();
    const form = page.getByRole("form", { name: "Edit pull schedule" });
    await form.getByLabel(/^Node selector/).fill("zone=none");
    // The API's cron and concurrency, in the form too.
    await form.getByLabel(/^Cron expression/).fill("0 3 * * *");
    await form.getByLabel(/^Concurrency/).fill("2");
    await form.getByRole("button", { name: "Save schedule" }).click();
    await page.locator('[data-cell="app@peer-1"]').getByText("not selected").waitFor(WAIT);
    await go("/pulls", "Pull schedules");
    await page
      .getByTestId("pulls-table")
      .getByRole("row")
      .filter({ hasText: "warm-apps" })
      .filter({ hasText: "zone=none" })
      .filter({ hasText: "0 3 * * *" })
      .filter({ hasText: "0 of 0" })
      .waitFor(WAIT);
    await check("11f-pull-schedules");
  });

  it("shows image acceleration's state with the seed's fields, and why enabling is refused when the shared directory is not mounted", {
    timeout: 60_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/accelerate", "Image acceleration");
    await page.getByTestId("accelerate-status").filter({ hasText: "Unknown" }).waitFor(WAIT);
    assert.match((await page.locator('[data-flag="NfsReady"]').textContent())!, /no/);
    assert.match((await page.locator('[data-flag="AgentReady"]').textContent())!, /no/);
    assert.match((await page.getByText(/^Nodes that can mount/).textContent())!, /none/);
    await page.getByRole("button", { name: "Enable acceleration" }).click();
    const refused = page.getByRole("alert").filter({ hasText: /cannot enable image acceleration/ });
    await refused.waitFor(WAIT);
    assert.match((await refused.textContent())!, /\/mnt\/kiln-shared/);
    await check("11g-accelerate");
  });

  it("shows a large preheat's bytes and pieces rising, per URL and per host by IP:port", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    origin.add("/files/progress.bin", makeFile(16 * 1024 * 1024));
    // The origin stops after half the file until released: the page shows the halfway numbers, then all of it.
    const release = origin.hold("/files/progress.bin", 8 * 1024 * 1024);
    await createFilePreheat(`${origin.url}/files/progress.bin`);
    const bytes = page.getByTestId("progress-bytes");
    await bytes.filter({ hasText: "8.0 MiB of 16.0 MiB (50 %) · 2 of 4 pieces" }).waitFor(WAIT);
    const hosts = page.getByTestId("url-progress");
    await hosts.getByRole("row").filter({ hasText: "seed-1" }).filter({ hasText: "Fetching" }).waitFor(WAIT);
    assert.match((await hosts.textContent())!, /127\.0\.0\.1:\d+/, "the host's IP and port");
    const first = mibDone(await bytes.textContent());
    await check("06a-preheat-progress-halfway");
    release();
    await waitForState("SUCCESS");
    await bytes.filter({ hasText: "16.0 MiB of 16.0 MiB (100 %) · 4 of 4 pieces" }).waitFor(WAIT);
    const second = mibDone(await bytes.textContent());
    assert.ok(second > first, `rising: ${first} MiB, then ${second} MiB`);
    await check("06b-preheat-progress-done");
    assert.match(
      (await page.getByTestId("job-log").textContent())!,
      /seed peer seed-1 \(127\.0\.0\.1:\d+\) started fetching from the origin[\s\S]*done: 16\.0 MiB/,
    );
  });

  it("creates a token shown once, which works on /oapi/v1/jobs until it is revoked in the page", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/tokens", "Personal access tokens");
    await page.getByLabel(/^Name/).fill("e2e-script");
    await page.getByRole("button", { name: "Create token" }).click();
    const token = (await page.getByTestId("new-token").textContent())!;
    assert.match(token, /^kiln_pat_/);
    await check("11-token-created");
    const before = await api(`${managerUrl}/oapi/v1/jobs`, { token });
    assert.equal(before.status, 200);
    assert.ok(before.json.some((j: { args: { url: string } }) => j.args.url.endsWith("/files/console.bin")));
    await page.getByRole("button", { name: "Revoke token e2e-script" }).click();
    await page.getByRole("row").filter({ hasText: "e2e-script" }).filter({ hasText: "Revoked" }).waitFor(WAIT);
    const after = await api(`${managerUrl}/oapi/v1/jobs`, { token });
    assert.equal(after.status, 403);
    assert.deepEqual(after.json, { message: "Token is inactive" });
    // Reloaded, the list never shows the value again.
    await page.reload();
    await page.getByRole("row").filter({ hasText: "e2e-script" }).waitFor(WAIT);
    assert.equal(await page.getByTestId("new-token").count(), 0);
    assert.ok(!(await page.content()).includes(token));
    await check("12-tokens");
  });

  it("a guest sees every list, no write control, and the API refuses its writes (403)", { timeout: 120_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/users", "Users");
    const form = page.getByRole("form", { name: "New user" });
    await form.getByLabel(/^Name/).fill("gail");
    await form.getByLabel(/^First password/).fill(GUEST_FIRST);
    await form.getByRole("button", { name: "Create user" }).click();
    await page.getByRole("row").filter({ hasText: "gail" }).filter({ hasText: "must change the first password" }).waitFor(WAIT);
    await check("13-users");
    await signOut();
    await signIn("gail", GUEST_FIRST);
    await page.getByRole("heading", { name: "Choose your own password" }).waitFor(WAIT);
    await changePassword(GUEST_FIRST, GUEST_OWN);
    await page.getByText("Password changed. Sign in with your new password.").waitFor(WAIT);
    // The form offers the user who signed in last, not root (whose lockout a guest's typos would count toward).
    assert.equal(await page.getByLabel(/^User name/).inputValue(), "gail");
    await signIn("gail", GUEST_OWN);
    await page.getByTestId("whoami").filter({ hasText: "gail (guest)" }).waitFor(WAIT);

    await go("/preheats", "Preheats");
    await page.getByRole("row").filter({ hasText: "console.bin" }).waitFor(WAIT);
    assert.equal(await page.getByRole("button", { name: "Add preheat" }).count(), 0);
    assert.equal(await page.getByRole("link", { name: "Add preheat" }).count(), 0);
    await check("14-guest-preheats");
    await page
      .getByRole("link", { name: /missing\.bin/ })
      .first()
      .click();
    await waitForState("FAILURE");
    assert.equal(await page.getByRole("button", { name: "Cancel preheat" }).count(), 0);
    await go("/preheats/new", "Not available to guests");
    assert.equal(await page.getByRole("button", { name: "Create preheat" }).count(), 0, "no form a guest cannot send");
    await check("14a-guest-preheat-create");
    await go("/no-such-page", "There is no page here");
    await check("14b-not-found");
    await page.getByRole("link", { name: "Back to the overview" }).click();
    await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor(WAIT);
    await go("/clusters", "Clusters");
    await page.getByRole("row").filter({ hasText: "edge-east" }).waitFor(WAIT);
    assert.equal(await page.getByRole("button", { name: "Add cluster" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: /^Edit cluster/ }).count(), 0);
    await check("15-guest-clusters");
    await go("/tokens", "Personal access tokens");
    assert.equal(await page.getByRole("button", { name: "Create token" }).count(), 0);
    await go("/users", "Users");
    await page.getByRole("row").filter({ hasText: "root" }).first().waitFor(WAIT);
    assert.equal(await page.getByRole("button", { name: "Create user" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: /^Disable/ }).count(), 0);
    await check("16-guest-users");

    // The page's own session (cookie + CSRF header, as the console sends them) cannot write either.
    // (A string, not a function: tsx would wrap a function's inner helpers in a __name the page does not have.)
    const refused = (await page.evaluate(`(async () => {
      const csrf = decodeURIComponent((/(?:^|; )csrf_token=([^;]*)/.exec(document.cookie) || [])[1] || "");
      const writes = [
        ["/api/v1/jobs", { type: "preheat", args: { type: "file", url: "http://127.0.0.1:1/x" } }],
        ["/api/v1/clusters", { name: "guest-made" }],
        ["/api/v1/personal-access-tokens", { name: "guest", scopes: ["job"] }],
        ["/api/v1/jobs/1/cancel", {}],
      ];
      const out = [];
      for (const [path, body] of writes) {
        const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json", "x-csrf-token": csrf }, body: JSON.stringify(body) });
        out.push({ path, status: r.status, message: (await r.json()).message });
      }
      return out;
    })()`)) as { path: string; status: number; message: string }[];
    assert.equal(refused.length, 4);
    for (const r of refused) {
      assert.equal(r.status, 403, JSON.stringify(r));
      assert.match(r.message, /guest users are read-only/);
    }
    await go("/account", "My account");
    await check("17-guest-account");
  });

  it("goes back to the sign-in page when the session ends", { timeout: 60_000 }, async (t) => {
    if (skip) return t.skip(skip);
    await go("/members", "Schedulers and seed peers");
    // The session cookie is gone (as when it expires): the next refresh gets 401.
    await browser.context.clearCookies();
    await page.getByRole("heading", { name: "Sign in to kiln" }).waitFor(WAIT);
    await page.getByText(/Your session ended/).waitFor(WAIT);
    await check("18-session-ended");
    await signIn("root", NEW_ROOT_PASSWORD);
    await page.getByRole("heading", { level: 1, name: "Schedulers and seed peers" }).waitFor(WAIT);
    await signOut();
    await page.getByText("You signed out.").waitFor(WAIT);
    const me = await page.evaluate(() => fetch("/api/v1/users/me").then((r) => r.status));
    assert.equal(me, 401);
  });

  it("the manager stopped while a page is open: 'unreachable, retrying', the last data kept and marked stale, no green badges", {
    timeout: 90_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    await signIn("root", NEW_ROOT_PASSWORD);
    await page.getByTestId("whoami").waitFor({ state: "attached", ...WAIT });
    await go("/", "Overview");
    const schedulers = page.getByRole("region", { name: "Schedulers" });
    await schedulers.getByText("▲ up").waitFor(WAIT);
    await manager.kill();
    await page.getByTestId("unreachable").waitFor(WAIT);
    assert.match((await page.getByTestId("unreachable").textContent())!, /Manager unreachable, retrying[\s\S]*last data it sent \(at \d\d:\d\d:\d\d\)/);
    await schedulers.getByText("last known up").waitFor(WAIT);
    assert.equal(await page.getByText("▲ up").count(), 0, "no green up badge while nothing answers");
    assert.equal(await page.getByText("Could not load").count(), 0, "one banner, not an error per card");
    assert.equal(await page.getByRole("heading", { name: "Sign in to kiln" }).count(), 0, "still signed in");
    await check("19-manager-unreachable");
  });
});
