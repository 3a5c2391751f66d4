// Validate prometheus-operator objects against the CRD schemas that
// @kubernetes-models/prometheus-operator compiles from the upstream CRDs.
//   node validate.mjs < docs.json        (a JSON array of objects)
// Prints one line per object; exits 1 if any is invalid or of a kind it cannot check.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const models = { ServiceMonitor, PrometheusRule };
const docs = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const doc of docs) {
  const where = `${doc.kind}/${doc.metadata?.name}`;
  const Model = doc.apiVersion === "monitoring.coreos.com/v1" ? models[doc.kind] : undefined;
  if (!Model) {
    console.log(`UNKNOWN ${where} (${doc.apiVersion})`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${where}`);
  } catch (err) {
    console.log(`INVALID ${where}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
