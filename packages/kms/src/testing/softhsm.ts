// Test support: a throw-away SoftHSM2 token (a real PKCS#11 module, keys on disk in a temp
// directory), so PKCS#11 keys are tested against the module an HSM user would load, not a fake.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolMissing } from '@apx/core/testing/tools';

// Where distributions install the module (Debian/Ubuntu, Fedora, Homebrew, source builds).
const MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

/** The SoftHSM2 module: APX_SOFTHSM_MODULE, else the first usual location that exists. */
export function softhsmModule(): string | undefined {
  const configured = process.env.APX_SOFTHSM_MODULE;
  if (configured) return existsSync(configured) ? configured : undefined;
  return MODULE_CANDIDATES.find((p) => existsSync(p));
}

/**
 * Why SoftHSM tests cannot run here, or false when they can (for node:test's `skip`); in CI
 * (which installs softhsm2) a missing SoftHSM fails the run instead (@apx/core/testing/tools).
 */
export function softhsmSkipReason(): string | false {
  const problem = softhsmModule()
    ? false
    : `SoftHSM2 module not found (looked in ${MODULE_CANDIDATES[0]} and the usual places; set APX_SOFTHSM_MODULE)`;
  return toolMissing('softhsm2-util', { problem });
}

export interface SoftHsmOptions {
  label?: string;
  pin?: string;
  soPin?: string;
}

/**
 * A SoftHSM2 configuration in a temp directory with one initialised token. It points
 * SOFTHSM2_CONF at itself for this process; the module reads that variable when it is
 * initialised, so create the SoftHsm before opening keys, and close every key before
 * `cleanup()` (the module is finalised with the last key, and re-reads it next time).
 */
export class SoftHsm {
  readonly dir: string;
  readonly conf: string;
  readonly modulePath: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
  private readonly previousConf: string | undefined;

  private constructor(dir: string, modulePath: string, options: SoftHsmOptions) {
    this.dir = dir;
    this.conf = join(dir, 'softhsm2.conf');
    this.modulePath = modulePath;
    this.label = options.label ?? 'apx';
    this.pin = options.pin ?? '1234';
    this.soPin = options.soPin ?? '5678';
    this.previousConf = process.env.SOFTHSM2_CONF;
  }

  /** A fresh token (label `apx`, PIN 1234, SO PIN 5678 unless told otherwise). Throws if SoftHSM is missing. */
  static init(options: SoftHsmOptions = {}): SoftHsm {
    const modulePath = softhsmModule();
    if (!modulePath) throw new Error(String(softhsmSkipReason()));
    const hsm = new SoftHsm(mkdtempSync(join(tmpdir(), 'apx-softhsm-')), modulePath, options);
    mkdirSync(join(hsm.dir, 'tokens'));
    writeFileSync(hsm.conf, `directories.tokendir = ${join(hsm.dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    process.env.SOFTHSM2_CONF = hsm.conf;
    hsm.initToken(hsm.label);
    return hsm;
  }

  /** Initialises one more token (in the next free slot) with the same PINs. */
  initToken(label: string): void {
    const r = spawnSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', label, '--pin', this.pin, '--so-pin', this.soPin],
      { env: { ...process.env, SOFTHSM2_CONF: this.conf }, encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`softhsm2-util --init-token failed: ${(r.stderr || r.stdout).trim()}`);
  }

  /**
   * `pkcs11:token=<label>;object=<object>?module-path=<module>&pin-value=<pin>`; `pin: null`
   * leaves the PIN out (for COSIGN_PKCS11_PIN or a pin-source).
   */
  uri(object: string, options: { pin?: string | null; token?: string } = {}): string {
    const pin = options.pin === undefined ? this.pin : options.pin;
    const token = encodeURIComponent(options.token ?? this.label);
    const query = `module-path=${this.modulePath}${pin === null ? '' : `&pin-value=${encodeURIComponent(pin)}`}`;
    return `pkcs11:token=${token};object=${encodeURIComponent(object)}?${query}`;
  }

  /** Restores SOFTHSM2_CONF and removes the token files. */
  cleanup(): void {
    if (this.previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = this.previousConf;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
