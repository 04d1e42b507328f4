// Signing: key custody behind one Signer interface, cosign-compatible key files and outputs.

export type { Witness } from '@sigstore/sign';
export { type ArtifactSignature, type BindingClaims, signArtifact } from './artifact.js';
export { type SignedStatement, signStatement } from './attestation.js';
export { AuditLog, appendAuditLine, type SigningRecord } from './audit.js';
export { type BlobSignature, publicKeyPem, type SignOptions, signBlob } from './blob.js';
export { SignError, SignErrorCode } from './error.js';
export { type AtomicWriteOptions, writeFileAtomic } from './fs/atomic-write.js';
export {
  checkIdentityToken,
  isKeyless,
  KeylessSigner,
  type KeylessSignerOptions,
  PUBLIC_FULCIO_URL,
  PUBLIC_REKOR_URL,
  rekorWitness,
  type SigningIdentity,
} from './keyless.js';
export {
  COSIGN_KEY_LABEL,
  DEFAULT_SCRYPT_N,
  decryptEnvelope,
  decryptPrivateKey,
  encryptPrivateKey,
  encryptToEnvelope,
  SIGSTORE_KEY_LABEL,
} from './keys/encrypted-key.js';
export { type EncodedKeyPair, encodeKeyPair, generateKeyPair, parseImportableKey } from './keys/key-pair.js';
export { FileSigner, type PasswordProvider } from './signer/file-signer.js';
export type { SignatureResult, Signer } from './signer/signer.js';
export { type SigningServices, signingServicesFromConfig } from './signing-config.js';
export { TimestampWitness, type TimestampWitnessOptions, timeStampRequest } from './timestamp.js';
export { witnessBundle } from './witness.js';
