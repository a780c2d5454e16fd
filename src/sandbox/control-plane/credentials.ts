// The sandbox's credentials: bearer tokens for its users and the service-account signing key.
// kube-apiserver makes its own self-signed serving certificate; we only read it back.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SandboxUser {
  name: string;
  token: string;
  groups: string[];
}

export interface Credentials {
  admin: SandboxUser;
  controllerManager: SandboxUser;
  tokenFile: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

const token = () => randomBytes(24).toString('base64url');

/** Writes the static token file and the service-account key pair into `dir`. */
export function writeCredentials(dir: string): Credentials {
  const admin: SandboxUser = { name: 'perch-admin', token: token(), groups: ['system:masters'] };
  // Its own identity, so the audit log tells its requests from the admin's.
  const controllerManager: SandboxUser = {
    name: 'system:kube-controller-manager',
    token: token(),
    groups: ['system:masters'],
  };
  const tokenFile = join(dir, 'tokens.csv');
  const line = (u: SandboxUser, uid: number) => `${u.token},${u.name},${uid},"${u.groups.join(',')}"`;
  writeFileSync(tokenFile, `${line(admin, 1)}\n${line(controllerManager, 2)}\n`, { mode: 0o600 });

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const serviceAccountKey = join(dir, 'service-account.key');
  const serviceAccountPub = join(dir, 'service-account.pub');
  writeFileSync(serviceAccountKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(serviceAccountPub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { admin, controllerManager, tokenFile, serviceAccountKey, serviceAccountPub };
}
