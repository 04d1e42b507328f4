import type { CommandSpec } from '../command.js';
import { compileCommand } from './compile.js';
import { completionCommand } from './completion.js';
import { evalCommand } from './eval.js';
import { fmtCommand } from './fmt.js';
import { generateKeyPairCommand } from './generate-key-pair.js';
import { hashKeyCommand } from './hash-key.js';
import { importKeyPairCommand } from './import-key-pair.js';
import { indexCommand } from './index-cmd.js';
import { inspectCommand } from './inspect.js';
import { keysCommand } from './keys.js';
import { publicKeyCommand } from './public-key.js';
import { publishCommand } from './publish.js';
import { revokeCommand } from './revoke.js';
import { schemaCommand } from './schema.js';
import { signCommand } from './sign.js';
import { signBlobCommand } from './sign-blob.js';
import { testCommand } from './test.js';
import { trustCommand } from './trust/index.js';
import { verifyCommand } from './verify.js';
import { verifyAttestationCommand } from './verify-attestation.js';
import { verifyBlobCommand } from './verify-blob.js';
import { workerCommand } from './worker.js';

/** Every `apx` command, in the order --help lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  compileCommand,
  testCommand,
  fmtCommand,
  schemaCommand,
  evalCommand,
  inspectCommand,
  verifyCommand,
  generateKeyPairCommand,
  importKeyPairCommand,
  publicKeyCommand,
  signCommand,
  signBlobCommand,
  verifyBlobCommand,
  verifyAttestationCommand,
  publishCommand,
  revokeCommand,
  indexCommand,
  keysCommand,
  hashKeyCommand,
  trustCommand,
  workerCommand,
  completionCommand,
];
