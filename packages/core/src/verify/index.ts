// The one verifier: every decision to run a policy artifact is made here.
export {
  type KeysTrust,
  keysTrust,
  type TrustedSigner,
  type TrustInForce,
  type TufSigner,
  type TufTrust,
  type VerificationInput,
  type VerificationMaterial,
  type VerificationPolicy,
  type VerificationState,
  type VersionAllowList,
} from './input.js';
export { compareSemver } from './semver.js';
export { signatureMaterialDigest, verifyPolicyArtifact } from './verify-policy-artifact.js';
