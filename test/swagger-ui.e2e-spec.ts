import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { ApiClient } from './support/api';
import { launchChromium } from './support/browser';
import { ServiceProcess, TestWorld } from './support/service';
import { makeToken } from './support/token';
import { makeWav } from './support/wav';

/**
 * The Swagger UI as a developer uses it, in a real headless browser: authorize with a bearer
 * token, try `POST /v1/voices` with a recorded WAV file, and get the voice back.
 */
describe('Swagger UI in a browser', () => {
  const world = new TestWorld();
  const files = mkdtempSync(join(tmpdir(), 'vs-swagger-'));
  let service: ServiceProcess;
  let browser: Browser;

  beforeAll(async () => {
    [service, browser] = await Promise.all([world.start(), launchChromium()]);
  });

  afterAll(async () => {
    await browser?.close();
    await world.dispose();
    rmSync(files, { recursive: true, force: true });
  });

  it('uploads a voice through "Try it out" with a bearer token and shows the 202 answer', async () => {
    const wavPath = join(files, 'grandma.wav');
    writeFileSync(wavPath, makeWav(2));
    const page = await browser.newPage();

    await page.goto(`${service.url}/docs`);
    await page.getByRole('button', { name: 'Authorize' }).first().click();
    await page.locator('#auth-bearer-value').fill(makeToken('swagger-user'));
    await page.getByRole('button', { name: 'Apply credentials' }).click();
    await page.locator('.modal-ux .btn-done').click();

    const upload = page
      .locator('.opblock-post')
      .filter({ has: page.locator('.opblock-summary-path[data-path="/v1/voices"]') });
    await upload.locator('.opblock-summary').click();
    await upload.getByRole('button', { name: 'Try it out' }).click();
    await upload.locator('tr[data-property-name="name"] input').fill('Swagger Grandma');
    await upload.locator('tr[data-property-name="provider"] select').selectOption('cartesia');
    await upload.locator('tr[data-property-name="file"] input[type=file]').setInputFiles(wavPath);
    await upload.getByRole('button', { name: 'Execute' }).click();

    const live = upload.locator('.live-responses-table');
    await live.locator('.response-col_status', { hasText: '202' }).waitFor({ timeout: 15_000 });
    const body = JSON.parse(
      await live.locator('.response-col_description pre.microlight').first().innerText(),
    ) as { id: string; name: string; provider: string; status: string };
    expect(body).toMatchObject({
      name: 'Swagger Grandma',
      provider: 'cartesia',
      status: 'pending',
    });

    // The page did what it showed: the voice exists for that user, with the file's duration.
    const owner = new ApiClient(service.url, 'swagger-user');
    const stored = await owner.waitFor(body.id, ['queued', 'allocating', 'ready']);
    expect(stored.sample?.durationMs).toBe(2000);
  });
});
