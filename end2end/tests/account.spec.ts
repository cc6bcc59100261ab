import { test, expect, Page, followMailLink, verifyEmail } from './fixtures';

// The account's email flows, with mail read where development keeps it (/dev/mail).

const password = 'correct horse battery';
const unique = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;

async function hydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

async function signUp(page: Page, email: string) {
  await hydrated(page, '/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
}

test('sign up, open /dev/mail, follow the link: verified, and the billing page stops asking', async ({ page }) => {
  const email = unique('verify');
  await signUp(page, email);
  await hydrated(page, '/dashboard/billing');
  await expect(page.getByTestId('verify-email')).toBeVisible();
  await verifyEmail(page, email);
  // The link works once.
  await page.reload();
  await expect(page.getByTestId('link-outcome')).toHaveText('This link has expired or was already used. Ask for a new one.');
  await hydrated(page, '/dashboard/billing');
  await expect(page.getByTestId('plan-name')).toHaveText('Free');
  await expect(page.getByTestId('verify-email')).toHaveCount(0);
  await hydrated(page, '/account');
  await expect(page.getByTestId('account-email')).toHaveText(`${email} (confirmed)`);
});

test('before the address is confirmed, Checkout is refused with an error that stays until closed', async ({ page }) => {
  const email = unique('unverified');
  await signUp(page, email);
  await hydrated(page, '/pricing');
  await page.locator('article[data-plan="premium"]').getByRole('button', { name: 'Go Premium Monthly' }).click();
  const toast = page.locator('.toast[data-kind="error"]');
  await expect(toast).toContainText('Confirm your email address first');
  // Longer than a success toast lives (5 s): errors stay.
  await page.waitForTimeout(6000);
  await expect(toast).toBeVisible();
  await toast.getByRole('button', { name: 'Dismiss' }).click();
  await expect(toast).toHaveCount(0);
  await verifyEmail(page, email);
  await hydrated(page, '/pricing');
  await page.locator('article[data-plan="premium"]').getByRole('button', { name: 'Go Premium Monthly' }).click();
  await expect(page).toHaveURL(/\/checkout\//);
});

test('forgot password, reset it from the mail, sign in with the new one', async ({ page }) => {
  const email = unique('reset');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await hydrated(page, '/login');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await expect(page).toHaveURL(/\/forgot-password$/);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByLabel('Email').fill(email);
  await page.getByRole('button', { name: 'Send the link' }).click();
  await expect(page.getByRole('status')).toContainText('If an account uses that address, we sent it a link');

  await followMailLink(page, email, '/reset-password');
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  const newPassword = 'a brand new passphrase';
  await page.getByLabel('New password (at least 10 characters)').fill(newPassword);
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await expect(page).toHaveURL(/\/login\?notice=password_reset$/);
  await expect(page.getByRole('status')).toContainText('Your password is changed');

  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert').first()).toHaveText('Wrong email or password.');
  await page.getByLabel('Password', { exact: true }).fill(newPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
});

test('delete an account with no subscription', async ({ page }) => {
  const email = unique('gone');
  await signUp(page, email);
  await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: email }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  await page.getByLabel('Your password, to confirm').fill(password);
  await page.getByRole('button', { name: 'Delete my account' }).click();
  await expect(page).toHaveURL(/\/account\/deleted\?subscriptions=0&customer=0$/);
  await expect(page.getByTestId('deletion-summary')).toHaveText('You had no active subscription.');
  await hydrated(page, '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert').first()).toHaveText('Wrong email or password.');
});
