// A Rekor checkpoint (a C2SP signed note) read strictly before @sigstore/verify checks its
// signature. @sigstore/verify 3.x takes the tree size and root hash from the note without
// comparing them with the inclusion proof's, reads the size with BigInt (which accepts
// "0x2e0" or " 736"), skips lines it cannot parse, and accepts a signature whose signer
// name merely matches the log's URL as a pattern ("sigst" matches any sigstore.dev log).
// Here: the note's size and root hash must be those of the inclusion proof, every line
// must be well formed, and only signatures under the log's own name (the note's origin,
// or for Rekor v1 the origin's "<name> - <tree id>" name) are kept for @sigstore/verify.
// No signature is checked here.
import type { SignedEntity } from '@sigstore/verify';
import { CoreErrorCode, VerificationError } from '../error.js';

type TlogEntry = SignedEntity['tlogEntries'][number];

const SIZE = /^(0|[1-9][0-9]*)$/;
const SIGNATURE_LINE = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/;

function invalid(why: string): VerificationError {
  return new VerificationError(CoreErrorCode.TLOG_INVALID, `transparency log entry invalid: checkpoint ${why}`, {
    hint: 'the checkpoint must be the one the log signed for this inclusion proof',
  });
}

/**
 * The entry with its checkpoint reduced to the signatures made under the log's name, after
 * the note was checked against the inclusion proof; an entry without a checkpoint as is.
 */
export function withCheckpointChecked(entry: TlogEntry): TlogEntry {
  const proof = entry.inclusionProof;
  const envelope = proof?.checkpoint?.envelope;
  if (proof === undefined || envelope === undefined) return entry;
  const split = envelope.indexOf('\n\n');
  if (split < 0 || !envelope.endsWith('\n')) throw invalid('is not a signed note (no blank line before its signatures)');
  const note = envelope.slice(0, split + 1);
  const [origin, size, root] = note.slice(0, -1).split('\n');
  if (!origin || size === undefined || root === undefined) throw invalid('has no origin, tree size and root hash lines');
  if (!SIZE.test(size)) throw invalid(`tree size ${JSON.stringify(size)} is not a decimal number`);
  const rootHash = Buffer.from(root, 'base64');
  if (rootHash.length !== 32 || rootHash.toString('base64') !== root) {
    throw invalid(`root hash ${JSON.stringify(root)} is not a base64 SHA-256 hash`);
  }
  if (!SIZE.test(proof.treeSize)) throw invalid(`inclusion proof tree size ${JSON.stringify(proof.treeSize)} is not a number`);
  if (BigInt(size) !== BigInt(proof.treeSize)) {
    throw invalid(`is for a tree of ${size} entries, the inclusion proof for one of ${proof.treeSize}`);
  }
  if (!rootHash.equals(proof.rootHash)) throw invalid("root hash is not the inclusion proof's root hash");
  const signed = envelope.slice(split + 2, -1);
  if (signed === '') throw invalid('has no signature');
  const lines = signed.split('\n');
  const signatures: string[] = [];
  for (const line of lines) {
    const m = SIGNATURE_LINE.exec(line);
    if (!m) throw invalid(`has a malformed signature line ${JSON.stringify(line.slice(0, 80))}`);
    const name = m[1] as string;
    if (name === origin || origin.startsWith(`${name} - `)) signatures.push(line);
  }
  if (signatures.length === 0) throw invalid(`has no signature under its log's name (${origin})`);
  return {
    ...entry,
    inclusionProof: { ...proof, checkpoint: { envelope: `${note}\n${signatures.join('\n')}\n` } },
  };
}
