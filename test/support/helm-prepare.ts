// `node dist/test/support/helm-prepare.js`: builds the pinned Helm once (progress on stderr) and prints
// the binary's path, so ./run can build it before the suite, as `perch sandbox prepare` does the control plane.
import { prepareHelm } from './helm.js';

try {
  const helm = await prepareHelm((line) => process.stderr.write(`${line}\n`));
  process.stdout.write(`${helm.binary}\n`);
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
}
