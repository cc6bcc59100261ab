import { test, expect, Page } from './fixtures';

const publicPages = ['/', '/pricing', '/pricing?interval=yearly', '/signup', '/login', '/forgot-password', '/reset-password?token=x', '/verify-email?token=x', '/account', '/dashboard/billing', '/dashboard/team', '/app', '/privacy-policy', '/terms-of-service', '/no/such/page'];
const signedInPages = ['/', '/pricing', '/dashboard/billing', '/dashboard/team', '/app', '/account'];

async function fitsTheScreen(page: Page, paths: string[], width: number) {
  for (const path of paths) {
    await page.goto(path);
    const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    expect(scroll, `${path} at ${width} px`).toBeLessThanOrEqual(inner);
  }
}

// Phones: the header wraps, nothing is wider than the screen (issue 22).
for (const width of [360, 390, 414]) {
  test(`no page scrolls sideways at ${width} px, signed out or in`, async ({ page }) => {
    await page.setViewportSize({ width, height: 800 });
    await fitsTheScreen(page, publicPages, width);
    await page.goto('/signup');
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
    await page.getByLabel('Email').fill(`mobile-${width}-${Date.now()}@example.com`);
    await page.getByLabel('Password (at least 10 characters)').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.locator('.user-email')).toBeVisible();
    await fitsTheScreen(page, signedInPages, width);
  });
}
