// The guide's three plans, as the bare Leptos page (examples/bare_page.rs) has them.
export const PLANS = [
  { name: "Free", monthly: 0, yearly: 0 },
  { name: "Standard Pack", monthly: 2900, yearly: 2900 },
  { name: "Premium", monthly: 4900, yearly: 49000 },
];
