import { test, expect, Page, verifyEmail, password, unique, hydrated } from './fixtures';
import { emulatorPort } from '../playwright.config';

// A free user's month on /app: the allowance used up, the paywall, the pack
// bought from it, and the work going on with the pack's credits.

async function signUp(page: Page, email: string) {
  await hydrated(page, '/signup?next=%2Fapp');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
  await verifyEmail(page, email);
}

async function useCalls(page: Page, amount: number) {
  await page.getByLabel('API calls to make').fill(String(amount));
  await page.getByRole('button', { name: 'Use API calls' }).click();
}

test('a free user uses the allowance, hits the paywall, buys the pack and goes on', async ({ page }) => {
  await signUp(page, unique('usage'));
  await hydrated(page, '/app');
  await expect(page.getByTestId('app-plan')).toHaveText('You are on the Free plan.');
  await expect(page.getByTestId('meter-api_calls')).toContainText('API calls: 0 of 1,000 used');
  await expect(page.getByTestId('credits')).toHaveText('Credits left: 0');

  await useCalls(page, 400);
  await expect(page.getByTestId('meter-api_calls')).toContainText('API calls: 400 of 1,000 used');
  await useCalls(page, 600);
  await expect(page.getByTestId('meter-api_calls')).toContainText('API calls: 1,000 of 1,000 used');
  const paywall = page.getByTestId('paywall');
  await expect(paywall).toContainText('You have used all 1,000 API calls of this period');
  await useCalls(page, 1);
  await expect(page).toHaveURL(/\/app\?limit=api_calls$/);
  await expect(paywall).toBeVisible();

  // The counted item: one project on Free, the second is refused, one deleted.
  await page.getByRole('button', { name: 'Create a project' }).click();
  await expect(page.getByTestId('meter-projects')).toContainText('Projects: 1 of 1 used');
  await page.getByRole('button', { name: 'Create a project' }).click();
  await expect(page).toHaveURL(/\/app\?limit=projects$/);
  await expect(paywall).toContainText("All 1 of your plan's projects are in use.");
  await page.getByRole('button', { name: 'Delete a project' }).click();
  await expect(page.getByTestId('meter-projects')).toContainText('Projects: 0 of 1 used');
  await expect(paywall).toContainText('API calls');

  await paywall.getByRole('button', { name: /Buy Standard Pack — 500 credits for \$29/ }).click();
  await expect(page).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
  await page.getByLabel('Card number').fill('4242424242424242');
  await page.locator('form button[type="submit"]').first().click();
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await expect(page.getByTestId('billing-usage')).toContainText('Credits left: 500');

  await hydrated(page, '/app');
  await expect(page.getByTestId('paywall')).toHaveCount(0);
  await useCalls(page, 25);
  await expect(page.getByTestId('credits')).toHaveText('Credits left: 475');
  await expect(page.getByTestId('meter-api_calls')).toContainText('API calls: 1,000 of 1,000 used');
});
