import { createHash, createPublicKey, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { endianness } from 'node:os';
import { type DigestAlgorithm, defaultDigestFor, isApxError, PublicKey, p1363ToDer } from '@apx/core';
import { KmsError, KmsErrorCode } from '../error.js';
import { importClient, type KmsKey, type KmsSignature } from '../kms-key.js';
import { type Pkcs11Env, type Pkcs11Uri, parsePkcs11Uri, readPin } from './uri.js';

type Binding = typeof import('pkcs11js');
type Library = InstanceType<Binding['PKCS11']>;
type Handle = Buffer;
type Template = Parameters<Library['C_FindObjectsInit']>[1];

// PKCS#11 3.0 values the binding (written against 2.40) does not name.
const CKK_EC_EDWARDS = 0x40;
const CKM_EDDSA = 0x1057;

// DER of the curve OIDs APX accepts (CKA_EC_PARAMS as namedCurve), with the byte length of
// their uncompressed points, to tell a raw CKA_EC_POINT from one wrapped in an OCTET STRING.
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
const POINT_BYTES: Record<string, number> = {
  [P256_PARAMS.toString('hex')]: 65,
  '06052b81040022': 97, // P-384
  '06052b81040023': 133, // P-521
};
const EC_PUBLIC_KEY_OID = Buffer.from('06072a8648ce3d0201', 'hex');
const ED25519_OID = Buffer.from('06032b6570', 'hex');
// Ed25519 keys name their curve by OID or, in PKCS#11 3.0 tokens, by PrintableString.
const ED25519_PARAMS = new Set([ED25519_OID.toString('hex'), Buffer.from('130c656477617264733235353139', 'hex').toString('hex')]);

// DigestInfo prefixes for RSASSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1): CKM_RSA_PKCS pads
// whatever it is given, so the digest is wrapped here and only the digest leaves the process.
const DIGEST_INFO: Record<DigestAlgorithm, Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

/** Large enough for any signature APX accepts (RSA-4096 is 512 bytes). */
const SIGNATURE_BUFFER_BYTES = 1024;

const HINTS: Record<string, string> = {
  CKR_PIN_INCORRECT: 'check COSIGN_PKCS11_PIN or pin-value in the URI (the user PIN, not the SO PIN)',
  CKR_PIN_LEN_RANGE: 'check COSIGN_PKCS11_PIN or pin-value in the URI (the user PIN, not the SO PIN)',
  CKR_PIN_LOCKED: 'the user PIN is locked after too many failures; the token security officer must unlock it',
  CKR_PIN_EXPIRED: 'the user PIN has expired; change it with the token tools',
  CKR_USER_PIN_NOT_INITIALIZED: 'the token has no user PIN yet; initialise it with the token tools',
  CKR_TOKEN_NOT_PRESENT: 'insert the token',
  CKR_DEVICE_REMOVED: 'insert the token',
  CKR_KEY_FUNCTION_NOT_PERMITTED: 'the key does not allow signing (CKA_SIGN is false); use a signing key',
  CKR_MECHANISM_INVALID: 'the token cannot sign with this key type; use an ECDSA P-256 key',
  CKR_USER_NOT_LOGGED_IN: 'give the user PIN in COSIGN_PKCS11_PIN or pin-value',
  CKR_TEMPLATE_INCONSISTENT: 'the token refused the key template; it may not support ECDSA P-256 token keys',
};

/** The PKCS#11 return code (CKR_...) of a binding failure, or its first line. */
function reason(err: unknown): string {
  const message = String((err as Error)?.message ?? err);
  return /\bCKR_[A-Z0-9_]+/.exec(message)?.[0] ?? message.split('\n', 1)[0] ?? 'unknown error';
}

function isCkr(err: unknown, ckr: string): boolean {
  return reason(err) === ckr;
}

/** One line for a failed call: `<ref>: <what> failed: CKR_...`, with a hint for the usual causes. */
function failed(ref: string, what: string, err: unknown, hint?: string): KmsError {
  if (err instanceof KmsError) return err;
  const why = reason(err);
  return new KmsError(KmsErrorCode.KMS_FAILED, `${ref}: ${what} failed: ${why}`, {
    hint: hint ?? HINTS[why] ?? 'see the PKCS#11 return code in the token documentation',
    cause: err,
  });
}

/** A CK_ULONG as the module wrote it (native byte order; 4 bytes on some platforms). */
function ulong(buf: Buffer): bigint {
  const le = endianness() === 'LE';
  if (buf.length === 8) return le ? buf.readBigUInt64LE() : buf.readBigUInt64BE();
  if (buf.length === 4) return BigInt(le ? buf.readUInt32LE() : buf.readUInt32BE());
  throw new Error(`unexpected CK_ULONG of ${buf.length} bytes`);
}

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.of(n) : n < 0x100 ? Buffer.of(0x81, n) : Buffer.of(0x82, n >> 8, n & 0xff);
  return Buffer.concat([Buffer.of(tag), length, content]);
}

