// Production defaults: nothing tuned for or against the benchmark.
const config = { poweredByHeader: false };
export default config;
