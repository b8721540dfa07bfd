// Validates an OpenAPI document against the OpenAPI schema and its own references with swagger-parser:
// `node validate.mjs FILE` prints `valid: TITLE VERSION` and exits 0, or prints the problems and exits 1.
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  console.log(`valid: ${api.info.title} ${api.info.version} (openapi ${api.openapi})`);
} catch (e) {
  console.error(`invalid: ${e.message}`);
  process.exit(1);
}
