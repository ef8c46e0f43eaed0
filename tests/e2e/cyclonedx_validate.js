// node tests/e2e/cyclonedx_validate.js FILE: checks a CycloneDX 1.6 JSON
// document with @cyclonedx/cyclonedx-library's strict JSON validator (the
// official schema, no unknown fields). Exit 0 valid, 1 invalid (the errors on
// stderr), 2 when the validator cannot run. NODE_PATH names where
// scripts/setup installed the library.
const fs = require("fs");
const CDX = require("@cyclonedx/cyclonedx-library");

const validator = new CDX.Validation.JsonStrictValidator(CDX.Spec.Version.v1dot6);
validator.validate(fs.readFileSync(process.argv[2], "utf8")).then(
  (errors) => {
    if (errors === null) process.exit(0);
    console.error(JSON.stringify(errors, null, 2));
    process.exit(1);
  },
  (error) => {
    console.error(String(error));
    process.exit(2);
  },
);
