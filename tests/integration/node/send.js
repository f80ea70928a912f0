// Sends one customer's events to crmhub with a real Node SDK, as a shop's server would.
// usage: node send.js <segment|rudderstack> <hub url> <write key> <user id>
"use strict";
const [sdk, hub, writeKey, user] = process.argv.slice(2);

function client() {
  if (sdk === "segment") {
    const { Analytics } = require("@segment/analytics-node");
    const analytics = new Analytics({ writeKey, host: hub, maxEventsInBatch: 10, flushInterval: 200 });
    analytics.on("error", (err) => { console.error(err); process.exitCode = 1; });
    return { send: analytics, close: () => analytics.closeAndFlush({ timeout: 10000 }) };
  }
  const Analytics = require("@rudderstack/rudder-sdk-node");
  const analytics = new Analytics(writeKey, { dataPlaneUrl: hub, flushAt: 10, flushInterval: 200, maxRetries: 1,
    errorHandler: (err) => { console.error(err); process.exitCode = 1; } });
  return { send: analytics, close: () => analytics.flush() };
}

async function main() {
  const { send, close } = client();
  send.identify({ userId: user, traits: { email: `${user}@example.com`, plan: "gold", seats: 3 } });
  send.group({ userId: user, groupId: `org-${user}`, traits: { name: "Leeds Runners", plan: "club" } });
  send.track({ userId: user, event: "Order Completed",
    properties: { order_id: `o-${user}`, total: 30, currency: "EUR", products: [{ product_id: "p-1", price: 30 }] } });
  await close();
}

main().catch((err) => { console.error(err); process.exit(1); });