/** The content of a DER OCTET STRING that spans all of `buf`, or undefined. */
function octetString(buf: Buffer): Buffer | undefined {
  if (buf[0] !== 0x04 || buf.length < 2) return undefined;
  const first = buf[1] as number;
  let start = 2;
  let length = first;
  if (first & 0x80) {
    const bytes = first & 0x7f;
    if (bytes === 0 || bytes > 2 || buf.length < 2 + bytes) return undefined;
    length = buf.readUIntBE(2, bytes);
    start = 2 + bytes;
  }
  return start + length === buf.length ? buf.subarray(start) : undefined;
}

/**
 * CKA_EC_POINT is specified as a DER OCTET STRING around the point, but some modules return
 * the bare point; when the curve is known its point length tells the two apart.
 */
function ecPoint(raw: Buffer, params: Buffer): Buffer {
  const size = POINT_BYTES[params.toString('hex')];
  if (size !== undefined && raw.length === size && raw[0] === 0x04) return raw;
  return octetString(raw) ?? raw;
}

function spki(algorithm: Buffer, point: Buffer): KeyObject {
  const key = der(0x30, Buffer.concat([der(0x30, algorithm), der(0x03, Buffer.concat([Buffer.of(0), point]))]));
  return createPublicKey({ key, format: 'der', type: 'spki' });
}

type KeyKind = 'ec' | 'rsa' | 'ed25519';

/**
 * A PKCS#11 module loaded into the process. Initialisation and login are per process (per
 * application, in PKCS#11's words), not per key: the module is finalised when the last key
 * using it closes, and a token logged out when the last key on it closes.
 */
interface Module {
  readonly binding: Binding;
  readonly lib: Library;
  readonly path: string;
  users: number;
  /** False when something else in the process initialised the module: not ours to finalise. */
  readonly ownsInit: boolean;
  /** Open keys per slot, which share the token's login. */
  readonly logins: Map<bigint, number>;
}

const modules = new Map<string, Module>();

async function loadBinding(): Promise<Binding> {
  try {
    // pkcs11js is CommonJS: its exports arrive as the default export.
    const mod = await importClient<{ default: Binding }>('pkcs11js', 'pkcs11:');
    return mod.default;
  } catch (err) {
    // Installed without its install script (npm skips scripts not in allowScripts), the
    // package is there but its native addon is not: "not installed" would mislead.
    const cause = err instanceof KmsError ? (err.cause as Error | undefined) : undefined;
    if (cause?.message?.includes('pkcs11.node')) {
      throw new KmsError(KmsErrorCode.CLIENT_MISSING, 'pkcs11: keys need the native addon of pkcs11js, which was not built', {
        hint: 'allow its install script (npm install-scripts approve pkcs11js) and run npm rebuild pkcs11js; it needs a C++ toolchain',
        cause,
      });
    }
    throw err;
  }
}

