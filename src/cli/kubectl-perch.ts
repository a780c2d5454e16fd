#!/usr/bin/env node
// `kubectl perch`: the kubectl plugin for Rollouts (get, status, pause, resume, promote, abort, retry).
// The Rollout API arrives with the rollout engine; until then the plugin says so instead of guessing.
import { runMain } from './main.js';
import { UsageError } from './usage-error.js';

const USAGE = `usage: kubectl perch <get [NAME] [-w] | status NAME | pause NAME | resume NAME | promote NAME | abort NAME | retry NAME>`;

runMain('kubectl-perch', async () => {
  const [command] = process.argv.slice(2);
  if (command === undefined || command === '-h' || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  throw new UsageError(
    `"${command}" needs the Rollout API (perch.dev/v1alpha1), which this build does not have yet\n${USAGE}`,
  );
});
