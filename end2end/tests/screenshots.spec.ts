import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test, expect, Page, verifyEmail, password, unique, hydrated } from './fixtures';
import { appBin, databaseUrl, emulatorPort } from '../playwright.config';

// The README's screenshots of the console and the workspace, made on demand
// (they are pictures, not checks):
//   cd end2end && SCREENSHOTS=1 npx playwright test screenshots.spec.ts
test.skip(!process.env.SCREENSHOTS, 'set SCREENSHOTS=1 to write docs/*.png');

const docs = path.resolve(__dirname, '..', '..', 'docs');

async function signUp(page: Page, email: string, next: string) {
  await hydrated(page, `/signup?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
  await verifyEmail(page, email);
}

test('screenshots of /app and the console', async ({ page }) => {
  test.setTimeout(60_000);
  await page.setViewportSize({ width: 1200, height: 900 });
  const customer = unique('ada');
  await signUp(page, customer, '/app');
  await hydrated(page, '/pricing');
  await page.locator('article[data-plan="premium"]').getByRole('button', { name: 'Go Premium Monthly' }).click();
  await expect(page).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
  await page.getByLabel('Card number').fill('4242424242424242');
  await page.locator('form button[type="submit"]').first().click();
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await hydrated(page, '/app');
  await page.getByLabel('API calls to make').fill('31250');
  await page.getByRole('button', { name: 'Use API calls' }).click();
  await page.getByRole('button', { name: 'Create a project' }).click();
  await expect(page.getByTestId('meter-api_calls')).toContainText('31,250');
  await page.screenshot({ path: path.join(docs, 'app.png'), fullPage: true });

  await page.getByRole('navigation', { name: 'Account' }).getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).not.toContainText(customer);
  const operator = unique('ops');
  await signUp(page, operator, '/admin');
  execFileSync(appBin, ['users', 'promote', operator], {
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, RUST_LOG: 'warn' },
  });
  await page.goto(`/admin/accounts?q=${encodeURIComponent(customer)}`);
  await expect(page.getByTestId('accounts')).toContainText('premium month active');
  await page.screenshot({ path: path.join(docs, 'console.png'), fullPage: true });
});
