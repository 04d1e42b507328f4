import { KmsError, KmsErrorCode } from './error.js';
import { redactPkcs11Uri } from './pkcs11/uri.js';

/** A key reference in cosign's syntax (cosign-formats.md §4). */
export type KeyRef =
  | { kind: 'file'; path: string }
  | { kind: 'hashivault'; keyName: string }
  | { kind: 'awskms'; endpoint: string | undefined; keyId: string }
  | { kind: 'gcpkms'; name: string }
  | { kind: 'pkcs11'; uri: string };

// The expressions cosign's providers accept (sigstore pkg/signature/kms/*).
const HASHIVAULT = /^(?:hashivault|openbao):\/\/(\w(?:[\w.-]*\w)?)$/;
const AWS_KEY =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias\/[\w/.+=@-]+|arn:aws(?:-us-gov|-cn)?:kms:[\w-]+:\d{12}:(?:key\/[\w-]+|alias\/[\w/.+=@-]+))$/;
const GCP =
  /^gcpkms:\/\/(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+(?:\/(?:cryptoKeyVersions|versions)\/[^/]+)?)$/;

function invalid(ref: string, why: string): KmsError {
  return new KmsError(KmsErrorCode.KEY_REF_INVALID, `invalid key reference ${ref}: ${why}`, {
    hint: 'use a key file, hashivault://KEY, awskms://[ENDPOINT]/KEY-ID|alias/NAME|ARN, gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K or pkcs11:...',
  });
}

/** Tells a key file from a KMS or HSM reference, by cosign's rules. */
export function parseKeyRef(ref: string): KeyRef {
  if (ref.startsWith('hashivault://') || ref.startsWith('openbao://')) {
    const m = HASHIVAULT.exec(ref);
    if (!m) throw invalid(ref, 'the key name must be letters, digits, ".", "_" or "-" (no slashes)');
    return { kind: 'hashivault', keyName: m[1] as string };
  }
  if (ref.startsWith('awskms://')) {
    const rest = ref.slice('awskms://'.length);
    const slash = rest.indexOf('/');
    if (slash < 0) throw invalid(ref, 'expected awskms://[ENDPOINT]/KEY');
    const endpoint = rest.slice(0, slash);
    const keyId = rest.slice(slash + 1);
    if (!AWS_KEY.test(keyId)) throw invalid(ref, `${keyId} is not a key id, alias/NAME or ARN`);
    return { kind: 'awskms', endpoint: endpoint === '' ? undefined : endpoint, keyId };
  }
  if (ref.startsWith('gcpkms://')) {
    const m = GCP.exec(ref);
    if (!m) throw invalid(ref, 'expected gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]');
    return { kind: 'gcpkms', name: m[1] as string };
  }
  if (ref.startsWith('pkcs11:')) return { kind: 'pkcs11', uri: ref };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) throw invalid(ref, 'unsupported scheme');
  return { kind: 'file', path: ref };
}

/**
 * A key reference as it may be shown, logged or audited: a PKCS#11 URI without its PIN
 * (pin-value, however spelled), a URL without credentials in its userinfo.
 */
export function redactKeyRef(ref: string): string {
  if (ref.startsWith('pkcs11:')) return redactPkcs11Uri(ref);
  return ref.replace(/\/\/[^/@]*@/, '//[REDACTED]@');
}

/** True when the reference names a key held by a KMS or HSM (not a file). */
export function isKmsRef(keyRef: string): boolean {
  return parseKeyRef(keyRef).kind !== 'file';
}
