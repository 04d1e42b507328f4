import { type AttestationRequirements, attestationRequirementsJson, parseAttestationRequirements } from '@apx/core';
import { type CommandSpec, flagBool, flagString, UsageError } from '../../command.js';
import {
  auditChange,
  commitChange,
  ENV_FLAG,
  environmentFlag,
  flagList,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  report,
  STORE_FLAG,
  withTrustStore,
} from './shared.js';

const CONDITION_FLAGS = ['provenance', 'sbom', 'builder-id', 'source-repo', 'compiler-min', 'deny-component'];

export const trustRequireCommand: CommandSpec = {
  name: 'trust require',
  summary:
    "Set what an environment requires of artifacts' attestations: SBOM, provenance, builders, sources, compiler floor, denied components.",
  usage:
    '--env ENV ([--provenance] [--sbom] [--builder-id ID]... [--source-repo URL]... [--compiler-min VERSION] [--deny-component PURL]... | --none) --key REF... [--store URL] [--json]',
  details: `Replaces ENV's attestation policy (apx.attestations in ENV's role) with exactly what the flags
say; workers of ENV then refuse to load an artifact whose attestations (written by apx compile
beside it: .wasm.provenance.sigstore.json, .wasm.sbom.sigstore.json) are missing
(ATTESTATION_MISSING), not signed by a signer ENV trusts or not about these bytes
(ATTESTATION_INVALID), or outside the conditions (ATTESTATION_POLICY_VIOLATION):
  --provenance            require SLSA provenance v1
  --sbom                  require a CycloneDX SBOM
  --builder-id ID         the provenance's builder id must be one of these (implies --provenance)
  --source-repo URL       its source repository must be one of these (implies --provenance)
  --compiler-min VERSION  the compiler the signed binding names (apx-policy/X.Y.Z) is at least VERSION
  --deny-component PURL   no SBOM component may have this package URL; without @version, any version
                          (implies --sbom)
--none removes every requirement. Signed like any change of ENV's role: --key needs ENV's approver
keys (a threshold publishes, fewer stage it) and the snapshot and timestamp keys.
docs/security-model.md, "Attestations".`,
  flags: [
    ENV_FLAG,
    { name: 'provenance', type: 'boolean', description: 'Require a provenance attestation (SLSA v1).' },
    { name: 'sbom', type: 'boolean', description: 'Require an SBOM attestation (CycloneDX).' },
    { name: 'builder-id', type: 'string', value: 'ID', multiple: true, description: 'An allowed builder id (repeatable).' },
    {
      name: 'source-repo',
      type: 'string',
      value: 'URL',
      multiple: true,
      description: 'An allowed source repository (repeatable).',
    },
    { name: 'compiler-min', type: 'string', value: 'VERSION', description: 'The lowest apx-policy compiler version accepted.' },
    {
      name: 'deny-component',
      type: 'string',
      value: 'PURL',
      multiple: true,
      description: 'A package URL no SBOM component may have, e.g. pkg:npm/wabt@1.0.38 (repeatable).',
    },
    { name: 'none', type: 'boolean', description: 'Require nothing (remove the policy).' },
    KEY_FLAG,
    STORE_FLAG,
    JSON_FLAG,
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const env = environmentFlag(args);
    const none = flagBool(args, 'none');
    const given = CONDITION_FLAGS.filter((f) => args.flags[f] !== undefined);
    if (none && given.length > 0) throw new UsageError(`--none and --${given[0]} exclude each other`);
    if (!none && given.length === 0) {
      throw new UsageError(
        'say what to require: --provenance, --sbom, --builder-id, --source-repo, --compiler-min, --deny-component (or --none)',
      );
    }
    const json = {
      provenance: flagBool(args, 'provenance'),
      sbom: flagBool(args, 'sbom'),
      builderIds: flagList(args, 'builder-id'),
      sourceRepositories: flagList(args, 'source-repo'),
      ...(flagString(args, 'compiler-min') === undefined ? {} : { compilerMin: flagString(args, 'compiler-min') }),
      denyComponents: flagList(args, 'deny-component'),
    };
    // Checked as workers will read it: a value they would refuse is refused here, in one line.
    const requirements: AttestationRequirements = parseAttestationRequirements(json, 'from the command line');
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const { result } = await commitChange(ctx, store, {
        signers,
        retry: { role: env },
        apply: (repo) => repo.requireAttestations(env, requirements),
      });
      await auditChange(ctx, signers, result, {
        operation: 'trust require',
        environment: env,
        reason: JSON.stringify(attestationRequirementsJson(requirements)),
      });
      report(ctx, args, `${none ? 'removed the attestation policy of' : 'set the attestation policy of'} ${env}`, result, {
        environment: env,
        attestations: attestationRequirementsJson(requirements),
      });
      return 0;
    });
  },
};
