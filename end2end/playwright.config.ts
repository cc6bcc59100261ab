import { defineConfig } from '@playwright/test';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';

// The app is started from its built binary with a throw-away SQLite file, on its own
// port so a developer's `serve` on :3000 does not interfere. `bootstrap.sh test`
// builds the app and sets APP_BIN; running `npx playwright test` by hand after
// `cargo leptos build` works too.
const root = path.resolve(__dirname, '..');
const port = Number(process.env.E2E_PORT ?? 3100);
// The app starts its in-process Stripe emulator here (not on the development 12111).
export const emulatorPort = Number(process.env.E2E_EMULATOR_PORT ?? 12112);
export const appBin = process.env.APP_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug', 'billing-starter');
// The config module is loaded again in each worker: the directory is made once
// (by the main process) and handed to the workers through the environment.
const dataDir = process.env.E2E_DATA_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'billing-e2e-'));
process.env.E2E_DATA_DIR = dataDir;
/** The app's database, for operator commands a spec runs through the binary (`users promote`). */
export const databaseUrl = `sqlite://${dataDir}/e2e.db?mode=rwc`;

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // Chromium's background services try to reach Google; this machine has no
      // route out, so they are switched off to keep runs fast and quiet.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
  webServer: {
    command: `"${appBin}" serve`,
    cwd: root,
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      APP_ENV: 'development',
      APP_URL: `http://127.0.0.1:${port}`,
      DATABASE_URL: databaseUrl,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: path.join(root, 'target', 'site'),
      STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}/`,
      STRIPE_EMULATOR_SNAPSHOT: path.join(dataDir, 'stripe-emulator.json'),
      RUST_LOG: 'warn',
      // The suite signs up a new user per test, all from 127.0.0.1.
      SIGN_UP_LIMIT_PER_IP: '1000',
    },
  },
});
