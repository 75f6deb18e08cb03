// workbox-background-sync: the IndexedDB request queue alone (no HTTP client, no validation).
import { Queue } from "workbox-background-sync";

const queue = new Queue("bench");
export const track = (body) => queue.pushRequest({ request: new Request("/api/autumn/v1/balances.track", { method: "POST", body }) });
