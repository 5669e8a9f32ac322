// Swagger UI in headless Chromium: register a user and create a patient
// through the API, then in /docs click Authorize and log in with the OAuth2
// password flow (username and password typed into the dialog; Swagger UI
// calls the token endpoint itself, no token is pasted), open list_patients,
// "Try it out" -> "Execute", and expect a 200 whose body has the patient.
//
// Usage: node swagger.spec.mjs BASE_URL [SCREENSHOT_PATH]
// Env:   CHROMIUM (default /usr/bin/chromium)
//
// Every request the page makes to another origin is refused and fails the
// test: the docs must work offline (no CDN).

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = (process.argv[2] || "").replace(/\/$/, "");
if (!base) {
  console.error("usage: node swagger.spec.mjs BASE_URL [SCREENSHOT_PATH]");
  process.exit(2);
}
const screenshot = process.argv[3] || join(tmpdir(), `swagger-e2e-${process.pid}.png`);
const origin = new URL(base).origin;

async function api(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A user, a token and a patient with a name nobody else has.
const suffix = randomBytes(4).toString("hex");
const username = `e2e_swagger_${suffix}`;
const password = "Velvet-Otter-Quarry-42";
await api("POST", "/api/auth/register/", { username, email: `${username}@example.com`, password });
const { access } = await api("POST", "/api/auth/login/", { username, password });
const patientName = `Swagger Patient ${suffix}`;
const patient = await api("POST", "/api/patients/", { name: patientName, age: 42, gender: "Other" }, access);

const userDataDir = mkdtempSync(join(tmpdir(), "e2e-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 1600 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const offOrigin = [];
const pageErrors = [];
let failed = false;
try {
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/") || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    offOrigin.push(url);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.setDefaultTimeout(15_000);

  const docs = await page.goto(`${base}/docs`);
  if (docs.status() !== 200) throw new Error(`/docs answered ${docs.status()}`);
  await page.locator(".swagger-ui .info .title").waitFor();

  // Authorize: the OAuth2 scheme's password flow, with the username and
  // password typed in; Swagger UI gets the token from /api/auth/token.
  await page.locator(".scheme-container button.authorize").click();
  const modal = page.locator(".dialog-ux .modal-ux");
  await modal.waitFor();
  // The OAuth2 scheme's password flow (its client-credentials flow, and
  // the Bearer scheme, have containers of their own).
  const passwordFlow = modal.locator(".auth-container", { hasText: /OAuth2, password\)/ });
  await passwordFlow.locator("#oauth_username").fill(username);
  await passwordFlow.locator("#oauth_password").fill(password);
  const tokenReply = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/auth/token");
  await passwordFlow.locator('button[aria-label="Apply given OAuth2 credentials"]').click();
  const tokenStatus = (await tokenReply).status();
  if (tokenStatus !== 200) throw new Error(`the token endpoint answered ${tokenStatus} to Swagger UI`);
  await passwordFlow.locator("button", { hasText: "Logout" }).waitFor();
  await passwordFlow.locator("button.btn-done").click();
  await modal.waitFor({ state: "detached" });

  // list_patients: expand, Try it out, Execute.
  const op = page.locator("#operations-Patients-list_patients");
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  await op.locator("button.execute").click();

  const live = op.locator(".live-responses-table");
  await live.waitFor();
  const status = (await live.locator("tbody .response-col_status").first().innerText()).trim();
  const body = await live.locator(".response-col_description .microlight, .response-col_description pre").first().innerText();
  const curl = await op.locator(".curl-command").innerText().catch(() => "");

  await op.scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: false });

  const problems = [];
  if (status !== "200") problems.push(`status ${status} instead of 200`);
  if (!body.includes(patientName)) problems.push(`the response does not show "${patientName}": ${body.slice(0, 300)}`);
  if (!body.includes(`"id": ${patient.id}`)) problems.push(`the response does not show id ${patient.id}`);
  if (curl && !/Authorization: Bearer [\w-]+\.[\w-]+\.[\w-]+/.test(curl)) {
    problems.push("the request Swagger UI sent had no Bearer token");
  }
  if (curl.includes(access)) problems.push("the request used the setup token, not the one Swagger UI got");
  if (offOrigin.length) problems.push(`the page fetched from other origins (no CDN allowed): ${offOrigin.join(", ")}`);
  if (pageErrors.length) problems.push(`JavaScript errors on the page: ${pageErrors.join("; ")}`);
  if (problems.length) {
    failed = true;
    console.error(`swagger: FAILED\n  ${problems.join("\n  ")}`);
  } else {
    console.log(`swagger: Authorize (OAuth2 password flow) then list_patients via Try it out -> 200 with "${patientName}" (screenshot ${screenshot})`);
  }
} catch (err) {
  failed = true;
  console.error(`swagger: FAILED: ${err.stack || err}`);
  try {
    const page = context.pages()[0];
    if (page) {
      await page.screenshot({ path: screenshot, fullPage: true });
      console.error(`swagger: screenshot of the failure: ${screenshot}`);
    }
  } catch {
    // no screenshot then
  }
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
