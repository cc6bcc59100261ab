import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { test, expect, Page, APIRequestContext, verifyEmail, password, unique, hydrated } from './fixtures';
import { appBin, databaseUrl, emulatorPort } from '../playwright.config';

// The operator console on call. The emulator holds back its webhooks while a
// customer pays; then, with every Stripe API call failing (an injected
// fault), the customer's `invoice.paid` arrives first — the app must read the
// subscription from Stripe, cannot, stores the event as failed and answers 500.
// The operator finds the customer by email, sees the failed event, replays it
// once Stripe is back, and the customer's plan is right.

const emulator = `http://127.0.0.1:${emulatorPort}`;
const auth = { Authorization: 'Bearer sk_test_e2e' };
// The development default both the app and its in-process emulator use.
const webhookSecret = 'whsec_emulator_local';
const normalDelivery = { duplicates: 1, max_delay_ms: 0, drop_first: 0, hold: false };

async function signUp(page: Page, email: string, next: string) {
  await hydrated(page, `/signup?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
  await verifyEmail(page, email);
}

async function faults(request: APIRequestContext, rate: number) {
  const response = await request.post(`${emulator}/_emulator/faults`, {
    data: { rate, kinds: rate > 0 ? ['500'] : [], hang_ms: 0 },
  });
  expect(response.ok()).toBeTruthy();
}

/** The newest `invoice.paid` of `email`'s customer, as the emulator stored it. */
async function invoicePaidOf(request: APIRequestContext, email: string) {
  const customers = await (await request.get(
    `${emulator}/v1/customers/search?query=${encodeURIComponent(`email:'${email}'`)}`, { headers: auth },
  )).json();
  const customer = customers.data[0].id;
  const events = await (await request.get(`${emulator}/v1/events?limit=100`, { headers: auth })).json();
  return events.data.find((e: { type: string; data: { object: { customer: string } } }) =>
    e.type === 'invoice.paid' && e.data.object.customer === customer);
}

test('an operator finds a customer, sees the failed event and replays it: the plan is right', async ({ page, browser, request, baseURL }) => {
  test.setTimeout(90_000);
  const operator = unique('operator');
  await signUp(page, operator, '/admin');
  // The role comes from the command line, never from the browser.
  await page.goto('/admin');
  await expect(page.getByTestId('console-refused')).toBeVisible();
  execFileSync(appBin, ['users', 'promote', operator], {
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, RUST_LOG: 'warn' },
  });

  const customerContext = await browser.newContext();
  const customerPage = await customerContext.newPage();
  const customer = unique('failing');
  try {
    await signUp(customerPage, customer, '/pricing');
    await hydrated(customerPage, '/pricing');
    await customerPage.locator('article[data-plan="premium"]').getByRole('button', { name: 'Go Premium Monthly' }).click();
    await expect(customerPage).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
    // Webhooks held back, and Stripe's API failing from the return on (the
    // success page cannot read the session either).
    expect((await request.post(`${emulator}/_emulator/delivery`, { data: { ...normalDelivery, hold: true } })).ok()).toBeTruthy();
    await faults(request, 1.0);
    await customerPage.getByLabel('Card number').fill('4242424242424242');
    await customerPage.locator('form button[type="submit"]').first().click();
    await expect(customerPage).toHaveURL(/\/dashboard\/billing/);
    await expect(customerPage.getByTestId('plan-name')).toHaveText('Free');

    // invoice.paid arrives while Stripe fails: stored as failed, 500.
    await faults(request, 0);
    const event = await invoicePaidOf(request, customer);
    expect(event, 'the emulator has the invoice.paid event').toBeTruthy();
    await faults(request, 1.0);
    const body = JSON.stringify(event);
    const t = Math.floor(Date.now() / 1000);
    const v1 = createHmac('sha256', webhookSecret).update(`${t}.${body}`).digest('hex');
    const delivered = await request.post(`${baseURL}/api/stripe/webhooks`, {
      headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${v1}` },
      data: body,
    });
    expect(delivered.status()).toBe(500);

    // The operator: the customer by email, on Free; the failed event in the inbox.
    await page.goto(`/admin/accounts?q=${encodeURIComponent(customer)}`);
    await expect(page.getByTestId('accounts')).toContainText(customer);
    await expect(page.getByTestId('accounts')).not.toContainText('premium');
    await page.goto('/admin');
    await expect(page.getByTestId('failed-count')).not.toHaveText('0 failed event(s)');
    await expect(page.getByTestId('events')).toContainText(event.id);

    // Stripe is back; the operator replays it from the console.
    await faults(request, 0);
    await page.getByTestId('events').locator('tr', { hasText: event.id }).getByRole('button', { name: 'Replay' }).click();
    await expect(page).toHaveURL(/\/admin\?replayed=1&still_failing=0/);
    await expect(page.getByTestId('events')).not.toContainText(event.id);
    await page.goto('/admin/audit');
    await expect(page.getByTestId('audit')).toContainText(event.id);

    // The plan is right, for the customer and in the console.
    await customerPage.goto('/dashboard/billing');
    await expect(customerPage.getByTestId('plan-name')).toHaveText('Premium');
    await page.goto(`/admin/accounts?q=${encodeURIComponent(customer)}`);
    await expect(page.getByTestId('accounts')).toContainText('premium month active');
  } finally {
    await faults(request, 0);
    await request.post(`${emulator}/_emulator/delivery`, { data: normalDelivery });
    await request.post(`${emulator}/_emulator/delivery/flush`);
    await customerContext.close();
  }
});
