// The one verifier: every decision to run a policy artifact is made here.
export type {
  KeysTrust,
  TrustInForce,
  TufSigner,
  TufTrust,
  VerificationInput,
  VerificationMaterial,
  VerificationPolicy,
  VerificationState,
  VersionAllowList,
} from './input.js';
export { compareSemver } from './semver.js';
export { signatureMaterialDigest, verifyPolicyArtifact } from './verify-policy-artifact.js';
