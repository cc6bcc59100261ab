import { test, expect } from './fixtures';
import { emulatorPort } from '../playwright.config';

test('the home page is server-rendered, then hydrated', async ({ page }) => {
  await page.goto('/');

  await expect(page.getByRole('heading', { name: 'Stripe billing for your Rust SaaS' })).toBeVisible();
  // Set by an effect, which only runs once the wasm has hydrated the page.
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');

  const toggle = page.getByRole('button', { name: "Show what's included" });
  await expect(toggle).toHaveAttribute('aria-expanded', 'false');
  await expect(page.locator('#included-list')).toBeHidden();

  // Only the hydrated page reacts to this click: there is no server round-trip.
  await toggle.click();
  await expect(page.getByRole('button', { name: "Hide what's included" })).toHaveAttribute('aria-expanded', 'true');
  await expect(page.locator('#included-list')).toBeVisible();
  await expect(page.locator('#included-list li')).toHaveCount(5);

});

test('a server function reaches the database through the hydrated page', async ({ page }) => {
  await page.goto('/');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');

  await page.getByRole('button', { name: 'Check the server' }).click();
  await expect(page.getByRole('status')).toHaveText(/Database: sqlite · Stripe: emulator at http:\/\/127\.0\.0\.1:\d+\//);
  // The call went through fetch: the page did not navigate away.
  await expect(page).toHaveURL(/\/$/);

});

test('the site icon the pages name is served', async ({ page, request }) => {
  await page.goto('/');
  const href = await page.locator('link[rel="icon"]').getAttribute('href');
  expect(href).toBe('/favicon.svg');
  const icon = await request.get(href!);
  expect(icon.status()).toBe(200);
  expect(icon.headers()['content-type']).toContain('image/svg+xml');
});

test('unknown pages render a 404 inside the app shell', async ({ page }) => {
  const response = await page.goto('/definitely/not/here');
  expect(response?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
});

test('without Stripe keys the app runs its emulator and says so', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByRole('note')).toHaveText('Test mode — emulator');
  const health = await request.get(`http://127.0.0.1:${emulatorPort}/_emulator/health`);
  expect(health.ok()).toBeTruthy();
  // It speaks Stripe's API: an unauthenticated call gets Stripe's 401 error shape.
  const unauthenticated = await request.get(`http://127.0.0.1:${emulatorPort}/v1/customers`);
  expect(unauthenticated.status()).toBe(401);
  expect((await unauthenticated.json()).error.type).toBe('invalid_request_error');
  // The app pushed its catalog (plans.toml) to the emulator at start-up.
  const prices = await request.get(`http://127.0.0.1:${emulatorPort}/v1/prices?lookup_keys[]=premium_monthly&lookup_keys[]=premium_yearly&lookup_keys[]=standard_pack`, {
    headers: { Authorization: 'Bearer sk_test_e2e' },
  });
  const keys = (await prices.json()).data.map((p: { lookup_key: string }) => p.lookup_key).sort();
  expect(keys).toEqual(['premium_monthly', 'premium_yearly', 'standard_pack']);
});

test('the call to action has room, and the header links look like the rest of the header', async ({ page }) => {
  await page.goto('/');
  const cta = await page.getByRole('link', { name: 'See pricing' }).boundingBox();
  const panel = await page.locator('.site-main > .panel').first().boundingBox();
  expect(panel!.y - (cta!.y + cta!.height), 'space under "See pricing"').toBeGreaterThanOrEqual(16);
  const signIn = page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Sign in' });
  const nav = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Pricing' });
  const style = (el: HTMLElement) => {
    const s = getComputedStyle(el);
    return [s.textDecorationLine, s.color, s.fontWeight];
  };
  expect(await signIn.evaluate(style)).toEqual(await nav.evaluate(style));
});
