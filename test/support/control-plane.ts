// One local control plane per mocha run, started by the first test that asks for it.
// Each test takes its own namespace, so tests never see each other's objects.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { auditLogFiles } from '../../src/sandbox/control-plane/kube-apiserver.js';

let shared: Promise<ControlPlane> | undefined;
let auditDir: string | undefined;
const namespaces: { kc: KubeConfig; name: string }[] = [];

/** The suite's control plane (audit log on), started on first use and stopped after the run. */
export function sharedControlPlane(): Promise<ControlPlane> {
  if (!shared) {
    auditDir = mkdtempSync(join(tmpdir(), 'perch-test-audit-'));
    shared = startControlPlane({
      auditLog: join(auditDir, 'audit.log'),
      progress: (line) => process.stderr.write(`  [control plane] ${line}\n`),
    });
  }
  return shared;
}

/** The suite's audit log (JSON lines, Metadata level and route writes with their body, one event per finished request). */
export async function sharedAuditLog(): Promise<string> {
  const cp = await sharedControlPlane();
  if (!cp.auditLog) throw new Error('the shared control plane runs without an audit log');
  return cp.auditLog;
}

/** One request as the API server's audit log tells it. */
export interface AuditEvent {
  stage: string;
  verb: string;
  userAgent?: string;
  requestURI: string;
  /** RFC 3339 with microseconds: the API server's own clock, the order requests reached it. */
  requestReceivedTimestamp: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  /** The request body, where the audit policy's level for the request is Request or above. */
  requestObject?: unknown;
}

/**
 * Every complete line of an audit log, oldest first: the backups kube-apiserver rotated out at 100 MB
 * (kubernetes#136478), then the live file, whose last line may still be being written.
 */
export function readAuditLog(file: string): AuditEvent[] {
  const events: AuditEvent[] = [];
  for (const part of auditLogFiles(file)) {
    if (!existsSync(part)) continue;
    for (const line of readFileSync(part, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        events.push(JSON.parse(line) as AuditEvent);
      } catch {
        // A line the API server is still writing.
      }
    }
  }
  return events;
}

export async function stopSharedControlPlane(): Promise<void> {
  if (!shared) return;
  const cp = await shared.catch(() => undefined);
  shared = undefined;
  await cp?.stop();
  // The audit log's folder is the suite's own; the control plane only wrote into it.
  if (auditDir) rmSync(auditDir, { recursive: true, force: true });
  auditDir = undefined;
}

/** A fresh namespace named after the test; deleted (without waiting) when the run ends. */
export async function testNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const slug = prefix
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  const name = `${slug}-${randomBytes(3).toString('hex')}`;
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  namespaces.push({ kc, name });
  return name;
}

export async function deleteTestNamespaces(): Promise<void> {
  for (const { kc, name } of namespaces.splice(0)) {
    await kc
      .makeApiClient(CoreV1Api)
      .deleteNamespace({ name })
      .catch(() => undefined);
  }
}
