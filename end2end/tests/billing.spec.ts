import { test, expect, Page, APIRequestContext, verifyEmail } from './fixtures';
import { emulatorPort } from '../playwright.config';

// Visitor → paying user, through the app and the emulator's hosted pages, with
// webhooks delivered by the emulator to the app as Stripe would.

const password = 'correct horse battery';
const unique = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const stripeApi = `http://127.0.0.1:${emulatorPort}`;
const auth = { Authorization: 'Bearer sk_test_e2e' };

async function hydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

async function signUp(page: Page, email: string, next = '/pricing') {
  await hydrated(page, `/signup?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
  // Checkout needs a confirmed address: follow the link the sign-up mailed.
  await verifyEmail(page, email);
  await hydrated(page, next);
}

function card(page: Page, plan: string) {
  return page.locator(`article[data-plan="${plan}"]`);
}

/// Pays on the emulator's hosted Checkout page.
async function pay(page: Page, cardNumber = '4242424242424242') {
  await expect(page).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
  await page.getByLabel('Card number').fill(cardNumber);
  await page.locator('form button[type="submit"]').first().click();
}

async function stripeGet(request: APIRequestContext, path: string) {
  const response = await request.get(`${stripeApi}/v1/${path}`, { headers: auth });
  expect(response.ok()).toBeTruthy();
  return response.json();
}

async function customerOf(request: APIRequestContext, email: string) {
  const found = await stripeGet(request, `customers/search?query=${encodeURIComponent(`email:'${email}'`)}`);
  return found.data as Array<{ id: string }>;
}

/// Subscribes a new user to Premium monthly and returns on the billing page, which
/// shows Premium on its first render (no reload), whatever the emulator's clock:
/// the past_due test runs after the renewal test moved it 62 days ahead of ours.
async function subscribed(page: Page, email: string) {
  await signUp(page, email);
  await hydrated(page, '/pricing');
  await card(page, 'premium').getByRole('button', { name: 'Go Premium Monthly' }).click();
  await pay(page);
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await expect(page.getByTestId('plan-name')).toHaveText('Premium');
}

async function advanceStripeClock(request: APIRequestContext, seconds: number) {
  const response = await request.post(`${stripeApi}/_emulator/advance`, { data: { seconds } });
  expect(response.ok()).toBeTruthy();
}

test('pricing toggle, then Premium monthly with 4242: success toast and Premium on first render', async ({ page }) => {
  const email = unique('buyer');
  await signUp(page, email);
  await hydrated(page, '/pricing');
  const premium = card(page, 'premium');
  await expect(premium.locator('.badge')).toHaveText('Most popular');
  await expect(premium.locator('.price')).toHaveText('$49/month');
  // Every card has a price (Free's is $0), and every feature list starts level.
  await expect(card(page, 'free').locator('.price')).toHaveText('$0');
  await expect(card(page, 'free').locator('.price-note')).toHaveText('Free forever');
  await expect(card(page, 'standard_pack').locator('.price-note')).toHaveText('one-time payment');
  const tops = await page.locator('.plan-card .features').evaluateAll((lists) => lists.map((l) => Math.round(l.getBoundingClientRect().top)));
  expect(new Set(tops).size, `feature lists start at ${tops}`).toBe(1);

  const yearly = page.getByRole('radio', { name: 'Yearly' });
  await yearly.click();
  await expect(page).toHaveURL(/\?interval=yearly$/);
  await expect(yearly).toHaveAttribute('aria-checked', 'true');
  await expect(premium.locator('.price')).toHaveText('$490/year');
  await expect(premium.locator('.price-note')).toHaveText('$40.83/month');
  await expect(premium.locator('.savings')).toHaveText('Save 17%');
  await expect(premium.getByRole('button')).toHaveText('Go Premium Yearly');
  // Keyboard: arrows move within the radio group.
  await yearly.focus();
  await page.keyboard.press('ArrowLeft');
  await expect(page).toHaveURL(/\?interval=monthly$/);
  await expect(premium.locator('.price')).toHaveText('$49/month');
  await expect(card(page, 'free').getByRole('button')).toHaveText('Current Plan');
  await expect(card(page, 'free').getByRole('button')).toBeDisabled();
  // The toggle records history: back shows yearly again, forward monthly.
  await page.goBack();
  await expect(page).toHaveURL(/\?interval=yearly$/);
  await expect(premium.locator('.price')).toHaveText('$490/year');
  await page.goForward();
  await expect(page).toHaveURL(/\?interval=monthly$/);
  await expect(premium.locator('.price')).toHaveText('$49/month');

  await premium.getByRole('button', { name: 'Go Premium Monthly' }).click();
  const firstRender = page.waitForResponse((r) => r.url().includes('/dashboard/billing?checkout_status=success'));
  await pay(page);
  // The server's first HTML already shows the plan (no waiting for the webhook).
  const html = await (await firstRender).text();
  expect(html).toMatch(/data-testid="plan-name"[^>]*>Premium</);
  await expect(page.locator('.toast')).toContainText('Payment successful');
  await expect(page.getByTestId('plan-name')).toHaveText('Premium');
  // Good news goes away by itself (after 5 s), and never sits over the page's controls.
  const toastBox = await page.locator('.toast').boundingBox();
  const planBox = await page.getByTestId('plan-name').boundingBox();
  expect(toastBox!.y + toastBox!.height).toBeLessThanOrEqual(planBox!.y);
  await expect(page.locator('.toast')).toHaveCount(0, { timeout: 8000 });
  // The query string is cleaned so a reload does not toast again.
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await page.reload();
  await expect(page.getByTestId('plan-name')).toHaveText('Premium');
  await expect(page.locator('.toast')).toHaveCount(0);

  await hydrated(page, '/pricing');
  await expect(card(page, 'premium').getByRole('button')).toHaveText('Current Plan');
});

test('a declined card stays on the checkout page and grants nothing', async ({ page, request }) => {
  const email = unique('declined');
  await signUp(page, email);
  await hydrated(page, '/pricing');
  await card(page, 'premium').getByRole('button', { name: 'Go Premium Monthly' }).click();
  await pay(page, '4000000000000002');
  await expect(page.locator('.error')).toContainText(/declined/i);
  await expect(page).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
  await hydrated(page, '/dashboard/billing');
  await expect(page.getByTestId('plan-name')).toHaveText('Free');
  const [customer] = await customerOf(request, email);
  const subs = await stripeGet(request, `subscriptions?customer=${customer.id}&status=all`);
  expect(subs.data).toHaveLength(0);
});

test('"back" from checkout returns with the canceled toast', async ({ page }) => {
  await signUp(page, unique('back'));
  await hydrated(page, '/pricing');
  await card(page, 'premium').getByRole('button', { name: 'Go Premium Monthly' }).click();
  await page.getByRole('link', { name: '← Back' }).click();
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await expect(page.locator('.toast')).toContainText('Checkout canceled');
  await expect(page.getByTestId('plan-name')).toHaveText('Free');
});

test('the Standard Pack bought once shows "Purchased", and a refund takes it back', async ({ page, request }) => {
  const email = unique('pack');
  await signUp(page, email);
  await hydrated(page, '/pricing');
  await card(page, 'standard_pack').getByRole('button', { name: 'Buy for $29' }).click();
  await pay(page);
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await expect(page.locator('.toast')).toContainText('Payment successful');
  await expect(page.getByTestId('purchases')).toContainText('Standard Pack');
  await hydrated(page, '/pricing');
  const pack = card(page, 'standard_pack').getByRole('button');
  await expect(pack).toHaveText('Purchased');
  await expect(pack).toBeDisabled();

  // Refunded in Stripe: the webhook reverses the grant.
  const [customer] = await customerOf(request, email);
  const sessions = await stripeGet(request, `checkout/sessions?customer=${customer.id}`);
  const paymentIntent = sessions.data.find((s: { payment_intent: string | null }) => s.payment_intent).payment_intent;
  const refund = await request.post(`${stripeApi}/v1/refunds`, { headers: auth, form: { payment_intent: paymentIntent } });
  expect(refund.ok()).toBeTruthy();
  await expect(async () => {
    await page.goto('/pricing');
    await expect(card(page, 'standard_pack').getByRole('button')).toHaveText('Buy for $29', { timeout: 1000 });
  }).toPass();
  await hydrated(page, '/dashboard/billing');
  await expect(page.getByTestId('purchases')).toContainText('Refunded');
});

test('a signed-out click goes to sign-in and resumes the same choice', async ({ page }) => {
  await hydrated(page, '/pricing?interval=yearly');
  await card(page, 'premium').getByRole('link', { name: 'Go Premium Yearly' }).click();
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByRole('link', { name: 'Create one' }).click();
  const email = unique('resume');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/pricing\?interval=yearly&plan=premium$/);
  // The address is confirmed in another tab, as from a mail app.
  const mailTab = await page.context().newPage();
  await verifyEmail(mailTab, email);
  await mailTab.close();
  const resume = page.getByRole('region', { name: 'Continue' });
  await expect(resume).toContainText('Continue with Premium?');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await resume.getByRole('button', { name: 'Go Premium Yearly' }).click();
  await expect(page).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
  await expect(page.locator('body')).toContainText('$490');
});

test('two fast clicks make one customer and one subscription', async ({ page, request }) => {
  const email = unique('double');
  await signUp(page, email);
  await hydrated(page, '/pricing');
  const button = card(page, 'premium').getByRole('button', { name: 'Go Premium Monthly' });
  await button.dblclick();
  await pay(page);
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  const customers = await customerOf(request, email);
  expect(customers).toHaveLength(1);
  const subs = await stripeGet(request, `subscriptions?customer=${customers[0].id}&status=all`);
  expect(subs.data).toHaveLength(1);
  const sessions = await stripeGet(request, `checkout/sessions?customer=${customers[0].id}`);
  expect(sessions.data).toHaveLength(1);
});

/// Days from now to the billing page's "Renews on" date.
async function daysToRenewal(page: Page) {
  const text = await page.locator('.plan-facts').innerText();
  const on = text.match(/Renews on\s+([A-Z][a-z]+ \d{1,2}, \d{4})/)![1];
  return (Date.parse(`${on} UTC`) - Date.now()) / 86_400_000;
}

test('portal plan change monthly → yearly → monthly: each change starts a new period', async ({ page }) => {
  await subscribed(page, unique('portal'));
  await expect(page.locator('.plan-facts')).toContainText('Monthly');
  await page.getByRole('button', { name: 'Manage billing' }).click();
  await expect(page.getByRole('heading', { name: 'Manage your billing' })).toBeVisible();
  await page.getByRole('button', { name: /Switch to Premium .*yearly/ }).click();
  // The way back names the business, not a URL.
  await page.getByRole('link', { name: 'Return to Billing Starter' }).click();
  await expect(async () => {
    await page.goto('/dashboard/billing');
    await expect(page.locator('.plan-facts')).toContainText('Yearly', { timeout: 1000 });
  }).toPass();
  expect(await daysToRenewal(page)).toBeGreaterThan(360);

  await page.getByRole('button', { name: 'Manage billing' }).click();
  await page.getByRole('button', { name: /Switch to Premium .*monthly/ }).click();
  await page.getByRole('link', { name: 'Return to Billing Starter' }).click();
  await expect(async () => {
    await page.goto('/dashboard/billing');
    await expect(page.locator('.plan-facts')).toContainText('Monthly', { timeout: 1000 });
  }).toPass();
  // Not the yearly period's end: a month from now, as Stripe resets the cycle.
  const days = await daysToRenewal(page);
  expect(days).toBeGreaterThan(26);
  expect(days).toBeLessThanOrEqual(32);
});

test('a plan change from pricing goes to the portal confirm page, not a second subscription', async ({ page }) => {
  await subscribed(page, unique('change'));
  await hydrated(page, '/pricing?interval=yearly');
  await card(page, 'premium').getByRole('button', { name: 'Go Premium Yearly' }).click();
  await expect(page.getByRole('button', { name: 'Confirm plan change' })).toBeVisible();
  // What confirming does, before it is done: the plan, today's amount, the renewal.
  const change = page.getByTestId('plan-change');
  await expect(change).toContainText('Change to Premium');
  await expect(change).toContainText('$490.00 / year');
  await expect(page.getByTestId('due-now')).toContainText(/Amount due today: \$4[0-9]{2}\.[0-9]{2}/);
  await expect(page.getByTestId('renews-on')).toContainText(`Your plan renews on ${new Date().getUTCFullYear() + 1}-`);
});

test('cancel at period end shows "ends on", resume removes it', async ({ page }) => {
  await subscribed(page, unique('cancel'));
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByRole('button', { name: 'Cancel at period end' }).click();
  await expect(page.getByTestId('ends-on')).toBeVisible();
  await page.getByRole('button', { name: 'Resume subscription' }).click();
  await expect(page.getByTestId('ends-on')).toHaveCount(0);
  await expect(page.locator('.plan-facts')).toContainText('Renews on');
});

test('a renewal shows the new period; after a canceled period the app closes', async ({ page, request }) => {
  await subscribed(page, unique('renew'));
  await hydrated(page, '/app');
  await expect(page.getByTestId('app-open')).toHaveAttribute('data-paid', 'true');
  await hydrated(page, '/dashboard/billing');
  const renews = page.locator('.plan-facts dd').nth(2);
  const before = await renews.textContent();
  await advanceStripeClock(request, 31 * 86_400);
  await expect(async () => {
    await page.goto('/dashboard/billing');
    expect(await page.locator('.plan-facts dd').nth(2).textContent()).not.toBe(before);
  }).toPass();
  await expect(page.getByTestId('invoices')).toContainText('Paid');

  await page.getByRole('button', { name: 'Cancel at period end' }).click();
  await expect(page.getByTestId('ends-on')).toBeVisible();
  await advanceStripeClock(request, 31 * 86_400);
  await expect(async () => {
    await page.goto('/app');
    await expect(page.getByTestId('app-open')).toHaveAttribute('data-paid', 'false', { timeout: 1000 });
  }).toPass();
  await hydrated(page, '/dashboard/billing');
  await expect(page.getByTestId('plan-name')).toHaveText('Free');
});

test('a failing renewal shows the past_due banner; a new card in the portal clears it', async ({ page, request }) => {
  // After the renewal test has moved the emulator's clock.
  await subscribed(page, unique('pastdue'));
  await page.getByRole('button', { name: 'Manage billing' }).click();
  await page.getByLabel('New card number').fill('4000000000000341');
  await page.getByRole('button', { name: 'Update card' }).click();
  await advanceStripeClock(request, 31 * 86_400);
  await expect(async () => {
    await page.goto('/dashboard/billing');
    await expect(page.getByTestId('past-due-banner')).toBeVisible({ timeout: 1000 });
  }).toPass();
  await expect(page.getByTestId('plan-name')).toHaveText('Premium');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByTestId('past-due-banner').getByRole('button', { name: 'Update payment method' }).click();
  await page.getByLabel('New card number').fill('4242424242424242');
  await page.getByRole('button', { name: 'Update card' }).click();
  await expect(async () => {
    await page.goto('/dashboard/billing');
    await expect(page.getByTestId('past-due-banner')).toHaveCount(0, { timeout: 1000 });
  }).toPass();
  await expect(page.getByTestId('plan-name')).toHaveText('Premium');
});

test('a subscriber deletes the account: subscription cancelled, Stripe customer deleted', async ({ page, request }) => {
  const email = unique('delete');
  await subscribed(page, email);
  const [customer] = await customerOf(request, email);
  await hydrated(page, '/account');
  await page.getByLabel('Your password, to confirm').fill('not my password');
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await expect(page.getByText('Your current password is not right.')).toBeVisible();
  await page.getByLabel('Your password, to confirm').fill(password);
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await expect(page).toHaveURL(/\/account\/deleted\?subscriptions=1&customer=1$/);
  await expect(page.getByTestId('deletion-summary')).toHaveText(
    'We cancelled your subscription in Stripe. Your Stripe customer record and saved cards are deleted.',
  );
  await expect(page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Sign in' })).toBeVisible();
  const deleted = await request.get(`${stripeApi}/v1/customers/${customer.id}`, { headers: auth });
  const body = await deleted.json();
  expect(body.deleted === true || deleted.status() === 404).toBeTruthy();
  const subs = await stripeGet(request, `subscriptions?customer=${customer.id}&status=all`);
  expect(subs.data.map((s: { status: string }) => s.status)).toEqual(['canceled']);
});
