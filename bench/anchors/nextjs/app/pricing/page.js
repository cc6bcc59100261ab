import { PLANS } from "./plans";
import Cards from "./cards";

// Rendered on the server for every request (no static export, no cache), as
// the Leptos pages it is compared with are.
export const dynamic = "force-dynamic";

export default async function Pricing() {
  return (
    <main>
      <h1>Pricing</h1>
      <Cards plans={PLANS} />
    </main>
  );
}
