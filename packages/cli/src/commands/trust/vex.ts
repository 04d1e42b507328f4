import { vexAdvisories } from '@apx/core';
import { type CommandSpec, flagBool, UsageError } from '../../command.js';
import { CliError, CliErrorCode } from '../../error.js';
import { readInput } from '../../io.js';
import {
  auditChange,
  commitChange,
  ENV_FLAG,
  environmentFlag,
  JSON_FLAG,
  KEY_FLAG,
  openSigners,
  report,
  STORE_FLAG,
  withTrustStore,
} from './shared.js';

export const trustVexCommand: CommandSpec = {
  name: 'trust vex',
  summary: 'The VEX gate: refuse (and unload) artifacts whose SBOM names a component a CycloneDX VEX document lists as affected.',
  usage: '--env ENV (FILE | --none) --key REF... [--store URL] [--json]',
  details: `Reads FILE, a CycloneDX VEX document (JSON), and puts into ENV's role the component versions
it lists as affected and not resolved: each vulnerability whose analysis state is exploitable or
in_triage (or has no analysis), each affects[].ref (a package URL with a version, or the bom-ref of
a component of the document that has one; affects[].versions lists exact affected versions; a
version range is refused). The role is signed like any change of ENV (a threshold of its
approvers publishes it): that is the document's signature. ENV's workers then require an SBOM,
refuse to load an artifact whose SBOM names an affected version (VULNERABLE_COMPONENT), and
unload one already serving when the document arrives. A new document replaces the previous one;
--none lifts the gate. Other attestation requirements (apx trust require) are kept.`,
  flags: [
    ENV_FLAG,
    { name: 'none', type: 'boolean', description: 'Remove every advisory (lift the gate).' },
    KEY_FLAG,
    STORE_FLAG,
    JSON_FLAG,
  ],
  positionals: { min: 0, max: 1, names: 'FILE (a CycloneDX VEX document, JSON)' },
  async run(ctx, args) {
    const env = environmentFlag(args);
    const file = args.positionals[0];
    const none = flagBool(args, 'none');
    if (none === (file !== undefined)) throw new UsageError('pass a VEX document FILE, or --none');
    let advisories: ReturnType<typeof vexAdvisories> = [];
    if (file !== undefined) {
      const text = (await readInput(ctx, file, 'VEX document', 'pass a CycloneDX VEX document (JSON)')).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new CliError(CliErrorCode.INPUT_UNREADABLE, `VEX document ${file} is not JSON`, {
          hint: 'pass a CycloneDX VEX document in JSON',
        });
      }
      advisories = vexAdvisories(json, file);
      if (advisories.length === 0) {
        throw new UsageError(
          `${file} lists no affected, unresolved component version: nothing to gate (use --none to lift the gate)`,
        );
      }
    }
    const signers = await openSigners(ctx, args);
    return withTrustStore(ctx, args, async (store) => {
      const { result } = await commitChange(ctx, store, {
        signers,
        retry: { role: env },
        apply: (repo) => repo.setVulnerabilities(env, advisories),
      });
      await auditChange(ctx, signers, result, {
        operation: 'trust vex',
        environment: env,
        reason: advisories.map((a) => `${a.id} ${a.purl}`).join(', ') || 'gate lifted',
      });
      const line = none
        ? `lifted the VEX gate of ${env}`
        : `${env} refuses ${advisories.length} affected component version(s): ${advisories.map((a) => `${a.purl} (${a.id})`).join(', ')}`;
      report(ctx, args, line, result, { environment: env, vulnerabilities: advisories });
      return 0;
    });
  },
};