function acquireModule(binding: Binding, path: string, ref: string): Module {
  const loaded = modules.get(path);
  if (loaded) {
    loaded.users++;
    return loaded;
  }
  if (!existsSync(path)) {
    throw new KmsError(KmsErrorCode.KMS_FAILED, `${ref}: PKCS#11 module ${path} not found`, {
      hint: 'install the token vendor module, or fix module-path in the URI or COSIGN_PKCS11_MODULE_PATH',
    });
  }
  const lib = new binding.PKCS11();
  try {
    lib.load(path);
  } catch (err) {
    throw new KmsError(KmsErrorCode.KMS_FAILED, `${ref}: cannot load PKCS#11 module ${path}: ${reason(err)}`, {
      hint: 'module-path must name the PKCS#11 shared library of the token, built for this platform',
      cause: err,
    });
  }
  let ownsInit = true;
  try {
    // OS locking: the binding's asynchronous calls run on libuv's thread pool.
    lib.C_Initialize({ flags: binding.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (isCkr(err, 'CKR_CRYPTOKI_ALREADY_INITIALIZED')) ownsInit = false;
    else {
      lib.close();
      throw failed(ref, `initialising PKCS#11 module ${path}`, err, "check the module's configuration (SoftHSM: SOFTHSM2_CONF)");
    }
  }
  const module: Module = { binding, lib, path, users: 1, ownsInit, logins: new Map() };
  modules.set(path, module);
  return module;
}

function releaseModule(module: Module): void {
  module.users--;
  if (module.users > 0) return;
  modules.delete(module.path);
  // Best effort: the keys are gone and a failure to finalise leaves nothing to act on.
  try {
    if (module.ownsInit) module.lib.C_Finalize();
  } catch {}
  try {
    module.lib.close();
  } catch {}
}

interface TokenSlot {
  slot: Handle;
  slotId: bigint;
  label: string;
  flags: number;
}

/** The slot whose token the URI names by label and/or slot id; one, or a one-line refusal. */
function findToken(module: Module, uri: Pkcs11Uri): TokenSlot {
  const { binding, lib } = module;
  let tokens: TokenSlot[];
  try {
    tokens = lib.C_GetSlotList(true).map((slot) => {
      const info = lib.C_GetTokenInfo(slot);
      // Token labels are blank-padded to 32 bytes.
      return { slot, slotId: ulong(slot), label: info.label.replace(/[ \0]+$/, ''), flags: info.flags };
    });
  } catch (err) {
    throw failed(uri.redacted, 'listing the tokens', err);
  }
  const initialised = tokens.filter((t) => t.flags & binding.CKF_TOKEN_INITIALIZED);
  const matches = initialised.filter(
    (t) => (uri.token === undefined || t.label === uri.token) && (uri.slotId === undefined || t.slotId === uri.slotId),
  );
  const wanted = [uri.token !== undefined ? `token "${uri.token}"` : '', uri.slotId !== undefined ? `slot ${uri.slotId}` : '']
    .filter(Boolean)
    .join(' in ');
  if (matches.length === 0) {
    const seen = initialised.map((t) => `"${t.label}" (slot ${t.slotId})`).join(', ');
    throw new KmsError(
      KmsErrorCode.KMS_FAILED,
      `${uri.redacted}: ${wanted} not found in ${module.path}; tokens seen: ${seen || 'none'}`,
      {
        hint: seen
          ? 'name one of the tokens seen in token= (or slot-id=)'
          : 'initialise a token (SoftHSM: softhsm2-util --init-token), or check the module configuration',
      },
    );
  }
  if (matches.length > 1) {
    throw new KmsError(
      KmsErrorCode.KMS_FAILED,
      `${uri.redacted}: ${matches.length} tokens match ${wanted} (slots ${matches.map((t) => t.slotId).join(', ')})`,
      { hint: 'add slot-id= to choose one' },
    );
  }
  return matches[0] as TokenSlot;
}

function findObjects(lib: Library, session: Handle, template: Template): Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    const found: Handle[] = [];
    for (let batch = lib.C_FindObjects(session, 32); batch.length > 0; batch = lib.C_FindObjects(session, 32)) {
      found.push(...batch);
    }
    return found;
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

function attribute(lib: Library, session: Handle, object: Handle, type: number): Buffer {
  const [result] = lib.C_GetAttributeValue(session, object, [{ type }]);
  if (!result) throw new Error(`attribute 0x${type.toString(16)} missing`);
  return result.value;
}

function describeObject(module: Module, session: Handle, object: Handle): string {
  const { binding, lib } = module;
  const [label, id] = lib.C_GetAttributeValue(session, object, [{ type: binding.CKA_LABEL }, { type: binding.CKA_ID }]);
  const text = label?.value.length ? `"${label.value.toString('utf8')}"` : '(no label)';
  return id?.value.length ? `${text} id=${percentHex(id.value)}` : text;
}

function percentHex(bytes: Buffer): string {
  return bytes.toString('hex').replace(/(..)/g, '%$1');
}

/** One session on the token, logged in as the user; `end()` logs out only if no other key shares the login. */
class Session {
  readonly handle: Handle;
  private readonly module: Module;
  private readonly slotId: bigint;
  private loggedIn = false;

  private constructor(module: Module, slotId: bigint, handle: Handle) {
    this.module = module;
    this.slotId = slotId;
    this.handle = handle;
  }

  static open(module: Module, token: TokenSlot, uri: Pkcs11Uri, readWrite: boolean): Session {
    const { binding, lib } = module;
    let handle: Handle;
    try {
      const flags = binding.CKF_SERIAL_SESSION | (readWrite ? binding.CKF_RW_SESSION : 0);
      handle = lib.C_OpenSession(token.slot, flags);
    } catch (err) {
      throw failed(uri.redacted, `opening a session on token "${token.label}"`, err);
    }
    const session = new Session(module, token.slotId, handle);
    try {
      session.login(token, uri);
    } catch (err) {
      session.end();
      throw err;
    }
    return session;
  }

  private login(token: TokenSlot, uri: Pkcs11Uri): void {
    const { binding, lib } = this.module;
    const pin = readPin(uri);
    const protectedPath = (token.flags & binding.CKF_PROTECTED_AUTHENTICATION_PATH) !== 0;
    if (pin === undefined && !protectedPath) {
      if (token.flags & binding.CKF_LOGIN_REQUIRED) {
        throw new KmsError(KmsErrorCode.KMS_FAILED, `${uri.redacted}: token "${token.label}" needs the user PIN`, {
          hint: 'set COSIGN_PKCS11_PIN, or add pin-value= or pin-source= to the URI',
        });
      }
      return;
    }
    try {
      // Without a PIN the token asks on its own PIN pad (protected authentication path).
      if (pin === undefined) lib.C_Login(this.handle, binding.CKU_USER);
      else lib.C_Login(this.handle, binding.CKU_USER, pin);
    } catch (err) {
      // The login is the application's, shared by its sessions: another key may hold it.
      if (!isCkr(err, 'CKR_USER_ALREADY_LOGGED_IN')) throw failed(uri.redacted, 'login', err);
    }
    this.loggedIn = true;
    this.module.logins.set(this.slotId, (this.module.logins.get(this.slotId) ?? 0) + 1);
  }

  /** Best effort: closing must not mask the error that led here, and a failure leaves nothing to do. */
  end(): void {
    const { lib, logins } = this.module;
    if (this.loggedIn) {
      this.loggedIn = false;
      const left = (logins.get(this.slotId) ?? 1) - 1;
      if (left > 0) logins.set(this.slotId, left);
      else {
        logins.delete(this.slotId);
        try {
          lib.C_Logout(this.handle);
        } catch {}
      }
    }
    try {
      lib.C_CloseSession(this.handle);
    } catch {}
  }
}

/**
 * A key on a PKCS#11 token (an HSM, a smart card, SoftHSM): the private key never leaves
 * the token. APX hashes the message and the token signs the digest (CKM_ECDSA; CKM_RSA_PKCS
 * over a DigestInfo); Ed25519 signs the message (CKM_EDDSA). The binding, pkcs11js, loads
 * only when such a key is used. A key holds one session; signatures on it are serialised,
 * since a session runs one operation at a time.
 */
export class Pkcs11Key implements KmsKey {
  /** The URI without its PIN. */
  readonly keyRef: string;
  private readonly module: Module;
  private readonly session: Session;
  private readonly privateKey: Handle;
  private readonly kind: KeyKind;
  private readonly pub: PublicKey;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(keyRef: string, module: Module, session: Session, privateKey: Handle, kind: KeyKind, pub: PublicKey) {
    this.keyRef = keyRef;
    this.module = module;
    this.session = session;
    this.privateKey = privateKey;
    this.kind = kind;
    this.pub = pub;
  }

  /** Opens the key a `pkcs11:` URI names; module path and PIN may come from COSIGN_PKCS11_*. */
  static async open(ref: string, env: Pkcs11Env): Promise<Pkcs11Key> {
    const uri = parsePkcs11Uri(ref, env);
    return Pkcs11Key.withSession(uri, false, (module, session) => {
      const privateKey = Pkcs11Key.findPrivateKey(module, session, uri);
      return Pkcs11Key.fromHandles(uri, module, session, privateKey);
    });
  }

  /**
   * `apx generate-key-pair --kms pkcs11:...;object=NAME`: generates an ECDSA P-256 key pair
   * on the token, labelled NAME, with the URI's id or a random CKA_ID; the private key is
   * sensitive and not extractable. A label (or id) already on the token is refused.
   */
  static async create(ref: string, env: Pkcs11Env): Promise<Pkcs11Key> {
    const uri = parsePkcs11Uri(ref, env);
    const label = uri.object;
    if (label === undefined) {
      throw new KmsError(KmsErrorCode.KEY_REF_INVALID, `${uri.redacted}: a new key needs a label`, {
        hint: 'add object=NAME to the URI',
      });
    }
    return Pkcs11Key.withSession(uri, true, (module, session) => {
      const { binding, lib } = module;
      const where = `on token ${uri.token !== undefined ? `"${uri.token}"` : `in slot ${uri.slotId}`}`;
      let existing: Handle[];
      try {
        existing = findObjects(lib, session.handle, [{ type: binding.CKA_LABEL, value: label }]);
        if (uri.id) existing.push(...findObjects(lib, session.handle, [{ type: binding.CKA_ID, value: uri.id }]));
      } catch (err) {
        throw failed(uri.redacted, 'searching the token', err);
      }
      if (existing.length > 0) {
        const what = uri.id ? `an object labelled "${label}" or with id ${percentHex(uri.id)}` : `an object labelled "${label}"`;
        throw new KmsError(KmsErrorCode.KEY_EXISTS, `${uri.redacted}: ${where} there is already ${what}`, {
          hint: `sign with it (--key ${uri.redacted}), or choose another object= label`,
        });
      }
      const id = uri.id ?? randomBytes(16);
      const common = [
        { type: binding.CKA_TOKEN, value: true },
        { type: binding.CKA_LABEL, value: label },
        { type: binding.CKA_ID, value: id },
      ];
      let pair: { privateKey: Handle; publicKey: Handle };
      try {
        pair = lib.C_GenerateKeyPair(
          session.handle,
          { mechanism: binding.CKM_EC_KEY_PAIR_GEN },
          [
            ...common,
            { type: binding.CKA_CLASS, value: binding.CKO_PUBLIC_KEY },
            { type: binding.CKA_KEY_TYPE, value: binding.CKK_EC },
            { type: binding.CKA_EC_PARAMS, value: P256_PARAMS },
            { type: binding.CKA_VERIFY, value: true },
            { type: binding.CKA_PRIVATE, value: false },
          ],
          [
            ...common,
            { type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY },
            { type: binding.CKA_KEY_TYPE, value: binding.CKK_EC },
            { type: binding.CKA_SIGN, value: true },
            { type: binding.CKA_PRIVATE, value: true },
            { type: binding.CKA_SENSITIVE, value: true },
            { type: binding.CKA_EXTRACTABLE, value: false },
          ],
        );
      } catch (err) {
        throw failed(uri.redacted, 'generating an ECDSA P-256 key pair', err);
      }
      return Pkcs11Key.fromHandles(uri, module, session, pair.privateKey, pair.publicKey);
    });
  }

  /** Loads the module, finds the token, opens a logged-in session and hands them to `use`, releasing them if it throws. */
  private static async withSession(
    uri: Pkcs11Uri,
    readWrite: boolean,
    use: (module: Module, session: Session) => Pkcs11Key,
  ): Promise<Pkcs11Key> {
    const binding = await loadBinding();
    const module = acquireModule(binding, uri.modulePath, uri.redacted);
    let session: Session | undefined;
    try {
      session = Session.open(module, findToken(module, uri), uri, readWrite);
      return use(module, session);
    } catch (err) {
      session?.end();
      releaseModule(module);
      throw err;
    }
  }

  private static findPrivateKey(module: Module, session: Session, uri: Pkcs11Uri): Handle {
    const { binding, lib } = module;
    const template: Template = [{ type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY }];
    if (uri.object !== undefined) template.push({ type: binding.CKA_LABEL, value: uri.object });
    if (uri.id !== undefined) template.push({ type: binding.CKA_ID, value: uri.id });
    const wanted = [uri.object !== undefined ? `labelled "${uri.object}"` : '', uri.id ? `with id ${percentHex(uri.id)}` : '']
      .filter(Boolean)
      .join(' and ');
    try {
      const found = findObjects(lib, session.handle, template);
      if (found.length === 1) return found[0] as Handle;
      if (found.length === 0) {
        const all = findObjects(lib, session.handle, [{ type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY }]);
        const seen = all
          .map((h) => describeObject(module, session.handle, h))
          .sort()
          .join(', ');
        throw new KmsError(
          KmsErrorCode.KMS_FAILED,
          `${uri.redacted}: no private key ${wanted} on the token; private keys seen: ${seen || 'none'}`,
          {
            hint: 'name one of the keys seen in object= (or id=), or create one with apx generate-key-pair --kms',
          },
        );
      }
      // Sorted: tokens return objects in no particular order, and the message should not vary.
      const seen = found
        .map((h) => describeObject(module, session.handle, h))
        .sort()
        .join(', ');
      throw new KmsError(KmsErrorCode.KMS_FAILED, `${uri.redacted}: ${found.length} private keys ${wanted}: ${seen}`, {
        hint: 'add id= to choose one',
      });
    } catch (err) {
      throw failed(uri.redacted, 'searching the token', err);
    }
  }

  private static fromHandles(
    uri: Pkcs11Uri,
    module: Module,
    session: Session,
    privateKey: Handle,
    publicHandle?: Handle,
  ): Pkcs11Key {
    const { binding, lib } = module;
    let kind: KeyKind;
    let key: KeyObject;
    try {
      const type = Number(ulong(attribute(lib, session.handle, privateKey, binding.CKA_KEY_TYPE)));
      kind =
        type === binding.CKK_EC
          ? 'ec'
          : type === binding.CKK_RSA
            ? 'rsa'
            : type === CKK_EC_EDWARDS
              ? 'ed25519'
              : unsupported(uri, type);
      key = Pkcs11Key.readPublicKey(module, session, kind, privateKey, publicHandle, uri);
    } catch (err) {
      throw failed(uri.redacted, 'reading the public key', err);
    }
    let pub: PublicKey;
    try {
      pub = PublicKey.fromKeyObject(key);
    } catch (err) {
      if (!isApxError(err)) throw err;
      throw new KmsError(KmsErrorCode.KEY_UNSUPPORTED, `${uri.redacted}: ${err.message}`, { hint: err.hint ?? '', cause: err });
    }
    return new Pkcs11Key(uri.redacted, module, session, privateKey, kind, pub);
  }

  /**
   * The key's public half: the public key object beside it (same CKA_ID, else same label),
   * else a certificate with its id, else (RSA) the modulus and exponent the private key
   * object carries. Tokens differ in which of these they keep.
   */
  private static readPublicKey(
    module: Module,
    session: Session,
    kind: KeyKind,
    privateKey: Handle,
    publicHandle: Handle | undefined,
    uri: Pkcs11Uri,
  ): KeyObject {
    const { binding, lib } = module;
    const s = session.handle;
    const id = attribute(lib, s, privateKey, binding.CKA_ID);
    const label = attribute(lib, s, privateKey, binding.CKA_LABEL);
    const beside = (cls: number): Handle | undefined => {
      for (const [type, value] of [
        [binding.CKA_ID, id],
        [binding.CKA_LABEL, label],
      ] as const) {
        if (value.length === 0) continue;
        const found = findObjects(lib, s, [
          { type: binding.CKA_CLASS, value: cls },
          { type, value },
        ]);
        if (found.length === 1) return found[0];
      }
      return undefined;
    };
    const pubObject = publicHandle ?? beside(binding.CKO_PUBLIC_KEY);
    if (pubObject) {
      if (kind === 'rsa') {
        const [n, e] = lib.C_GetAttributeValue(s, pubObject, [
          { type: binding.CKA_MODULUS },
          { type: binding.CKA_PUBLIC_EXPONENT },
        ]);
        return rsaKey(n?.value, e?.value);
      }
      const [params, point] = lib.C_GetAttributeValue(s, pubObject, [
        { type: binding.CKA_EC_PARAMS },
        { type: binding.CKA_EC_POINT },
      ]);
      if (!params || !point) throw new Error('the public key object has no CKA_EC_PARAMS or CKA_EC_POINT');
      if (kind === 'ed25519') {
        if (!ED25519_PARAMS.has(params.value.toString('hex'))) {
          throw new KmsError(KmsErrorCode.KEY_UNSUPPORTED, `${uri.redacted}: only Ed25519 Edwards-curve keys are supported`, {
            hint: 'use an ECDSA P-256 key',
          });
        }
        return spki(ED25519_OID, octetString(point.value) ?? point.value);
      }
      return spki(Buffer.concat([EC_PUBLIC_KEY_OID, params.value]), ecPoint(point.value, params.value));
    }
    const cert = beside(binding.CKO_CERTIFICATE);
    if (cert) return new X509Certificate(attribute(lib, s, cert, binding.CKA_VALUE)).publicKey;
    if (kind === 'rsa') {
      const [n, e] = lib.C_GetAttributeValue(s, privateKey, [
        { type: binding.CKA_MODULUS },
        { type: binding.CKA_PUBLIC_EXPONENT },
      ]);
      return rsaKey(n?.value, e?.value);
    }
    throw new KmsError(KmsErrorCode.KMS_FAILED, `${uri.redacted}: the token holds no public key or certificate for the key`, {
      hint: 'store the public key (or a certificate) on the token with the same id as the private key',
    });
  }

  async publicKey(): Promise<PublicKey> {
    return this.pub;
  }

  async sign(message: Uint8Array): Promise<KmsSignature> {
    const { binding, lib } = this.module;
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    let mechanism: number;
    let input: Buffer;
    if (this.kind === 'ed25519' || digestAlgorithm === null) {
      mechanism = CKM_EDDSA;
      input = Buffer.from(message);
    } else {
      const digest = createHash(digestAlgorithm).update(message).digest();
      mechanism = this.kind === 'rsa' ? binding.CKM_RSA_PKCS : binding.CKM_ECDSA;
      input = this.kind === 'rsa' ? Buffer.concat([DIGEST_INFO[digestAlgorithm], digest]) : digest;
    }
    const raw = await this.exclusive(async () => {
      if (this.closed) throw new KmsError(KmsErrorCode.KMS_FAILED, `${this.keyRef}: the key is closed`);
      try {
        lib.C_SignInit(this.session.handle, { mechanism }, this.privateKey);
        // Asynchronous: a network HSM may take a while, and the event loop keeps running.
        return await lib.C_SignAsync(this.session.handle, input, Buffer.alloc(SIGNATURE_BUFFER_BYTES));
      } catch (err) {
        throw failed(this.keyRef, 'signing', err);
      }
    });
    // CKM_ECDSA returns r || s; cosign and APX's signature files carry DER.
    const signature = this.kind === 'ec' ? p1363ToDer(Buffer.from(raw)) : Buffer.from(raw);
    return { signature, digestAlgorithm, publicKey: this.pub };
  }

  /** Logs out (when no other key on the token is open), closes the session and, with the last key, finalises the module. */
  async close(): Promise<void> {
    await this.exclusive(async () => {
      if (this.closed) return;
      this.closed = true;
      this.session.end();
      releaseModule(this.module);
    });
  }

  /** Runs `fn` after the key's previous operations: one operation at a time on the session. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function rsaKey(modulus: Buffer | undefined, exponent: Buffer | undefined): KeyObject {
  if (!modulus?.length || !exponent?.length) throw new Error('the RSA key has no CKA_MODULUS or CKA_PUBLIC_EXPONENT');
  return createPublicKey({
    key: { kty: 'RSA', n: modulus.toString('base64url'), e: exponent.toString('base64url') },
    format: 'jwk',
  });
}

function unsupported(uri: Pkcs11Uri, keyType: number): never {
  throw new KmsError(
    KmsErrorCode.KEY_UNSUPPORTED,
    `${uri.redacted}: the private key is of PKCS#11 key type 0x${keyType.toString(16)}, which cannot sign for APX`,
    { hint: 'use an ECDSA (P-256, P-384, P-521), RSA (2048-4096) or Ed25519 key' },
  );
}
