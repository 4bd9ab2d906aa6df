// Parse each AsyncAPI document named on the command line with the official parser
// (@asyncapi/parser) and print, per file, its diagnostics as JSON: errors (severity 0) and
// warnings (severity 1). Exit status 1 when any document has an error.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"));
  const show = (d) => ({ code: d.code, message: d.message, path: d.path.join(".") });
  const errors = diagnostics.filter((d) => d.severity === 0).map(show);
  const warnings = diagnostics.filter((d) => d.severity === 1).map(show);
  if (errors.length > 0 || document === undefined) failed = true;
  console.log(JSON.stringify({ file, parsed: document !== undefined, errors, warnings }));
}
process.exit(failed ? 1 : 0);
