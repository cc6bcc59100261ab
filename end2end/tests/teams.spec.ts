import { test, expect, Page, hydrated, password, unique, verifyEmail, followMailLink } from './fixtures';
import { emulatorPort } from '../playwright.config';

// An organization from creation to seats: the owner invites a colleague by
// email (read at /dev/mail), the colleague signs up from the link and joins,
// the owner buys the per-seat Team plan with 4242, a new invitation raises
// the seats, a removal lowers them, and the header switches accounts.

async function signUp(page: Page, email: string, next: string) {
  await hydrated(page, `/signup?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 10 characters)').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('navigation', { name: 'Account' })).toContainText(email);
}

async function seats(page: Page) {
  await page.goto('/dashboard/team');
  return page.getByTestId('team-seats');
}

test('an organization invites, joins, buys Team per seat, and its seats follow the members', async ({ page, browser }) => {
  const owner = unique('owner');
  const colleague = unique('colleague');
  const third = unique('third');
  const orgName = `Acme ${Date.now()}`;

  await signUp(page, owner, '/dashboard/team');
  await verifyEmail(page, owner);
  await page.goto('/dashboard/team');
  await page.getByLabel('Name', { exact: true }).fill(orgName);
  await page.getByRole('button', { name: 'Create organization' }).click();
  await expect(page.getByTestId('team-account')).toHaveText(orgName);
  await expect(page.getByTestId('team-role')).toHaveText('Your role: owner');

  // Invite the colleague; they open the mail in their own browser.
  await page.getByLabel('Email', { exact: true }).fill(colleague);
  await page.getByRole('button', { name: 'Send invitation' }).click();
  await expect(page.getByTestId('invitations')).toContainText(colleague);

  const other = await browser.newContext();
  const them = await other.newPage();
  await followMailLink(them, colleague, '/invitations/accept');
  await expect(them.getByTestId('invitation')).toContainText(`join ${orgName}`);
  await them.getByRole('link', { name: 'Create an account' }).click();
  await them.getByLabel('Email').fill(colleague);
  await them.getByLabel('Password (at least 10 characters)').fill(password);
  await them.getByRole('button', { name: 'Create account' }).click();
  await expect(them).toHaveURL(/\/invitations\/accept\?token=/);
  await them.getByRole('button', { name: `Join ${orgName}` }).click();
  await expect(them.getByTestId('team-account')).toHaveText(orgName);
  await expect(them.getByTestId('team-role')).toHaveText('Your role: member');
  // The colleague sees the organization's plan, and that billing is the admins'.
  await them.goto('/dashboard/billing');
  await expect(them.getByTestId('billed-account')).toHaveText(`Billed to ${orgName}`);
  await expect(them.getByTestId('billing-managed-by')).toBeVisible();

  // The owner buys Team, per seat: two members, two seats.
  await hydrated(page, '/pricing');
  const team = page.locator('article[data-plan="team"]');
  await expect(team.locator('.price')).toHaveText('$12 per seat / month');
  await team.getByRole('button', { name: 'Go Team Monthly' }).click();
  await expect(page).toHaveURL(new RegExp(`127\\.0\\.0\\.1:${emulatorPort}/checkout/`));
  await expect(page.locator('body')).toContainText('× 2');
  await page.getByLabel('Card number').fill('4242424242424242');
  await page.locator('form button[type="submit"]').first().click();
  await expect(page).toHaveURL(/\/dashboard\/billing$/);
  await expect(page.getByTestId('plan-name')).toHaveText('Team');
  await expect(page.getByTestId('seats')).toHaveText('2 in use, 2 paid');
  await them.reload();
  await expect(them.getByTestId('plan-name')).toHaveText('Team');

  // A new invitation takes a seat; Stripe's quantity follows.
  await page.goto('/dashboard/team');
  await page.getByLabel('Email', { exact: true }).fill(third);
  await page.getByRole('button', { name: 'Send invitation' }).click();
  await expect(await seats(page)).toHaveText('Seats: 3 in use, 3 paid');

  // Removing the colleague frees their seat.
  const row = page.getByTestId('member').filter({ hasText: colleague });
  await row.getByRole('button', { name: 'Remove' }).click();
  await expect(await seats(page)).toHaveText('Seats: 2 in use, 2 paid');
  await expect(page.getByTestId('members')).not.toContainText(colleague);

  // The header switches between the personal account and the organization.
  const switcher = page.getByTestId('account-switcher').first();
  await switcher.locator('select').selectOption({ label: 'Personal' });
  await switcher.getByRole('button', { name: 'Switch' }).click();
  await expect(page.getByTestId('team-account')).toHaveText('Personal');
  await page.goto('/dashboard/billing');
  await expect(page.getByTestId('plan-name')).not.toHaveText('Team');
  const back = page.getByTestId('account-switcher').first();
  await back.locator('select').selectOption({ label: orgName });
  await back.getByRole('button', { name: 'Switch' }).click();
  await expect(page.getByTestId('team-account')).toHaveText(orgName);
  await other.close();
});
