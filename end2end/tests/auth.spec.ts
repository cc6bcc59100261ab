import { test, expect, Page } from './fixtures';

const password = 'correct horse battery';
const unique = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;

async function hydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

async function signUp(page: Page, email: string, pass = password) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(pass);
  await page.getByRole('button', { name: 'Create account' }).click();
}

async function signIn(page: Page, email: string, pass = password) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(pass);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('sign up, sign out and sign in again, with the email in the header', async ({ page, context }) => {
  const email = unique('ada');
  await hydrated(page, '/signup');
  await signUp(page, email);
  const menu = page.getByRole('navigation', { name: 'Account' });
  await expect(menu).toContainText(email);
  await expect(page).toHaveURL(/\/$/);

  const cookie = (await context.cookies()).find((c) => c.name === 'billing_session');
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe('Lax');

  await menu.getByRole('button', { name: 'Sign out' }).click();
  await expect(menu.getByRole('link', { name: 'Sign in' })).toBeVisible();

  await hydrated(page, '/login?next=/%3Ffrom%3Dlogin');
  await signIn(page, email, 'wrong horse battery');
  await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
  await signIn(page, email);
  await expect(menu).toContainText(email);
  await expect(page).toHaveURL(/\/\?from=login$/);
});

test('sign-up explains what is wrong', async ({ page }) => {
  const email = unique('grace');
  await hydrated(page, '/signup');
  await signUp(page, email, 'short');
  await expect(page.getByRole('alert')).toHaveText('Use at least 10 characters for your password.');
  await signUp(page, email);
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await hydrated(page, '/signup');
  await signUp(page, email.toUpperCase());
  await expect(page.getByRole('alert')).toHaveText('An account with this email already exists. Sign in instead.');
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the sign-up form still works as a plain form post', async ({ page }) => {
    const email = unique('nojs');
    await page.goto('/signup');
    await signUp(page, email);
    await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
  });

  test('a refused sign-in comes back with its message', async ({ page }) => {
    await page.goto('/login');
    await signIn(page, unique('nobody'), 'wrong horse battery');
    await expect(page).toHaveURL(/\/login\?.*__err=/);
    await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
  });
});
