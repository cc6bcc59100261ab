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

test('while a checkout is on its way every call to action waits, across the toggle, and a refusal gives them back', async ({ page }) => {
  const email = unique('pending');
  await signUp(page, email);
  // The post reaches the server only when the test lets it (the answer is the server's own refusal).
  let release!: () => void;
  const held = new Promise<void>((resolve) => { release = resolve; });
  await page.route('**/api/start_checkout', async (route) => { await held; await route.continue(); });
  await hydrated(page, '/pricing');
  const premium = page.locator('article[data-plan="premium"]');
  await premium.getByRole('button', { name: 'Go Premium Monthly' }).click();
  await expect(premium.getByRole('button')).toHaveText('Redirecting…');
  await expect(premium.getByRole('button')).toHaveAttribute('aria-busy', 'true');
  await expect(page.locator('article[data-plan="standard_pack"]').getByRole('button')).toBeDisabled();
  // The other interval's calls to action, swapped in meanwhile, wait too.
  await page.getByRole('radio', { name: 'Yearly' }).click();
  await expect(premium.getByRole('button', { name: 'Go Premium Yearly' })).toBeDisabled();
  release();
  await expect(page.locator('.toast[data-kind="error"]')).toContainText('Confirm your email address first');
  await expect(premium.getByRole('button', { name: 'Go Premium Yearly' })).toBeEnabled();
  await page.getByRole('radio', { name: 'Monthly' }).click();
  await expect(premium.getByRole('button', { name: 'Go Premium Monthly' })).toBeEnabled();
  await expect(premium.getByRole('button')).toHaveAttribute('aria-busy', 'false');
  // What the server disabled stays so.
  await expect(page.locator('article[data-plan="free"]').getByRole('button')).toBeDisabled();
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
