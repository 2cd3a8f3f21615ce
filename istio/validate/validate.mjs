// Validates Istio resources (a JSON array on stdin) against the schemas of
// Istio's CRDs, as compiled by @kubernetes-models/istio (generated from
// Istio's crd-all.gen.yaml). Prints one line per resource:
// `ok KIND NAME` or `error KIND NAME: MESSAGE`. The CRD schemas do not
// close their objects (the API server prunes unknown fields), so unknown
// fields are the typed models' job in tests/tests/istio_manifests.rs.
import * as istio from "@kubernetes-models/istio";

const MODELS = {
  "extensions.istio.io/v1alpha1/WasmPlugin": istio.extensionsIstioIo.v1alpha1.WasmPlugin,
  "security.istio.io/v1/RequestAuthentication": istio.securityIstioIo.v1.RequestAuthentication,
  "security.istio.io/v1/PeerAuthentication": istio.securityIstioIo.v1.PeerAuthentication,
  "networking.istio.io/v1alpha3/EnvoyFilter": istio.networkingIstioIo.v1alpha3.EnvoyFilter,
  "networking.istio.io/v1/ServiceEntry": istio.networkingIstioIo.v1.ServiceEntry,
  "networking.istio.io/v1/DestinationRule": istio.networkingIstioIo.v1.DestinationRule,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
for (const doc of JSON.parse(input)) {
  const label = `${doc.kind} ${doc.metadata?.name}`;
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) {
    console.log(`error ${label}: no schema for ${doc.apiVersion}`);
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`ok ${label}`);
  } catch (e) {
    console.log(`error ${label}: ${String(e.message).replace(/\n/g, " ")}`);
  }
}
