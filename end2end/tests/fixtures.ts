import { test as base, expect, Page } from '@playwright/test';

export { expect };
export type { Page, APIRequestContext } from '@playwright/test';

/**
 * Network answers the tests provoke and assert on themselves (a 401 for a signed-out
 * click, a 404 page, a declined card's 402): the console reports each as an error.
 */
const EXPECTED_STATUS = /^Failed to load resource: the server responded with a status of 4\d\d/;

/**
 * The test, with every page it opens watched: a Content-Security-Policy violation
 * (the `securitypolicyviolation` event), an uncaught page error, or a console error
 * other than a 4xx answer fails it after its last step. Automatic: every spec that
 * imports `test` from here is watched on every page, including Stripe's (the
 * emulator's) hosted pages and the return from them.
 */
export const test = base.extend<{ pageProblems: string[] }>({
  pageProblems: [
    async ({ context }, use) => {
      const problems: string[] = [];
      const watch = (page: Page) => {
        page.on('console', (msg) => {
          if (msg.type() === 'error' && !EXPECTED_STATUS.test(msg.text())) {
            problems.push(`console error on ${page.url()}: ${msg.text()}`);
          }
        });
        page.on('pageerror', (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
      };
      context.pages().forEach(watch);
      context.on('page', watch);
      await context.exposeBinding('__reportCspViolation', ({ page }, text: string) => {
        problems.push(`CSP violation on ${page.url()}: ${text}`);
      });
      await context.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (event) => {
          const report = (window as unknown as { __reportCspViolation: (t: string) => void }).__reportCspViolation;
          report(`${event.effectiveDirective} blocked ${event.blockedURI || 'inline'}`);
        });
      });
      await use(problems);
      expect(problems, 'console errors, page errors or CSP violations').toEqual([]);
    },
    { auto: true },
  ],
});

/**
 * Follows the newest link to `path` (e.g. `/verify-email`) mailed to `email`, as
 * the person would: in development the app keeps its mail at /dev/mail.
 */
export async function followMailLink(page: Page, email: string, path: string) {
  await page.goto('/dev/mail');
  const mail = page.locator(`article[data-to="${email}"]`).filter({ has: page.locator(`a[href*="${path}?token="]`) }).first();
  await mail.locator(`a[href*="${path}?token="]`).click();
  await expect(page).toHaveURL(new RegExp(`${path}\\?token=`));
}

/** Confirms `email`'s address through the link its sign-up mailed. */
export async function verifyEmail(page: Page, email: string) {
  await followMailLink(page, email, '/verify-email');
  await expect(page.getByTestId('link-outcome')).toHaveText(`Thank you: ${email} is confirmed.`);
}

export const password = 'correct horse battery';
export const unique = (name: string) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;

/** Opens `path` and waits until its islands are live. */
export async function hydrated(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}
