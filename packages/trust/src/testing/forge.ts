// Building metadata by hand, as an attacker holding some keys would, for the attack tests.

import type { ArtifactStore } from '@apx/storage';
import { addSignature, type MetadataSigner } from '../keys.js';
import { metadataBytes } from '../metadata.js';
import { type Json, unsigned } from '../repository/drafts.js';

/** Signs `signed` (TUF JSON of a role) with the given keys and returns the file's bytes. */
export async function forge(role: string, signed: Json, signers: MetadataSigner[]): Promise<Buffer> {
  const md = unsigned(role, signed);
  for (const s of signers) await addSignature(md, s);
  return metadataBytes(md);
}

/** The JSON of a stored metadata file's `signed` part. */
export async function signedOf(store: ArtifactStore, name: string): Promise<Json> {
  const bytes = await store.get(name);
  if (!bytes) throw new Error(`${name} not in store`);
  return (JSON.parse(bytes.toString('utf8')) as { signed: Json }).signed;
}
